// cnasio/connector/message.hpp - connector messages: ids, zero-copy views, owning messages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

#include <linux/connector.h>
#include <linux/netlink.h>

namespace cnasio::connector {

/// A connector callback id (`struct cb_id`): which kernel driver a message is for.
struct id {
    std::uint32_t idx = 0;
    std::uint32_t val = 0;
    friend constexpr bool operator==(const id&, const id&) noexcept = default;
};

/// The process-events connector.
inline constexpr id proc_id{CN_IDX_PROC, CN_VAL_PROC};

/// Largest payload the kernel connector accepts (`CONNECTOR_MAX_MSG_SIZE`).
inline constexpr std::size_t max_payload = CONNECTOR_MAX_MSG_SIZE;
/// The first idx free for drivers outside the kernel's list (`CN_NETLINK_USERS`).
inline constexpr std::uint32_t first_user_idx = CN_NETLINK_USERS;

inline constexpr std::size_t netlink_header_size = sizeof(::nlmsghdr);  // 16
inline constexpr std::size_t connector_header_size = sizeof(::cn_msg);  // 20
/// Bytes in front of the payload in a datagram: nlmsghdr + cn_msg (36).
inline constexpr std::size_t header_size = netlink_header_size + connector_header_size;
/// The largest datagram a conforming peer sends: headers + the largest payload.
inline constexpr std::size_t max_datagram = header_size + max_payload;

static_assert(netlink_header_size == 16 && connector_header_size == 20);

/// The fields of a connector message apart from its payload.
struct header {
    connector::id id{};
    std::uint32_t seq = 0;
    std::uint32_t ack = 0;
    std::uint16_t flags = 0;
    // From the netlink header around it.
    std::uint16_t nlmsg_type = NLMSG_DONE; ///< the kernel sends connector messages as NLMSG_DONE
    std::uint16_t nlmsg_flags = 0;
    std::uint32_t nlmsg_seq = 0;
    std::uint32_t nlmsg_pid = 0;           ///< what the sender wrote: not proof of who sent it
};

/// A connector message inside a buffer it does not own (zero-copy). The
/// payload has no alignment guarantee: read multi-byte fields with memcpy.
struct message_view {
    connector::header header;
    std::span<const std::byte> payload;

    std::uint32_t seq() const noexcept { return header.seq; }
    std::uint32_t ack() const noexcept { return header.ack; }
    connector::id id() const noexcept { return header.id; }
};

/// An owning connector message. Assigning from a view reuses the payload's
/// storage, so a message recycled through a queue stops allocating once its
/// capacity has grown to the largest payload seen.
struct message {
    connector::header header;
    std::vector<std::byte> payload;

    message() = default;
    explicit message(const message_view& v) { assign(v); }

    void assign(const message_view& v) {
        header = v.header;
        payload.assign(v.payload.begin(), v.payload.end());
    }

    message_view view() const noexcept { return {header, {payload.data(), payload.size()}}; }

    std::uint32_t seq() const noexcept { return header.seq; }
    std::uint32_t ack() const noexcept { return header.ack; }
    connector::id id() const noexcept { return header.id; }
};

/// Bytes of an object or a string as a payload span.
inline std::span<const std::byte> as_payload(const void* data, std::size_t size) noexcept {
    return {static_cast<const std::byte*>(data), size};
}
/// Text as a payload (no terminating NUL).
inline std::span<const std::byte> as_payload(std::string_view text) noexcept {
    return as_payload(text.data(), text.size());
}
/// The object representation of a plain struct or integer (e.g. `proc_cn_mcast_op`).
template <class T>
    requires(std::is_trivially_copyable_v<T> && !std::is_pointer_v<T> && !std::is_array_v<T> &&
             !std::is_convertible_v<const T&, std::string_view>)
std::span<const std::byte> as_payload(const T& object) noexcept {
    return as_payload(&object, sizeof(T));
}

} // namespace cnasio::connector
