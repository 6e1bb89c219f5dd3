// The request layer and subscriptions against the running kernel (the proc
// connector) and against user-space peers that behave like modules.
#include <cnasio/client.hpp>

#include "epoll_sets.hpp"
#include "kernel_version.hpp"
#include "peer.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <doctest/doctest.h>
#if defined(__SANITIZE_ADDRESS__)
// The sanitizer runtime's count of live heap bytes. GCC ships the runtime but not the header that
// declares it (clang's <sanitizer/allocator_interface.h>), so it is declared here.
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#endif

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <linux/cn_proc.h>
#include <malloc.h>
#include <sys/resource.h>

namespace asio = boost::asio;
using namespace cnasio;
using namespace std::chrono_literals;

namespace {

constexpr connector::id echo_id{CN_NETLINK_USERS + 5, 0x77};
// An idx in the user range that no kernel driver registers: messages to it vanish.
constexpr connector::id nobody_id{CN_NETLINK_USERS + 0xe, 0x4242};

proc_event decode(std::span<const std::byte> payload) {
    proc_event ev{};
    std::memcpy(&ev, payload.data(), std::min(payload.size(), sizeof ev));
    return ev;
}

std::span<const std::byte> bytes(const std::string& s) { return connector::as_payload(std::string_view(s)); }

void run_for(asio::io_context& io, std::chrono::milliseconds d) {
    io.restart();
    io.run_for(d);
}

client_options admitting(std::uint32_t port) {
    client_options o;
    o.admitted_ports = {port};
    return o;
}

// What a request completed with (a callback token that keeps both values).
struct outcome {
    bool done = false;
    error_code ec;
    connector::message reply;
    auto handler() {
        return [this](error_code e, connector::message m) {
            done = true;
            ec = e;
            reply = std::move(m);
        };
    }
};

// Live heap bytes under ASan (its quarantine keeps freed blocks resident), else
// the heap's bytes in use (mallinfo2): what the program holds, not what the
// allocator keeps mapped.
long memory_kib() {
#if defined(__SANITIZE_ADDRESS__)
    return static_cast<long>(__sanitizer_get_current_allocated_bytes() / 1024);
#else
    const auto info = ::mallinfo2();
    return static_cast<long>((info.uordblks + info.hblkhd) / 1024);
#endif
}

} // namespace

TEST_SUITE("client: requests to the kernel") {
    TEST_CASE("proc LISTEN gets its ack through the request layer (ack-only matching); IGNORE's ack goes to the others") {
        // A second listener keeps the kernel's listener count above zero, so
        // the IGNORE is acked at all, and shows where that ack goes.
        test::peer other(netlink::endpoint::group_mask(CN_IDX_PROC));
        // Every fork on the machine reaches `other` until the end of the test: room for a busy
        // machine's seconds of them (the default buffer overruns under a parallel build).
        other.force_receive_buffer(32 << 20);
        const std::uint32_t other_ack = 0x5eed0000;
        {
            connector::header h;
            h.id = connector::proc_id;
            h.ack = other_ack;
            REQUIRE(other.send(h, connector::as_payload(std::uint32_t{PROC_CN_MCAST_LISTEN}), 0) == 0);
        }
        asio::io_context io;
        client c(io.get_executor());
        error_code ec;
        auto sub = c.subscribe(CN_IDX_PROC, {}, ec); // acks are multicast to group 1: join first
        REQUIRE_FALSE(ec);

        request_options o;
        o.match = match::ack_only; // the proc connector does not echo seq
        auto f = c.async_request(connector::proc_id, connector::as_payload(std::uint32_t{PROC_CN_MCAST_LISTEN}), o,
                                 asio::use_future);
        run_for(io, 2s);
        REQUIRE(f.wait_for(0s) == std::future_status::ready);
        const connector::message reply = f.get();
        const auto ev = decode(reply.payload);
        CHECK(reply.id() == connector::proc_id);
        CHECK(ev.what == proc_event::PROC_EVENT_NONE);
        CHECK(ev.event_data.ack.err == 0);
        CHECK(c.stats().replies == 1);

        // Since 6.6 a socket whose last op is IGNORE is filtered out of every
        // proc multicast, its own IGNORE ack included: the request times out,
        // while the other listener receives that ack (err 0). Older kernels
        // have no per-socket filter: the ignoring socket gets its ack too.
        o.timeout = 300ms;
        outcome ignored;
        c.async_request(connector::proc_id, connector::as_payload(std::uint32_t{PROC_CN_MCAST_IGNORE}), o,
                        ignored.handler());
        run_for(io, 1s);
        if (test::kernel_at_least(6, 6))
            CHECK(ignored.ec == error::timeout);
        else
            CHECK_FALSE(ignored.ec);
        int foreign_acks = 0;
        connector::message m;
        std::uint32_t from = 0;
        while (other.receive(m, from, 100))
            if (decode(m.payload).what == proc_event::PROC_EVENT_NONE && m.ack() != other_ack + 1 &&
                decode(m.payload).event_data.ack.err == 0)
                ++foreign_acks;
        CAPTURE(other.overruns());
        CHECK(foreign_acks >= 2); // our LISTEN's ack and our IGNORE's ack
        connector::header h;
        h.id = connector::proc_id;
        other.send(h, connector::as_payload(std::uint32_t{PROC_CN_MCAST_IGNORE}), 0);
        CHECK(c.pending_requests() == 0);
    }

    TEST_CASE("an invalid proc op is answered with EINVAL, which becomes an error_code") {
        asio::io_context io;
        client c(io.get_executor());
        error_code ec;
        auto sub = c.subscribe(CN_IDX_PROC, {}, ec);
        request_options o;
        o.match = match::ack_only;
        // The kernel only acks while someone listens: be that listener.
        auto listen = c.async_request(connector::proc_id, connector::as_payload(std::uint32_t{PROC_CN_MCAST_LISTEN}),
                                      o, asio::use_future);
        run_for(io, 2s);
        REQUIRE_NOTHROW(listen.get());

        auto bad = c.async_request(connector::proc_id, connector::as_payload(std::uint32_t{99}), o, asio::use_future);
        run_for(io, 2s);
        const auto reply = bad.get();
        const auto err = errno_code(static_cast<int>(decode(reply.payload).event_data.ack.err));
        CHECK(err == std::errc::invalid_argument);

        c.async_send(connector::proc_id, connector::as_payload(std::uint32_t{PROC_CN_MCAST_IGNORE}), {},
                     [](error_code e) { CHECK_FALSE(e); });
        run_for(io, 100ms);
    }

    TEST_CASE("a loop of requests the kernel answers inside sendto goes on within one scheduler turn, completion_batch at most") {
        // The client's fairness bound: a request loop the kernel answers synchronously never
        // returns to the scheduler on its own, so after completion_batch handlers the client must
        // let a posted handler run. drain_batch (reads per turn) is left at its default, larger
        // than the loop: the bound is completion_batch's alone.
        asio::io_context io;
        client_options co;
        co.completion_batch = 10;
        client c(io.get_executor(), co);
        error_code ec;
        auto sub = c.subscribe(CN_IDX_PROC, {}, ec);
        REQUIRE_FALSE(ec);
        request_options o;
        o.match = match::ack_only;
        auto listen = c.async_request(connector::proc_id, connector::as_payload(std::uint32_t{PROC_CN_MCAST_LISTEN}),
                                      o, asio::use_future);
        run_for(io, 2s);
        REQUIRE_NOTHROW(listen.get());

        // A ticker counts the scheduler's turns: it re-posts itself, so it runs once per turn.
        // Each request's handler starts the next; the kernel acks an invalid op inside sendto().
        constexpr int total = 25;
        int done = 0;
        std::uint64_t turn = 0;
        std::map<std::uint64_t, int> per_turn;
        std::function<void()> tick = [&] {
            ++turn;
            if (done < total) asio::post(io, tick);
        };
        connector::message reply;
        std::function<void()> next = [&] {
            c.async_request(connector::proc_id, connector::as_payload(std::uint32_t{99}), reply, o,
                            [&](error_code e) {
                                CHECK_FALSE(e);
                                CHECK(decode(reply.payload).event_data.ack.err == EINVAL);
                                ++per_turn[turn];
                                if (++done < total) next();
                            });
        };
        next();
        asio::post(io, tick);
        run_for(io, 2s);
        REQUIRE(done == total);
        // 25 completions in three turns: 10, 10 and 5 (one posted completion each would take 25;
        // no bound, one turn); the ticker ran between them.
        CHECK(per_turn.size() == 3);
        std::vector<int> counts;
        for (const auto& [t, n] : per_turn) counts.push_back(n);
        CHECK(counts == std::vector<int>{10, 10, 5});
        CHECK(c.stats().timeouts == 0);

        // The same loop under the defaults: drain_batch (256) does not cut it short, and the
        // default bound holds too: 1,500 requests need at least two turns of completion_batch.
        client_options dflt;
        REQUIRE(dflt.completion_batch < 1500);
        client d(io.get_executor(), dflt);
        d.socket().join(CN_IDX_PROC, ec); // the acks are multicast to the proc group; no subscription
        REQUIRE_FALSE(ec);
        const int many = 1500;
        int d_done = 0;
        std::uint64_t d_turn = 0;
        std::map<std::uint64_t, int> d_per_turn;
        std::function<void()> d_tick = [&] {
            ++d_turn;
            if (d_done < many) asio::post(io, d_tick);
        };
        std::function<void()> d_next = [&] {
            d.async_request(connector::proc_id, connector::as_payload(std::uint32_t{99}), reply, o,
                            [&](error_code e) {
                                CHECK_FALSE(e);
                                ++d_per_turn[d_turn];
                                if (++d_done < many) d_next();
                            });
        };
        d_next();
        asio::post(io, d_tick);
        io.restart();
        run_for(io, 5s);
        REQUIRE(d_done == many);
        int biggest = 0;
        for (const auto& [t, n] : d_per_turn) biggest = std::max(biggest, n);
        CAPTURE(d_per_turn.size());
        CHECK(biggest == static_cast<int>(dflt.completion_batch)); // a whole budget in one turn, not drain_batch
        CHECK(d_per_turn.size() == (many + dflt.completion_batch - 1) / dflt.completion_batch);

        c.async_send(connector::proc_id, connector::as_payload(std::uint32_t{PROC_CN_MCAST_IGNORE}), {},
                     [](error_code e) { CHECK_FALSE(e); });
        run_for(io, 100ms);
    }

    TEST_CASE("a request to an unregistered id times out with error::timeout") {
        asio::io_context io;
        client c(io.get_executor());
        request_options o;
        o.timeout = 200ms;
        outcome r;
        c.async_request(nobody_id, bytes("anyone?"), o, r.handler());
        run_for(io, 2s);
        CHECK(r.done);
        CHECK(r.ec == error::timeout);
        CHECK(r.reply.payload.empty());
        CHECK(c.stats().timeouts == 1);
        CHECK(c.pending_requests() == 0);
    }
}

