// A cnasio::client on a strand of a 4-thread io_context, under
// ThreadSanitizer: coroutines on the strand make requests to a user-space echo
// peer (in its own thread), race them against timers, cancel them with
// cancellation signals of every type, let some time out, complete some on the
// io_context's plain executor (another thread, no strand), and receive
// multicasts from a second peer through filtered subscriptions. A second
// client is closed with operations pending. Every outcome is checked exactly,
// so a datagram lost or handed out twice fails the run, not only a race report.
//
// Needs root: user-space netlink sockets may only unicast to another port id
// and multicast with CAP_NET_ADMIN. Exit status: 0 passed, 1 failed,
// 77 skipped; TSan itself exits 66 when it reported a race.
#include <cnasio/client.hpp>

#include "peer.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using namespace std::chrono_literals;
using cnasio::error_code;
using cnasio::connector::message;

namespace {

constexpr cnasio::connector::id echo_id{20, 1};   // answered by the echo peer
constexpr cnasio::connector::id silent_id{25, 7}; // to the kernel, where nobody registered it: no answer
constexpr unsigned group = 17;                    // the multicaster's group (11..26 are free for users)
constexpr unsigned quiet_group = 18;              // nothing is ever sent there
constexpr int requesters = 16;
constexpr int rounds = 500;       // requests per requester coroutine
constexpr int multicasts = 6000;  // messages the multicaster sends

// ---- failures, from any thread ----

std::mutex report_mutex;
std::atomic<int> failures{0};

void fail(const std::string& what) {
    std::lock_guard lock(report_mutex);
    std::fprintf(stderr, "FAIL: %s\n", what.c_str());
    ++failures;
}
#define EXPECT(cond, what)                                                                                             \
    do {                                                                                                               \
        if (!(cond)) fail(std::string(#cond " -- ") + (what));                                                         \
    } while (0)

std::string text_of(const message& m) { return cnasio::test::text_of(m.payload); }

// ---- the peers (plain threads, raw sockets) ----

// Answers each request to echo_id with the same seq, ack + 1 and payload, by
// unicast to the sender's port id. Replies to everything queued at once go
// out shuffled; every 7th is sent twice, and every 13th is preceded by a
// decoy with ack + 2 (not a reply: the client must treat it as a new message).
class echo_loop {
public:
    echo_loop() : thread_([this] { run(); }) {}
    ~echo_loop() {
        stop_ = true;
        thread_.join();
    }
    std::uint32_t port_id() const { return sock_.port_id(); }
    std::atomic<std::uint64_t> requests{0}, duplicates{0}, decoys{0}, send_errors{0};

private:
    struct reply {
        cnasio::connector::header h;
        std::vector<std::byte> payload;
        std::uint32_t to;
    };

    void collect(const std::vector<std::byte>& bytes, std::uint32_t from, std::vector<reply>& batch) {
        cnasio::connector::for_each_message(
            bytes, false,
            [&](const cnasio::connector::message_view& m) {
                if (m.id() != echo_id) return;
                ++requests;
                reply r{m.header, {m.payload.begin(), m.payload.end()}, from};
                r.h.ack = m.ack() + 1u;
                r.h.nlmsg_pid = sock_.port_id();
                batch.push_back(std::move(r));
            },
            [](error_code, const cnasio::connector::message_view&) {});
    }

    void send(const cnasio::connector::header& h, std::span<const std::byte> payload, std::uint32_t to) {
        // ECONNREFUSED once a client has closed; nothing else is expected.
        if (const int e = sock_.send(h, payload, to); e != 0 && e != ECONNREFUSED) ++send_errors;
    }

    void run() {
        std::mt19937 rng(2024);
        std::vector<std::byte> bytes;
        std::vector<reply> batch;
        std::uint64_t n = 0;
        while (!stop_) {
            std::uint32_t from = 0;
            if (!sock_.receive(bytes, from, 20)) continue;
            collect(bytes, from, batch);
            while (batch.size() < 64 && sock_.receive(bytes, from, 0)) collect(bytes, from, batch);
            std::shuffle(batch.begin(), batch.end(), rng);
            for (auto& r : batch) {
                ++n;
                if (n % 13 == 0) {
                    auto decoy = r.h;
                    decoy.ack += 1u;
                    ++decoys;
                    send(decoy, r.payload, r.to);
                }
                send(r.h, r.payload, r.to);
                if (n % 7 == 0) {
                    ++duplicates;
                    send(r.h, r.payload, r.to);
                }
            }
            batch.clear();
        }
    }

    cnasio::test::peer sock_;
    std::atomic<bool> stop_{false};
    std::thread thread_; // last: starts once the rest is built
};

// Multicasts `multicasts` messages to `group`, alternating ids {group, 1} and
// {group, 2}, with seq = their number, once `go` is set.
class multicaster {
public:
    multicaster() : thread_([this] { run(); }) {}
    ~multicaster() {
        stop_ = true;
        thread_.join();
    }
    std::uint32_t port_id() const { return sock_.port_id(); }
    std::atomic<bool> go{false};
    std::atomic<int> sent{0}, send_errors{0};

private:
    void run() {
        while (!go && !stop_) std::this_thread::sleep_for(1ms);
        for (int i = 0; i < multicasts && !stop_; ++i) {
            cnasio::connector::header h;
            h.id = {group, 1u + static_cast<std::uint32_t>(i % 2)};
            h.seq = static_cast<std::uint32_t>(i);
            h.nlmsg_pid = sock_.port_id();
            const std::string text = "multicast " + std::to_string(i);
            // Port 0 as well (sendto() always addresses one port): the kernel
            // drops a message for an id no driver registered.
            if (sock_.send(h, cnasio::connector::as_payload(text), 0, 1u << (group - 1)) == 0)
                ++sent;
            else
                ++send_errors;
            if (i % 64 == 63) std::this_thread::sleep_for(500us);
        }
    }

    cnasio::test::peer sock_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// ---- what the coroutines count ----

struct tally {
    std::atomic<std::uint64_t> ok{0};        // requests that completed with the right reply
    std::atomic<std::uint64_t> cancelled{0}; // requests that ended cancelled
    std::atomic<std::uint64_t> raced{0};     // ...of which by a timer that won an || race
    std::atomic<std::uint64_t> timeouts{0};  // requests that ended with error::timeout
    std::atomic<std::uint64_t> callbacks_started{0}, callbacks_done{0};
    std::atomic<int> requesters_done{0};
    std::atomic<std::uint64_t> all_received{0}, only2_received{0}, unicast_received{0}, quiet_cancelled{0};
    std::atomic<std::uint64_t> overruns{0};
};

void expect_echo(error_code ec, const message& reply, const std::string& text, tally& t, const char* how) {
    if (ec) return fail(std::string(how) + ": " + ec.message());
    EXPECT(text_of(reply) == text, how);
    EXPECT(reply.id() == echo_id, how);
    ++t.ok;
}

asio::awaitable<void> requester(cnasio::client& c, int k, std::uint32_t echo_port, tally& t,
                                asio::any_io_executor plain) {
    auto ex = co_await asio::this_coro::executor;
    cnasio::request_options to_echo; // requests go to the kernel (port 0) unless told otherwise
    to_echo.port_id = echo_port;
    asio::steady_timer timer(ex);
    std::mt19937 rng(static_cast<unsigned>(k));
    message into; // recycled by the "into" form
    const asio::cancellation_type types[] = {asio::cancellation_type::terminal, asio::cancellation_type::partial,
                                             asio::cancellation_type::total};
    for (int i = 0; i < rounds; ++i) {
        std::string text = "request " + std::to_string(k) + "/" + std::to_string(i) + " ";
        text.append(rng() % 300, static_cast<char>('a' + k));
        const auto payload = cnasio::connector::as_payload(text);
        switch (i % 10) {
        case 0:
        case 1: { // the plain form
            auto [ec, reply] = co_await c.async_request(echo_id, payload, to_echo, asio::as_tuple(asio::use_awaitable));
            expect_echo(ec, reply, text, t, "value form");
            break;
        }
        case 2: { // the form that writes into a caller's message
            auto [ec] = co_await c.async_request(echo_id, payload, into, to_echo, asio::as_tuple(asio::use_awaitable));
            expect_echo(ec, into, text, t, "into form");
            break;
        }
        case 3: { // ack-only matching
            cnasio::request_options ro = to_echo;
            ro.match = cnasio::match::ack_only;
            auto [ec, reply] = co_await c.async_request(echo_id, payload, ro, asio::as_tuple(asio::use_awaitable));
            expect_echo(ec, reply, text, t, "ack_only");
            break;
        }
        case 4: { // raced against a short timer: the loser is cancelled (terminal)
            timer.expires_after(std::chrono::microseconds(rng() % 400));
            auto r = co_await (c.async_request(echo_id, payload, to_echo, asio::use_awaitable) ||
                               timer.async_wait(asio::use_awaitable));
            if (r.index() == 0)
                expect_echo({}, std::get<0>(r), text, t, "race");
            else {
                ++t.cancelled;
                ++t.raced;
            }
            break;
        }
        case 5: { // a cancellation signal emitted by the next handler on the strand
            auto sig = std::make_shared<asio::cancellation_signal>();
            const auto type = types[(i / 10) % 3];
            asio::post(ex, [sig, type] { sig->emit(type); });
            auto [ec, reply] = co_await c.async_request(
                echo_id, payload, to_echo, asio::bind_cancellation_slot(sig->slot(), asio::as_tuple(asio::use_awaitable)));
            if (ec == asio::error::operation_aborted)
                ++t.cancelled;
            else
                expect_echo(ec, reply, text, t, "signal");
            break;
        }
        case 6: { // completes on the multi-threaded executor, outside the strand; not awaited
            ++t.callbacks_started;
            c.async_request(echo_id, payload, to_echo,
                            asio::bind_executor(plain, [&t, text](error_code ec, message reply) {
                                expect_echo(ec, reply, text, t, "callback");
                                ++t.callbacks_done;
                            }));
            break;
        }
        case 7: { // nobody answers: a timeout
            cnasio::request_options ro;
            ro.timeout = std::chrono::milliseconds(1 + rng() % 5);
            auto [ec, reply] = co_await c.async_request(silent_id, payload, ro, asio::as_tuple(asio::use_awaitable));
            EXPECT(ec == cnasio::error::timeout, ec.message());
            if (ec == cnasio::error::timeout) ++t.timeouts;
            break;
        }
        case 8: { // two at once from one coroutine
            const std::string other = text + " (second)";
            auto [a, b] = co_await (c.async_request(echo_id, payload, to_echo, asio::use_awaitable) &&
                                    c.async_request(echo_id, cnasio::connector::as_payload(other), to_echo, asio::use_awaitable));
            expect_echo({}, a, text, t, "pair, first");
            expect_echo({}, b, other, t, "pair, second");
            break;
        }
        case 9: { // cancelled at once through the slot of an awaitable operator that never wins
            timer.expires_after(0ms);
            auto r = co_await (timer.async_wait(asio::use_awaitable) ||
                               c.async_request(echo_id, payload, to_echo, asio::use_awaitable));
            if (r.index() == 0) {
                ++t.cancelled;
                ++t.raced;
            } else
                expect_echo({}, std::get<1>(r), text, t, "zero timer race");
            break;
        }
        }
    }
    ++t.requesters_done;
}

// Receives every multicast of one subscription, in order.
asio::awaitable<void> receive_all(cnasio::subscription& sub, std::uint64_t expected, std::uint32_t step,
                                  std::uint32_t first, std::atomic<std::uint64_t>& received, tally& t) {
    message m; // recycled
    std::uint32_t next = first;
    while (received < expected) {
        auto [ec] = co_await sub.async_receive(m, asio::as_tuple(asio::use_awaitable));
        if (ec == cnasio::error::overrun) {
            ++t.overruns;
            continue;
        }
        if (ec) {
            fail("subscription receive: " + ec.message());
            co_return;
        }
        EXPECT(m.seq() == next, "multicast out of order or twice: got " + std::to_string(m.seq()) + ", expected " +
                                    std::to_string(next));
        EXPECT(text_of(m) == "multicast " + std::to_string(m.seq()), text_of(m));
        next = m.seq() + step;
        ++received;
    }
}

// Receives the echo peer's decoys (unicasts that answer nothing) until cancelled.
asio::awaitable<void> receive_unicasts(cnasio::subscription& sub, asio::cancellation_signal& stop, tally& t) {
    for (;;) {
        auto [ec, m] = co_await sub.async_receive(
            asio::bind_cancellation_slot(stop.slot(), asio::as_tuple(asio::use_awaitable)));
        if (ec == asio::error::operation_aborted) co_return;
        if (ec) {
            fail("unicast receive: " + ec.message());
            co_return;
        }
        EXPECT(m.id() == echo_id, "decoy id");
        ++t.unicast_received;
    }
}

// Receives on a group nobody sends to, cancelled each time by a timer or by cancel().
asio::awaitable<void> receive_quiet(cnasio::subscription& sub, tally& t) {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex);
    message m;
    for (int i = 0; i < 300; ++i) {
        if (i % 2 == 0) {
            timer.expires_after(std::chrono::microseconds(i * 3));
            auto r = co_await (sub.async_receive(m, asio::use_awaitable) || timer.async_wait(asio::use_awaitable));
            EXPECT(r.index() == 1, "a message on the quiet group");
        } else {
            asio::post(ex, [&sub] { sub.cancel(); });
            auto [ec] = co_await sub.async_receive(m, asio::as_tuple(asio::use_awaitable));
            EXPECT(ec == asio::error::operation_aborted, ec.message());
        }
        ++t.quiet_cancelled;
    }
}

template <class Pred>
asio::awaitable<bool> wait_until(Pred pred, std::chrono::milliseconds limit) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > end) co_return false;
        timer.expires_after(2ms);
        co_await timer.async_wait(asio::use_awaitable);
    }
    co_return true;
}

