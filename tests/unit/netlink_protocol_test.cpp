#include <cnasio/netlink/options.hpp>
#include <cnasio/netlink/protocol.hpp>

#include <boost/asio/io_context.hpp>
#include <doctest/doctest.h>

using cnasio::netlink::endpoint;
using cnasio::netlink::protocol;

TEST_SUITE("netlink protocol") {
    TEST_CASE("the protocol models Asio's Protocol for any netlink family") {
        constexpr protocol connector;
        static_assert(connector.family() == AF_NETLINK);
        static_assert(connector.protocol() == NETLINK_CONNECTOR);
        static_assert(protocol::route().protocol() == NETLINK_ROUTE);
        static_assert(protocol(NETLINK_AUDIT).protocol() == NETLINK_AUDIT);
        CHECK(connector == protocol::connector());
        CHECK(connector != protocol::route());
    }

    TEST_CASE("the endpoint is a sockaddr_nl with port id and group mask") {
        endpoint e(1234, endpoint::group_mask(1) | endpoint::group_mask(20));
        CHECK(e.port_id() == 1234);
        CHECK(e.groups() == 0x80001u);
        CHECK(e.group() == 1);
        CHECK(e.size() == sizeof(sockaddr_nl));
        CHECK(reinterpret_cast<const sockaddr_nl*>(e.data())->nl_family == AF_NETLINK);
        CHECK(endpoint::kernel().port_id() == 0);
        CHECK(endpoint().group() == 0);
        CHECK(endpoint::group_mask(0) == 0);
        CHECK(endpoint::group_mask(33) == 0);
        CHECK(endpoint::group_mask(32) == 0x80000000u);
        e.resize(sizeof(sockaddr_nl)); // what Asio does after recvfrom
        CHECK_THROWS(e.resize(sizeof(sockaddr_nl) + 1));
    }

    TEST_CASE("options name the right level and option") {
        const protocol p;
        CHECK(cnasio::netlink::add_membership(5).level(p) == SOL_NETLINK);
        CHECK(cnasio::netlink::add_membership(5).name(p) == NETLINK_ADD_MEMBERSHIP);
        CHECK(*cnasio::netlink::add_membership(5).data(p) == 5);
        CHECK(cnasio::netlink::drop_membership(5).name(p) == NETLINK_DROP_MEMBERSHIP);
        CHECK(cnasio::netlink::no_enobufs(true).name(p) == NETLINK_NO_ENOBUFS);
        CHECK(cnasio::netlink::ext_ack(true).name(p) == NETLINK_EXT_ACK);
        CHECK(cnasio::netlink::listen_all_nsid(true).name(p) == NETLINK_LISTEN_ALL_NSID);
        CHECK(cnasio::netlink::pktinfo(true).name(p) == NETLINK_PKTINFO);
        CHECK(cnasio::netlink::receive_buffer_force(1).level(p) == SOL_SOCKET);
        CHECK(cnasio::netlink::receive_buffer_force(1).name(p) == SO_RCVBUFFORCE);
        CHECK(cnasio::netlink::pktinfo(true).enabled());
        CHECK_FALSE(cnasio::netlink::pktinfo(false).enabled());
    }

    // Any user may open a netlink socket, so this needs no privileges.
    TEST_CASE("basic_datagram_socket works on it: open, bind, options, local port id") {
        boost::asio::io_context io;
        cnasio::netlink::socket s(io);
        cnasio::error_code ec;
        s.open(protocol::route(), ec); // NETLINK_ROUTE: in every kernel
        REQUIRE_FALSE(ec);
        s.bind(endpoint(0, 0), ec);
        REQUIRE_FALSE(ec);
        CHECK(s.local_endpoint().port_id() != 0);
        s.set_option(cnasio::netlink::ext_ack(true), ec);
        CHECK_FALSE(ec);
        cnasio::netlink::ext_ack got;
        s.get_option(got, ec);
        CHECK_FALSE(ec);
        CHECK(got.enabled());
        const auto r = cnasio::netlink::set_receive_buffer(s, 1 << 20, ec);
        CHECK_FALSE(ec);
        if (r.forced)
            CHECK(r.obtained >= 1u << 20); // 6.18 reports the request itself for netlink sockets
        else
            CHECK(r.obtained > 0); // capped by net.core.rmem_max without CAP_NET_ADMIN
    }
}
