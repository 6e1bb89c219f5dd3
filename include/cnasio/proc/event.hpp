// Typed decoding of process-connector events (CN_IDX_PROC / CN_VAL_PROC).
//
// Sans-IO: every function here works on a byte span holding the connector
// payload of one message (the bytes after struct cn_msg, i.e. at datagram
// offset 36 for the kernel's messages) and never touches a socket.
//
// Wire layout (include/uapi/linux/cn_proc.h, struct proc_event, 40 bytes):
//
//   offset  size  field
//        0     4  what          (enum proc_cn_event, host byte order)
//        4     4  cpu           (CPU that generated the event)
//        8     8  timestamp_ns  (ktime_get_ns(): ns since boot)
//       16    24  event_data    (union, layout depends on `what`)
//
// In a receive buffer the payload sits at offset 36, so the u64 timestamp is
// misaligned: every field is read with memcpy, never through a cast pointer.
//
// The installed UAPI header (linux-libc-dev 6.1) predates the 6.6 filtering
// additions, so the constants are defined here rather than taken from
// <linux/cn_proc.h>; tests check that the common ones agree with the header.
#pragma once

#include <cnasio/error.hpp>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

namespace cnasio::proc {

// The connector id the kernel's process-events module registers.
inline constexpr std::uint32_t connector_idx = 1; // CN_IDX_PROC
inline constexpr std::uint32_t connector_val = 1; // CN_VAL_PROC

// proc_event.what values. Each is one bit so that a set of them is a mask
// (struct proc_input.event_type on 6.6+ kernels).
enum class event_type : std::uint32_t {
    none = 0x00000000, // acknowledgement of a LISTEN/IGNORE request
    fork = 0x00000001,
    exec = 0x00000002,
    uid = 0x00000004,
    gid = 0x00000040,
    sid = 0x00000080,
    ptrace = 0x00000100,
    comm = 0x00000200,
    // Only a filter bit on the kernels we know (6.6 .. 6.18): cn_filter() lets
    // an exit event through for a socket whose mask holds it if the exit code
    // is non-zero. No kernel sends `what == nonzero_exit`; should one ever do,
    // it is decoded with the exit layout.
    nonzero_exit = 0x20000000,
    coredump = 0x40000000,
    exit = 0x80000000,
};

// PROC_EVENT_ALL (6.6+): every bit above. A LISTEN in the 4-byte form means
// this mask on 6.6+ kernels.
inline constexpr std::uint32_t event_type_all_bits = 0xe00003c7u;

// A set of event types: the 6.6+ proc_input event_type field, the classic BPF
// filter's input, and the parse result of "fork,exec,exit".
class event_mask {
public:
    constexpr event_mask() noexcept = default;
    constexpr event_mask(event_type t) noexcept // NOLINT: a type is a one-element set
        : bits_{static_cast<std::uint32_t>(t)} {}
    static constexpr event_mask from_bits(std::uint32_t bits) noexcept {
        event_mask m;
        m.bits_ = bits;
        return m;
    }
    static constexpr event_mask all() noexcept { return from_bits(event_type_all_bits); }

    constexpr std::uint32_t bits() const noexcept { return bits_; }
    constexpr bool empty() const noexcept { return bits_ == 0; }
    constexpr bool is_all() const noexcept { return bits_ == event_type_all_bits; }
    constexpr bool contains(event_type t) const noexcept {
        auto b = static_cast<std::uint32_t>(t);
        return b != 0 && (bits_ & b) == b;
    }

    // What the kernel makes of this mask (valid_event() in cn_proc.h and
    // cn_proc_mcast_ctl()): unknown bits are dropped, and an empty result
    // becomes PROC_EVENT_ALL.
    constexpr event_mask kernel_effective() const noexcept {
        std::uint32_t b = bits_ & event_type_all_bits;
        return from_bits(b == 0 ? event_type_all_bits : b);
    }

