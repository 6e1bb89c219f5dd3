// The connector socket against the running kernel: the proc connector's
// LISTEN/ack exchange, a child's fork/exec/exit events, and user-space peers.
#include <cnasio/connector/socket.hpp>

#include "epoll_sets.hpp"
#include "peer.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/use_future.hpp>
#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <cstring>
#include <random>
#include <set>

#include <fcntl.h>
#include <linux/cn_proc.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace cnasio;
using namespace std::chrono_literals;

namespace {

proc_event decode(std::span<const std::byte> payload) {
    proc_event ev{};
    std::memcpy(&ev, payload.data(), std::min(payload.size(), sizeof ev));
    return ev;
}

// Receives datagrams until `pred(view, from)` is true or the deadline passes.
template <class Pred>
bool receive_until(boost::asio::io_context& io, connector::socket& s, Pred pred,
                   std::chrono::milliseconds limit = 3000ms) {
    std::vector<std::byte> buf(connector::receive_buffer_size);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        auto fut = s.async_receive(buf, boost::asio::use_future);
        io.restart();
        io.run_for(deadline - std::chrono::steady_clock::now());
        if (fut.wait_for(0s) != std::future_status::ready) {
            s.cancel();
            io.restart();
            io.run();
            return false;
        }
        const auto d = fut.get();
        connector::message_view m;
        error_code ec;
        for (auto r = d.reader(); r.next(m, ec);)
            if (!ec && pred(m, d)) return true;
    }
    return false;
}

std::uint32_t random_ack() { return std::random_device{}(); }

} // namespace