// Everything for the first client, on its strand.
asio::awaitable<void> scenario(cnasio::client& c, echo_loop& echo, multicaster& mc, tally& t,
                               asio::any_io_executor plain) {
    auto ex = co_await asio::this_coro::executor;
    error_code ec;
    cnasio::subscription_options all_opts;
    all_opts.queue_limit = 100000;
    cnasio::subscription all = c.subscribe(group, all_opts, ec);
    EXPECT(!ec, ec.message());
    cnasio::subscription_options only2_opts;
    only2_opts.queue_limit = 100000;
    only2_opts.policy = cnasio::overflow_policy::drop_newest;
    only2_opts.only_id = {group, 2};
    cnasio::subscription only2 = c.subscribe(group, only2_opts, ec);
    EXPECT(!ec, ec.message());
    cnasio::subscription unicasts = c.subscribe(0, all_opts, ec);
    EXPECT(!ec, ec.message());
    cnasio::subscription quiet = c.subscribe(quiet_group, {}, ec);
    EXPECT(!ec, ec.message());
    if (failures) co_return;

    auto done = std::make_shared<std::atomic<int>>(0);
    auto on_done = [done](std::exception_ptr e) {
        if (e) try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                fail(std::string("coroutine threw: ") + x.what());
            }
        ++*done;
    };
    asio::cancellation_signal stop_unicasts;
    asio::co_spawn(ex, receive_all(all, multicasts, 1, 0, t.all_received, t), on_done);
    asio::co_spawn(ex, receive_all(only2, multicasts / 2, 2, 1, t.only2_received, t), on_done);
    asio::co_spawn(ex, receive_unicasts(unicasts, stop_unicasts, t), on_done);
    asio::co_spawn(ex, receive_quiet(quiet, t), on_done);
    for (int k = 0; k < requesters; ++k) asio::co_spawn(ex, requester(c, k, echo.port_id(), t, plain), on_done);
    mc.go = true;

    const bool finished = co_await wait_until([&] { return *done == requesters + 3; }, 300s);
    EXPECT(finished, "requesters and multicast receivers did not finish");
    EXPECT(co_await wait_until([&] { return t.callbacks_done == t.callbacks_started; }, 10s),
           "callback requests did not all complete");
    // The echo peer may still be reading requests that were cancelled (their
    // replies and decoys are then still to come).
    const std::uint64_t echo_requests = std::uint64_t{requesters} * (rounds / 10) * 10; // see below
    EXPECT(co_await wait_until([&] { return echo.requests >= echo_requests; }, 10s),
           "the echo peer saw " + std::to_string(echo.requests) + " requests of " + std::to_string(echo_requests));
    co_await wait_until([] { return false; }, 50ms); // its last batch of replies goes out
    EXPECT(co_await wait_until([&] { return t.unicast_received == echo.decoys; }, 10s),
           std::to_string(t.unicast_received) + " decoys received of " + std::to_string(echo.decoys));
    stop_unicasts.emit(asio::cancellation_type::terminal);
    EXPECT(co_await wait_until([&] { return *done == requesters + 4; }, 10s), "unicast receiver did not stop");
    // Late and duplicate replies may still be on their way: wait until every
    // reply the echo peer sent has been classified (checked exactly below).
    co_await wait_until(
        [&] {
            const auto& st = c.stats();
            return st.replies + st.late_replies + st.duplicate_replies >= echo.requests + echo.duplicates;
        },
        10s);

    const auto s = c.stats();
    std::printf("client: datagrams %llu replies %llu unsolicited %llu unclaimed %llu late %llu duplicate %llu "
                "rejected %llu malformed %llu overruns %llu timeouts %llu\n",
                (unsigned long long)s.datagrams, (unsigned long long)s.replies, (unsigned long long)s.unsolicited,
                (unsigned long long)s.unclaimed, (unsigned long long)s.late_replies,
                (unsigned long long)s.duplicate_replies, (unsigned long long)s.rejected,
                (unsigned long long)s.malformed, (unsigned long long)s.overruns, (unsigned long long)s.timeouts);
    std::printf("tests: ok %llu cancelled %llu timeouts %llu callbacks %llu; multicast %d sent, %llu + %llu "
                "received; decoys %llu sent, %llu received; echo duplicates %llu; quiet cancels %llu\n",
                (unsigned long long)t.ok, (unsigned long long)t.cancelled, (unsigned long long)t.timeouts,
                (unsigned long long)t.callbacks_done, mc.sent.load(), (unsigned long long)t.all_received,
                (unsigned long long)t.only2_received, (unsigned long long)echo.decoys,
                (unsigned long long)t.unicast_received, (unsigned long long)echo.duplicates,
                (unsigned long long)t.quiet_cancelled);

    EXPECT(mc.sent == multicasts && mc.send_errors == 0, "multicaster send errors");
    EXPECT(echo.send_errors == 0, "echo peer send errors");
    EXPECT(s.rejected == 0, "admitted peers rejected");
    EXPECT(s.malformed == 0, "malformed datagrams");
    EXPECT(s.overruns == 0 && t.overruns == 0, "overruns (results below are then not exact)");
    // Each successful completion is exactly one reply. The other replies are
    // those to requests that lost an || race after their reply had come: the
    // parallel group discards that result.
    EXPECT(s.replies >= t.ok && s.replies <= t.ok + t.raced,
           std::to_string(s.replies) + " replies vs " + std::to_string(t.ok) + " successes and " +
               std::to_string(t.raced) + " races lost");
    EXPECT(s.timeouts == t.timeouts, "timeouts");
    EXPECT(t.timeouts == std::uint64_t{requesters} * (rounds / 10), "every silent request timed out");
    // Every request to the echo peer either succeeded or was cancelled.
    // echo_requests: per ten rounds, one request in each case but the silent
    // one (7), and two in case 8.
    EXPECT(t.ok + t.cancelled == echo_requests, std::to_string(t.ok + t.cancelled) + " of " +
                                                     std::to_string(echo_requests) + " echo requests accounted for");
    EXPECT(echo.requests == echo_requests, "the echo peer saw " + std::to_string(echo.requests) + " requests");
    // Every datagram read was one of: a reply, a late or duplicate reply, a decoy, a multicast.
    EXPECT(s.unsolicited == echo.decoys + static_cast<std::uint64_t>(mc.sent), "unsolicited count");
    EXPECT(s.unclaimed == 0, "an unsolicited message no subscriber took");
    EXPECT(s.replies + s.late_replies + s.duplicate_replies == echo.requests + echo.duplicates,
           "every reply sent was classified once");
    EXPECT(t.all_received == static_cast<std::uint64_t>(multicasts), "all-ids subscriber");
    EXPECT(t.only2_received == static_cast<std::uint64_t>(multicasts / 2), "only_id subscriber");
    EXPECT(all.stats().dropped == 0 && only2.stats().dropped == 0, "queue drops");
    EXPECT(c.pending_requests() == 0, "pending requests left");
}

