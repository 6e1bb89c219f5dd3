// cnasio::detail::correlator: the pending-request table, fed crafted
// messages. Matching rules (seq + ack+1, ack-only, custom), wrap-around of
// ack at 2^32, duplicate and late replies, the bounded memory of ended
// requests, ticket generations and slot reuse, deadline order and the bound on
// deadline records under churn, and thousands of requests answered in a
// shuffled order.
#include <cnasio/detail/correlator.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace {

using cnasio::match;
using table = cnasio::detail::correlator<std::string>;
using verdict = table::verdict;
using outcome = table::outcome;
using clock_type = table::clock;
using namespace std::chrono_literals;

const clock_type::time_point t0 = clock_type::time_point{} + 1h;

cnasio::connector::message_view msg(std::uint32_t seq, std::uint32_t ack) {
    cnasio::connector::message_view m;
    m.header.seq = seq;
    m.header.ack = ack;
    return m;
}

template <class T>
typename cnasio::detail::correlator<T>::verdict classify(const cnasio::detail::correlator<T>& c, std::uint32_t seq, std::uint32_t ack,
                 typename cnasio::detail::correlator<T>::ticket* out = nullptr) {
    typename cnasio::detail::correlator<T>::ticket t{0xdead, 0xbeef};
    const auto v = c.classify(msg(seq, ack), t);
    if (out) *out = t;
    return v;
}

table::ticket add(table& c, match mode, std::uint32_t seq, std::uint32_t ack, std::string value,
                  clock_type::time_point deadline = t0 + 1s) {
    return c.add(mode, seq, ack, nullptr, deadline, std::move(value));
}

} // namespace

TEST_CASE("correlator: a reply needs the request's seq and its ack + 1") {
    table c;
    const auto t = add(c, match::seq_and_ack, 7, 1000, "seven");
    CHECK(c.size() == 1);

    table::ticket got;
    CHECK(classify(c, 7, 1001, &got) == verdict::reply);
    CHECK(got == t);
    CHECK(*c.find(got) == "seven");

    // Everything near it is a new message.
    CHECK(classify(c, 7, 1000) == verdict::unrelated); // the request's own ack (an echo, not a reply)
    CHECK(classify(c, 7, 1002) == verdict::unrelated); // ack + 2
    CHECK(classify(c, 6, 1001) == verdict::unrelated); // wrong seq
    CHECK(classify(c, 8, 1001) == verdict::unrelated);
    CHECK(classify(c, 0, 0) == verdict::unrelated);
    // classify only looks: the request is still pending.
    CHECK(c.size() == 1);
    CHECK(classify(c, 7, 1001) == verdict::reply);
}

TEST_CASE("correlator: ack + 1 wraps at 2^32") {
    table c;
    CHECK(c.ack_free(0xffffffffu));
    const auto t = add(c, match::seq_and_ack, 1, 0xffffffffu, "wrap");
    CHECK_FALSE(c.ack_free(0xffffffffu)); // its successor, 0, is taken
    CHECK(c.ack_free(0xfffffffeu));
    CHECK(c.ack_free(0u));

    table::ticket got;
    CHECK(classify(c, 1, 0u, &got) == verdict::reply);
    CHECK(got == t);
    CHECK(classify(c, 1, 0xffffffffu) == verdict::unrelated);
    CHECK(classify(c, 1, 0x100000000ull & 0xffffffffu) == verdict::reply);

    // After it ends, a second reply with ack 0 is a duplicate.
    CHECK(c.take(t, outcome::replied) == "wrap");
    CHECK(classify(c, 1, 0u) == verdict::duplicate);
    CHECK(c.ack_free(0xffffffffu));
}

TEST_CASE("correlator: ack_free names the successor of a pending request's ack") {
    table c;
    add(c, match::seq_and_ack, 1, 41, "a");
    CHECK_FALSE(c.ack_free(41));
    CHECK(c.ack_free(40));
    CHECK(c.ack_free(42));
    add(c, match::ack_only, 2, 99, "b");
    CHECK_FALSE(c.ack_free(99));
    // A custom request claims no ack: its ack stays free for others.
    c.add(match::custom, 3, 500, [](const cnasio::connector::message_view&) { return false; }, t0, "c");
    CHECK(c.ack_free(500));
}

