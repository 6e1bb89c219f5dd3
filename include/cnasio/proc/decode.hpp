// Decoding the connector payload of one proc message (the bytes after struct
// cn_msg, at datagram offset 36 in the kernel's messages): event_view reads
// fields on demand, decode() fills the owning, typed event. Sans-IO.
//
// In a receive buffer the payload sits at offset 36, so the u64 timestamp is
// misaligned: every field is read with memcpy, never through a cast pointer.
// Layouts and sizes come from the event-type table (event_types.hpp).
#pragma once

#include <cnasio/error.hpp>
#include <cnasio/proc/event_types.hpp>

#include <array>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

namespace cnasio::proc {

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

/// Calls f(name, value) for each field of the event's typed data (see
/// for_each_field in event_types.hpp); the header fields (what, cpu,
/// timestamp_ns, seq, ack) are the event's members.
template <class F>
constexpr void for_each_field(const event& ev, F&& f) {
    for_each_field(ev.data, f);
}

namespace detail {

// Reads a host-order scalar from any address.
template <class T>
T load(const std::byte* p) noexcept {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// Field I of T and its offset in event_data (the fields lie back to back).
template <class T, std::size_t I>
inline constexpr auto field_at = std::get<I>(T::fields());
template <class T, std::size_t I>
inline constexpr std::size_t offset_of = [] {
    std::size_t offset = 0;
    [&]<std::size_t... J>(std::index_sequence<J...>) {
        ((offset += field_size(field_at<T, J>)), ...);
    }(std::make_index_sequence<I>{});
    return offset;
}();

template <class T, std::size_t... I>
void read_fields(const std::byte* d, T& e, std::index_sequence<I...>) noexcept {
    ((std::memcpy(&(e.*(field_at<T, I>.member)), d + offset_of<T, I>, field_size(field_at<T, I>))), ...);
}

// True when T's object representation is its wire layout: no padding, and
// field I at offset_of<T, I>. Checked by writing a distinct byte pattern into
// each field of a constexpr T and reading the bytes back (std::bit_cast), so
// the answer comes from the compiler, not from a comment.
template <class T, std::size_t I>
constexpr bool field_in_place() noexcept {
    using M = std::remove_cvref_t<decltype(T{}.*(field_at<T, I>.member))>;
    using bytes = std::array<unsigned char, sizeof(T)>;
    T t{};
    auto& f = t.*(field_at<T, I>.member);
    if constexpr (std::is_integral_v<M>) {
        f = static_cast<M>(0x5a);
    } else {
        f[0] = static_cast<typename M::value_type>(0x5a);
    }
    const bytes b = std::bit_cast<bytes>(t);
    for (std::size_t i = 0; i < sizeof(T); ++i)
        if ((b[i] != 0) != (i == offset_of<T, I>)) return false;
    return true;
}
template <class T, std::size_t... I>
constexpr bool wire_exact(std::index_sequence<I...>) noexcept {
    return std::is_trivially_copyable_v<T> && sizeof(T) == data_size<T>() && (field_in_place<T, I>() && ...);
}
template <class T>
inline constexpr bool wire_exact_v =
    wire_exact<T>(std::make_index_sequence<std::tuple_size_v<decltype(T::fields())>>{});

// Reads T's fields from `d`, which points at event_data (payload offset 16)
// with data_size<T>() bytes there: one block copy when T is laid out as the
// wire is (every type today, see the static_assert below), field by field
// otherwise.
template <class T>
void read_fields(const std::byte* d, T& e) noexcept {
    if constexpr (wire_exact_v<T>)
        std::memcpy(&e, d, sizeof e);
    else
        read_fields(d, e, std::make_index_sequence<std::tuple_size_v<decltype(T::fields())>>{});
}
// Every type of the table is read with one block copy today; a type whose
// struct differs from its wire layout would still be read right, field by
// field, but slower: say so here rather than find it in a benchmark.
static_assert([]<class... Ts>(type_list<Ts...>) { return (wire_exact_v<Ts> && ...); }(typed_events{}));

// `size`: the bytes present after the header (any number).
inline void read_fields(const std::byte* d, std::size_t size, std::uint32_t what, unknown_event& e) noexcept {
    e.what = what;
    e.size = size;
    std::memcpy(e.data.data(), d, size < e.data.size() ? size : e.data.size());
}

} // namespace detail

/// One proc event inside a received payload, read on demand. `parse()` makes
/// the same length checks as decode(), once; after that each accessor reads
/// only the bytes of the field it returns. No copy and no variant: the fast
/// path for a loop that looks at a few fields of many events. The view points
/// into the payload, which must outlive it.
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
        // A 40-byte payload holds every type's fields (event_types.hpp checks
        // it): only a shorter one needs the per-type size.
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
            if (find_event_type(w) != nullptr) return std::nullopt;
            detail::read_fields(p_ + event_header_size, size_ - event_header_size, w, out);
        } else {
            if (w != static_cast<std::uint32_t>(T::type)) return std::nullopt;
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
        // The header (what, cpu, timestamp_ns) lies at the start of `event` as
        // on the wire (checked below the class): one 16-byte copy. (The cast
        // to void* says the partial copy is meant: `event` is trivially
        // copyable, only its default member initialisers make g++ warn.)
        std::memcpy(static_cast<void*>(&ev), p_, event_header_size);
        ev.seq = numbers_.seq;
        ev.ack = numbers_.ack;
        const std::byte* d = p_ + event_header_size;
        // The types of a fork storm first, in a few inlined compares; the rest
        // out of line.
        switch (static_cast<event_type>(ev.what)) {
        case event_type::fork: return emplace<fork_event>(ev, d);
        case event_type::exit: return emplace<exit_event>(ev, d);
        default: return fill_other(ev, d, size_ - event_header_size);
        }
    }

private:
    template <class T>
    static void emplace(event& ev, const std::byte* d) noexcept {
        detail::read_fields(d, ev.data.template emplace<T>());
    }