TEST_SUITE("client: requests to a user-space peer") {
    TEST_CASE("10,000 requests from 100 coroutines, replies shuffled, all get their own payload") {
        test::echo_behaviour b;
        b.batch = 64;
        test::echo_peer peer(b);
        asio::io_context io;
        client c(io.get_executor(), admitting(peer.port_id()));
        int done = 0, wrong = 0;
        for (int co = 0; co < 100; ++co)
            asio::co_spawn(
                io,
                [&, co]() -> asio::awaitable<void> {
                    for (int i = 0; i < 100; ++i) {
                        const std::string payload = "c" + std::to_string(co) + "-r" + std::to_string(i);
                        request_options o;
                        o.port_id = peer.port_id();
                        o.timeout = 10s;
                        auto reply = co_await c.async_request(echo_id, bytes(payload), o, asio::use_awaitable);
                        if (test::text_of(reply.payload) == payload)
                            ++done;
                        else
                            ++wrong;
                    }
                },
                asio::detached);
        io.run_for(60s);
        CHECK(done == 10000);
        CHECK(wrong == 0);
        CHECK(c.stats().replies == 10000);
        CHECK(c.pending_requests() == 0);
    }

    TEST_CASE("replies with the wrong ack or the wrong seq are not delivered; duplicates are dropped") {
        test::echo_behaviour b;
        b.duplicate = b.decoys = true;
        test::echo_peer peer(b);
        asio::io_context io;
        client c(io.get_executor(), admitting(peer.port_id()));
        request_options o;
        o.port_id = peer.port_id();
        int ok = 0;
        for (int i = 0; i < 50; ++i) {
            const std::string payload = "req" + std::to_string(i);
            auto f = c.async_request(echo_id, bytes(payload), o, asio::use_future);
            run_for(io, 2s);
            auto reply = f.get();
            ok += test::text_of(reply.payload) == payload;
        }
        // The client reads only while something waits; the last duplicate can
        // come after the last reply (under emulation it does): keep reading.
        error_code sec;
        auto keep_reading = c.subscribe(0, {}, sec);
        for (int i = 0; i < 50 && c.stats().duplicate_replies < 50; ++i) run_for(io, 100ms);
        CHECK(keep_reading.queued() == 0); // a duplicate is not passed on as a new message
        CHECK(ok == 50);
        CHECK(c.stats().replies == 50);
        CHECK(c.stats().duplicate_replies == 50);
        CHECK(c.stats().unsolicited == 100); // the decoys: new messages, not replies
        CHECK(c.stats().unclaimed == 100);   // ...that nobody subscribed to
    }

    TEST_CASE("a reply after the timeout is dropped and counted as late") {
        test::echo_behaviour b;
        b.delay = 300ms;
        test::echo_peer peer(b);
        asio::io_context io;
        client c(io.get_executor(), admitting(peer.port_id()));
        request_options o;
        o.port_id = peer.port_id();
        o.timeout = 100ms;
        outcome r;
        c.async_request(echo_id, bytes("slow"), o, r.handler());
        run_for(io, 200ms);
        CHECK(r.ec == error::timeout);
        // Keep reading so the late reply is seen: a subscription keeps the loop going.
        error_code ec;
        auto sub = c.subscribe(0, {}, ec);
        run_for(io, 600ms);
        CHECK(c.stats().late_replies == 1);
        CHECK(c.stats().replies == 0);
        CHECK(sub.queued() == 0); // not passed on as a new message either
    }

    TEST_CASE("per-operation cancellation removes the request at once; its reply is late") {
        test::echo_behaviour b;
        b.delay = 300ms;
        test::echo_peer peer(b);
        asio::io_context io;
        client c(io.get_executor(), admitting(peer.port_id()));
        request_options o;
        o.port_id = peer.port_id();
        asio::cancellation_signal cancel;
        error_code got;
        bool done = false;
        c.async_request(echo_id, bytes("to cancel"), o,
                        asio::bind_cancellation_slot(cancel.slot(), [&](error_code ec, connector::message) {
                            got = ec;
                            done = true;
                        }));
        CHECK(c.pending_requests() == 1);
        run_for(io, 20ms);
        for (auto type : {asio::cancellation_type::terminal}) cancel.emit(type);
        CHECK(c.pending_requests() == 0); // gone from the table before the handler even runs
        error_code ec;
        auto sub = c.subscribe(0, {}, ec);
        run_for(io, 600ms);
        CHECK(done);
        CHECK(got == asio::error::operation_aborted);
        CHECK(c.stats().late_replies == 1);
    }

    TEST_CASE("partial and total cancellation are honoured too") {
        for (auto type : {asio::cancellation_type::partial, asio::cancellation_type::total}) {
            test::echo_behaviour b;
        b.delay = 300ms;
        test::echo_peer peer(b);
            asio::io_context io;
            client c(io.get_executor(), admitting(peer.port_id()));
            request_options o;
            o.port_id = peer.port_id();
            asio::cancellation_signal cancel;
            error_code got;
            c.async_request(echo_id, bytes("x"), o,
                            asio::bind_cancellation_slot(cancel.slot(), [&](error_code ec, connector::message) { got = ec; }));
            cancel.emit(type);
            run_for(io, 50ms);
            CHECK(got == asio::error::operation_aborted);
        }
    }

    TEST_CASE("without admitting the peer its replies are rejected and the request times out") {
        test::echo_peer peer;
        asio::io_context io;
        client c(io.get_executor());
        request_options o;
        o.port_id = peer.port_id();
        o.timeout = 200ms;
        outcome r;
        c.async_request(echo_id, bytes("hello"), o, r.handler());
        run_for(io, 1s);
        CHECK(r.ec == error::timeout);
        CHECK(peer.answered() == 1);
        CHECK(c.stats().rejected == 1);
        CHECK(c.stats().replies == 0);
    }

    TEST_CASE("closing the client ends every pending request with operation_aborted") {
        test::echo_behaviour b;
        b.delay = 500ms;
        test::echo_peer peer(b);
        asio::io_context io;
        client c(io.get_executor(), admitting(peer.port_id()));
        request_options o;
        o.port_id = peer.port_id();
        int aborted = 0;
        for (int i = 0; i < 20; ++i)
            c.async_request(echo_id, bytes("x"), o, [&](error_code ec, connector::message) {
                aborted += ec == asio::error::operation_aborted;
            });
        asio::co_spawn(io, [&]() -> asio::awaitable<void> { // closed from another coroutine
            asio::steady_timer t(io, 10ms);
            co_await t.async_wait(asio::use_awaitable);
            c.close();
        }, asio::detached);
        run_for(io, 100ms);
        CHECK(aborted == 20);
        CHECK(c.pending_requests() == 0);
        outcome r;
        c.async_request(echo_id, bytes("x"), o, r.handler());
        run_for(io, 50ms);
        CHECK(r.ec == error::client_closed);
    }

    TEST_CASE("destroying the client completes pending requests with operation_aborted") {
        asio::io_context io;
        error_code got;
        {
            client c(io.get_executor());
            request_options o;
            o.timeout = 10s;
            c.async_request(nobody_id, bytes("x"), o, [&](error_code ec, connector::message) { got = ec; });
        }
        run_for(io, 100ms);
        CHECK(got == asio::error::operation_aborted);
    }

    TEST_CASE("any completion token: callback, future, deferred, as_tuple, awaitable, reply into a message") {
        test::echo_peer peer;
        asio::io_context io;
        client c(io.get_executor(), admitting(peer.port_id()));
        request_options o;
        o.port_id = peer.port_id();
        std::string via_callback;
        c.async_request(echo_id, bytes("cb"), o, [&](error_code ec, connector::message m) {
            CHECK_FALSE(ec);
            via_callback = test::text_of(m.payload);
        });
        const std::string later = "deferred"; // a deferred operation reads its payload when launched
        auto op = c.async_request(echo_id, bytes(later), o, asio::deferred);
        std::string via_deferred;
        std::move(op)([&](error_code, connector::message m) { via_deferred = test::text_of(m.payload); });
        connector::message into;
        error_code into_ec = error::timeout;
        c.async_request(echo_id, bytes("into"), into, o, [&](error_code ec) { into_ec = ec; });
        std::string via_coro;
        asio::co_spawn(io, [&]() -> asio::awaitable<void> {
            auto [ec, m] = co_await c.async_request(echo_id, bytes("coro"), o, asio::as_tuple(asio::use_awaitable));
            CHECK_FALSE(ec);
            via_coro = test::text_of(m.payload);
        }, asio::detached);
        run_for(io, 1s);
        CHECK(via_callback == "cb");
        CHECK(via_deferred == "deferred");
        CHECK_FALSE(into_ec);
        CHECK(test::text_of(into.payload) == "into");
        CHECK(via_coro == "coro");
    }

    TEST_CASE("a payload above CONNECTOR_MAX_MSG_SIZE is refused before anything is sent") {
        asio::io_context io;
        client c(io.get_executor());
        std::vector<std::byte> big(connector::max_payload + 1);
        outcome r;
        c.async_request(echo_id, big, r.handler());
        run_for(io, 100ms);
        CHECK(r.ec == error::payload_too_large);
        CHECK(c.pending_requests() == 0);
    }
}