TEST_CASE("correlator: ack_only matches on ack + 1 whatever the seq") {
    table c;
    const auto t = add(c, match::ack_only, 5, 77, "proc");
    for (std::uint32_t seq : {0u, 5u, 6u, 123456u, 0xffffffffu}) {
        table::ticket got;
        CHECK(classify(c, seq, 78, &got) == verdict::reply);
        CHECK(got == t);
    }
    CHECK(classify(c, 5, 77) == verdict::unrelated);
    CHECK(classify(c, 5, 79) == verdict::unrelated);

    CHECK(c.take(t, outcome::replied) == "proc");
    // Remembered as ack-only: any seq with that ack is a duplicate.
    CHECK(classify(c, 5, 78) == verdict::duplicate);
    CHECK(classify(c, 999, 78) == verdict::duplicate);
    CHECK(classify(c, 999, 77) == verdict::unrelated);
}

TEST_CASE("correlator: seq_and_ack and ack_only requests side by side") {
    table c;
    const auto strict = add(c, match::seq_and_ack, 10, 100, "strict");
    const auto loose = add(c, match::ack_only, 11, 200, "loose");
    table::ticket got;
    CHECK(classify(c, 99, 201, &got) == verdict::reply);
    CHECK(got == loose);
    CHECK(classify(c, 99, 101) == verdict::unrelated);
    CHECK(classify(c, 10, 101, &got) == verdict::reply);
    CHECK(got == strict);
}

TEST_CASE("correlator: custom matchers decide, in the order they were added") {
    table c;
    int calls_a = 0, calls_b = 0;
    const auto a = c.add(
        match::custom, 1, 0,
        [&](const cnasio::connector::message_view& m) {
            ++calls_a;
            return m.id() == cnasio::connector::id{20, 1};
        },
        t0, "a");
    const auto b = c.add(
        match::custom, 2, 0,
        [&](const cnasio::connector::message_view& m) {
            ++calls_b;
            return m.id().idx == 20; // overlaps with a
        },
        t0, "b");

    auto m = msg(0, 0);
    m.header.id = {20, 1};
    table::ticket got;
    CHECK(c.classify(m, got) == verdict::reply);
    CHECK(got == a); // first added wins
    CHECK(calls_a == 1);
    CHECK(calls_b == 0);

    m.header.id = {20, 2};
    CHECK(c.classify(m, got) == verdict::reply);
    CHECK(got == b);

    m.header.id = {21, 1};
    CHECK(c.classify(m, got) == verdict::unrelated);

    // Once a has ended, its matcher is no longer consulted.
    CHECK(c.take(a, outcome::replied) == "a");
    const int before = calls_a;
    m.header.id = {20, 1};
    CHECK(c.classify(m, got) == verdict::reply);
    CHECK(got == b);
    CHECK(calls_a == before);

    // Custom requests are not remembered after they end (there is no key to
    // remember them by): what would have matched is a new message again.
    CHECK(c.take(b, outcome::replied) == "b");
    CHECK(c.classify(m, got) == verdict::unrelated);
    CHECK(c.empty());
}

TEST_CASE("correlator: an ack lookup is tried before the custom matchers") {
    table c;
    int custom_calls = 0;
    c.add(
        match::custom, 1, 0,
        [&](const cnasio::connector::message_view&) {
            ++custom_calls;
            return true; // would claim everything
        },
        t0, "greedy");
    const auto exact = add(c, match::seq_and_ack, 2, 300, "exact");
    table::ticket got;
    CHECK(classify(c, 2, 301, &got) == verdict::reply);
    CHECK(got == exact);
    CHECK(custom_calls == 0);
    // A wrong seq for the exact request falls through to the matcher.
    CHECK(classify(c, 3, 301, &got) == verdict::reply);
    CHECK(*c.find(got) == "greedy");
    CHECK(custom_calls == 1);
}