    friend constexpr event_mask operator|(event_mask a, event_mask b) noexcept {
        return from_bits(a.bits_ | b.bits_);
    }
    friend constexpr event_mask operator&(event_mask a, event_mask b) noexcept {
        return from_bits(a.bits_ & b.bits_);
    }
    constexpr event_mask& operator|=(event_mask o) noexcept {
        bits_ |= o.bits_;
        return *this;
    }
    friend constexpr bool operator==(event_mask, event_mask) noexcept = default;

private:
    std::uint32_t bits_ = 0;
};

constexpr event_mask operator|(event_type a, event_type b) noexcept { return event_mask{a} | event_mask{b}; }

using pid_type = std::int32_t; // __kernel_pid_t

// ---- per-type payloads (the union event_data) --------------------------------
// Field names follow the kernel's. "pid" is the kernel's task pid (a thread id
// in user-space terms), "tgid" the process id.

// PROC_EVENT_NONE: the kernel's answer to a LISTEN/IGNORE request.
struct ack_event {
    std::uint32_t err = 0; // positive errno (0 = success, EINVAL for a bad op, EPERM)
    friend bool operator==(const ack_event&, const ack_event&) = default;
};

struct fork_event {
    pid_type parent_pid = 0;
    pid_type parent_tgid = 0;
    pid_type child_pid = 0;
    pid_type child_tgid = 0;
    friend bool operator==(const fork_event&, const fork_event&) = default;
};

struct exec_event {
    pid_type process_pid = 0;
    pid_type process_tgid = 0;
    friend bool operator==(const exec_event&, const exec_event&) = default;
};

struct uid_event {
    pid_type process_pid = 0;
    pid_type process_tgid = 0;
    std::uint32_t ruid = 0; // in the initial user namespace
    std::uint32_t euid = 0;
    friend bool operator==(const uid_event&, const uid_event&) = default;
};

struct gid_event {
    pid_type process_pid = 0;
    pid_type process_tgid = 0;
    std::uint32_t rgid = 0;
    std::uint32_t egid = 0;
    friend bool operator==(const gid_event&, const gid_event&) = default;
};

struct sid_event {
    pid_type process_pid = 0;
    pid_type process_tgid = 0;
    friend bool operator==(const sid_event&, const sid_event&) = default;
};

struct ptrace_event {
    pid_type process_pid = 0;
    pid_type process_tgid = 0;
    pid_type tracer_pid = 0; // 0/0 on PTRACE_DETACH
    pid_type tracer_tgid = 0;
    bool is_detach() const noexcept { return tracer_pid == 0 && tracer_tgid == 0; }
    friend bool operator==(const ptrace_event&, const ptrace_event&) = default;
};

struct comm_event {
    pid_type process_pid = 0;
    pid_type process_tgid = 0;
    std::array<char, 16> comm{}; // TASK_COMM_LEN; NUL-terminated by the kernel
    // The name up to the first NUL (or all 16 bytes if a sender left none).
    std::string_view name() const noexcept {
        std::size_t n = 0;
        while (n < comm.size() && comm[n] != '\0') ++n;
        return {comm.data(), n};
    }
    friend bool operator==(const comm_event&, const comm_event&) = default;
};

struct coredump_event {
    pid_type process_pid = 0;
    pid_type process_tgid = 0;
    pid_type parent_pid = 0; // 0 when the task was no longer alive (pid_alive())
    pid_type parent_tgid = 0;
    friend bool operator==(const coredump_event&, const coredump_event&) = default;
};

struct exit_event {
    pid_type process_pid = 0;
    pid_type process_tgid = 0;
    // task->exit_code: a wait status as waitpid() reports it, not the value
    // passed to exit(): _exit(7) arrives as 7 << 8 = 1792, death by SIGKILL as 9.
    std::uint32_t exit_code = 0;
    // task->exit_signal: the signal the parent gets (SIGCHLD normally), -1 for
    // a thread that is not the group leader.
    std::int32_t exit_signal = 0;
    pid_type parent_pid = 0; // 0 when the task was no longer alive
    pid_type parent_tgid = 0;