TEST_SUITE("client: subscriptions") {
    constexpr unsigned group = CN_NETLINK_USERS + 9; // 20: free in every kernel

    TEST_CASE("a multicast fans out to every subscriber of its group; the last one leaving leaves the group") {
        test::peer sender;
        asio::io_context io;
        client c(io.get_executor(), admitting(sender.port_id()));
        error_code ec;
        auto a = c.subscribe(group, {}, ec);
        REQUIRE_FALSE(ec);
        auto b = c.subscribe(group, {}, ec);
        auto other = c.subscribe(group + 1, {}, ec);
        CHECK(c.receive_buffer_size() > 0);

        connector::header h;
        h.id = echo_id;
        h.seq = 5;
        REQUIRE(sender.send(h, bytes("to the group"), 0, netlink::endpoint::group_mask(group)) == 0);
        connector::message ma, mb;
        error_code ea = error::timeout, eb = error::timeout;
        a.async_receive(ma, [&](error_code e) { ea = e; });
        b.async_receive(mb, [&](error_code e) { eb = e; });
        run_for(io, 500ms);
        CHECK_FALSE(ea);
        CHECK_FALSE(eb);
        CHECK(test::text_of(ma.payload) == "to the group");
        CHECK(test::text_of(mb.payload) == "to the group");
        CHECK(other.queued() == 0);
        CHECK(a.stats().delivered == 1);

        a = {};
        b = {}; // the last subscriber of the group: the client leaves it
        const auto before = c.stats().datagrams;
        REQUIRE(sender.send(h, bytes("nobody listens"), 0, netlink::endpoint::group_mask(group)) == 0);
        run_for(io, 200ms);
        CHECK(c.stats().datagrams == before);
    }

    TEST_CASE("a multicast from a sender that is not admitted is rejected") {
        test::peer forger;
        asio::io_context io;
        client c(io.get_executor());
        error_code ec;
        auto s = c.subscribe(group, {}, ec);
        REQUIRE(forger.send({}, bytes("forged"), 0, netlink::endpoint::group_mask(group)) == 0);
        run_for(io, 200ms);
        CHECK(s.queued() == 0);
        CHECK(c.stats().rejected == 1);
    }

    TEST_CASE("a full queue applies its policy and counts the drops, without blocking others") {
        test::peer sender;
        asio::io_context io;
        client c(io.get_executor(), admitting(sender.port_id()));
        error_code ec;
        subscription_options keep_newest, keep_oldest;
        keep_newest.queue_limit = keep_oldest.queue_limit = 4;
        keep_newest.policy = overflow_policy::drop_oldest;
        keep_oldest.policy = overflow_policy::drop_newest;
        auto oldest = c.subscribe(group, keep_newest, ec);
        auto newest = c.subscribe(group, keep_oldest, ec);
        auto roomy = c.subscribe(group, {}, ec);
        for (int i = 0; i < 10; ++i) {
            connector::header h;
            h.seq = static_cast<std::uint32_t>(i);
            REQUIRE(sender.send(h, bytes(std::to_string(i)), 0, netlink::endpoint::group_mask(group)) == 0);
        }
        run_for(io, 300ms);
        auto drain = [&](subscription& s) {
            std::string got;
            while (s.queued() > 0) {
                connector::message m;
                s.async_receive(m, [&](error_code e) { CHECK_FALSE(e); got += test::text_of(m.payload); });
                run_for(io, 50ms);
            }
            return got;
        };
        CHECK(drain(oldest) == "6789");
        CHECK(drain(newest) == "0123");
        CHECK(drain(roomy) == "0123456789");
        CHECK(oldest.stats().dropped == 6);
        CHECK(newest.stats().dropped == 6);
        CHECK(roomy.stats().dropped == 0);
    }

    TEST_CASE("a batch receive takes every queued message in one completion, reusing the caller's storage") {
        test::peer sender;
        asio::io_context io;
        client c(io.get_executor(), admitting(sender.port_id()));
        error_code ec;
        auto s = c.subscribe(group, {}, ec);
        for (int i = 0; i < 10; ++i)
            REQUIRE(sender.send({}, bytes("m" + std::to_string(i)), 0, netlink::endpoint::group_mask(group)) == 0);
        run_for(io, 200ms);
        REQUIRE(s.queued() == 10);
        std::vector<connector::message> batch;
        std::size_t got = 0;
        s.async_receive_batch(batch, 8, [&](error_code e, std::size_t n) {
            CHECK_FALSE(e);
            got = n;
        });
        run_for(io, 50ms);
        REQUIRE(got == 8);
        CHECK(test::text_of(batch[0].payload) == "m0");
        CHECK(test::text_of(batch[7].payload) == "m7");
        s.async_receive_batch(batch, 8, [&](error_code, std::size_t n) { got = n; });
        run_for(io, 50ms);
        CHECK(got == 2);
        CHECK(test::text_of(batch[1].payload) == "m9");
        CHECK(batch.size() == 8); // never shrinks: the storage stays for the next burst

        // try_receive takes what is queued without a completion, false when empty.
        for (int i = 0; i < 3; ++i)
            REQUIRE(sender.send({}, bytes("t" + std::to_string(i)), 0, netlink::endpoint::group_mask(group)) == 0);
        run_for(io, 200ms);
        connector::message m;
        std::string got_now;
        while (s.try_receive(m, ec)) {
            CHECK_FALSE(ec);
            got_now += test::text_of(m.payload);
        }
        CHECK(got_now == "t0t1t2");

        // A batch that waits gets everything one read brings, in one
        // completion: ten datagrams queued in the socket while the loop does
        // not run are one recvmmsg when it does.
        std::vector<std::string> texts;
        std::size_t completions = 0;
        s.async_receive_batch(batch, 64, [&](error_code e, std::size_t n) {
            CHECK_FALSE(e);
            ++completions;
            for (std::size_t i = 0; i < n; ++i) texts.push_back(test::text_of(batch[i].payload));
        });
        run_for(io, 20ms); // the receive waits, the loop waits for readiness
        REQUIRE(completions == 0);
        const auto reads0 = c.stats().reads;
        for (int i = 0; i < 10; ++i)
            REQUIRE(sender.send({}, bytes("w" + std::to_string(i)), 0, netlink::endpoint::group_mask(group)) == 0);
        run_for(io, 100ms);
        CHECK(completions == 1);
        REQUIRE(texts.size() == 10);
        CHECK(texts.front() == "w0");
        CHECK(texts.back() == "w9");
        // One read brought the ten (a second would have completed the batch
        // with what the first brought); a burst is followed by one more read
        // in the same handler instead of a readiness wait, which found nothing.
        CHECK(c.stats().reads - reads0 == 2);

        // A single datagram goes back to the readiness wait: no read after it.
        completions = 0;
        s.async_receive_batch(batch, 64, [&](error_code e, std::size_t n) {
            CHECK_FALSE(e);
            CHECK(n == 1);
            ++completions;
        });
        run_for(io, 20ms);
        const auto reads1 = c.stats().reads;
        REQUIRE(sender.send({}, bytes("one"), 0, netlink::endpoint::group_mask(group)) == 0);
        run_for(io, 100ms);
        CHECK(completions == 1);
        CHECK(c.stats().reads - reads1 == 1);
    }

    TEST_CASE("a receive loop is served by a trampoline: a queued burst in one scheduler turn, completion_batch at most; arrivals in the turn that reads them") {
        test::peer sender;
        asio::io_context io;
        client_options o = admitting(sender.port_id());
        o.completion_batch = 40;
        client c(io.get_executor(), o);
        error_code ec;
        auto s = c.subscribe(0, {}, ec); // unicasts that answer no request
        REQUIRE_FALSE(ec);
        for (int i = 0; i < 100; ++i) REQUIRE(sender.send({}, bytes(std::to_string(i)), c.port_id()) == 0);
        run_for(io, 200ms);
        REQUIRE(s.queued() == 100);

        // A callback loop: each handler starts the next receive. It runs on the client's executor,
        // so one posted function hands out message after message, up to completion_batch per turn.
        std::vector<std::string> got;
        error_code last;
        int stop_after = 1000;
        connector::message m;
        std::function<void()> next = [&] {
            s.async_receive(m, [&](error_code e) {
                last = e;
                if (e) return;
                got.push_back(test::text_of(m.payload));
                if (static_cast<int>(got.size()) == stop_after) c.close();
                next();
            });
        };
        next();
        io.restart();
        CHECK(io.run_one() == 1);
        CHECK(got.size() == 40);
        CHECK(io.run_one() == 1);
        CHECK(got.size() == 80);
        CHECK(io.run_one() == 1);
        CHECK(got.size() == 100);
        for (int i = 0; i < 100; ++i) CHECK(got[static_cast<std::size_t>(i)] == std::to_string(i));
        CHECK(s.stats().dropped == 0);

        // Messages that arrive while the loop waits are handed out at the end of the readiness
        // handler that read them: one scheduler turn, not one to read and one to hand out.
        for (int i = 100; i < 110; ++i) REQUIRE(sender.send({}, bytes(std::to_string(i)), c.port_id()) == 0);
        CHECK(io.run_one() == 1);
        CHECK(got.size() == 110);
        CHECK(got.back() == "109");

        // Closing the client inside a handler ends the run: the receive started after it fails,
        // and nothing queued behind is handed out.
        stop_after = 115;
        for (int i = 110; i < 140; ++i) REQUIRE(sender.send({}, bytes(std::to_string(i)), c.port_id()) == 0);
        run_for(io, 200ms);
        CHECK(got.size() == 115);
        CHECK(last == error::client_closed);
    }

    TEST_CASE("a handler that throws out of io_context::run() leaves the receive loop and requests working") {
        test::peer sender;
        asio::io_context io;
        client c(io.get_executor(), admitting(sender.port_id()));
        error_code ec;
        auto s = c.subscribe(0, {}, ec);
        REQUIRE_FALSE(ec);
        std::vector<std::string> got;
        connector::message m;
        std::function<void()> next = [&] {
            s.async_receive(m, [&](error_code e) {
                if (e) return;
                got.push_back(test::text_of(m.payload));
                next();
                if (got.size() == 3) throw std::runtime_error("handler failed");
            });
        };
        // Queued before the loop starts (served by a posted function), then while it waits
        // (served at the end of the readiness handler): a throw on each path.
        for (int i = 0; i < 10; ++i) REQUIRE(sender.send({}, bytes(std::to_string(i)), c.port_id()) == 0);
        run_for(io, 200ms);
        REQUIRE(s.queued() == 10);
        next();
        CHECK_THROWS_AS(run_for(io, 200ms), std::runtime_error);
        CHECK(got.size() == 3);
        run_for(io, 200ms); // the receive started before the throw gets the rest
        CHECK(got.size() == 10);
        got.clear();
        for (int i = 0; i < 10; ++i) REQUIRE(sender.send({}, bytes(std::to_string(i)), c.port_id()) == 0);
        CHECK_THROWS_AS(run_for(io, 200ms), std::runtime_error);
        CHECK(got.size() == 3);
        run_for(io, 200ms);
        CHECK(got.size() == 10);

        // The same for request completions: the one behind a throwing handler still runs.
        test::echo_peer peer;
        client r(io.get_executor(), admitting(peer.port_id()));
        request_options o;
        o.port_id = peer.port_id();
        int completed = 0;
        for (int i = 0; i < 2; ++i)
            r.async_request(echo_id, bytes("x"), o, [&](error_code e, connector::message) {
                CHECK_FALSE(e);
                if (++completed == 1) throw std::runtime_error("request handler failed");
            });
        CHECK_THROWS_AS(run_for(io, 500ms), std::runtime_error);
        CHECK(completed == 1);
        run_for(io, 500ms);
        CHECK(completed == 2);
    }

    TEST_CASE("a receive loop whose handler runs on a strand gets every message in order, on the strand") {
        test::peer sender;
        asio::io_context io;
        client_options o = admitting(sender.port_id());
        o.completion_batch = 256;
        client c(io.get_executor(), o);
        error_code ec;
        auto s = c.subscribe(0, {}, ec);
        REQUIRE_FALSE(ec);
        for (int i = 0; i < 300; ++i) REQUIRE(sender.send({}, bytes(std::to_string(i)), c.port_id()) == 0);
        run_for(io, 200ms);
        REQUIRE(s.queued() == 300);
        const auto strand = asio::make_strand(io);
        std::vector<std::string> got;
        connector::message m;
        std::function<void()> next = [&] {
            s.async_receive(m, asio::bind_executor(strand, [&](error_code e) {
                                CHECK(strand.running_in_this_thread());
                                if (e) return;
                                got.push_back(test::text_of(m.payload));
                                if (got.size() < 300) next();
                            }));
        };
        next();
        io.restart();
        // The completion path dispatches to the strand; a strand that is free is entered at
        // once, so its handler runs inside that turn and its next receive is served in it too,
        // completion_batch handlers at most (256 here), each on the strand.
        CHECK(io.run_one() == 1);
        CHECK(got.size() == 256);
        run_for(io, 200ms);
        REQUIRE(got.size() == 300);
        for (int i = 0; i < 300; ++i) CHECK(got[static_cast<std::size_t>(i)] == std::to_string(i));
    }

    TEST_CASE("on a 4-thread io_context, unicasts trickling in one at a time all arrive, the last one included") {
        // The client is on a strand while three more threads take turns in the reactor. Messages
        // come one at a time with pauses, so one often lands between the reader's last read (the
        // queue was empty) and its next readiness wait, when another thread's epoll_wait can take
        // the edge. A wait that missed such an edge would leave that message unread until the next
        // one came, and the last message unread for good.
        test::peer sender;
        asio::io_context io(4);
        const auto strand = asio::make_strand(io);
        client c(strand, admitting(sender.port_id()));
        error_code ec;
        subscription s = c.subscribe(0, {}, ec); // group 0: unicasts that answer no request
        REQUIRE_FALSE(ec);
        constexpr int total = 20000;
        std::atomic<int> received{0};
        std::atomic<int> out_of_order{0};
        asio::co_spawn(
            strand,
            [&]() -> asio::awaitable<void> {
                connector::message m;
                for (int i = 0; i < total; ++i) {
                    auto [e] = co_await s.async_receive(m, asio::as_tuple(asio::use_awaitable));
                    if (e) co_return;
                    if (test::text_of(m.payload) != std::to_string(i)) ++out_of_order;
                    ++received;
                }
            },
            asio::detached);
        std::vector<std::thread> threads;
        for (int i = 0; i < 4; ++i) threads.emplace_back([&] { io.run(); });

        std::mt19937 rng(7);
        for (int i = 0; i < total; ++i) {
            REQUIRE(sender.send({}, bytes(std::to_string(i)), c.port_id()) == 0);
            const auto pause = std::chrono::microseconds(rng() % 40);
            for (const auto t0 = std::chrono::steady_clock::now(); std::chrono::steady_clock::now() - t0 < pause;) {
            }
            while (i - received.load() > 1000) std::this_thread::yield(); // stay far below the queue limit
        }
        for (const auto t0 = std::chrono::steady_clock::now();
             received.load() < total && std::chrono::steady_clock::now() - t0 < 5s;)
            std::this_thread::sleep_for(1ms);
        CHECK(received.load() == total);
        CHECK(out_of_order.load() == 0);
        CHECK(s.stats().dropped == 0);
        asio::post(strand, [&] { c.close(); }); // ends the readiness wait, so the threads return
        for (auto& t : threads) t.join();
    }

    TEST_CASE("the socket is in an epoll set while the client waits for readiness, never while it reads a burst") {
        // While a socket is in any epoll set, every datagram queued to it runs
        // the epoll callback in the sender's system call (docs/design.md); Asio
        // would keep it in its reactor's set for good. The kernel's fdinfo says
        // which sets hold it.
        test::peer sender;
        asio::io_context io;
        client c(io.get_executor(), admitting(sender.port_id()));
        const int fd = c.socket().native_handle();
        REQUIRE(fd >= 0);
        CHECK(test::epoll_sets_holding(fd) == 0); // open, nobody reading
        error_code ec;
        subscription s = c.subscribe(0, {}, ec);
        REQUIRE_FALSE(ec);
        std::vector<int> held_in_handler;
        std::vector<std::string> texts;
        std::function<void()> receive = [&] {
            s.async_receive([&](error_code e, connector::message m) {
                if (e) return;
                held_in_handler.push_back(test::epoll_sets_holding(fd));
                texts.push_back(test::text_of(m.payload));
                if (texts.size() < 11) receive();
            });
        };
        receive();
        io.poll();
        CHECK(test::epoll_sets_holding(fd) == 1); // the client's own set, armed
        // Bursts: read and handed out outside every set.
        for (int i = 0; i < 3; ++i) REQUIRE(sender.send({}, bytes(std::to_string(i)), c.port_id()) == 0);
        run_for(io, 100ms);
        REQUIRE(texts.size() == 3);
        CHECK(test::epoll_sets_holding(fd) == 1); // waiting again for the next one
        for (int i = 3; i < 6; ++i) REQUIRE(sender.send({}, bytes(std::to_string(i)), c.port_id()) == 0);
        run_for(io, 100ms);
        REQUIRE(texts.size() == 6);
        for (std::size_t i = 0; i < 6; ++i) CHECK(held_in_handler[i] == 0);
        // A trickle, one datagram per wake-up: the socket stays in the set,
        // armed, so the next wait costs no epoll_ctl; none is missed.
        const auto wakeups = c.stats().wakeups;
        for (int i = 6; i < 11; ++i) {
            REQUIRE(sender.send({}, bytes(std::to_string(i)), c.port_id()) == 0);
            run_for(io, 50ms);
            REQUIRE(texts.size() == static_cast<std::size_t>(i + 1));
        }
        CHECK(c.stats().wakeups - wakeups == 5);
        for (std::size_t i = 6; i < 11; ++i) CHECK(held_in_handler[i] == 1);
        for (int i = 0; i < 11; ++i) CHECK(texts[static_cast<std::size_t>(i)] == std::to_string(i));
        CHECK(test::epoll_sets_holding(fd) == 1); // the subscription keeps reading into its queue
        s = subscription{};                       // nobody wants to read: the wait is cancelled
        io.poll();
        CHECK(test::epoll_sets_holding(fd) == 0); // and the socket left the set
        // Socket options still work on the socket the reactor no longer holds.
        c.socket().join(CN_IDX_PROC, ec);
        CHECK_FALSE(ec);
        c.socket().leave(CN_IDX_PROC, ec);
        CHECK_FALSE(ec);
        c.close();
        CHECK_FALSE(c.socket().is_open());
    }

    TEST_CASE("after a wake-up that read a single reply, a client nobody reads from takes its socket out of the set") {
        // The reply comes 30 ms late, so a readiness wake-up reads it alone and
        // leaves the socket in the set. Once the request has ended nobody reads:
        // left in, every later datagram would wake the reactor for nothing.
        test::echo_behaviour b;
        b.delay = 30ms;
        test::echo_peer peer(b);
        asio::io_context io;
        client c(io.get_executor(), admitting(peer.port_id()));
        const int fd = c.socket().native_handle();
        request_options o;
        o.port_id = peer.port_id();
        o.timeout = 5s;
        outcome r;
        c.async_request(echo_id, bytes("late"), o, r.handler());
        io.poll();
        CHECK(test::epoll_sets_holding(fd) == 1); // waiting for the reply
        for (int i = 0; i < 100 && !r.done; ++i) run_for(io, 10ms);
        REQUIRE(r.done);
        CHECK_FALSE(r.ec);
        CHECK(test::text_of(r.reply.payload) == "late");
        CHECK(c.stats().wakeups >= 1); // read by a readiness wake-up, not right after the send
        CHECK(test::epoll_sets_holding(fd) == 0);
    }

    TEST_CASE("an overrun is signalled to every subscriber once, and messages flow again afterwards") {
        test::peer sender;
        asio::io_context io;
        auto opts = admitting(sender.port_id());
        opts.subscription_receive_buffer = 4096;
        client c(io.get_executor(), opts);
        error_code ec;
        auto a = c.subscribe(group, {}, ec);
        auto b = c.subscribe(group, {}, ec);
        // Fill the small buffer while nobody reads, until the kernel reports loss.
        std::string big(1000, 'x');
        for (int i = 0; i < 200; ++i) sender.send({}, bytes(big), 0, netlink::endpoint::group_mask(group));
        run_for(io, 300ms);
        CHECK(c.stats().overruns >= 1);
        for (auto* s : {&a, &b}) {
            connector::message m;
            error_code first = error::timeout;
            s->async_receive(m, [&](error_code e) { first = e; });
            run_for(io, 50ms);
            CHECK(first == error::overrun);
            CHECK(s->stats().overruns >= 1);
        }
        // Drain, then a new message arrives normally. A further report may only
        // come from a further ENOBUFS the client counted.
        const auto seen = c.stats().overruns;
        int further_reports = 0;
        for (auto* s : {&a, &b})
            while (s->queued() > 0) {
                connector::message m;
                s->async_receive(m, [&](error_code x) { further_reports += x == error::overrun; });
                run_for(io, 5ms);
            }
        REQUIRE(sender.send({}, bytes("after"), 0, netlink::endpoint::group_mask(group)) == 0);
        for (auto* s : {&a, &b}) {
            connector::message m;
            error_code e = error::timeout;
            s->async_receive(m, [&](error_code x) { e = x; });
            run_for(io, 200ms);
            if (e == error::overrun) {
                ++further_reports;
                s->async_receive(m, [&](error_code x) { e = x; });
                run_for(io, 200ms);
            }
            CHECK_FALSE(e);
            CHECK(test::text_of(m.payload) == "after");
            CHECK(s->stats().overruns == c.stats().overruns); // every ENOBUFS marked on every subscriber
        }
        CHECK((further_reports == 0 || c.stats().overruns > seen));
    }

    TEST_CASE("a receive is cancelled per operation, and by closing the client") {
        asio::io_context io;
        client c(io.get_executor());
        error_code ec;
        auto s = c.subscribe(group, {}, ec);
        asio::cancellation_signal cancel;
        connector::message m;
        error_code got;
        s.async_receive(m, asio::bind_cancellation_slot(cancel.slot(), [&](error_code e) { got = e; }));
        run_for(io, 10ms);
        cancel.emit(asio::cancellation_type::terminal);
        run_for(io, 10ms);
        CHECK(got == asio::error::operation_aborted);

        got = {};
        s.async_receive(m, [&](error_code e) { got = e; });
        c.close();
        run_for(io, 10ms);
        CHECK(got == asio::error::operation_aborted);
    }

    TEST_CASE("groups outside 0..32 are refused") {
        asio::io_context io;
        client c(io.get_executor());
        error_code ec;
        auto s = c.subscribe(33, {}, ec);
        CHECK(ec == error::invalid_group);
        CHECK_FALSE(s);
    }
}