TEST_CASE("correlator: a reply after the first is a duplicate, one after expiry is late") {
    table c;
    const auto answered = add(c, match::seq_and_ack, 1, 10, "answered");
    const auto expired = add(c, match::seq_and_ack, 2, 20, "expired");
    const auto cancelled = add(c, match::ack_only, 3, 30, "cancelled");

    CHECK(c.take(answered, outcome::replied) == "answered");
    CHECK(c.take(expired, outcome::expired) == "expired");
    CHECK(c.take(cancelled, outcome::expired) == "cancelled");
    CHECK(c.empty());

    CHECK(classify(c, 1, 11) == verdict::duplicate);
    CHECK(classify(c, 1, 11) == verdict::duplicate); // any number of times
    CHECK(classify(c, 2, 21) == verdict::late);
    CHECK(classify(c, 77, 31) == verdict::late);
    // The memory keeps the matching rule: a wrong seq is still not a reply.
    CHECK(classify(c, 9, 11) == verdict::unrelated);
    CHECK(classify(c, 9, 21) == verdict::unrelated);
    CHECK(classify(c, 1, 12) == verdict::unrelated);
}

TEST_CASE("correlator: ended requests are remembered up to the limit, oldest forgotten first") {
    table c(3);
    std::vector<table::ticket> t;
    for (std::uint32_t i = 0; i < 5; ++i) t.push_back(add(c, match::seq_and_ack, i, 100 * (i + 1), "r"));
    for (std::uint32_t i = 0; i < 3; ++i) c.take(t[i], outcome::replied);
    CHECK(classify(c, 0, 101) == verdict::duplicate);
    CHECK(classify(c, 1, 201) == verdict::duplicate);
    CHECK(classify(c, 2, 301) == verdict::duplicate);

    c.take(t[3], outcome::expired); // the fourth pushes out the first
    CHECK(classify(c, 0, 101) == verdict::unrelated);
    CHECK(classify(c, 1, 201) == verdict::duplicate);
    CHECK(classify(c, 3, 401) == verdict::late);

    c.take(t[4], outcome::replied); // and the fifth the second
    CHECK(classify(c, 1, 201) == verdict::unrelated);
    CHECK(classify(c, 2, 301) == verdict::duplicate);
    CHECK(classify(c, 3, 401) == verdict::late);
    CHECK(classify(c, 4, 501) == verdict::duplicate);

    // Many more: exactly the last three stay.
    for (std::uint32_t i = 10; i < 1000; ++i) c.take(add(c, match::seq_and_ack, i, 10 * i, "x"), outcome::replied);
    for (std::uint32_t i = 10; i < 997; ++i) REQUIRE(classify(c, i, 10 * i + 1) == verdict::unrelated);
    for (std::uint32_t i = 997; i < 1000; ++i) CHECK(classify(c, i, 10 * i + 1) == verdict::duplicate);
}

TEST_CASE("correlator: a memory limit of 0 remembers nothing") {
    table c(0);
    c.take(add(c, match::seq_and_ack, 1, 1, "a"), outcome::replied);
    c.take(add(c, match::ack_only, 2, 2, "b"), outcome::expired);
    CHECK(classify(c, 1, 2) == verdict::unrelated);
    CHECK(classify(c, 2, 3) == verdict::unrelated);
}

TEST_CASE("correlator: an ack used again keeps its newest memory for the full limit") {
    // Acks are random, so an ended request's ack can come up again. The
    // second ending must then be remembered as long as any other.
    table c(2);
    c.take(add(c, match::seq_and_ack, 1, 50, "first use"), outcome::replied);
    c.take(add(c, match::seq_and_ack, 2, 50, "second use"), outcome::expired);
    CHECK(classify(c, 2, 51) == verdict::late);
    CHECK(classify(c, 1, 51) == verdict::unrelated); // the newer memory replaced the older one
    c.take(add(c, match::seq_and_ack, 3, 60, "other"), outcome::replied);
    // One newer ending since "second use": within a limit of 2 it is still known.
    CHECK(classify(c, 2, 51) == verdict::late);
    CHECK(classify(c, 3, 61) == verdict::duplicate);
    c.take(add(c, match::seq_and_ack, 4, 70, "another"), outcome::replied);
    CHECK(classify(c, 2, 51) == verdict::unrelated);
    CHECK(classify(c, 3, 61) == verdict::duplicate);
    CHECK(classify(c, 4, 71) == verdict::duplicate);
}