// A second client closed while requests and receives are pending: every one
// completes with operation_aborted, at once.
asio::awaitable<void> close_with_pending(cnasio::client_options o, tally&, asio::any_io_executor plain) {
    auto ex = co_await asio::this_coro::executor;
    auto c = std::make_unique<cnasio::client>(ex, o);
    error_code ec;
    auto sub = c->subscribe(19, {}, ec);
    EXPECT(!ec, ec.message());
    auto aborted = std::make_shared<std::atomic<int>>(0);
    auto completed = std::make_shared<std::atomic<int>>(0);
    constexpr int n = 50;
    cnasio::request_options ro;
    ro.timeout = 10s;
    for (int i = 0; i < n; ++i)
        c->async_request(silent_id, cnasio::connector::as_payload("never answered"), ro,
                         asio::bind_executor(plain, [aborted, completed](error_code e, message) {
                             if (e == asio::error::operation_aborted) ++*aborted;
                             ++*completed;
                         }));
    sub.async_receive(asio::bind_executor(plain, [aborted, completed](error_code e, message) {
        if (e == asio::error::operation_aborted) ++*aborted;
        ++*completed;
    }));
    EXPECT(c->pending_requests() == n, "pending before close");
    asio::steady_timer timer(ex);
    timer.expires_after(5ms);
    co_await timer.async_wait(asio::use_awaitable);
    c->close();
    EXPECT(c->pending_requests() == 0, "pending after close");
    EXPECT(co_await wait_until([&] { return *completed == n + 1; }, 2s), "operations left after close");
    EXPECT(*aborted == n + 1, std::to_string(*aborted) + " aborted");
    c.reset(); // destroyed on its strand, after close
    sub = {};  // a subscription outliving its client is harmless
}

} // namespace