TEST_SUITE("client: faults") {
    // Memory the process holds, in KiB. Normally the resident set size (statm's second field is in
    // pages). Under AddressSanitizer freed blocks sit in a quarantine of up to 256 MiB before they are
    // reused, so RSS grows with the number of frees, not with what is live: there the allocator's own
    // count of live bytes is the measure.

    TEST_CASE("20 s of receive-buffer overruns with requests in flight: no deadlock, every request ends, memory bounded") {
        constexpr unsigned group = CN_NETLINK_USERS + 9;
        test::echo_peer peer;
        test::peer flooder;
        asio::io_context io;
        auto opts = admitting(peer.port_id());
        opts.admitted_ports.push_back(flooder.port_id());
        opts.subscription_receive_buffer = 16384; // overruns guaranteed
        client c(io.get_executor(), opts);
        error_code ec;
        subscription_options so;
        so.queue_limit = 256;
        auto sub = c.subscribe(group, so, ec);
        REQUIRE_FALSE(ec);

        std::atomic<bool> stop{false};
        std::thread flood([&] { // bursts of 1 KiB multicasts, far more than 16 KiB holds
            const std::string big(1000, 'f');
            while (!stop) {
                for (int i = 0; i < 200; ++i)
                    flooder.send({}, connector::as_payload(std::string_view(big)), 0, netlink::endpoint::group_mask(group));
                std::this_thread::sleep_for(2ms);
            }
        });

        std::size_t sent = 0, ended = 0, replied = 0, overruns_seen = 0, messages_after_overrun = 0;
        asio::co_spawn(io, [&]() -> asio::awaitable<void> { // the subscriber
            connector::message m;
            for (;;) {
                auto [e] = co_await sub.async_receive(m, asio::as_tuple(asio::use_awaitable));
                if (e == asio::error::operation_aborted) co_return;
                if (e == error::overrun)
                    ++overruns_seen;
                else if (!e && overruns_seen > 0)
                    ++messages_after_overrun;
            }
        }, asio::detached);
        for (int co = 0; co < 8; ++co) // requesters: 8 in flight at all times
            asio::co_spawn(io, [&]() -> asio::awaitable<void> {
                request_options o;
                o.port_id = peer.port_id();
                o.timeout = 200ms;
                while (!stop) {
                    ++sent;
                    auto [e, r] = co_await c.async_request(echo_id, bytes("ping"), o, asio::as_tuple(asio::use_awaitable));
                    ++ended;
                    if (!e) ++replied;
                }
            }, asio::detached);

        const long mem_before = memory_kib();
        long mem_peak = mem_before;
        const auto until = std::chrono::steady_clock::now() + 20s;
        while (std::chrono::steady_clock::now() < until) {
            io.run_for(500ms);
            mem_peak = std::max(mem_peak, memory_kib());
        }
        stop = true;
        flood.join();
        io.run_for(500ms); // the last requests end (reply or timeout)
        CAPTURE(sent);
        CAPTURE(replied);
        CAPTURE(overruns_seen);
        CAPTURE(mem_before);
        CAPTURE(mem_peak);
        CHECK(ended == sent);                    // every request completed: reply or timeout
        CHECK(replied > 100);                    // and requests kept working during the storm
        CHECK(c.stats().overruns >= 1);          // the storm did overrun (7 times in 20 s here)
        CHECK(overruns_seen >= 1);               // the subscriber was told
        CHECK(messages_after_overrun > 0);       // and kept receiving
        CHECK(c.pending_requests() == 0);
        CHECK(mem_peak - mem_before < 2 * 1024); // bounded: queue of 256 × 1 KiB, table, buffers
        MESSAGE("storm: ", sent, " requests (", replied, " replied), ", c.stats().overruns, " overruns, ",
                overruns_seen, " signalled, memory ", mem_before, " -> peak ", mem_peak, " KiB");
        c.close();
        io.run_for(100ms);
    }
}