TEST_CASE("correlator: tickets go stale when their request ends; slots are reused") {
    table c;
    const auto a = add(c, match::seq_and_ack, 1, 10, "a");
    const auto b = add(c, match::seq_and_ack, 2, 20, "b");
    CHECK(a.index != b.index);
    REQUIRE(c.find(a) != nullptr);
    CHECK(*c.find(a) == "a");

    CHECK(c.take(a, outcome::replied) == "a");
    CHECK(c.find(a) == nullptr);
    CHECK_FALSE(c.take(a, outcome::replied).has_value()); // ending twice does nothing
    CHECK_FALSE(c.take(a, outcome::expired).has_value());
    CHECK(c.size() == 1);
    CHECK(classify(c, 1, 11) == verdict::duplicate); // the second take did not rewrite the memory

    // The freed slot is reused with a new generation; the old ticket does not name it.
    const auto a2 = add(c, match::seq_and_ack, 3, 30, "a2");
    CHECK(a2.index == a.index);
    CHECK(a2.generation != a.generation);
    CHECK(c.find(a) == nullptr);
    CHECK_FALSE(c.take(a, outcome::expired).has_value());
    REQUIRE(c.find(a2) != nullptr);
    CHECK(*c.find(a2) == "a2");
    CHECK(c.size() == 2);

    // Tickets that never existed.
    CHECK(c.find({1000, 0}) == nullptr);
    CHECK_FALSE(c.take({1000, 0}, outcome::replied).has_value());

    // A slot used many times keeps rejecting every older ticket.
    std::vector<table::ticket> old{a, a2};
    c.take(a2, outcome::replied);
    for (std::uint32_t i = 0; i < 50; ++i) {
        const auto t = add(c, match::seq_and_ack, 100 + i, 1000 + i, "again");
        CHECK(t.index == a.index);
        for (const auto& o : old) REQUIRE(c.find(o) == nullptr);
        old.push_back(t);
        c.take(t, outcome::replied);
    }
    CHECK(c.size() == 1);
    CHECK(*c.find(b) == "b");
}

TEST_CASE("correlator: pending() lists exactly the live requests") {
    table c;
    std::vector<table::ticket> t;
    for (std::uint32_t i = 0; i < 6; ++i) t.push_back(add(c, match::seq_and_ack, i, i * 10, std::to_string(i)));
    c.take(t[1], outcome::replied);
    c.take(t[4], outcome::expired);
    auto p = c.pending();
    CHECK(p.size() == 4);
    for (std::size_t i : {0u, 2u, 3u, 5u}) CHECK(std::find(p.begin(), p.end(), t[i]) != p.end());
    // Ending them all through the list (as close() does) leaves nothing.
    for (auto x : p) CHECK(c.take(x, outcome::expired).has_value());
    CHECK(c.empty());
    CHECK(c.pending().empty());
    CHECK_FALSE(c.next_deadline().has_value());
}

TEST_CASE("correlator: values may be move-only") {
    cnasio::detail::correlator<std::unique_ptr<int>> c;
    const auto t = c.add(match::seq_and_ack, 1, 2, nullptr, t0, std::make_unique<int>(42));
    REQUIRE(c.find(t) != nullptr);
    CHECK(**c.find(t) == 42);
    auto v = c.take(t, decltype(c)::outcome::replied);
    REQUIRE(v.has_value());
    REQUIRE(*v != nullptr);
    CHECK(**v == 42);
}

