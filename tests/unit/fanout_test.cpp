// cnasio::detail::subscriber_queue and fanout: ring growth keeping order, the
// two overflow policies with exact contents and counters, storage recycled by
// pop (counted allocations), overrun marks, groups 0..32 with first/last
// join/leave semantics (the id filter is tested with the client core).
#include <cnasio/detail/fanout.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <deque>
#include <new>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

// Counts this thread's calls of operator new while `counting` is set, to
// prove that a warmed-up queue allocates nothing.
namespace {
thread_local bool counting = false;
thread_local std::size_t allocations = 0;

void* counted_allocate(std::size_t n) {
    if (counting) ++allocations;
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}

struct count_allocations {
    count_allocations() {
        allocations = 0;
        counting = true;
    }
    ~count_allocations() { counting = false; }
    count_allocations(const count_allocations&) = delete;
    count_allocations& operator=(const count_allocations&) = delete;
};
} // namespace

void* operator new(std::size_t n) { return counted_allocate(n); }
void* operator new[](std::size_t n) { return counted_allocate(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

using cnasio::overflow_policy;
using cnasio::connector::message;
using cnasio::connector::message_view;
using cnasio::detail::subscriber_queue;

// A message numbered `n` (in seq) whose payload is `n` as text padded to `size`.
struct numbered {
    std::string text;
    message_view view;
    explicit numbered(std::uint32_t n, std::size_t size = 0) : text(std::to_string(n)) {
        if (text.size() < size) text.resize(size, '.');
        view.header.seq = n;
        view.header.id = {11, n};
        view.payload = cnasio::connector::as_payload(text);
    }
    // The view points into `text`: moving would leave it behind.
    numbered(const numbered&) = delete;
    numbered& operator=(const numbered&) = delete;
};

std::uint32_t pop_number(subscriber_queue& q) {
    message m;
    REQUIRE(q.pop(m));
    const std::string text(reinterpret_cast<const char*>(m.payload.data()), m.payload.size());
    CHECK(text.substr(0, text.find('.')) == std::to_string(m.seq()));
    return m.seq();
}

std::vector<std::uint32_t> drain(subscriber_queue& q) {
    std::vector<std::uint32_t> out;
    while (!q.empty()) out.push_back(pop_number(q));
    return out;
}

std::vector<std::uint32_t> range(std::uint32_t from, std::uint32_t to) {
    std::vector<std::uint32_t> v;
    for (auto i = from; i < to; ++i) v.push_back(i);
    return v;
}

} // namespace

TEST_CASE("subscriber_queue: FIFO, and popping an empty queue leaves the message alone") {
    subscriber_queue q(10, overflow_policy::drop_oldest);
    CHECK(q.empty());
    CHECK(q.limit() == 10);
    message m;
    m.header.seq = 77;
    CHECK_FALSE(q.pop(m));
    CHECK(m.seq() == 77);
    for (std::uint32_t i = 1; i <= 5; ++i) CHECK(q.push(numbered(i).view));
    CHECK(q.size() == 5);
    CHECK(drain(q) == range(1, 6));
    CHECK(q.stats().delivered == 5);
    CHECK(q.stats().dropped == 0);
}

TEST_CASE("subscriber_queue: pop hands out the header and payload exactly") {
    subscriber_queue q(4, overflow_policy::drop_oldest);
    message_view v;
    v.header.id = {17, 3};
    v.header.seq = 0xfffffff0u;
    v.header.ack = 0x12345678u;
    v.header.flags = 0xbeef;
    v.header.nlmsg_pid = 4242;
    const std::byte bytes[] = {std::byte{0}, std::byte{0xff}, std::byte{7}};
    v.payload = bytes;
    q.push(v);
    message m;
    REQUIRE(q.pop(m));
    CHECK(m.id() == cnasio::connector::id{17, 3});
    CHECK(m.seq() == 0xfffffff0u);
    CHECK(m.ack() == 0x12345678u);
    CHECK(m.header.flags == 0xbeef);
    CHECK(m.header.nlmsg_pid == 4242);
    CHECK(m.payload == std::vector<std::byte>(std::begin(bytes), std::end(bytes)));
    // An empty payload replaces a longer one.
    v.payload = {};
    q.push(v);
    REQUIRE(q.pop(m));
    CHECK(m.payload.empty());
}

TEST_CASE("subscriber_queue: growing the ring keeps the order, also when it has wrapped") {
    subscriber_queue q(1000, overflow_policy::drop_oldest);
    std::deque<std::uint32_t> model;
    std::uint32_t next = 0;
    std::mt19937 rng(7);
    // Random pushes and pops so that the ring's head sits anywhere when it grows.
    for (int step = 0; step < 20000; ++step) {
        if (rng() % 3 != 0 && model.size() < 900) {
            q.push(numbered(next).view);
            model.push_back(next++);
        } else if (!model.empty()) {
            REQUIRE(pop_number(q) == model.front());
            model.pop_front();
        }
        REQUIRE(q.size() == model.size());
    }
    while (!model.empty()) {
        REQUIRE(pop_number(q) == model.front());
        model.pop_front();
    }
    CHECK(q.stats().dropped == 0);
    CHECK(q.stats().delivered == next);

    // Deterministically: wrap the head, then force growth with it wrapped.
    subscriber_queue w(100, overflow_policy::drop_oldest);
    for (std::uint32_t i = 0; i < 16; ++i) w.push(numbered(i).view); // fills the first ring of 16
    for (std::uint32_t i = 0; i < 10; ++i) CHECK(pop_number(w) == i);
    for (std::uint32_t i = 16; i < 60; ++i) w.push(numbered(i).view); // wraps, then grows twice
    CHECK(w.size() == 50);
    CHECK(drain(w) == range(10, 60));
}

TEST_CASE("subscriber_queue: a limit that is no power of two is reached exactly") {
    subscriber_queue q(20, overflow_policy::drop_newest);
    for (std::uint32_t i = 0; i < 20; ++i) CHECK(q.push(numbered(i).view));
    CHECK(q.size() == 20);
    CHECK_FALSE(q.push(numbered(20).view));
    CHECK(q.size() == 20);
    CHECK(drain(q) == range(0, 20));
}

TEST_CASE("subscriber_queue: drop_oldest keeps the newest `limit` messages") {
    subscriber_queue q(3, overflow_policy::drop_oldest);
    CHECK(q.push(numbered(1).view));
    CHECK(q.push(numbered(2).view));
    CHECK(q.push(numbered(3).view));
    CHECK_FALSE(q.push(numbered(4).view)); // 1 dropped
    CHECK_FALSE(q.push(numbered(5).view)); // 2 dropped
    CHECK(q.size() == 3);
    CHECK(q.stats().delivered == 5);
    CHECK(q.stats().dropped == 2);
    CHECK(drain(q) == std::vector<std::uint32_t>{3, 4, 5});

    // After draining, room again, and the order continues.
    CHECK(q.push(numbered(6).view));
    CHECK(pop_number(q) == 6);
    // Interleaved: pop one, then overflow again.
    for (std::uint32_t i = 7; i <= 9; ++i) q.push(numbered(i).view);
    CHECK(pop_number(q) == 7);
    q.push(numbered(10).view);                  // fits
    CHECK_FALSE(q.push(numbered(11).view));     // drops 8
    CHECK(drain(q) == std::vector<std::uint32_t>{9, 10, 11});
    CHECK(q.stats().delivered == 11);
    CHECK(q.stats().dropped == 3);
}

TEST_CASE("subscriber_queue: drop_newest keeps the oldest `limit` messages") {
    subscriber_queue q(3, overflow_policy::drop_newest);
    for (std::uint32_t i = 1; i <= 3; ++i) CHECK(q.push(numbered(i).view));
    CHECK_FALSE(q.push(numbered(4).view));
    CHECK_FALSE(q.push(numbered(5).view));
    CHECK(q.stats().delivered == 5);
    CHECK(q.stats().dropped == 2);
    CHECK(drain(q) == std::vector<std::uint32_t>{1, 2, 3});
    CHECK(q.push(numbered(6).view));
    CHECK(drain(q) == std::vector<std::uint32_t>{6});
}

TEST_CASE("subscriber_queue: delivered = received + dropped + queued under both policies") {
    for (auto policy : {overflow_policy::drop_oldest, overflow_policy::drop_newest}) {
        CAPTURE(static_cast<int>(policy));
        subscriber_queue q(37, policy);
        std::mt19937 rng(99);
        std::uint64_t received = 0;
        std::uint32_t last = 0;
        bool any = false;
        for (std::uint32_t i = 0; i < 50000; ++i) {
            q.push(numbered(i).view);
            if (rng() % 60 == 0) // on average 60 pushes between drains: limit 37 overflows
                while (!q.empty()) {
                    const auto n = pop_number(q);
                    if (any) REQUIRE(n > last); // never out of order, never twice
                    last = n;
                    any = true;
                    ++received;
                }
        }
        const auto& s = q.stats();
        CHECK(s.delivered == 50000);
        CHECK(s.dropped > 0);
        CHECK(s.delivered == received + s.dropped + q.size());
    }
}

TEST_CASE("subscriber_queue: a limit of 0 is taken as 1") {
    subscriber_queue q(0, overflow_policy::drop_oldest);
    CHECK(q.limit() == 1);
    CHECK(q.push(numbered(1).view));
    CHECK_FALSE(q.push(numbered(2).view));
    CHECK(drain(q) == std::vector<std::uint32_t>{2});
    subscriber_queue n(0, overflow_policy::drop_newest);
    n.push(numbered(1).view);
    n.push(numbered(2).view);
    CHECK(drain(n) == std::vector<std::uint32_t>{1});
}

TEST_CASE("subscriber_queue: pop swaps storage, so a warmed-up queue allocates nothing") {
    subscriber_queue q(8, overflow_policy::drop_oldest);
    message m;
    // Warm-up: every ring slot and the receiving message grow to the largest payload.
    for (std::uint32_t i = 0; i < 64; ++i) {
        q.push(numbered(i, 1000).view);
        if (i % 3 == 0) pop_number(q);
    }
    while (q.pop(m)) {
    }
    for (int round = 0; round < 3; ++round) {
        for (std::uint32_t i = 0; i < 8; ++i) q.push(numbered(i, 1000).view);
        while (q.pop(m)) {
        }
    }

    std::deque<numbered> inputs; // built outside the counted region
    for (std::uint32_t i = 0; i < 1000; ++i) inputs.emplace_back(i, 10 + i % 990);
    std::vector<std::uint32_t> seen;
    seen.reserve(2 * inputs.size());
    std::size_t counted;
    std::size_t pushed = 0;
    const auto dropped_before = q.stats().dropped;
    {
        count_allocations c;
        for (std::size_t i = 0; i < inputs.size(); ++i) {
            q.push(inputs[i].view);
            ++pushed;
            if (i % 100 == 99) // a burst that overflows the queue
                for (std::size_t k = 0; k < 10; ++k, ++pushed) q.push(inputs[i - k].view);
            if (i % 2 == 1)
                while (q.pop(m)) seen.push_back(m.seq());
        }
        while (q.pop(m)) seen.push_back(m.seq());
        counted = allocations;
    }
    CHECK(counted == 0);
    CHECK(q.stats().dropped - dropped_before > 0);
    CHECK(seen.size() + (q.stats().dropped - dropped_before) == pushed);
    CHECK(m.payload.capacity() >= 1000); // one of the circulating buffers

    // The counter works: the same loop with a fresh receiving message each
    // time allocates (the ring's slots are left without storage).
    {
        count_allocations c;
        for (std::size_t i = 0; i < 10; ++i) {
            message fresh;
            q.push(inputs[i].view);
            q.pop(fresh);
        }
        counted = allocations;
    }
    CHECK(counted > 0);
}

// One backlog of `depth` small messages pushed, then consumed into `m`;
// returns the allocations it made.
std::size_t backlog(subscriber_queue& q, const std::deque<numbered>& inputs, std::size_t depth, message& m) {
    count_allocations c;
    for (std::size_t i = 0; i < depth; ++i) q.push(inputs[i].view);
    while (q.pop(m)) {
    }
    return allocations;
}

TEST_CASE("subscriber_queue: keep holds a deep backlog's storage, so the next one allocates nothing") {
    std::deque<numbered> inputs; // 600 messages of 40 bytes, a proc event's size
    for (std::uint32_t i = 0; i < 600; ++i) inputs.emplace_back(i, 40);
    message m;
    m.payload.reserve(64);

    subscriber_queue kept(4096, subscriber_queue::max_bytes, overflow_policy::drop_oldest, 1000);
    CHECK(backlog(kept, inputs, 600, m) > 600); // the first one grows ring and slots
    CHECK(kept.stats().max_queued == 600);
    CHECK(kept.slots() == 1024);
    CHECK(kept.spare_bytes() >= 600 * 40);
    CHECK(backlog(kept, inputs, 600, m) == 0);
    CHECK(backlog(kept, inputs, 300, m) == 0);
    CHECK(kept.stats().max_queued == 600);
    CHECK(kept.stats().dropped == 0);

    // Without keep, an emptied queue gives back a ring past 256 slots and
    // keeps 16 KiB of payloads: every such backlog allocates again.
    subscriber_queue plain(4096, overflow_policy::drop_oldest);
    CHECK(backlog(plain, inputs, 600, m) > 600);
    CHECK(plain.slots() == 0);
    CHECK(plain.spare_bytes() <= subscriber_queue::spare_limit);
    CHECK(backlog(plain, inputs, 600, m) > 600);

    // keep counts small messages only: a backlog of large ones is given back
    // once consumed (a single one would add more than 4 KiB).
    std::deque<numbered> large;
    for (std::uint32_t i = 0; i < 20; ++i) large.emplace_back(i, subscriber_queue::idle_slot_limit + 1);
    backlog(kept, large, 20, m);
    CHECK(m.payload.capacity() > subscriber_queue::idle_slot_limit); // the circulating large buffer
    CHECK(kept.spare_bytes() <= 600 * 64);
}

TEST_CASE("subscriber_queue: keep is at most the limit, and a budget still takes the kept storage back") {
    subscriber_queue q(100, subscriber_queue::max_bytes, overflow_policy::drop_oldest, 1000);
    CHECK(q.keep() == 100);
    std::deque<numbered> inputs;
    for (std::uint32_t i = 0; i < 100; ++i) inputs.emplace_back(i, 40);
    message m;
    backlog(q, inputs, 100, m);
    CHECK(q.slots() == 100);
    CHECK(q.spare_bytes() >= 99 * 40);
    // A push that only fits once the spare storage is given back gives it back.
    numbered one(7, 40);
    CHECK(q.push(one.view, subscriber_queue::cost(40) - 1));
    CHECK(q.spare_bytes() == 0);
    CHECK(q.size() == 1);
}

TEST_CASE("subscriber_queue: pop gives the ring the receiver's buffer") {
    subscriber_queue q(2, overflow_policy::drop_oldest);
    q.push(numbered(1, 500).view);
    message m;
    m.payload.reserve(4000);
    const auto* mine = m.payload.data();
    REQUIRE(q.pop(m));
    CHECK(m.payload.data() != mine);
    CHECK(m.payload.size() == 500);
    // The ring's slot 0 now holds m's old buffer, and the emptied queue
    // starts again at slot 0, so the next message lands in that buffer.
    q.push(numbered(2, 100).view);
    q.push(numbered(3, 100).view);
    message a, b;
    REQUIRE(q.pop(a));
    REQUIRE(q.pop(b));
    CHECK(a.seq() == 2);
    CHECK(b.seq() == 3);
    CHECK(a.payload.data() == mine);
    CHECK(a.payload.capacity() >= 4000);
    CHECK(a.payload.size() == 100);
}

TEST_CASE("subscriber_queue: an overrun is reported once per mark, counted every time") {
    subscriber_queue q(4, overflow_policy::drop_oldest);
    CHECK_FALSE(q.overrun_pending());
    CHECK_FALSE(q.take_overrun());
    q.mark_overrun();
    q.mark_overrun(); // two overruns before the subscriber looked: one report
    CHECK(q.overrun_pending());
    CHECK(q.stats().overruns == 2);
    CHECK(q.take_overrun());
    CHECK_FALSE(q.overrun_pending());
    CHECK_FALSE(q.take_overrun());
    // Marks do not touch the messages.
    q.push(numbered(1).view);
    q.mark_overrun();
    CHECK(q.size() == 1);
    CHECK(q.take_overrun());
    CHECK(drain(q) == std::vector<std::uint32_t>{1});
    CHECK(q.stats().overruns == 3);
    CHECK(q.stats().dropped == 0);
}

namespace {

struct fake_subscriber {
    cnasio::connector::id want{}; // {0,0}: everything
    std::vector<std::uint32_t> got;
    bool accepts(const message_view& m) const { return (want.idx == 0 && want.val == 0) || m.id() == want; }
};

using fan = cnasio::detail::fanout<fake_subscriber>;

} // namespace

TEST_CASE("fanout: the first subscriber of a group joins it, the last leaves it") {
    fan f;
    fake_subscriber a, b, c;
    CHECK(f.empty());
    CHECK(f.add(11, &a));       // first: join
    CHECK_FALSE(f.add(11, &b)); // already joined
    CHECK(f.add(12, &c));       // another group: join that one
    CHECK(f.subscribers(11) == 2);
    CHECK(f.subscribers(12) == 1);
    CHECK_FALSE(f.empty());

    CHECK_FALSE(f.remove(11, &c)); // not a member of 11
    CHECK(f.subscribers(11) == 2);
    CHECK_FALSE(f.remove(11, &a)); // b remains
    CHECK_FALSE(f.remove(11, &a)); // twice: nothing to remove, not "last"
    CHECK(f.remove(11, &b));       // last: leave
    CHECK(f.subscribers(11) == 0);
    CHECK_FALSE(f.remove(11, &b)); // an empty group is not left twice
    CHECK(f.add(11, &b));          // and is joined again by the next first
    CHECK(f.remove(11, &b));
    CHECK(f.remove(12, &c));
    CHECK(f.empty());
}

TEST_CASE("fanout: groups 0 to 32 exist, others do not") {
    fan f;
    std::vector<fake_subscriber> subs(33);
    for (unsigned g = 0; g <= 32; ++g) CHECK(f.add(g, &subs[g]));
    for (unsigned g = 0; g <= 32; ++g) CHECK(f.subscribers(g) == 1);
    fake_subscriber extra;
    CHECK_THROWS_AS(f.add(33, &extra), std::out_of_range);
    CHECK_THROWS_AS(f.remove(33, &extra), std::out_of_range);
    CHECK(f.subscribers(33) == 0);
    CHECK(f.subscribers(1000) == 0);
    numbered m(5);
    CHECK(f.deliver(33, m.view, [](fake_subscriber&) { FAIL("no group 33"); }) == 0);

    // Each group's message goes to that group's subscriber only.
    for (unsigned g = 0; g <= 32; ++g)
        CHECK(f.deliver(g, numbered(g).view, [](fake_subscriber& s) { s.got.push_back(0); }) == 1);
    for (unsigned g = 0; g <= 32; ++g) CHECK(subs[g].got.size() == 1);

    std::size_t visited = 0;
    f.for_each([&](fake_subscriber&) { ++visited; });
    CHECK(visited == 33);
}

TEST_CASE("fanout: deliver reaches every accepting subscriber of the group, in order of subscription") {
    fan f;
    fake_subscriber all1, all2, only_a, only_b, elsewhere;
    only_a.want = {20, 1};
    only_b.want = {20, 2};
    f.add(20, &all1);
    f.add(20, &only_a);
    f.add(20, &only_b);
    f.add(20, &all2);
    f.add(21, &elsewhere);

    std::vector<fake_subscriber*> order;
    numbered m(1); // id {11, 1}
    m.view.header.id = {20, 1};
    CHECK(f.deliver(20, m.view, [&](fake_subscriber& s) { order.push_back(&s); }) == 3);
    CHECK(order == std::vector<fake_subscriber*>{&all1, &only_a, &all2});

    order.clear();
    m.view.header.id = {20, 3};
    CHECK(f.deliver(20, m.view, [&](fake_subscriber& s) { order.push_back(&s); }) == 2);
    CHECK(order == std::vector<fake_subscriber*>{&all1, &all2});

    order.clear();
    CHECK(f.deliver(22, m.view, [&](fake_subscriber& s) { order.push_back(&s); }) == 0);
    CHECK(order.empty());
}