TEST_SUITE("client: work and memory") {
    // How long io_context::run() takes to return on its own; fails the test
    // (and stops the context) if it has not returned after `limit`.
    std::chrono::milliseconds run_until_idle(asio::io_context& io, std::chrono::milliseconds limit = 5s) {
        io.restart();
        const auto t0 = std::chrono::steady_clock::now();
        io.run_for(limit);
        const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
        CHECK_MESSAGE(io.stopped(), "io_context::run() still had work after ", limit.count(), " ms");
        io.stop();
        return took;
    }

    TEST_CASE("a coroutine that makes one request and returns lets io.run() return, without close()") {
        asio::io_context io;
        client c(io.get_executor()); // default timeout 1000 ms: a timer left armed would hold run() that long
        bool acked = false;
        asio::co_spawn(io, [&]() -> asio::awaitable<void> {
            error_code ec;
            auto group = c.subscribe(CN_IDX_PROC, {}, ec);
            REQUIRE_FALSE(ec);
            request_options o;
            o.match = match::ack_only;
            auto reply = co_await c.async_request(connector::proc_id, connector::as_payload(std::uint32_t{PROC_CN_MCAST_LISTEN}),
                                                  o, asio::use_awaitable);
            acked = decode(reply.payload).what == proc_event::what::PROC_EVENT_NONE;
            co_await c.async_send(connector::proc_id, connector::as_payload(std::uint32_t{PROC_CN_MCAST_IGNORE}), {},
                                  asio::use_awaitable);
        }, asio::detached);
        const auto took = run_until_idle(io);
        CHECK(acked);
        CHECK(took < 500ms);
        CHECK(c.is_open());
        CHECK(c.pending_requests() == 0);

        // The client stays usable: a second run with a request to a user-space peer returns too.
        test::echo_peer peer;
        c.admit(peer.port_id());
        request_options o;
        o.port_id = peer.port_id();
        connector::header sent;
        o.sent = &sent;
        outcome r;
        c.async_request(echo_id, bytes("again"), o, r.handler());
        CHECK(run_until_idle(io) < 500ms);
        CHECK(r.done);
        CHECK_FALSE(r.ec);
        CHECK(r.reply.seq() == sent.seq); // request_options::sent: the numbers the reply answers
        CHECK(r.reply.ack() == sent.ack + 1);
        CHECK(sent.id == echo_id);
    }

    TEST_CASE("a subscription keeps io.run() busy until it is destroyed") {
        asio::io_context io;
        client c(io.get_executor());
        error_code ec;
        auto sub = c.subscribe(CN_NETLINK_USERS + 3, {}, ec);
        REQUIRE_FALSE(ec);
        const auto t0 = std::chrono::steady_clock::now(); // before the timer starts
        asio::steady_timer later(io, 200ms);
        later.async_wait([&](error_code) { sub = subscription{}; });
        run_until_idle(io);
        const auto took = std::chrono::steady_clock::now() - t0;
        CHECK(took >= 200ms);
        CHECK(took < 700ms);
    }

    TEST_CASE("1,000 subscribers and a burst of maximum-size messages: queues stay within the byte budget, memory returns") {
        constexpr unsigned group = CN_NETLINK_USERS + 10;
        constexpr int subscribers = 1000;
        constexpr int burst = 200; // 200 × 16 KiB × 1,000 subscribers = 3.2 GB if every copy were kept
        test::peer sender;
        asio::io_context io;
        client_options o = admitting(sender.port_id());
        o.subscription_bytes = 32u << 20;
        client c(io.get_executor(), o);
        std::vector<subscription> subs;
        subscription_options so;
        so.byte_limit = 1u << 20;
        for (int i = 0; i < subscribers; ++i) {
            error_code ec;
            subs.push_back(c.subscribe(group, so, ec));
            REQUIRE_FALSE(ec);
        }
        REQUIRE(c.receive_buffer_size() >= 4u << 20); // the burst fits in the socket: nothing lost before the queues
        run_for(io, 50ms);
        const long before = memory_kib();
        const std::string big(connector::max_payload, 'm');
        for (int i = 0; i < burst; ++i) {
            connector::header h;
            h.seq = static_cast<std::uint32_t>(i);
            REQUIRE(sender.send(h, connector::as_payload(std::string_view(big)), 0, netlink::endpoint::group_mask(group)) == 0);
        }
        long peak = before;
        for (int i = 0; i < 20 && c.stats().datagrams < burst; ++i) {
            run_for(io, 50ms);
            peak = std::max(peak, memory_kib());
            CHECK(c.held_bytes() <= o.subscription_bytes);
        }
        REQUIRE(c.stats().datagrams == burst);
        CHECK(c.stats().overruns == 0);
        std::uint64_t queued = 0, dropped = 0;
        for (const auto& s : subs) {
            CHECK(s.stats().queued_bytes <= so.byte_limit);
            queued += s.queued();
            dropped += s.stats().dropped;
        }
        CHECK(queued + dropped == std::uint64_t{burst} * subscribers); // every copy queued or counted as dropped
        const std::size_t cost = detail::subscriber_queue::cost(big.size());
        CHECK(queued * cost <= o.subscription_bytes);
        CHECK(queued * cost >= o.subscription_bytes - 2 * subscribers * cost); // the budget was used, not starved
        const long grown = peak - before;
        MESSAGE("1,000 subscribers: ", queued, " queued, ", dropped, " dropped; ", c.held_bytes() / 1024,
                " KiB held; memory ", before, " -> peak ", peak, " KiB");
        CHECK(grown < 36 * 1024); // the 32 MiB budget + rings and receive slots

        // Consume everything: the queues give their storage back.
        connector::message m;
        error_code ec;
        for (auto& s : subs)
            while (s.try_receive(m, ec)) {
            }
        m = connector::message{};
        CHECK(c.held_bytes() <= subscribers * detail::subscriber_queue::idle_slot_limit);
        const long after = memory_kib();
        MESSAGE("after consuming: ", after, " KiB, ", c.held_bytes() / 1024, " KiB held");
        CHECK(after - before < 10 * 1024); // large slots' storage given back: the rings remain
    }
}