TEST_CASE("correlator: seq numbers are consecutive and wrap") {
    table c;
    const auto first = c.next_seq();
    CHECK(c.next_seq() == first + 1);
    CHECK(c.next_seq() == first + 2);
    // Drive it to the wrap (4 billion increments is too slow; only check that
    // the arithmetic is unsigned and consecutive around a large value).
    std::uint32_t prev = c.next_seq();
    for (int i = 0; i < 1000; ++i) {
        const auto s = c.next_seq();
        REQUIRE(s == static_cast<std::uint32_t>(prev + 1));
        prev = s;
    }
}

TEST_CASE("correlator: expired requests come out in deadline order") {
    table c;
    // Mixed timeouts, added out of order.
    const int order[] = {5, 1, 9, 3, 7, 2, 8, 4, 6};
    for (int k : order) add(c, match::seq_and_ack, static_cast<std::uint32_t>(k), static_cast<std::uint32_t>(k * 100),
                            std::to_string(k), t0 + k * 1ms);
    CHECK(c.next_deadline() == t0 + 1ms);

    std::vector<std::string> seen;
    auto collect = [&](table::ticket t) {
        seen.push_back(*c.find(t));
        CHECK(c.take(t, outcome::expired).has_value());
    };
    c.for_each_expired(t0, collect); // nothing due yet
    CHECK(seen.empty());
    c.for_each_expired(t0 + 4ms, collect); // "at or before"
    CHECK(seen == std::vector<std::string>{"1", "2", "3", "4"});
    CHECK(c.size() == 5);
    CHECK(c.next_deadline() == t0 + 5ms);
    // An expired request's reply is late.
    CHECK(classify(c, 3, 301) == verdict::late);

    seen.clear();
    c.for_each_expired(t0 + 1h, collect);
    CHECK(seen == std::vector<std::string>{"5", "6", "7", "8", "9"});
    CHECK(c.empty());
    CHECK_FALSE(c.next_deadline().has_value());
}

TEST_CASE("correlator: requests with the same deadline all expire together") {
    table c;
    std::set<std::string> due;
    for (int i = 0; i < 20; ++i) {
        add(c, match::ack_only, 0, static_cast<std::uint32_t>(i), "same" + std::to_string(i), t0 + 10ms);
        due.insert("same" + std::to_string(i));
    }
    add(c, match::ack_only, 0, 1000, "later", t0 + 11ms);
    std::set<std::string> seen;
    c.for_each_expired(t0 + 10ms, [&](table::ticket t) {
        seen.insert(*c.find(t));
        c.take(t, outcome::expired);
    });
    CHECK(seen == due);
    CHECK(c.size() == 1);
    CHECK(c.next_deadline() == t0 + 11ms);
}

TEST_CASE("correlator: ended requests do not show as deadlines") {
    table c;
    const auto a = add(c, match::seq_and_ack, 1, 10, "a", t0 + 1ms);
    const auto b = add(c, match::seq_and_ack, 2, 20, "b", t0 + 2ms);
    const auto d = add(c, match::seq_and_ack, 3, 30, "d", t0 + 3ms);
    CHECK(c.next_deadline() == t0 + 1ms);
    c.take(a, outcome::replied);
    CHECK(c.next_deadline() == t0 + 2ms);
    c.take(d, outcome::replied); // not the earliest: the earliest stays
    CHECK(c.next_deadline() == t0 + 2ms);
    c.take(b, outcome::replied);
    CHECK_FALSE(c.next_deadline().has_value());

    // An answered request never comes out of for_each_expired.
    const auto e = add(c, match::seq_and_ack, 4, 40, "e", t0 + 1ms);
    const auto f = add(c, match::seq_and_ack, 5, 50, "f", t0 + 2ms);
    c.take(e, outcome::replied);
    std::vector<table::ticket> seen;
    c.for_each_expired(t0 + 1h, [&](table::ticket t) {
        seen.push_back(t);
        c.take(t, outcome::expired);
    });
    CHECK(seen == std::vector<table::ticket>{f});
    // A slot reused by a request with a later deadline is not expired by the
    // stale record of its earlier occupant.
    const auto g = add(c, match::seq_and_ack, 6, 60, "g", t0 + 1ms);
    c.take(g, outcome::replied);
    const auto h = add(c, match::seq_and_ack, 7, 70, "h", t0 + 10ms);
    CHECK(h.index == g.index);
    CHECK(c.next_deadline() == t0 + 10ms);
    seen.clear();
    c.for_each_expired(t0 + 5ms, [&](table::ticket t) { seen.push_back(t); });
    CHECK(seen.empty());
    CHECK(c.find(h) != nullptr);
}

