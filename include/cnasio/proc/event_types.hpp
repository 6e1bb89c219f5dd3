// The process connector's event types (CN_IDX_PROC / CN_VAL_PROC): one table
// from which decoding, size checks, names, filter names and field walks derive.
//
// Wire layout (include/uapi/linux/cn_proc.h, struct proc_event, 40 bytes):
//
//   offset  size  field
//        0     4  what          (enum proc_cn_event, host byte order)
//        4     4  cpu           (CPU that generated the event)
//        8     8  timestamp_ns  (ktime_get_ns(): ns since boot)
//       16    24  event_data    (union, layout depends on `what`)
//
// The table: each typed struct below names its `what` (`type`), its name
// (`type_name`) and its union member's layout (`fields()`: the members in wire
// order, each immediately after the previous one, as in every member of the
// kernel's union). `typed_events` lists the structs; `event_types` is the same list as
// constexpr data (what, name, size of its fields, mask bit). Adding a type
// means adding an enumerator, a struct and its place in `typed_events`.
//
// The installed UAPI header (linux-libc-dev 6.1) predates the 6.6 filtering
// additions, so the constants are defined here rather than taken from
// <linux/cn_proc.h>; tests check every value and offset the header has.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <tuple>
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

using pid_type = std::int32_t; // __kernel_pid_t

inline constexpr std::size_t event_header_size = 16; // what, cpu, timestamp_ns
inline constexpr std::size_t event_wire_size = 40;   // sizeof(struct proc_event)

/// One member of a typed event as it sits in the kernel's event_data union:
/// its name (the kernel's field name) and the struct member holding it.
template <class S, class M>
struct wire_field {
    std::string_view name;
    M S::*member;
};
template <class S, class M>
wire_field(std::string_view, M S::*) -> wire_field<S, M>;

// ---- the typed events (the union event_data) ---------------------------------
// "pid" is the kernel's task pid (a thread id in user-space terms), "tgid" the
// process id.

// PROC_EVENT_NONE: the kernel's answer to a LISTEN/IGNORE request.
struct ack_event {
    static constexpr event_type type = event_type::none;
    static constexpr std::string_view type_name = "ack";
    std::uint32_t err = 0; // positive errno (0 = success, EINVAL for a bad op, EPERM)
    static constexpr auto fields() { return std::tuple{wire_field{"err", &ack_event::err}}; }
    friend bool operator==(const ack_event&, const ack_event&) = default;
};

struct fork_event {
    static constexpr event_type type = event_type::fork;
    static constexpr std::string_view type_name = "fork";
    pid_type parent_pid = 0;
    pid_type parent_tgid = 0;
    pid_type child_pid = 0;
    pid_type child_tgid = 0;
    static constexpr auto fields() {
        return std::tuple{wire_field{"parent_pid", &fork_event::parent_pid},
                          wire_field{"parent_tgid", &fork_event::parent_tgid},
                          wire_field{"child_pid", &fork_event::child_pid},
                          wire_field{"child_tgid", &fork_event::child_tgid}};
    }
    friend bool operator==(const fork_event&, const fork_event&) = default;
};

struct exec_event {
    static constexpr event_type type = event_type::exec;
    static constexpr std::string_view type_name = "exec";
    pid_type process_pid = 0;
    pid_type process_tgid = 0;
    static constexpr auto fields() {
        return std::tuple{wire_field{"process_pid", &exec_event::process_pid},
                          wire_field{"process_tgid", &exec_event::process_tgid}};
    }
    friend bool operator==(const exec_event&, const exec_event&) = default;
};