    // The WIFEXITED/WEXITSTATUS/WIFSIGNALED/WTERMSIG/WCOREDUMP decoding of
    // exit_code, spelled out so that no <sys/wait.h> macro is needed.
    constexpr bool exited() const noexcept { return (exit_code & 0x7fu) == 0; }
    constexpr int exit_status() const noexcept { return static_cast<int>((exit_code >> 8) & 0xffu); }
    constexpr bool signaled() const noexcept {
        auto sig = exit_code & 0x7fu;
        return sig != 0 && sig != 0x7fu;
    }
    constexpr int term_signal() const noexcept { return static_cast<int>(exit_code & 0x7fu); }
    constexpr bool core_dumped() const noexcept { return signaled() && (exit_code & 0x80u) != 0; }
    friend bool operator==(const exit_event&, const exit_event&) = default;
};

// what == PROC_EVENT_NONZERO_EXIT (never sent by known kernels; see above).
struct nonzero_exit_event : exit_event {
    friend bool operator==(const nonzero_exit_event&, const nonzero_exit_event&) = default;
};

// A `what` this library does not know: kept, not rejected, so that a newer
// kernel's events reach the caller. `data` holds the bytes after the 16-byte
// header, at most 24 of them (the size of the union today); `size` says how
// many were present in the payload (may exceed 24: the rest is not kept).
struct unknown_event {
    std::uint32_t what = 0;
    std::array<std::byte, 24> data{};
    std::size_t size = 0;
    std::span<const std::byte> bytes() const noexcept {
        return {data.data(), size < data.size() ? size : data.size()};
    }
    friend bool operator==(const unknown_event&, const unknown_event&) = default;
};

using event_data =
    std::variant<ack_event, fork_event, exec_event, uid_event, gid_event, sid_event, ptrace_event, comm_event,
                 coredump_event, exit_event, nonzero_exit_event, unknown_event>;

// The cn_msg header fields the decoder cannot see in the payload.
struct message_numbers {
    std::uint32_t seq = 0; // cn_msg.seq: the kernel's per-CPU event counter (acks too, see loss.hpp)
    std::uint32_t ack = 0; // cn_msg.ack: 0 on events, request ack + 1 on acks
};

struct event {
    std::uint32_t what = 0; // raw proc_event.what
    std::uint32_t cpu = 0;
    std::uint64_t timestamp_ns = 0;
    std::uint32_t seq = 0; // from message_numbers
    std::uint32_t ack = 0;
    event_data data;