TEST_CASE("correlator: deadline records stay bounded under churn") {
    table c;
    // One long-lived request, then 100k short ones answered one by one (their
    // deadlines are later than the long-lived one's, so none is ever popped
    // by next_deadline: only compaction can get rid of them).
    const auto keeper = add(c, match::ack_only, 0, 0xabcdef, "keeper", t0);
    std::size_t most = 0;
    for (std::uint32_t i = 0; i < 100000; ++i) {
        const auto t = add(c, match::seq_and_ack, i, i, "short", t0 + 1s);
        REQUIRE(c.take(t, outcome::replied).has_value());
        most = std::max(most, c.deadline_records());
    }
    CHECK(c.size() == 1);
    CHECK(c.find(keeper) != nullptr);
    CHECK(most <= 1100);
    CHECK(c.next_deadline() == t0);

    // The same with a thousand pending at all times, answered in FIFO order.
    table d;
    std::vector<table::ticket> live;
    std::size_t head = 0;
    most = 0;
    for (std::uint32_t i = 0; i < 100000; ++i) {
        live.push_back(add(d, match::seq_and_ack, i, i, std::to_string(i), t0 + std::chrono::milliseconds(i)));
        if (live.size() - head > 1000) REQUIRE(d.take(live[head++], outcome::replied).has_value());
        most = std::max(most, d.deadline_records());
    }
    CHECK(d.size() == 1000);
    CHECK(most <= 1000 + 2048 + 16);
    // Every remaining request still expires, in order.
    std::uint32_t expected = 99000;
    std::size_t n = 0;
    d.for_each_expired(t0 + 1h, [&](table::ticket t) {
        REQUIRE(*d.find(t) == std::to_string(expected++));
        CHECK(d.take(t, outcome::expired).has_value());
        ++n;
    });
    CHECK(n == 1000);
    CHECK(d.empty());
    CHECK(d.deadline_records() == 0);
}

TEST_CASE("correlator: compact_after sets when stale deadline records are dropped") {
    // One pending request with the earliest deadline keeps next_deadline from
    // popping the stale records of the ones answered after it.
    for (const std::size_t threshold : {std::size_t{8}, std::size_t{32}, table::default_compact_after}) {
        CAPTURE(threshold);
        table c(4096, threshold);
        const auto keeper = add(c, match::ack_only, 0, 0xabcdef, "keeper", t0);
        std::size_t most = 0;
        for (std::uint32_t i = 0; i < 3000; ++i) {
            const auto t = add(c, match::seq_and_ack, i + 1, i, "short", t0 + 1s);
            REQUIRE(c.take(t, outcome::replied).has_value());
            most = std::max(most, c.deadline_records());
        }
        // The keeper's record and threshold - 1 stale ones: the take that
        // makes the threshold-th stale record rebuilds the heap.
        CHECK(most == threshold);
        CHECK(c.find(keeper) != nullptr);
        CHECK(c.next_deadline() == t0);
    }
}

