// Allocations in steady state, counted by replacing the global operator new
// (bench/alloc_counter.cpp, linked into this binary only): once warm, the
// client core hands out bursts of messages without allocating.
#include <cnasio/client.hpp>
#include <cnasio/detail/client_core.hpp>
#include <cnasio/detail/correlator.hpp>

#include "../../bench/alloc_counter.hpp"
#include "core_messages.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using cnasio::connector::header;
using cnasio::connector::message;
using cnasio::detail::client_core;
using cnasio::detail::completion;
using cnasio::detail::core_options;
using cnasio::detail::receive_target;
using cnasio::test::datagram;
using cnasio::test::discard_queued;

// drain_batch's default: the most datagrams one drain hands the core.
constexpr int burst = 256;

std::vector<std::vector<std::byte>> datagrams(std::size_t payload_size) {
    std::vector<std::vector<std::byte>> out;
    const std::string payload(payload_size, 'p');
    for (int i = 0; i < burst; ++i) {
        header h;
        h.id = cnasio::test::module_id;
        h.seq = static_cast<std::uint32_t>(i);
        out.push_back(datagram(h, payload));
    }
    return out;
}

// Rounds of: a burst of multicasts read in one drain, then taken by the
// subscriber (`batch`: one batch receive; else one message per receive).
// Returns the allocations of the rounds after `warm` rounds of warm-up.
std::uint64_t steady_allocations(client_core& core, const std::vector<std::vector<std::byte>>& ds, bool batch,
                                 int warm, int rounds) {
    const auto sub = core.subscribe(5, {}).sub;
    std::vector<message> into_batch;
    message into_one;
    completion c;
    std::uint64_t before = 0;
    std::uint64_t taken = 0;
    for (int r = 0; r < warm + rounds; ++r) {
        if (r == warm) before = bench::allocations_this_thread();
        for (const auto& d : ds) core.on_datagram(0, 5, d, false);
        if (batch) {
            core.start_receive(sub, 1, receive_target{nullptr, &into_batch, burst});
            while (core.pop_completion(c)) taken += c.count;
        } else {
            for (int i = 0; i < burst; ++i) {
                core.start_receive(sub, 1, receive_target{&into_one, nullptr, 0});
                while (core.pop_completion(c)) ++taken;
            }
        }
        CHECK(core.queued(sub) == 0);
    }
    const std::uint64_t allocations = bench::allocations_this_thread() - before;
    CHECK(taken == std::uint64_t(burst) * std::uint64_t(warm + rounds));
    return allocations;
}

} // namespace

TEST_CASE("alloc: bursts of drain_batch small messages cost no allocation once warm (batch and single receives)") {
    for (const std::size_t size : {std::size_t{16}, std::size_t{40}, std::size_t{64}}) {
        CAPTURE(size);
        const auto ds = datagrams(size);
        {
            client_core core{core_options{}, 1};
            CHECK(steady_allocations(core, ds, true, 3, 20) == 0);
        }
        {
            client_core core{core_options{}, 1};
            CHECK(steady_allocations(core, ds, false, 3, 20) == 0);
        }
    }
}

TEST_CASE("alloc: an emptied queue gives back the storage of large messages, and keeps at most spare_limit") {
    client_core core{core_options{}, 1};
    const auto sub = core.subscribe(5, {}).sub;
    const auto big = datagrams(cnasio::connector::max_payload);
    for (int i = 0; i < 4; ++i) core.on_datagram(0, 5, big[static_cast<std::size_t>(i)], false);
    message m;
    discard_queued(core, sub, m);
    m = message{};
    CHECK(core.held_bytes() == 0);
    const auto small = datagrams(64);
    for (const auto& d : small) core.on_datagram(0, 5, d, false);
    discard_queued(core, sub, m);
    CHECK(core.held_bytes() > 0); // the small slots' storage stays for the next burst
    CHECK(core.held_bytes() <= cnasio::detail::subscriber_queue::spare_limit);
}

namespace {

// Three bursts queued before the subscriber takes any: a backlog 768 deep.
// Returns the allocations that backlog and its consumption made.
std::uint64_t deep_backlog(client_core& core, cnasio::detail::subscription_ref sub,
                           const std::vector<std::vector<std::byte>>& ds, message& m) {
    const std::uint64_t before = bench::allocations_this_thread();
    for (int b = 0; b < 3; ++b)
        for (const auto& d : ds) core.on_datagram(0, 5, d, false);
    CHECK(core.queued(sub) == 3 * burst);
    discard_queued(core, sub, m);
    return bench::allocations_this_thread() - before;
}

} // namespace

