// cnasio/netlink/options.hpp - netlink socket options for Asio's set_option/get_option.
#pragma once

#include <cnasio/error.hpp>
#include <cnasio/netlink/protocol.hpp>

#include <cstddef>
#include <cstdint>

#include <linux/netlink.h>
#include <sys/socket.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

namespace cnasio::netlink {

namespace detail {

// An `int` valued option at (Level, Name): models Asio's SettableSocketOption
// and GettableSocketOption.
template <int Level, int Name>
class int_option {
public:
    constexpr int_option() noexcept = default;
    constexpr explicit int_option(int v) noexcept : value_(v) {}

    constexpr int value() const noexcept { return value_; }

    template <class P> constexpr int level(const P&) const noexcept { return Level; }
    template <class P> constexpr int name(const P&) const noexcept { return Name; }
    template <class P> int* data(const P&) noexcept { return &value_; }
    template <class P> const int* data(const P&) const noexcept { return &value_; }
    template <class P> constexpr std::size_t size(const P&) const noexcept { return sizeof(value_); }
    template <class P> void resize(const P&, std::size_t s) {
        if (s != sizeof(value_)) throw std::length_error("netlink option: unexpected size");
    }

private:
    int value_ = 0;
};

// A boolean flag option (an int 0/1 in the kernel).
template <int Level, int Name>
class bool_option : public int_option<Level, Name> {
public:
    constexpr bool_option() noexcept = default;
    constexpr explicit bool_option(bool on) noexcept : int_option<Level, Name>(on ? 1 : 0) {}
    constexpr bool enabled() const noexcept { return this->value() != 0; }
    explicit constexpr operator bool() const noexcept { return enabled(); }
};

} // namespace detail

/// Join a multicast group by number (1..). Unlike bind(), which takes a mask
/// of groups 1..32, this reaches every group the family has.
using add_membership = detail::int_option<SOL_NETLINK, NETLINK_ADD_MEMBERSHIP>;
/// Leave a multicast group by number.
using drop_membership = detail::int_option<SOL_NETLINK, NETLINK_DROP_MEMBERSHIP>;
/// Receive an nl_pktinfo control message naming the group of each multicast.
using pktinfo = detail::bool_option<SOL_NETLINK, NETLINK_PKTINFO>;
/// Have a multicast sender get errors when delivery to a listener fails.
using broadcast_error = detail::bool_option<SOL_NETLINK, NETLINK_BROADCAST_ERROR>;
/// Never report ENOBUFS (silently lose messages instead): usually not what you want.
using no_enobufs = detail::bool_option<SOL_NETLINK, NETLINK_NO_ENOBUFS>;
/// Receive multicasts from every peer network namespace.
using listen_all_nsid = detail::bool_option<SOL_NETLINK, NETLINK_LISTEN_ALL_NSID>;
/// Do not echo the request in NLMSG_ERROR acknowledgements.
using cap_ack = detail::bool_option<SOL_NETLINK, NETLINK_CAP_ACK>;
/// Extended acknowledgements (error messages and offsets in NLMSG_ERROR).
using ext_ack = detail::bool_option<SOL_NETLINK, NETLINK_EXT_ACK>;
/// Receive buffer size without the rmem_max cap (needs CAP_NET_ADMIN).
using receive_buffer_force = detail::int_option<SOL_SOCKET, SO_RCVBUFFORCE>;
/// Receive buffer size, capped by net.core.rmem_max. Reads back the doubled kernel value.
using receive_buffer = detail::int_option<SOL_SOCKET, SO_RCVBUF>;

/// Outcome of set_receive_buffer().
struct receive_buffer_result {
    std::size_t obtained = 0; ///< what the kernel reports now (SO_RCVBUF: twice the request, capped)
    bool forced = false;      ///< SO_RCVBUFFORCE worked (else the capped SO_RCVBUF was used)
};

/// Sizes a socket's receive buffer: tries SO_RCVBUFFORCE (needs CAP_NET_ADMIN),
/// falls back to SO_RCVBUF (capped by net.core.rmem_max) and reports the size
/// the kernel actually granted. Errors only if both attempts fail.
template <class Socket>
receive_buffer_result set_receive_buffer(Socket& sock, std::size_t bytes, error_code& ec) {
    receive_buffer_result r;
    const int want = bytes > 0x3fffffff ? 0x3fffffff : static_cast<int>(bytes);
    sock.set_option(receive_buffer_force(want), ec);
    if (!ec) {
        r.forced = true;
    } else {
        ec.clear();
        sock.set_option(receive_buffer(want), ec);
        if (ec) return r;
    }
    receive_buffer now;
    sock.get_option(now, ec);
    if (!ec && now.value() > 0) r.obtained = static_cast<std::size_t>(now.value());
    return r;
}

} // namespace cnasio::netlink
