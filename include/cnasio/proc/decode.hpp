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

// Reads T's fields from `d`, which points at event_data (payload offset 16)
// with data_size<T>() bytes there.
template <class T>
void read_fields(const std::byte* d, T& e) noexcept {
    read_fields(d, e, std::make_index_sequence<std::tuple_size_v<decltype(T::fields())>>{});
}
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
        ev.what = what();
        ev.cpu = cpu();
        ev.timestamp_ns = timestamp_ns();
        ev.seq = numbers_.seq;
        ev.ack = numbers_.ack;
        const std::byte* d = p_ + event_header_size;
        const bool known = visit_event_type(ev.what, [&]<class T>(std::type_identity<T>) {
            T typed;
            detail::read_fields(d, typed);
            ev.data = typed;
        });
        if (!known) {
            unknown_event u;
            detail::read_fields(d, size_ - event_header_size, ev.what, u);
            ev.data = u;
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

} // namespace cnasio::proc