    // Every other type. A switch, not visit_event_type's chain of compares:
    // -Wswitch (an error here) refuses an enumerator without its case, and
    // proc_event_test decodes every table row and checks it comes out as its
    // own type.
    // `size`: the bytes after the header.
    __attribute__((noinline)) static void fill_other(event& ev, const std::byte* d, std::size_t size) noexcept {
        switch (static_cast<event_type>(ev.what)) {
        case event_type::fork: return emplace<fork_event>(ev, d);
        case event_type::exit: return emplace<exit_event>(ev, d);
        case event_type::exec: return emplace<exec_event>(ev, d);
        case event_type::none: return emplace<ack_event>(ev, d);
        case event_type::uid: return emplace<uid_event>(ev, d);
        case event_type::gid: return emplace<gid_event>(ev, d);
        case event_type::sid: return emplace<sid_event>(ev, d);
        case event_type::ptrace: return emplace<ptrace_event>(ev, d);
        case event_type::comm: return emplace<comm_event>(ev, d);
        case event_type::coredump: return emplace<coredump_event>(ev, d);
        case event_type::nonzero_exit: return emplace<nonzero_exit_event>(ev, d);
        }
        unknown_event u;
        detail::read_fields(d, size, ev.what, u);
        ev.data = u;
    }

    const std::byte* p_ = nullptr;
    std::size_t size_ = 0;
    message_numbers numbers_{};
};

// event_view::fill() copies the wire header into `event` as one block.
static_assert(std::is_standard_layout_v<event> && std::is_trivially_copyable_v<event>);
static_assert(offsetof(event, what) == 0 && offsetof(event, cpu) == 4 && offsetof(event, timestamp_ns) == 8 &&
              event_header_size == 16);

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

} // namespace cnasio::proc