struct uid_event {
    static constexpr event_type type = event_type::uid;
    static constexpr std::string_view type_name = "uid";
    pid_type process_pid = 0;
    pid_type process_tgid = 0;
    std::uint32_t ruid = 0; // in the initial user namespace
    std::uint32_t euid = 0;
    static constexpr auto fields() {
        return std::tuple{wire_field{"process_pid", &uid_event::process_pid},
                          wire_field{"process_tgid", &uid_event::process_tgid}, wire_field{"ruid", &uid_event::ruid},
                          wire_field{"euid", &uid_event::euid}};
    }
    friend bool operator==(const uid_event&, const uid_event&) = default;
};

struct gid_event {
    static constexpr event_type type = event_type::gid;
    static constexpr std::string_view type_name = "gid";
    pid_type process_pid = 0;
    pid_type process_tgid = 0;
    std::uint32_t rgid = 0;
    std::uint32_t egid = 0;
    static constexpr auto fields() {
        return std::tuple{wire_field{"process_pid", &gid_event::process_pid},
                          wire_field{"process_tgid", &gid_event::process_tgid}, wire_field{"rgid", &gid_event::rgid},
                          wire_field{"egid", &gid_event::egid}};
    }
    friend bool operator==(const gid_event&, const gid_event&) = default;
};

struct sid_event {
    static constexpr event_type type = event_type::sid;
    static constexpr std::string_view type_name = "sid";
    pid_type process_pid = 0;
    pid_type process_tgid = 0;
    static constexpr auto fields() {
        return std::tuple{wire_field{"process_pid", &sid_event::process_pid},
                          wire_field{"process_tgid", &sid_event::process_tgid}};
    }
    friend bool operator==(const sid_event&, const sid_event&) = default;
};

struct ptrace_event {
    static constexpr event_type type = event_type::ptrace;
    static constexpr std::string_view type_name = "ptrace";
    pid_type process_pid = 0;
    pid_type process_tgid = 0;
    pid_type tracer_pid = 0; // 0/0 on PTRACE_DETACH
    pid_type tracer_tgid = 0;
    bool is_detach() const noexcept { return tracer_pid == 0 && tracer_tgid == 0; }
    static constexpr auto fields() {
        return std::tuple{wire_field{"process_pid", &ptrace_event::process_pid},
                          wire_field{"process_tgid", &ptrace_event::process_tgid},
                          wire_field{"tracer_pid", &ptrace_event::tracer_pid},
                          wire_field{"tracer_tgid", &ptrace_event::tracer_tgid}};
    }
    friend bool operator==(const ptrace_event&, const ptrace_event&) = default;
};

struct comm_event {
    static constexpr event_type type = event_type::comm;
    static constexpr std::string_view type_name = "comm";
    pid_type process_pid = 0;
    pid_type process_tgid = 0;
    std::array<char, 16> comm{}; // TASK_COMM_LEN; NUL-terminated by the kernel
    // The name up to the first NUL (or all 16 bytes if a sender left none).
    std::string_view name() const noexcept {
        std::size_t n = 0;
        while (n < comm.size() && comm[n] != '\0') ++n;
        return {comm.data(), n};
    }
    static constexpr auto fields() {
        return std::tuple{wire_field{"process_pid", &comm_event::process_pid},
                          wire_field{"process_tgid", &comm_event::process_tgid},
                          wire_field{"comm", &comm_event::comm}};
    }
    friend bool operator==(const comm_event&, const comm_event&) = default;
};

struct coredump_event {
    static constexpr event_type type = event_type::coredump;
    static constexpr std::string_view type_name = "coredump";
    pid_type process_pid = 0;
    pid_type process_tgid = 0;
    pid_type parent_pid = 0; // 0 when the task was no longer alive (pid_alive())
    pid_type parent_tgid = 0;
    static constexpr auto fields() {
        return std::tuple{wire_field{"process_pid", &coredump_event::process_pid},
                          wire_field{"process_tgid", &coredump_event::process_tgid},
                          wire_field{"parent_pid", &coredump_event::parent_pid},
                          wire_field{"parent_tgid", &coredump_event::parent_tgid}};
    }
    friend bool operator==(const coredump_event&, const coredump_event&) = default;
};