    event_type type() const noexcept { return static_cast<event_type>(what); }
    bool is_ack() const noexcept { return std::holds_alternative<ack_event>(data); }
    template <class T>
    const T* get_if() const noexcept {
        return std::get_if<T>(&data);
    }
};

// ---- sizes -------------------------------------------------------------------

inline constexpr std::size_t event_header_size = 16; // what, cpu, timestamp_ns
inline constexpr std::size_t event_wire_size = 40;   // sizeof(struct proc_event)

// Smallest payload that holds the header plus the fields of type `t`; for an
// unknown type only the header is needed.
constexpr std::size_t min_payload_size(std::uint32_t what) noexcept {
    switch (static_cast<event_type>(what)) {
    case event_type::none: return event_header_size + 4;
    case event_type::fork: return event_header_size + 16;
    case event_type::exec: return event_header_size + 8;
    case event_type::uid: return event_header_size + 16;
    case event_type::gid: return event_header_size + 16;
    case event_type::sid: return event_header_size + 8;
    case event_type::ptrace: return event_header_size + 16;
    case event_type::comm: return event_header_size + 8 + 16;
    case event_type::coredump: return event_header_size + 16;
    case event_type::exit:
    case event_type::nonzero_exit: return event_header_size + 24;
    }
    return event_header_size;
}

namespace detail {

// Reads a host-order scalar from any address.
template <class T>
T load(const std::byte* p) noexcept {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// The union's layout for each type, in one place: `d` points at event_data
// (payload offset 16) and at least min_payload_size(what) - 16 bytes are there.
inline void read_fields(const std::byte* d, ack_event& e) noexcept { e.err = load<std::uint32_t>(d); }
inline void read_fields(const std::byte* d, fork_event& e) noexcept {
    e = {load<pid_type>(d), load<pid_type>(d + 4), load<pid_type>(d + 8), load<pid_type>(d + 12)};
}
inline void read_fields(const std::byte* d, exec_event& e) noexcept { e = {load<pid_type>(d), load<pid_type>(d + 4)}; }
inline void read_fields(const std::byte* d, uid_event& e) noexcept {
    e = {load<pid_type>(d), load<pid_type>(d + 4), load<std::uint32_t>(d + 8), load<std::uint32_t>(d + 12)};
}
inline void read_fields(const std::byte* d, gid_event& e) noexcept {
    e = {load<pid_type>(d), load<pid_type>(d + 4), load<std::uint32_t>(d + 8), load<std::uint32_t>(d + 12)};
}
inline void read_fields(const std::byte* d, sid_event& e) noexcept { e = {load<pid_type>(d), load<pid_type>(d + 4)}; }
inline void read_fields(const std::byte* d, ptrace_event& e) noexcept {
    e = {load<pid_type>(d), load<pid_type>(d + 4), load<pid_type>(d + 8), load<pid_type>(d + 12)};
}
inline void read_fields(const std::byte* d, comm_event& e) noexcept {
    e.process_pid = load<pid_type>(d);
    e.process_tgid = load<pid_type>(d + 4);
    std::memcpy(e.comm.data(), d + 8, e.comm.size());
}
inline void read_fields(const std::byte* d, coredump_event& e) noexcept {
    e = {load<pid_type>(d), load<pid_type>(d + 4), load<pid_type>(d + 8), load<pid_type>(d + 12)};
}
inline void read_fields(const std::byte* d, exit_event& e) noexcept {
    e.process_pid = load<pid_type>(d);
    e.process_tgid = load<pid_type>(d + 4);
    e.exit_code = load<std::uint32_t>(d + 8);
    e.exit_signal = load<std::int32_t>(d + 12);
    e.parent_pid = load<pid_type>(d + 16);
    e.parent_tgid = load<pid_type>(d + 20);
}
// `size`: the bytes present after the header (any number).
inline void read_fields(const std::byte* d, std::size_t size, std::uint32_t what, unknown_event& e) noexcept {
    e.what = what;
    e.size = size;
    std::memcpy(e.data.data(), d, size < e.data.size() ? size : e.data.size());
}

// The `what` each payload type is decoded from.
template <class T>
inline constexpr std::uint32_t what_of = 0;
template <> inline constexpr std::uint32_t what_of<ack_event> = static_cast<std::uint32_t>(event_type::none);
template <> inline constexpr std::uint32_t what_of<fork_event> = static_cast<std::uint32_t>(event_type::fork);
template <> inline constexpr std::uint32_t what_of<exec_event> = static_cast<std::uint32_t>(event_type::exec);
template <> inline constexpr std::uint32_t what_of<uid_event> = static_cast<std::uint32_t>(event_type::uid);
template <> inline constexpr std::uint32_t what_of<gid_event> = static_cast<std::uint32_t>(event_type::gid);
template <> inline constexpr std::uint32_t what_of<sid_event> = static_cast<std::uint32_t>(event_type::sid);
template <> inline constexpr std::uint32_t what_of<ptrace_event> = static_cast<std::uint32_t>(event_type::ptrace);
template <> inline constexpr std::uint32_t what_of<comm_event> = static_cast<std::uint32_t>(event_type::comm);
template <> inline constexpr std::uint32_t what_of<coredump_event> = static_cast<std::uint32_t>(event_type::coredump);
template <> inline constexpr std::uint32_t what_of<exit_event> = static_cast<std::uint32_t>(event_type::exit);
template <>
inline constexpr std::uint32_t what_of<nonzero_exit_event> = static_cast<std::uint32_t>(event_type::nonzero_exit);

constexpr bool is_known_what(std::uint32_t what) noexcept {
    switch (static_cast<event_type>(what)) {
    case event_type::none:
    case event_type::fork:
    case event_type::exec:
    case event_type::uid:
    case event_type::gid:
    case event_type::sid:
    case event_type::ptrace:
    case event_type::comm:
    case event_type::coredump:
    case event_type::exit:
    case event_type::nonzero_exit: return true;
    }
    return false;
}

} // namespace detail

/// One proc event inside a received payload, read on demand. `parse()` makes
/// the same length checks as decode(), once; after that each accessor reads
/// only the bytes of the field it returns. No copy and no variant: the fast
/// path for a loop that looks at a few fields of many events (the parse
/// benchmark's loop costs about a quarter of decode()'s). The view points into
/// the payload, which must outlive it.
///
///     proc::event_view v;
///     if (proc::event_view::parse(m.payload, {m.seq(), m.ack()}, v, ec))
///         if (auto f = v.get<proc::fork_event>()) use(f->child_pid);
class event_view {
public:
    event_view() noexcept = default;