TEST_CASE("alloc: keep_messages holds a deep backlog's storage; reserve_payload allocates it when subscribing") {
    const auto ds = datagrams(40); // a proc event's size
    message m;
    m.payload.reserve(64);
    {
        client_core core{core_options{}, 1};
        cnasio::subscription_options o;
        o.keep_messages = 1024;
        const auto sub = core.subscribe(5, o).sub;
        CHECK(core.held_bytes() == 0);
        CHECK(deep_backlog(core, sub, ds, m) >= 3 * burst); // the first one grows the storage
        CHECK(core.subscription_statistics(sub).max_queued == 3 * burst);
        CHECK(deep_backlog(core, sub, ds, m) == 0);
        CHECK(deep_backlog(core, sub, ds, m) == 0);
        CHECK(core.held_bytes() >= 3 * burst * 40); // what it keeps is counted in the budget
    }
    {
        client_core core{core_options{}, 1};
        cnasio::subscription_options o;
        o.keep_messages = 1024;
        o.reserve_payload = 40;
        const auto sub = core.subscribe(5, o).sub;
        CHECK(core.held_bytes() >= 1024 * 40);
        CHECK(deep_backlog(core, sub, ds, m) == 0);
        CHECK(deep_backlog(core, sub, ds, m) == 0);
    }
    {
        // Without keep_messages, each such backlog allocates again.
        client_core core{core_options{}, 1};
        const auto sub = core.subscribe(5, {}).sub;
        CHECK(deep_backlog(core, sub, ds, m) >= 3 * burst);
        CHECK(deep_backlog(core, sub, ds, m) >= 2 * burst);
    }
}

TEST_CASE("alloc: requests that end together after a steady window allocate nothing (the correlator's free list)") {
    using table = cnasio::detail::correlator<int>;
    table c(0); // nothing remembered: only the pending requests' own storage
    const auto deadline = table::clock::now() + std::chrono::hours(1);
    // A window of 64 in flight, each reply followed by the next request (the
    // free list never holds more than one), then the last 64 all answered.
    std::vector<table::ticket> window;
    std::uint32_t seq = 0;
    for (; seq < 64; ++seq) window.push_back(c.add(cnasio::match::seq_only, seq, 0, nullptr, deadline, 0));
    for (int i = 0; i < 10000; ++i, ++seq) {
        auto& oldest = window[static_cast<std::size_t>(i) % window.size()];
        REQUIRE(c.take(oldest, table::outcome::replied).has_value());
        oldest = c.add(cnasio::match::seq_only, seq, 0, nullptr, deadline, 0);
    }
    const std::uint64_t before = bench::allocations_this_thread();
    for (auto t : window) CHECK(c.take(t, table::outcome::replied).has_value());
    CHECK(bench::allocations_this_thread() - before == 0);
}

TEST_CASE("alloc: a client's operations that end in one turn allocate nothing once their slots exist") {
    // Needs only a socket (no message is sent). The operations' slots grow
    // while every one is pending; then all end in one turn, which once grew
    // the free-slot list and the completion queue on the completion path.
    boost::asio::io_context io;
    cnasio::error_code ec;
    cnasio::client c(io.get_executor(), {}, ec);
    REQUIRE_MESSAGE(!ec, ec.message());
    std::vector<cnasio::subscription> subs;
    std::vector<message> into(64);
    for (int i = 0; i < 64; ++i) {
        subs.push_back(c.subscribe(0, {}, ec));
        REQUIRE(!ec);
    }
    int ended = 0;
    auto on_end = [&](cnasio::error_code) { ++ended; };
    // Every receive pending at once: the client's operation slots grow to 64.
    for (int i = 0; i < 64; ++i) subs[static_cast<std::size_t>(i)].async_receive(into[static_cast<std::size_t>(i)], on_end);
    io.run_for(std::chrono::milliseconds(1));
    CHECK(ended == 0);
    // Then all end in one turn (the client closes).
    io.restart();
    const std::uint64_t before = bench::allocations_this_thread();
    c.close();
    io.run();
    const std::uint64_t allocations = bench::allocations_this_thread() - before;
    CHECK(ended == 64);
    CHECK(allocations == 0);
}

TEST_CASE("alloc: two subscribers taking a backlog keep the completion queue short") {
    // The glue's order: take a completion, run its handler, which starts the
    // next receive; with two subscribers the queue never runs empty while
    // the backlog lasts, and it once grew by one completion per message:
    // each deeper backlog grew it again. The subscribers' queues are
    // allocated up front (keep_messages, reserve_payload) so that what is
    // counted is the completion queue.
    client_core core{core_options{}, 1};
    cnasio::subscription_options o;
    o.queue_limit = o.keep_messages = 4096;
    o.reserve_payload = 40;
    const auto a = core.subscribe(5, o).sub;
    const auto b = core.subscribe(5, o).sub;
    const auto ds = datagrams(40);
    message into_a, into_b;
    into_a.payload.reserve(64);
    into_b.payload.reserve(64);
    core.start_receive(a, 1, receive_target{&into_a, nullptr, 0});
    core.start_receive(b, 2, receive_target{&into_b, nullptr, 0});
    completion c;
    c.message.payload.reserve(64);
    std::uint64_t taken = 0, before = 0;
    for (int depth = 1; depth <= 16; ++depth) { // backlogs of 256 to 4096 per subscriber
        if (depth == 2) before = bench::allocations_this_thread();
        for (int k = 0; k < depth; ++k)
            for (const auto& d : ds) core.on_datagram(0, 5, d, false);
        for (int i = 0; i < 2 * depth * burst; ++i) {
            REQUIRE(core.pop_completion(c));
            ++taken;
            CHECK(core.completions() <= 1);
            if (c.op == 1) core.start_receive(a, 1, receive_target{&into_a, nullptr, 0});
            else core.start_receive(b, 2, receive_target{&into_b, nullptr, 0});
        }
        CHECK_FALSE(core.has_completions());
    }
    CHECK(bench::allocations_this_thread() - before == 0);
    CHECK(taken == 2u * burst * (16u * 17u / 2u));
}