struct exit_event {
    static constexpr event_type type = event_type::exit;
    static constexpr std::string_view type_name = "exit";
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
    static constexpr auto fields() {
        return std::tuple{wire_field{"process_pid", &exit_event::process_pid},
                          wire_field{"process_tgid", &exit_event::process_tgid},
                          wire_field{"exit_code", &exit_event::exit_code},
                          wire_field{"exit_signal", &exit_event::exit_signal},
                          wire_field{"parent_pid", &exit_event::parent_pid},
                          wire_field{"parent_tgid", &exit_event::parent_tgid}};
    }
    friend bool operator==(const exit_event&, const exit_event&) = default;
};

// what == PROC_EVENT_NONZERO_EXIT (never sent by known kernels; see above):
// the exit layout.
struct nonzero_exit_event : exit_event {
    static constexpr event_type type = event_type::nonzero_exit;
    static constexpr std::string_view type_name = "nonzero_exit";
    friend bool operator==(const nonzero_exit_event&, const nonzero_exit_event&) = default;
};

/// The typed events, in the order names are listed (to_string(event_mask))
/// and in which they are alternatives of event_data.
template <class... Ts>
struct type_list {};
using typed_events = type_list<ack_event, fork_event, exec_event, uid_event, gid_event, sid_event, ptrace_event,
                               comm_event, coredump_event, exit_event, nonzero_exit_event>;

// A `what` this library does not know: kept, not rejected, so that a newer
// kernel's events reach the caller. `data` holds the bytes after the 16-byte
// header, at most 24 of them (the size of the union today); `size` says how
// many were present in the payload (may exceed 24: the rest is not kept).
struct unknown_event {
    static constexpr std::string_view type_name = "unknown";
    std::uint32_t what = 0;
    std::array<std::byte, 24> data{};
    std::size_t size = 0;
    std::span<const std::byte> bytes() const noexcept {
        return {data.data(), size < data.size() ? size : data.size()};
    }
    friend bool operator==(const unknown_event&, const unknown_event&) = default;
};

namespace detail {

template <class T, class M>
constexpr std::size_t field_size(wire_field<T, M>) noexcept {
    return sizeof(M);
}

// Bytes of event_data that T's fields occupy.
template <class T>
constexpr std::size_t data_size() noexcept {
    return std::apply([](auto... f) { return (std::size_t{0} + ... + field_size(f)); }, T::fields());
}

template <class List, class Extra>
struct variant_of;
template <class... Ts, class Extra>
struct variant_of<type_list<Ts...>, Extra> {
    using type = std::variant<Ts..., Extra>;
};

} // namespace detail

/// One alternative per typed event, then unknown_event.
using event_data = detail::variant_of<typed_events, unknown_event>::type;

/// One row of the table, as data.
struct event_type_info {
    event_type type;       ///< proc_event.what, which is also its mask bit (none: no bit)
    std::string_view name; ///< to_string(), and the filter-list name of the filterable types
    std::size_t data_size; ///< bytes of event_data its fields occupy
    constexpr std::uint32_t what() const noexcept { return static_cast<std::uint32_t>(type); }
    /// A bit of struct proc_input.event_type (every type but the ack).
    constexpr bool filterable() const noexcept { return what() != 0; }
};

namespace detail {
template <class... Ts>
constexpr auto make_event_types(type_list<Ts...>) noexcept {
    return std::array<event_type_info, sizeof...(Ts)>{{{Ts::type, Ts::type_name, data_size<Ts>()}...}};
}
} // namespace detail

/// The table, in typed_events order.
inline constexpr auto event_types = detail::make_event_types(typed_events{});

/// The row of `what`, or nullptr for a value no type has.
constexpr const event_type_info* find_event_type(std::uint32_t what) noexcept {
    for (const auto& t : event_types)
        if (t.what() == what) return &t;
    return nullptr;
}