TEST_CASE("correlator: many requests answered in a shuffled order each get their own reply") {
    constexpr std::uint32_t n = 10000;
    cnasio::detail::correlator<std::uint32_t> c(n);
    using ticket = cnasio::detail::correlator<std::uint32_t>::ticket;
    using cv = cnasio::detail::correlator<std::uint32_t>::verdict;
    using co = cnasio::detail::correlator<std::uint32_t>::outcome;
    std::mt19937 rng(12345);

    struct sent {
        std::uint32_t seq, ack;
        ticket t;
    };
    std::vector<sent> requests;
    std::set<std::uint32_t> acks;
    for (std::uint32_t i = 0; i < n; ++i) {
        std::uint32_t ack;
        do ack = static_cast<std::uint32_t>(rng()); while (!c.ack_free(ack));
        REQUIRE(acks.insert(ack + 1u).second);
        const auto seq = c.next_seq();
        const auto mode = i % 3 == 0 ? match::ack_only : match::seq_and_ack;
        requests.push_back({seq, ack, c.add(mode, seq, ack, nullptr, t0 + std::chrono::milliseconds(i % 97), i)});
    }
    CHECK(c.size() == n);

    std::vector<std::uint32_t> order(n);
    std::iota(order.begin(), order.end(), 0u);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<bool> answered(n, false);
    for (std::uint32_t k : order) {
        const auto& r = requests[k];
        // A decoy with a wrong seq for a strict request first.
        if (k % 3 != 0) REQUIRE(classify(c, r.seq + 1, r.ack + 1u) != cv::reply);
        ticket t;
        REQUIRE(classify(c, r.seq, r.ack + 1u, &t) == cv::reply);
        REQUIRE(t == r.t);
        auto v = c.take(t, co::replied);
        REQUIRE(v.has_value());
        REQUIRE(*v == k);
        REQUIRE_FALSE(answered[k]);
        answered[k] = true;
    }
    CHECK(c.empty());
    CHECK(std::all_of(answered.begin(), answered.end(), [](bool b) { return b; }));
    // All remembered (the limit is n): every second reply is a duplicate.
    for (const auto& r : requests) REQUIRE(classify(c, r.seq, r.ack + 1u) == cv::duplicate);
    CHECK_FALSE(c.next_deadline().has_value());
}

TEST_CASE("correlator: seq_only matches seq and connector id, any ack; its memory shares the ring with ack keys") {
    const cnasio::connector::id w1{3, 1}, other{1, 1};
    auto m = [](std::uint32_t seq, std::uint32_t ack, cnasio::connector::id id) {
        cnasio::connector::message_view v = msg(seq, ack);
        v.header.id = id;
        return v;
    };
    table c(2); // remembers the last two ended requests
    const auto a = c.add(match::seq_only, 10, 500, nullptr, t0 + 1s, "a", w1);
    table::ticket t;
    CHECK(c.classify(m(10, 11, w1), t) == verdict::reply); // a data reply: seq + 1
    CHECK(t == a);
    CHECK(c.classify(m(10, 500, w1), t) == verdict::reply); // a status: the request's ack
    CHECK(c.classify(m(10, 11, other), t) == verdict::unrelated); // same seq, another connector
    CHECK(c.classify(m(11, 11, w1), t) == verdict::unrelated);
    REQUIRE(c.take(a, outcome::replied));
    CHECK(c.classify(m(10, 12345, w1), t) == verdict::duplicate);
    CHECK(c.classify(m(10, 12345, other), t) == verdict::unrelated);

    // An ack-keyed request whose expected ack equals the seq above is told apart by its mode.
    const auto b = add(c, match::seq_and_ack, 20, 9, "b"); // expects ack 10
    CHECK(c.classify(msg(20, 10), t) == verdict::reply);
    CHECK(t == b);
    REQUIRE(c.take(b, outcome::expired));
    CHECK(c.classify(msg(20, 10), t) == verdict::late);
    CHECK(c.classify(m(10, 1, w1), t) == verdict::duplicate);

    // A third ended request evicts the oldest memory (the seq_only one) from the right index.
    const auto d = add(c, match::ack_only, 30, 40, "d");
    REQUIRE(c.take(d, outcome::replied));
    CHECK(c.classify(m(10, 1, w1), t) == verdict::unrelated);
    CHECK(c.classify(msg(20, 10), t) == verdict::late);
    CHECK(c.classify(msg(99, 41), t) == verdict::duplicate);
}