// client_options::coalesce_window: what the option does, not how fast it is
// (bench/README.md measures that).
TEST_SUITE("client: coalescing") {
    using steady = std::chrono::steady_clock;

    // A receive loop on subscription `s` that notes each message's arrival time
    // and how many reads client `c` (if given) had made by then.
    struct arrivals {
        std::vector<std::string> texts;
        std::vector<steady::time_point> at;
        std::vector<std::uint64_t> reads_by;
        error_code last;
        connector::message m;
        std::function<void()> next;
        explicit arrivals(subscription& s, const client* c = nullptr) {
            next = [this, &s, c] {
                s.async_receive(m, [this, c](error_code e) {
                    last = e;
                    if (e) return;
                    texts.push_back(test::text_of(m.payload));
                    at.push_back(steady::now());
                    if (c) reads_by.push_back(c->stats().reads);
                    next();
                });
            };
            next();
        }
    };

    // A client with coalescing window `window` that admits `sender`, subscribed to group 0.
    struct coalescing {
        test::peer sender;
        asio::io_context io;
        std::chrono::milliseconds window;
        client c;
        subscription s;
        explicit coalescing(std::chrono::milliseconds w)
            : window(w), c(io.get_executor(), options(sender.port_id(), w)) {
            error_code ec;
            s = c.subscribe(0, {}, ec);
            REQUIRE_FALSE(ec);
        }
        static client_options options(std::uint32_t port, std::chrono::milliseconds w) {
            client_options o = admitting(port);
            o.coalesce_window = w;
            return o;
        }
        // `sender` sends `text` to the client; 0 or the errno.
        int send(const std::string& text) { return sender.send({}, bytes(text), c.port_id()); }
    };

    TEST_CASE("after a wake-up that read something, what arrives within the window is read and handed out in one turn") {
        coalescing f(150ms);
        arrivals a(f.s, &f.c);
        run_for(f.io, 20ms); // the loop waits
        const auto wakeups0 = f.c.stats().wakeups;
        const auto reads0 = f.c.stats().reads;
        const auto t0 = steady::now();
        // Eleven messages 5 ms apart: without coalescing, eleven wake-ups.
        std::thread t([&] {
            for (int i = 0; i <= 10; ++i) {
                CHECK(f.send(std::to_string(i)) == 0);
                std::this_thread::sleep_for(5ms);
            }
        });
        run_for(f.io, 500ms);
        t.join();
        REQUIRE(a.texts.size() == 11);
        for (int i = 0; i <= 10; ++i) CHECK(a.texts[static_cast<std::size_t>(i)] == std::to_string(i));
        CHECK(f.c.stats().wakeups - wakeups0 == 1);       // one readiness wake-up, for message 0
        CHECK(f.c.stats().reads - reads0 <= 4);            // it, the window's read, one that found nothing
        // Message 0 came after a quiet spell: at once. Had the window held it,
        // it would have come a whole window (150 ms) after t0 or later, so
        // any bound below the window tells the two apart; the window itself
        // leaves the most room for a loaded machine.
        CHECK(a.at[0] - t0 < f.window);
        CHECK(a.at[1] - t0 >= f.window);                   // the rest waited for the window to close...
        CHECK(a.reads_by[10] == a.reads_by[1]);            // ...and came from the read that ended it
        CHECK(a.at[10] - t0 < 350ms);
    }

    // The thread's voluntary context switches: each is a sleep ended by a wake-up.
    static long thread_sleeps() {
        rusage ru{};
        ::getrusage(RUSAGE_THREAD, &ru);
        return ru.ru_nvcsw;
    }

    TEST_CASE("datagrams arriving while a window is open do not wake the thread that runs the client") {
        coalescing f(300ms);
        arrivals a(f.s);
        run_for(f.io, 20ms); // the loop waits
        // Message 0 opens the window; the next twenty come 5 ms apart inside
        // it. Each of them would end a sleep of this thread if the socket
        // stayed registered for input with io's reactor (Asio keeps it so,
        // whether or not a read waits).
        std::thread t([&] {
            for (int i = 0; i <= 20; ++i) {
                CHECK(f.send(std::to_string(i)) == 0);
                std::this_thread::sleep_for(5ms);
            }
        });
        const long sleeps0 = thread_sleeps();
        run_for(f.io, 250ms); // all sent, the window (opened by message 0) still open
        const long sleeps = thread_sleeps() - sleeps0;
        t.join();
        // Message 0 and whatever came before this thread got to read it (a
        // loaded machine may run it late); the rest wait for the window.
        CHECK(a.texts.size() < 21);
        // Message 0's wake-up and a spare one (the run_for deadline; this
        // thread's own scheduling); arrivals would add about twenty.
        CHECK(sleeps <= 5);
        run_for(f.io, 500ms);
        REQUIRE(a.texts.size() == 21);
        for (int i = 0; i <= 20; ++i) CHECK(a.texts[static_cast<std::size_t>(i)] == std::to_string(i));
        CHECK(f.c.stats().wakeups == 1);
    }

    TEST_CASE("when a window's read finds nothing, the window timer stops: an idle client sleeps") {
        coalescing f(5ms);
        arrivals a(f.s);
        run_for(f.io, 20ms); // the loop waits
        for (int i = 0; i < 3; ++i) REQUIRE(f.send(std::to_string(i)) == 0);
        const auto t0 = steady::now();
        while (a.texts.size() < 3 && steady::now() - t0 < 1s) run_for(f.io, 5ms);
        REQUIRE(a.texts.size() == 3);
        run_for(f.io, 50ms); // the next windows find nothing: the series ends
        // A 5 ms window timer left running would end about sixty sleeps of
        // this thread in 300 ms.
        const long sleeps0 = thread_sleeps();
        run_for(f.io, 300ms);
        CHECK(thread_sleeps() - sleeps0 <= 5);
        // Back to the readiness wait: the next message comes at once.
        const auto t1 = steady::now();
        REQUIRE(f.send("after") == 0);
        while (a.texts.size() < 4 && steady::now() - t1 < 1s) run_for(f.io, 1ms);
        REQUIRE(a.texts.size() == 4);
        CHECK(a.texts[3] == "after");
        CHECK(f.c.stats().wakeups == 2);
    }

    TEST_CASE("a message after a quiet spell is handed out at once; one within a window waits at most the window") {
        coalescing f(100ms);
        arrivals a(f.s);
        run_for(f.io, 10ms);
        for (int round = 0; round < 2; ++round) {
            const auto t0 = steady::now();
            REQUIRE(f.send("after quiet") == 0);
            while (a.texts.size() < static_cast<std::size_t>(2 * round + 1) && steady::now() - t0 < 1s)
                run_for(f.io, 1ms);
            REQUIRE(a.texts.size() == static_cast<std::size_t>(2 * round + 1));
            CHECK(a.at.back() - t0 < f.window); // not held: a held message comes a window or more after t0
            // The window opened by that read: a message 10 ms later waits until it closes.
            std::this_thread::sleep_for(10ms);
            const auto t1 = steady::now();
            REQUIRE(f.send("within") == 0);
            run_for(f.io, 400ms); // and the window after it finds nothing: back to waiting for readiness
            REQUIRE(a.texts.size() == static_cast<std::size_t>(2 * round + 2));
            // The window opened at the read of "after quiet", after t0; the read
            // that ends it, a window later. (t1 is no bound: a loaded machine may
            // run this thread late, and t1 with it.)
            CHECK(a.at.back() - t0 >= f.window);
            CHECK(a.at.back() - t1 < f.window + 100ms);
        }
        CHECK(f.c.stats().wakeups == 2); // one per quiet spell
    }

    TEST_CASE("cancellation, request timeouts and close are not delayed by an open window") {
        coalescing f(2s); // far longer than any limit below
        error_code ec;
        REQUIRE(f.send("opens a window") == 0);
        run_for(f.io, 20ms);
        REQUIRE(f.s.queued() == 1);
        connector::message m;
        REQUIRE(f.s.try_receive(m, ec));

        // A receive cancelled while the window is open ends at once.
        asio::cancellation_signal cancel;
        error_code got;
        bool done = false;
        f.s.async_receive(m, asio::bind_cancellation_slot(cancel.slot(), [&](error_code e) {
            got = e;
            done = true;
        }));
        REQUIRE(f.send("held by the window") == 0);
        run_for(f.io, 20ms);
        CHECK_FALSE(done);
        auto t0 = steady::now();
        cancel.emit(asio::cancellation_type::terminal);
        run_for(f.io, 20ms);
        CHECK(done);
        CHECK(got == asio::error::operation_aborted);
        CHECK(steady::now() - t0 < 200ms);

        // A request to a silent peer times out on time while the window is open.
        test::peer silent;
        f.c.admit(silent.port_id());
        request_options ro;
        ro.port_id = silent.port_id();
        ro.timeout = 50ms;
        outcome r;
        t0 = steady::now();
        f.c.async_request(echo_id, bytes("anyone?"), ro, r.handler());
        while (!r.done && steady::now() - t0 < 1s) run_for(f.io, 5ms);
        CHECK(r.done);
        CHECK(r.ec == error::timeout);
        CHECK(steady::now() - t0 < 300ms);

        // Closing during the window ends the receive and leaves nothing for run() to wait on.
        done = false;
        f.s.async_receive(m, [&](error_code e) {
            got = e;
            done = true;
        });
        run_for(f.io, 20ms);
        CHECK_FALSE(done); // the window still holds "held by the window"
        f.c.close();
        f.io.restart();
        t0 = steady::now();
        f.io.run_for(3s);
        CHECK(f.io.stopped());
        CHECK(steady::now() - t0 < 500ms);
        CHECK(done);
        CHECK(got == asio::error::operation_aborted);
    }

    TEST_CASE("a window left open when the last subscription goes does not keep io.run() busy") {
        coalescing f(2s);
        REQUIRE(f.send("x") == 0);
        asio::steady_timer later(f.io, 50ms);
        later.async_wait([&](error_code) { f.s = subscription{}; });
        f.io.restart();
        const auto t0 = steady::now();
        f.io.run_for(5s);
        CHECK(f.io.stopped());
        CHECK(steady::now() - t0 < 1s);
    }
}