    /// Checks `payload` and points `out` at it. On error (EBADMSG, generic
    /// category: shorter than the header or than the fields of its type)
    /// returns false with `ec` set and `out` empty. An unknown `what` is not an
    /// error, as for decode().
    static bool parse(std::span<const std::byte> payload, message_numbers numbers, event_view& out,
                      error_code& ec) noexcept {
        // The kernel always sends the whole 40-byte struct, which holds every known type's fields:
        // only a shorter payload needs the per-type size.
        if (payload.size() < event_wire_size) [[unlikely]] {
            if (payload.size() < event_header_size ||
                payload.size() < min_payload_size(detail::load<std::uint32_t>(payload.data()))) {
                out = event_view{};
                ec = errno_code(EBADMSG);
                return false;
            }
        }
        out.p_ = payload.data();
        out.size_ = payload.size();
        out.numbers_ = numbers;
        ec.clear();
        return true;
    }

    /// False for a default-constructed view or after a failed parse().
    explicit operator bool() const noexcept { return p_ != nullptr; }

    std::uint32_t what() const noexcept { return detail::load<std::uint32_t>(p_); }
    event_type type() const noexcept { return static_cast<event_type>(what()); }
    std::uint32_t cpu() const noexcept { return detail::load<std::uint32_t>(p_ + 4); }
    std::uint64_t timestamp_ns() const noexcept { return detail::load<std::uint64_t>(p_ + 8); }
    std::uint32_t seq() const noexcept { return numbers_.seq; }
    std::uint32_t ack() const noexcept { return numbers_.ack; }
    bool is_ack() const noexcept { return what() == 0; }
    /// The whole connector payload this view reads.
    std::span<const std::byte> payload() const noexcept { return {p_, size_}; }

    /// The fields of a T (fork_event, exit_event, ...) if this event is one,
    /// else nullopt. get<unknown_event>() answers for a `what` no type has.
    template <class T>
    std::optional<T> get() const noexcept {
        const std::uint32_t w = what();
        T out{};
        if constexpr (std::is_same_v<T, unknown_event>) {
            if (detail::is_known_what(w)) return std::nullopt;
            detail::read_fields(p_ + event_header_size, size_ - event_header_size, w, out);
        } else {
            if (w != detail::what_of<T>) return std::nullopt;
            detail::read_fields(p_ + event_header_size, out);
        }
        return out;
    }

    /// The owning, typed event: what decode() gives for the same payload.
    event to_event() const noexcept {
        event ev;
        fill(ev);
        return ev;
    }