int main() {
    if (::geteuid() != 0) {
        std::puts("SKIP: needs root (user-space netlink unicast and multicast need CAP_NET_ADMIN)");
        return 77;
    }
    asio::io_context io(4);
    auto work = asio::make_work_guard(io);
    tally t;
    int result = 0;
    {
        echo_loop echo;
        multicaster mc;
        cnasio::client_options o;
        o.admitted_ports = {echo.port_id(), mc.port_id()};
        o.default_timeout = 5s;
        auto strand = asio::make_strand(io);
        auto client = std::make_unique<cnasio::client>(strand, o);

        std::vector<std::thread> threads;
        for (int i = 0; i < 4; ++i) threads.emplace_back([&io] { io.run(); });

        std::atomic<int> phases{0};
        auto on_phase = [&phases](std::exception_ptr e) {
            if (e) try {
                    std::rethrow_exception(e);
                } catch (const std::exception& x) {
                    fail(std::string("scenario threw: ") + x.what());
                }
            ++phases;
        };
        const auto plain = io.get_executor();
        asio::co_spawn(strand, scenario(*client, echo, mc, t, plain), on_phase);
        // The second client gets a strand of its own.
        asio::co_spawn(asio::make_strand(io), close_with_pending(o, t, plain), on_phase);

        const auto end = std::chrono::steady_clock::now() + 360s;
        while (phases < 2 && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(10ms);
        if (phases < 2) {
            fail("hung: the scenarios did not finish in 360 s");
            std::fflush(stderr);
            std::_Exit(1);
        }
        // The client is destroyed on its strand (its destructor closes it).
        std::atomic<bool> destroyed{false};
        asio::post(strand, [&] {
            client.reset();
            destroyed = true;
        });
        while (!destroyed) std::this_thread::sleep_for(1ms);
        work.reset();
        for (auto& th : threads) th.join();
    }
    result = failures == 0 ? 0 : 1;
    std::printf("%s: %d failure(s)\n", result == 0 ? "PASS" : "FAIL", failures.load());
    return result;
}