TEST_SUITE("client: the send queue") {
    TEST_CASE("a peer that stops reading holds back only its own requests; those that end while queued never reach it") {
        // The stalled peer's receive queue holds a handful of datagrams (the
        // smallest buffer); after that, sendto() to it gives EAGAIN and the
        // client queues what goes to it.
        test::peer stalled;
        {
            int smallest = 0;
            REQUIRE(::setsockopt(stalled.fd(), SOL_SOCKET, SO_RCVBUF, &smallest, sizeof smallest) == 0);
        }
        test::echo_peer echo;
        client_options co;
        co.admitted_ports = {stalled.port_id(), echo.port_id()};
        asio::io_context io;
        client c(io.get_executor(), co);

        constexpr int n = 64;
        std::vector<outcome> stalled_outcomes(n);
        std::vector<connector::header> sent(n);
        request_options so;
        so.port_id = stalled.port_id();
        so.timeout = 400ms;
        for (int i = 0; i < n; ++i) {
            so.sent = &sent[i];
            c.async_request(echo_id, bytes("to the stalled peer " + std::to_string(i)), so,
                            stalled_outcomes[i].handler());
        }
        const auto queued = c.stats().sends_queued;
        REQUIRE(queued > 0);
        REQUIRE(queued < n); // some reached the peer's queue before it filled

        // The echo peer and the kernel are not held back.
        const auto start = std::chrono::steady_clock::now();
        request_options eo;
        eo.port_id = echo.port_id();
        eo.timeout = 2s;
        outcome to_echo;
        c.async_request(echo_id, bytes("to the echo peer"), eo, to_echo.handler());
        error_code ec;
        auto proc_sub = c.subscribe(CN_IDX_PROC, {}, ec); // the ack of LISTEN comes through group 1
        REQUIRE_FALSE(ec);
        request_options ko;
        ko.match = match::ack_only;
        ko.timeout = 2s;
        outcome to_kernel;
        c.async_request(connector::proc_id, connector::as_payload(std::uint32_t{PROC_CN_MCAST_LISTEN}), ko,
                        to_kernel.handler());
        io.restart();
        while (!(to_echo.done && to_kernel.done) && std::chrono::steady_clock::now() - start < 3s)
            io.run_one_for(50ms);
        const auto took = std::chrono::steady_clock::now() - start;
        CHECK(to_echo.done);
        CHECK_FALSE(to_echo.ec);
        CHECK(test::text_of(to_echo.reply.payload) == "to the echo peer");
        CHECK(to_kernel.done);
        CHECK_FALSE(to_kernel.ec);
        CHECK(took < 300ms); // before any of the stalled peer's requests timed out
        for (const auto& o : stalled_outcomes) CHECK_FALSE(o.done);

        // The stalled peer's requests time out, the queued ones taken out of the queue.
        run_for(io, 600ms);
        for (const auto& o : stalled_outcomes) {
            CHECK(o.done);
            CHECK(o.ec == error::timeout);
        }
        CHECK(c.stats().sends_dropped == queued);
        CHECK(c.stats().sends_late == 0);

        // The peer reads again: it finds exactly the requests that reached it before it filled,
        // in order, and none of those that timed out in the client's queue, even with the client
        // still running (the retry timer would have sent them by now).
        std::vector<std::uint32_t> seqs;
        connector::message m;
        std::uint32_t from = 0;
        for (;;) {
            run_for(io, 5ms);
            if (!stalled.receive(m, from, 100)) break;
            seqs.push_back(m.seq());
        }
        run_for(io, 50ms);
        while (stalled.receive(m, from, 50)) seqs.push_back(m.seq());
        REQUIRE(seqs.size() == n - queued);
        for (std::size_t i = 0; i < seqs.size(); ++i) CHECK(seqs[i] == sent[i].seq);

        // With room again, the next request to it goes straight out.
        outcome again;
        so.sent = nullptr;
        so.timeout = 100ms;
        c.async_request(echo_id, bytes("again"), so, again.handler());
        CHECK(c.stats().sends_queued == queued);
        CHECK(stalled.receive(m, from, 500));
        run_for(io, 200ms);
        c.async_send(connector::proc_id, connector::as_payload(std::uint32_t{PROC_CN_MCAST_IGNORE}), {},
                     [](error_code e) { CHECK_FALSE(e); });
        run_for(io, 50ms);
    }

    TEST_CASE("past send_queue_bytes a request to a stalled peer fails at once with send_queue_full") {
        test::peer stalled;
        int smallest = 0;
        REQUIRE(::setsockopt(stalled.fd(), SOL_SOCKET, SO_RCVBUF, &smallest, sizeof smallest) == 0);
        client_options co;
        co.admitted_ports = {stalled.port_id()};
        co.send_queue_bytes = 1000;
        asio::io_context io;
        client c(io.get_executor(), co);
        request_options so;
        so.port_id = stalled.port_id();
        so.timeout = 300ms;
        std::vector<outcome> outcomes(64);
        for (auto& o : outcomes) c.async_request(echo_id, bytes(std::string(100, 'x')), so, o.handler());
        run_for(io, 20ms);
        int full = 0;
        for (auto& o : outcomes) full += o.done && o.ec == error::send_queue_full;
        CHECK(full > 0);
        CHECK(c.stats().sends_queued > 0);
        CHECK(c.stats().sends_queued <= 1000 / (16 + 20 + 100) + 1); // an empty queue takes one past the bound
        run_for(io, 500ms);
        for (auto& o : outcomes) CHECK(o.done);
        CHECK(c.pending_requests() == 0);
    }
}