    /// to_event() into an event that is reused (no copy of the result).
    void fill(event& ev) const noexcept {
        ev.what = what();
        ev.cpu = cpu();
        ev.timestamp_ns = timestamp_ns();
        ev.seq = numbers_.seq;
        ev.ack = numbers_.ack;
        const std::byte* d = p_ + event_header_size;
        auto set = [&](auto typed) {
            detail::read_fields(d, typed);
            ev.data = typed;
        };
        switch (static_cast<event_type>(ev.what)) {
        case event_type::none: set(ack_event{}); break;
        case event_type::fork: set(fork_event{}); break;
        case event_type::exec: set(exec_event{}); break;
        case event_type::uid: set(uid_event{}); break;
        case event_type::gid: set(gid_event{}); break;
        case event_type::sid: set(sid_event{}); break;
        case event_type::ptrace: set(ptrace_event{}); break;
        case event_type::comm: set(comm_event{}); break;
        case event_type::coredump: set(coredump_event{}); break;
        case event_type::exit: set(exit_event{}); break;
        case event_type::nonzero_exit: set(nonzero_exit_event{}); break;
        default: {
            unknown_event u;
            detail::read_fields(d, size_ - event_header_size, ev.what, u);
            ev.data = u;
            break;
        }
        }
    }

private:
    const std::byte* p_ = nullptr;
    std::size_t size_ = 0;
    message_numbers numbers_{};
};

// Decoding the connector payload of one proc message.
// Errors (ec set, value-initialised event): EBADMSG (generic category) when the
// payload is shorter than the header or than the fields of its type. An
// unknown `what` is not an error: it yields unknown_event. Longer payloads than
// needed are accepted (the extra bytes are ignored), so a kernel that grows
// struct proc_event keeps working.

/// Decodes into `ev` (no copy of the result: the fast path for a receive
/// loop that reuses one event). Returns false, with `ec` set and `ev` reset,
/// on error.
inline bool decode(std::span<const std::byte> payload, message_numbers numbers, event& ev, error_code& ec) noexcept {
    event_view v;
    if (!event_view::parse(payload, numbers, v, ec)) {
        ev = event{};
        return false;
    }
    v.fill(ev);
    return true;
}

/// Decodes the connector payload of a proc message. A payload too short for
/// the header or for its type gives EBADMSG (and an empty event); an unknown
/// type is not an error: it decodes as `unknown_event`.
inline event decode(std::span<const std::byte> payload, message_numbers numbers, error_code& ec) noexcept {
    event ev; // one named result: returned without a copy
    decode(payload, numbers, ev, ec);
    return ev;
}

inline event decode(const void* payload, std::size_t size, message_numbers numbers, error_code& ec) noexcept {
    return decode(std::span<const std::byte>{static_cast<const std::byte*>(payload), size}, numbers, ec);
}

// ---- names ---------------------------------------------------------------------

namespace detail {
struct event_name {
    std::string_view name;
    event_type type;
};
// The names accepted in filter lists, in the order to_string(event_mask) prints.
inline constexpr std::array<event_name, 10> filter_names{{
    {"fork", event_type::fork},
    {"exec", event_type::exec},
    {"uid", event_type::uid},
    {"gid", event_type::gid},
    {"sid", event_type::sid},
    {"ptrace", event_type::ptrace},
    {"comm", event_type::comm},
    {"coredump", event_type::coredump},
    {"exit", event_type::exit},
    {"nonzero_exit", event_type::nonzero_exit},
}};
} // namespace detail

// "fork", "exit", ...; "ack" for PROC_EVENT_NONE (the kernel only sends it as
// an acknowledgement); "unknown" for any other value.
constexpr std::string_view to_string(event_type t) noexcept {
    if (t == event_type::none) return "ack";
    for (const auto& n : detail::filter_names)
        if (n.type == t) return n.name;
    return "unknown";
}

// The inverse of to_string for the filterable types ("ack" is not one: it is
// not a bit of the mask). Exact, lower-case match.
constexpr std::optional<event_type> event_type_from_string(std::string_view s) noexcept {
    for (const auto& n : detail::filter_names)
        if (n.name == s) return n.type;
    return std::nullopt;
}

// Parses a comma-separated list of type names ("fork,exec,exit"), or "all".
// Blanks around names are ignored. Errors (ec = EINVAL, generic category;
// empty mask returned): an unknown name, an empty list or an empty element
// ("fork,,exit"). `bad_name`, when given, receives the offending element so
// that a tool can name it in its message.
inline event_mask parse_event_mask(std::string_view list, error_code& ec,
                                   std::string_view* bad_name = nullptr) noexcept {
    ec.clear();
    auto trim = [](std::string_view s) {
        while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
        while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
        return s;
    };
    auto fail = [&](std::string_view what) {
        ec = errno_code(EINVAL);
        if (bad_name) *bad_name = what;
        return event_mask{};
    };
    if (trim(list).empty()) return fail(list);
    event_mask mask;
    for (;;) {
        auto comma = list.find(',');
        auto item = trim(list.substr(0, comma));
        if (item == "all") {
            mask |= event_mask::all();
        } else if (auto t = event_type_from_string(item)) {
            mask |= *t;
        } else {
            return fail(item);
        }
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return mask;
}

// "fork,exec,exit" (known bits, in filter_names order), "all" for the full
// mask, "" for the empty one; unknown bits are shown as one "0x..." element.
inline std::string to_string(event_mask m) {
    if (m.is_all()) return "all";
    std::string out;
    std::uint32_t rest = m.bits();
    for (const auto& n : detail::filter_names) {
        if (m.contains(n.type)) {
            if (!out.empty()) out += ',';
            out += n.name;
            rest &= ~static_cast<std::uint32_t>(n.type);
        }
    }
    if (rest != 0) {
        static constexpr char hex[] = "0123456789abcdef";
        if (!out.empty()) out += ',';
        out += "0x";
        bool started = false;
        for (int shift = 28; shift >= 0; shift -= 4) {
            unsigned digit = (rest >> shift) & 0xfu;
            if (digit != 0 || started || shift == 0) {
                out += hex[digit];
                started = true;
            }
        }
    }
    return out;
}

} // namespace cnasio::proc