TEST_SUITE("connector socket (kernel)") {
    TEST_CASE("proc connector: LISTEN is acked with ack + 1, a child's fork/exec/exit arrive, IGNORE at the end") {
        boost::asio::io_context io;
        connector::socket s(io.get_executor());
        error_code ec;
        s.open(ec, netlink::endpoint::group_mask(CN_IDX_PROC)); // join group 1 before LISTEN
        REQUIRE_MESSAGE(!ec, ec.message());
        CHECK(s.port_id() != 0);

        const std::uint32_t ack = random_ack();
        const std::uint32_t op = PROC_CN_MCAST_LISTEN;
        connector::header h;
        h.id = connector::proc_id;
        h.seq = 1;
        h.ack = ack;
        auto sent = s.async_send(h, connector::as_payload(op), boost::asio::use_future);
        io.run();
        REQUIRE_NOTHROW(sent.get());

        // The ack: PROC_EVENT_NONE, ack + 1, err 0 (seq is not echoed by the proc connector).
        bool acked = receive_until(io, s, [&](const connector::message_view& m, const connector::received_datagram& d) {
            if (m.id() != connector::proc_id || m.ack() != ack + 1) return false;
            const auto ev = decode(m.payload);
            CHECK(d.port_id() == 0);
            CHECK(d.group() == CN_IDX_PROC);
            CHECK(ev.what == proc_event::PROC_EVENT_NONE);
            CHECK(ev.event_data.ack.err == 0);
            return true;
        });
        REQUIRE(acked);

        const pid_t child = ::fork();
        if (child == 0) {
            ::execl("/bin/true", "true", nullptr);
            ::_exit(127);
        }
        REQUIRE(child > 0);
        int status = 0;
        ::waitpid(child, &status, 0);
        CHECK(WIFEXITED(status));

        bool saw_fork = false, saw_exec = false, saw_exit = false;
        receive_until(io, s, [&](const connector::message_view& m, const connector::received_datagram& d) {
            if (m.id() != connector::proc_id || d.port_id() != 0) return false;
            const auto ev = decode(m.payload);
            switch (ev.what) {
            case proc_event::PROC_EVENT_FORK:
                if (ev.event_data.fork.child_pid == child) {
                    CHECK(ev.event_data.fork.parent_tgid == ::getpid());
                    saw_fork = true;
                }
                break;
            case proc_event::PROC_EVENT_EXEC:
                if (ev.event_data.exec.process_pid == child) saw_exec = true;
                break;
            case proc_event::PROC_EVENT_EXIT:
                if (ev.event_data.exit.process_pid == child) {
                    CHECK(ev.event_data.exit.exit_code == 0);
                    saw_exit = true;
                }
                break;
            default:
                break;
            }
            return saw_fork && saw_exec && saw_exit;
        });
        CHECK(saw_fork);
        CHECK(saw_exec);
        CHECK(saw_exit);

        // IGNORE: the kernel keeps a global listener count that closing does not decrement.
        const std::uint32_t ignore = PROC_CN_MCAST_IGNORE;
        s.send(h, connector::as_payload(ignore), ec);
        CHECK_FALSE(ec);
    }

    TEST_CASE("a user-space peer's unicast arrives with the peer's true port id") {
        boost::asio::io_context io;
        connector::socket s(io.get_executor());
        s.open();
        test::peer p;
        connector::header h;
        h.id = {CN_NETLINK_USERS + 5, 1};
        h.seq = 10;
        h.ack = 20;
        h.nlmsg_pid = 0; // claims to be the kernel: only the address tells the truth
        REQUIRE(p.send(h, connector::as_payload("from a peer"), s.port_id()) == 0);
        bool got = receive_until(io, s, [&](const connector::message_view& m, const connector::received_datagram& d) {
            CHECK(d.port_id() == p.port_id());
            CHECK(d.group() == 0);
            CHECK(m.header.nlmsg_pid == 0);
            CHECK(m.seq() == 10);
            CHECK(test::text_of(m.payload) == "from a peer");
            return true;
        });
        CHECK(got);
    }

    TEST_CASE("malformed datagrams give their error and the socket keeps working") {
        boost::asio::io_context io;
        connector::socket s(io.get_executor());
        s.open();
        test::peer p;
        std::vector<std::byte> bad(36, std::byte{0});
        const std::uint32_t lie = 4096; // nlmsg_len beyond the datagram
        std::memcpy(bad.data(), &lie, 4);
        REQUIRE(p.send_raw(bad, s.port_id()) == 0);
        connector::header h;
        h.id = {CN_NETLINK_USERS + 5, 1};
        REQUIRE(p.send(h, connector::as_payload("good"), s.port_id()) == 0);

        std::vector<std::byte> buf(connector::receive_buffer_size);
        auto f1 = s.async_receive(buf, boost::asio::use_future);
        io.run();
        auto d1 = f1.get();
        connector::message_view m;
        error_code ec;
        auto r = d1.reader();
        REQUIRE(r.next(m, ec));
        CHECK(ec == error::length_beyond_datagram);

        auto f2 = s.async_receive(buf, boost::asio::use_future);
        io.restart();
        io.run();
        auto d2 = f2.get();
        REQUIRE_FALSE(connector::parse_message(d2.bytes, m));
        CHECK(test::text_of(m.payload) == "good");
    }

    TEST_CASE("a datagram larger than the buffer is reported truncated") {
        boost::asio::io_context io;
        connector::socket s(io.get_executor());
        s.open();
        test::peer p;
        REQUIRE(p.send({}, connector::as_payload(std::string(500, 'x')), s.port_id()) == 0);
        std::vector<std::byte> small(100);
        auto f = s.async_receive(small, boost::asio::use_future);
        io.run();
        auto d = f.get();
        CHECK(d.truncated);
        connector::message_view m;
        error_code ec;
        auto r = d.reader();
        REQUIRE(r.next(m, ec));
        CHECK(ec == error::datagram_truncated);
    }

    TEST_CASE("try_receive_many reads a burst in one call: order, senders, truncation per slot, empty, overrun") {
        boost::asio::io_context io;
        connector::socket s(io.get_executor());
        s.open();
        test::peer a, b;
        connector::header h;
        h.id = {CN_NETLINK_USERS + 5, 1};
        std::vector<std::byte> space(8 * 128);
        std::array<connector::received_datagram, 8> got{};
        error_code ec;

        // Nothing queued: 0, no error, and no waiting (the socket is blocking otherwise).
        CHECK(connector::try_receive_many(s.native_handle(), space, 128, got, ec) == 0);
        CHECK_FALSE(ec);

        // Five datagrams from two peers; the fourth is too big for its 128-byte slot.
        for (int i = 0; i < 5; ++i) {
            h.seq = static_cast<std::uint32_t>(i);
            const std::string text = i == 3 ? std::string(300, 'x') : "m" + std::to_string(i);
            REQUIRE((i % 2 ? b : a).send(h, connector::as_payload(std::string_view(text)), s.port_id()) == 0);
        }
        const std::size_t n = connector::try_receive_many(s.native_handle(), space, 128, got, ec);
        REQUIRE_FALSE(ec);
        REQUIRE(n == 5);
        for (std::size_t i = 0; i < n; ++i) {
            CAPTURE(i);
            CHECK(got[i].port_id() == (i % 2 ? b : a).port_id());
            CHECK(got[i].bytes.data() == space.data() + i * 128); // its own slot
            CHECK(got[i].truncated == (i == 3));
            connector::message_view m;
            auto r = got[i].reader();
            REQUIRE(r.next(m, ec));
            if (i == 3) {
                CHECK(ec == error::datagram_truncated);
                continue;
            }
            REQUIRE_FALSE(ec);
            CHECK(m.seq() == i);
            CHECK(test::text_of(m.payload) == "m" + std::to_string(i));
        }
        CHECK(connector::try_receive_many(s.native_handle(), space, 128, got, ec) == 0);
        CHECK_FALSE(ec);

        // More queued than slots: the rest waits for the next call.
        for (int i = 0; i < 11; ++i) REQUIRE(a.send(h, connector::as_payload("x"), s.port_id()) == 0);
        CHECK(connector::try_receive_many(s.native_handle(), space, 128, got, ec) == 8);
        CHECK(connector::try_receive_many(s.native_handle(), space, 128, got, ec) == 3);

        // An overrun. A unicast sender waits for room (netlink_unicast blocks), so the flood is a
        // multicast, which the kernel drops with ENOBUFS for a full member. The socket's error is
        // reported before its queue (sock_error() comes first in skb_recv_datagram): the call
        // gives 0 and error::overrun, and the datagrams queued before the drop are read after it.
        const unsigned group = CN_NETLINK_USERS + 11;
        REQUIRE_FALSE((s.join(group, ec), ec));
        int small = 1; // the kernel rounds it up to its minimum
        REQUIRE(::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
        const std::string big(1000, 'f');
        for (int i = 0; i < 64; ++i)
            a.send(h, connector::as_payload(std::string_view(big)), 0, netlink::endpoint::group_mask(group));
        std::vector<std::byte> roomy(8 * connector::receive_buffer_size);
        auto read_roomy = [&] {
            return connector::try_receive_many(s.native_handle(), roomy, connector::receive_buffer_size, got, ec);
        };
        CHECK(read_roomy() == 0);
        CHECK(ec == error::overrun);
        std::size_t queued = 0;
        for (std::size_t k; (k = read_roomy()) > 0;) {
            REQUIRE_FALSE(ec);
            queued += k;
        }
        CHECK_FALSE(ec);  // reported once
        CHECK(queued > 0); // what fitted before the drop
        CHECK(queued < 64);
        REQUIRE(a.send(h, connector::as_payload("after"), 0, netlink::endpoint::group_mask(group)) == 0);
        REQUIRE(read_roomy() == 1); // the socket works after the overrun
        CHECK_FALSE(ec);
        connector::message_view m;
        REQUIRE_FALSE(connector::parse_message(got[0].bytes, m));
        CHECK(test::text_of(m.payload) == "after");
    }

    TEST_CASE("receive_batch reuses its headers: bursts of different sizes keep each datagram's sender and bytes") {
        boost::asio::io_context io;
        connector::socket s(io.get_executor());
        s.open();
        test::peer a, b;
        connector::header h;
        h.id = {CN_NETLINK_USERS + 5, 1};
        connector::receive_batch<4> batch;
        error_code ec;
        CHECK(s.receive_many(batch, 4, ec) == 0); // nothing queued: no wait, no error
        CHECK_FALSE(ec);
        std::uint32_t seq = 0;
        auto send = [&](test::peer& p, const std::string& text) {
            h.seq = seq++;
            REQUIRE(p.send(h, connector::as_payload(std::string_view(text)), s.port_id()) == 0);
        };
        auto check = [&](std::size_t i, const test::peer& from, const std::string& text) {
            CAPTURE(i);
            CHECK(batch[i].port_id() == from.port_id());
            CHECK_FALSE(batch[i].truncated);
            connector::message_view m;
            REQUIRE_FALSE(connector::parse_message(batch[i].bytes, m));
            CHECK(test::text_of(m.payload) == text);
        };
        // 6 queued, 4 slots: 4, then 2, then (a smaller max) 1 of 3, then the rest.
        for (int i = 0; i < 6; ++i) send(i % 2 ? b : a, "r" + std::to_string(i));
        REQUIRE(s.receive_many(batch, 10, ec) == 4); // max is capped at the capacity
        for (std::size_t i = 0; i < 4; ++i) check(i, i % 2 ? b : a, "r" + std::to_string(i));
        REQUIRE(s.receive_many(batch, 4, ec) == 2);
        check(0, a, "r4");
        check(1, b, "r5");
        for (int i = 0; i < 3; ++i) send(b, "s" + std::to_string(i));
        REQUIRE(s.receive_one(batch, ec) == 1);
        check(0, b, "s0");
        REQUIRE(s.receive_many(batch, 4, ec) == 2);
        check(0, b, "s1");
        check(1, b, "s2");
        CHECK(s.receive_many(batch, 4, ec) == 0);
        CHECK_FALSE(ec);

        // A datagram larger than a slot is truncated, and says so, whether it is read alone
        // (receive_one: recvfrom) or in a burst (recvmmsg).
        const std::vector<std::byte> huge(connector::receive_buffer_size + 1000, std::byte{0x5a});
        for (std::size_t max : {1u, 4u}) {
            CAPTURE(max);
            REQUIRE(a.send_raw(huge, s.port_id()) == 0);
            send(b, "after");
            REQUIRE((max == 1 ? s.receive_one(batch, ec) : s.receive_many(batch, max, ec)) == std::min<std::size_t>(max, 2));
            CHECK(batch[0].truncated);
            CHECK(batch[0].bytes.size() == connector::receive_buffer_size);
            CHECK(batch[0].port_id() == a.port_id());
            if (max == 1) REQUIRE(s.receive_one(batch, ec) == 1);
            check(max == 1 ? 0 : 1, b, "after");
        }
    }

    TEST_CASE("a payload above CONNECTOR_MAX_MSG_SIZE is refused before sending") {
        boost::asio::io_context io;
        connector::socket s(io.get_executor());
        s.open();
        std::vector<std::byte> big(connector::max_payload + 1);
        auto f = s.async_send({}, big, boost::asio::use_future);
        io.run();
        try {
            f.get();
            FAIL("expected payload_too_large");
        } catch (const boost::system::system_error& e) {
            CHECK(e.code() == error::payload_too_large);
        }
    }

    TEST_CASE("a pending receive is cancelled per operation") {
        boost::asio::io_context io;
        connector::socket s(io.get_executor());
        s.open();
        std::vector<std::byte> buf(connector::receive_buffer_size);
        boost::asio::cancellation_signal cancel;
        error_code got;
        bool done = false;
        s.async_receive(buf, boost::asio::bind_cancellation_slot(cancel.slot(),
                                 [&](error_code ec, connector::received_datagram) { got = ec; done = true; }));
        io.poll();
        CHECK_FALSE(done);
        cancel.emit(boost::asio::cancellation_type::terminal);
        io.run();
        CHECK(done);
        CHECK(got == boost::asio::error::operation_aborted);
    }

    TEST_CASE("leave_reactor takes the socket out of every epoll set; what does not wait keeps working") {
        boost::asio::io_context io;
        connector::socket s(io.get_executor());
        s.open();
        const int fd = s.native_handle();
        CHECK(test::epoll_sets_holding(fd) == 1); // Asio's reactor holds it from open() on
        error_code ec;
        s.leave_reactor(ec);
        REQUIRE_FALSE(ec);
        CHECK(s.native_handle() == fd);
        CHECK(s.is_open());
        CHECK(test::epoll_sets_holding(fd) == 0);
        CHECK_FALSE(s.next_layer().is_open());

        // Options, membership, sending and receiving without waiting.
        s.set_option(netlink::receive_buffer(1 << 16), ec);
        CHECK_FALSE(ec);
        netlink::receive_buffer size;
        s.get_option(size, ec);
        CHECK_FALSE(ec);
        CHECK(size.value() >= (1 << 16));
        s.join(CN_IDX_PROC, ec);
        CHECK_FALSE(ec);
        s.leave(CN_IDX_PROC, ec);
        CHECK_FALSE(ec);
        test::peer p;
        connector::header h;
        h.id = {CN_NETLINK_USERS + 5, 1};
        for (std::uint32_t i = 0; i < 3; ++i) {
            h.seq = i;
            REQUIRE(p.send(h, connector::as_payload("burst"), s.port_id()) == 0);
        }
        connector::receive_batch<8> batch;
        CHECK(s.receive_many(batch, 8, ec) == 3);
        CHECK_FALSE(ec);
        CHECK(batch[2].port_id() == p.port_id());
        connector::message_view m;
        auto r = batch[2].reader();
        REQUIRE(r.next(m, ec));
        CHECK(m.seq() == 2);
        s.send(h, connector::as_payload("to the peer"), ec, netlink::endpoint(p.port_id(), 0));
        CHECK_FALSE(ec);

        // What waits needs a reactor: it fails at once instead of hanging.
        std::vector<std::byte> buf(connector::receive_buffer_size);
        auto fut = s.async_receive(buf, boost::asio::use_future);
        io.run();
        REQUIRE(fut.wait_for(0s) == std::future_status::ready);
        CHECK_THROWS(fut.get());

        // A move hands the descriptor over; the moved-from socket closes nothing.
        connector::socket moved(std::move(s));
        CHECK_FALSE(s.is_open());
        CHECK(moved.native_handle() == fd);
        s.close(ec);
        CHECK(::fcntl(fd, F_GETFD) >= 0);
        moved.close(ec);
        CHECK_FALSE(ec);
        CHECK_FALSE(moved.is_open());
        CHECK(::fcntl(fd, F_GETFD) < 0);
    }

    TEST_CASE("sending to an unknown port id fails with ECONNREFUSED, not as unreachable kernel") {
        boost::asio::io_context io;
        connector::socket s(io.get_executor());
        s.open();
        error_code ec;
        s.send({}, connector::as_payload("x"), ec, netlink::endpoint(0x7ffffff0u, 0));
        CHECK(ec == std::errc::connection_refused);
    }
}