/// PROC_EVENT_ALL (6.6+): every filterable type's bit. A LISTEN in the 4-byte
/// form means this mask on 6.6+ kernels.
inline constexpr std::uint32_t event_type_all_bits = [] {
    std::uint32_t bits = 0;
    for (const auto& t : event_types) bits |= t.what();
    return bits;
}();

/// Smallest payload that holds the header plus the fields of `what`'s type;
/// for an unknown type only the header is needed.
constexpr std::size_t min_payload_size(std::uint32_t what) noexcept {
    const auto* t = find_event_type(what);
    return event_header_size + (t ? t->data_size : 0);
}

// Every type's fields fit in the kernel's 40-byte struct: a payload of that
// size needs no per-type check.
static_assert([] {
    for (const auto& t : event_types)
        if (event_header_size + t.data_size > event_wire_size) return false;
    return true;
}());
// Each `what` is one bit (none: zero) and names one row.
static_assert([] {
    for (std::size_t i = 0; i < event_types.size(); ++i) {
        const auto w = event_types[i].what();
        if ((w & (w - 1)) != 0) return false;
        for (std::size_t j = 0; j < i; ++j)
            if (event_types[j].what() == w || event_types[j].name == event_types[i].name) return false;
    }
    return true;
}());

/// "fork", "exit", ...; "ack" for PROC_EVENT_NONE (the kernel only sends it as
/// an acknowledgement); "unknown" for any other value.
constexpr std::string_view to_string(event_type t) noexcept {
    const auto* row = find_event_type(static_cast<std::uint32_t>(t));
    return row ? row->name : unknown_event::type_name;
}

/// The inverse of to_string for the filterable types ("ack" is not one: it is
/// not a bit of the mask). Exact, lower-case match.
constexpr std::optional<event_type> event_type_from_string(std::string_view s) noexcept {
    for (const auto& t : event_types)
        if (t.filterable() && t.name == s) return t.type;
    return std::nullopt;
}

/// Calls f(std::type_identity<T>{}) for the typed event T whose type is
/// `what`; returns false, calling nothing, for a `what` no type has.
template <class F>
constexpr bool visit_event_type(std::uint32_t what, F&& f) {
    return [&]<class... Ts>(type_list<Ts...>) {
        return ((what == static_cast<std::uint32_t>(Ts::type) ? (f(std::type_identity<Ts>{}), true) : false) || ...);
    }(typed_events{});
}

namespace detail {
// How for_each_field presents a member: the comm array as the text up to its
// first NUL, everything else as it is.
template <class M>
constexpr const M& field_value(const M& v) noexcept {
    return v;
}
template <std::size_t N>
constexpr std::string_view field_value(const std::array<char, N>& v) noexcept {
    std::size_t n = 0;
    while (n < N && v[n] != '\0') ++n;
    return {v.data(), n};
}
} // namespace detail

/// Calls f(name, value) for each field of a typed event, in wire order, with
/// the kernel's field names ("parent_pid", "exit_code", ...). Values are the
/// members (std::int32_t, std::uint32_t), except comm: a std::string_view up to
/// its first NUL. For unknown_event: ("what", std::uint32_t) and
/// ("data", std::span<const std::byte>) with the bytes kept.
template <class T, class F>
constexpr void for_each_field(const T& e, F&& f) {
    if constexpr (std::is_same_v<T, unknown_event>) {
        f(std::string_view{"what"}, e.what);
        f(std::string_view{"data"}, e.bytes());
    } else {
        std::apply([&](auto... field) { (f(field.name, detail::field_value(e.*(field.member))), ...); },
                   T::fields());
    }
}

/// The same for whichever alternative `data` holds.
template <class F>
constexpr void for_each_field(const event_data& data, F&& f) {
    std::visit([&](const auto& e) { for_each_field(e, f); }, data);
}

} // namespace cnasio::proc
