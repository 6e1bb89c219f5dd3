// cnasio/netlink/protocol.hpp - AF_NETLINK as an Asio protocol.
//
// `netlink::protocol` models Asio's Protocol concept and `netlink::endpoint`
// its Endpoint concept over `sockaddr_nl`, so
// `boost::asio::basic_datagram_socket<cnasio::netlink::protocol>` works for any
// netlink family: NETLINK_CONNECTOR (the default), NETLINK_ROUTE, ...
#pragma once

#include <boost/asio/basic_datagram_socket.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include <linux/netlink.h>
#include <sys/socket.h>

namespace cnasio::netlink {

/// The netlink family as an Asio protocol; the netlink protocol number is a
/// run-time value, so one type serves every family. (Named like
/// asio::generic::datagram_protocol; `netlink::protocol` is an alias.)
class datagram_protocol {
public:
    class endpoint;

    /// NETLINK_CONNECTOR, the family cnasio is about.
    constexpr datagram_protocol() noexcept = default;
    constexpr explicit datagram_protocol(int netlink_protocol) noexcept : number_(netlink_protocol) {}

    static constexpr datagram_protocol connector() noexcept { return datagram_protocol(NETLINK_CONNECTOR); }
    static constexpr datagram_protocol route() noexcept { return datagram_protocol(NETLINK_ROUTE); }
    static constexpr datagram_protocol generic() noexcept { return datagram_protocol(NETLINK_GENERIC); }

    // Asio's Protocol concept.
    constexpr int family() const noexcept { return AF_NETLINK; }
    // Netlink treats SOCK_RAW and SOCK_DGRAM alike; DGRAM fits basic_datagram_socket.
    constexpr int type() const noexcept { return SOCK_DGRAM; }
    constexpr int protocol() const noexcept { return number_; }

    friend constexpr bool operator==(const datagram_protocol&, const datagram_protocol&) noexcept = default;

    using socket = boost::asio::basic_datagram_socket<datagram_protocol>;

private:
    int number_ = NETLINK_CONNECTOR;
};

/// A netlink address: a port id (0 = the kernel) and a multicast group mask.
///
/// For `bind()`, `groups` is a bit mask (group g is bit g-1); on a received
/// datagram it tells which group a multicast came through (0 = unicast).
class datagram_protocol::endpoint {
public:
    using protocol_type = datagram_protocol;
    using data_type = ::sockaddr;

    constexpr endpoint() noexcept : endpoint(protocol_type{}, 0, 0) {}
    constexpr endpoint(std::uint32_t port_id, std::uint32_t groups) noexcept
        : endpoint(protocol_type{}, port_id, groups) {}
    constexpr endpoint(protocol_type p, std::uint32_t port_id, std::uint32_t groups) noexcept
        : addr_{}, protocol_(p) {
        addr_.nl_family = AF_NETLINK;
        addr_.nl_pid = port_id;
        addr_.nl_groups = groups;
    }

    /// The kernel's address (port id 0, no groups).
    static constexpr endpoint kernel(protocol_type p = {}) noexcept { return endpoint(p, 0, 0); }

    /// The mask bit of a multicast group number (1..32); 0 for anything else.
    static constexpr std::uint32_t group_mask(unsigned group) noexcept {
        return group >= 1 && group <= 32 ? (std::uint32_t{1} << (group - 1)) : 0;
    }

    constexpr std::uint32_t port_id() const noexcept { return addr_.nl_pid; }
    constexpr void port_id(std::uint32_t id) noexcept { addr_.nl_pid = id; }
    constexpr std::uint32_t groups() const noexcept { return addr_.nl_groups; }
    constexpr void groups(std::uint32_t mask) noexcept { addr_.nl_groups = mask; }

    /// The lowest group in the mask (the group a received multicast came
    /// through), or 0 for a unicast.
    constexpr unsigned group() const noexcept {
        return addr_.nl_groups == 0 ? 0u : static_cast<unsigned>(__builtin_ctz(addr_.nl_groups)) + 1u;
    }

    // Asio's Endpoint concept.
    constexpr protocol_type protocol() const noexcept { return protocol_; }
    data_type* data() noexcept { return reinterpret_cast<data_type*>(&addr_); }
    const data_type* data() const noexcept { return reinterpret_cast<const data_type*>(&addr_); }
    constexpr std::size_t size() const noexcept { return sizeof(addr_); }
    constexpr std::size_t capacity() const noexcept { return sizeof(addr_); }
    void resize(std::size_t new_size) {
        // Asio calls this after recvfrom(); netlink always fills the whole sockaddr_nl.
        if (new_size > sizeof(addr_)) throw std::length_error("netlink endpoint: address too large");
    }

    const ::sockaddr_nl& native() const noexcept { return addr_; }

    friend bool operator==(const endpoint& a, const endpoint& b) noexcept {
        return a.addr_.nl_pid == b.addr_.nl_pid && a.addr_.nl_groups == b.addr_.nl_groups &&
               a.protocol_ == b.protocol_;
    }

private:
    ::sockaddr_nl addr_;
    protocol_type protocol_;
};

using protocol = datagram_protocol;
using endpoint = datagram_protocol::endpoint;
using socket = datagram_protocol::socket;

} // namespace cnasio::netlink
