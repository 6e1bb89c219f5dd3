// cnasio::detail::client_core driven by scripted events, with no socket and
// no Asio: replies, duplicates, late replies, timeouts, cancellation, senders,
// malformed input, subscriptions and their queues, overruns, byte budgets,
// close with work pending, and what the glue is asked to keep in step.
#include <cnasio/detail/client_core.hpp>

#include "core_messages.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <span>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace std::chrono_literals;
using cnasio::error;
using cnasio::error_code;
using cnasio::match;
using cnasio::request_options;
using cnasio::subscription_options;
using cnasio::connector::header;
using cnasio::connector::message;
using cnasio::detail::client_core;
using cnasio::detail::completion;
using cnasio::detail::core_options;
using cnasio::detail::op_id;
using cnasio::detail::receive_target;
using cnasio::test::datagram;
using cnasio::test::discard_queued;
using cnasio::test::module_id;

const auto t0 = client_core::clock::time_point(1h);

std::string text_of(const message& m) {
    return {reinterpret_cast<const char*>(m.payload.data()), m.payload.size()};
}

// The reply a connector.rst peer gives to request header `h`.
header reply_to(const header& h) {
    header r = h;
    r.ack = h.ack + 1;
    return r;
}

struct fixture {
    client_core core{core_options{.default_timeout = 1000ms, .admitted_ports = {}, .subscription_bytes = 64u << 20}, 42};

    void feed(const header& h, std::string_view text, std::uint32_t port = 0, unsigned group = 0) {
        const auto d = datagram(h, text);
        core.on_datagram(port, group, d, false);
    }

    std::vector<completion> take_all() {
        std::vector<completion> out;
        completion c;
        while (core.pop_completion(c)) out.push_back(std::move(c));
        return out;
    }
};

} // namespace

TEST_CASE("client_core: a reply with the request's seq and ack + 1 completes it; the rest are told apart") {
    fixture f;
    CHECK_FALSE(f.core.wants_read());
    const auto r = f.core.start_request(7, module_id, 4, {}, t0);
    REQUIRE(r.send);
    CHECK(r.port_id == 0);
    CHECK(r.header.id == module_id);
    CHECK(r.header.nlmsg_seq == r.header.seq);
    CHECK(f.core.wants_read());
    CHECK(f.core.next_deadline() == t0 + 1000ms);
    CHECK_FALSE(f.core.has_completions()); // nothing until the reply

    header wrong_ack = reply_to(r.header);
    wrong_ack.ack += 1;
    header wrong_seq = reply_to(r.header);
    wrong_seq.seq += 1;
    f.feed(wrong_ack, "x");
    f.feed(wrong_seq, "y");
    CHECK_FALSE(f.core.has_completions());
    CHECK(f.core.stats().unsolicited == 2);
    CHECK(f.core.stats().unclaimed == 2);

    f.feed(reply_to(r.header), "pong");
    auto done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].op == 7);
    CHECK_FALSE(done[0].ec);
    CHECK(text_of(done[0].message) == "pong");
    CHECK(f.core.stats().replies == 1);
    CHECK_FALSE(f.core.request_pending(r.t));
    CHECK_FALSE(f.core.wants_read()); // nothing waits: the glue lets run() return
    CHECK_FALSE(f.core.next_deadline());

    f.feed(reply_to(r.header), "again");
    CHECK(f.core.stats().duplicate_replies == 1);
    CHECK_FALSE(f.core.has_completions());
}

TEST_CASE("client_core: ack-only matching ignores seq; a reply can go into the caller's message") {
    fixture f;
    request_options o;
    o.match = match::ack_only;
    message into;
    const auto r = f.core.start_request(1, cnasio::connector::proc_id, 4, o, t0, &into);
    header h = reply_to(r.header);
    h.seq = 123456; // the proc connector's per-CPU counter
    f.feed(h, "ack");
    auto done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].message.payload.empty());
    CHECK(text_of(into) == "ack");
    CHECK(into.seq() == 123456);
}

TEST_CASE("client_core: many requests in flight each get their own reply, in whatever order they come") {
    fixture f;
    std::vector<header> sent;
    for (op_id op = 0; op < 100; ++op) sent.push_back(f.core.start_request(op, module_id, 0, {}, t0).header);
    for (std::size_t i = 0; i < sent.size(); ++i) {
        const std::size_t k = (i * 37) % sent.size(); // a permutation: 37 and 100 are coprime
        f.feed(reply_to(sent[k]), std::to_string(k));
    }
    auto done = f.take_all();
    REQUIRE(done.size() == 100);
    for (const auto& c : done) CHECK(text_of(c.message) == std::to_string(c.op));
    CHECK(f.core.pending_requests() == 0);
}

TEST_CASE("client_core: a request times out at its deadline, not before; its reply is late afterwards") {
    fixture f;
    request_options o;
    o.timeout = 50ms;
    const auto a = f.core.start_request(1, module_id, 0, o, t0);
    const auto b = f.core.start_request(2, module_id, 0, {}, t0); // default 1000 ms
    CHECK(f.core.next_deadline() == t0 + 50ms);
    f.core.on_timer(t0 + 49ms);
    CHECK_FALSE(f.core.has_completions());
    f.core.on_timer(t0 + 50ms);
    auto done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].op == 1);
    CHECK(done[0].ec == error::timeout);
    CHECK(f.core.stats().timeouts == 1);
    CHECK(f.core.next_deadline() == t0 + 1000ms);
    f.feed(reply_to(a.header), "late");
    CHECK(f.core.stats().late_replies == 1);
    CHECK_FALSE(f.core.has_completions());
    f.feed(reply_to(b.header), "in time");
    CHECK(f.take_all().size() == 1);
}

TEST_CASE("client_core: cancellation ends a request at once; a stale cancellation does nothing") {
    fixture f;
    const auto r = f.core.start_request(3, module_id, 0, {}, t0);
    f.core.cancel_request(r.t);
    auto done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].ec == cnasio::detail::aborted_error());
    CHECK_FALSE(f.core.wants_read());
    f.core.cancel_request(r.t); // already ended
    CHECK_FALSE(f.core.has_completions());
    f.feed(reply_to(r.header), "late");
    CHECK(f.core.stats().late_replies == 1);

    // A ticket whose slot was reused by a newer request does not cancel that one.
    const auto newer = f.core.start_request(4, module_id, 0, {}, t0);
    f.core.cancel_request(r.t);
    CHECK(f.core.request_pending(newer.t));
}

TEST_CASE("client_core: a failed send ends the request with the send's error") {
    fixture f;
    const auto r = f.core.start_request(5, module_id, 0, {}, t0);
    f.core.send_failed(r.t, error::connector_unreachable);
    auto done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].ec == error::connector_unreachable);
}

TEST_CASE("client_core: a payload above CONNECTOR_MAX_MSG_SIZE fails before anything is sent") {
    fixture f;
    const auto r = f.core.start_request(9, module_id, cnasio::connector::max_payload + 1, {}, t0);
    CHECK_FALSE(r.send);
    auto done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].op == 9);
    CHECK(done[0].ec == error::payload_too_large);
    CHECK(f.core.pending_requests() == 0);
}

TEST_CASE("client_core: only port 0 and admitted ports are believed; malformed messages are counted") {
    fixture f;
    const auto r = f.core.start_request(1, module_id, 0, {}, t0);
    f.feed(reply_to(r.header), "forged", 4242);
    CHECK(f.core.stats().rejected == 1);
    CHECK_FALSE(f.core.has_completions());
    f.core.admit(4242);
    f.feed(reply_to(r.header), "peer", 4242);
    CHECK(f.take_all().size() == 1);

    auto d = datagram(reply_to(r.header), "abc");
    d[0] = std::byte{0xff}; // nlmsg_len beyond the datagram
    f.core.on_datagram(0, 0, d, false);
    CHECK(f.core.stats().malformed == 1);
    f.core.on_datagram(0, 0, std::span(d.data(), 10), false); // shorter than a netlink header
    CHECK(f.core.stats().malformed == 2);
    f.core.on_datagram(0, 0, datagram(reply_to(r.header), "abc"), true); // truncated by the receive
    CHECK(f.core.stats().malformed == 3);
    CHECK(f.core.stats().datagrams == 5);
}

TEST_CASE("client_core: a read error ends every pending request with it") {
    fixture f;
    f.core.start_request(1, module_id, 0, {}, t0);
    f.core.start_request(2, module_id, 0, {}, t0);
    f.core.on_read_error(cnasio::errno_code(EBADF));
    auto done = f.take_all();
    REQUIRE(done.size() == 2);
    for (const auto& c : done) CHECK(c.ec == std::errc::bad_file_descriptor);
}

TEST_CASE("client_core: the first subscriber of a group joins it, the last leaves it; groups above 32 are refused") {
    fixture f;
    auto a = f.core.subscribe(5, {});
    auto b = f.core.subscribe(5, {});
    auto z = f.core.subscribe(0, {});
    CHECK(a.join);
    CHECK_FALSE(b.join);
    CHECK_FALSE(z.join); // group 0 is the unicasts: nothing to join
    CHECK(f.core.subscribe(33, {}).ec == error::invalid_group);
    CHECK(f.core.wants_read());
    CHECK_FALSE(f.core.unsubscribe(a.sub));
    CHECK(f.core.unsubscribe(b.sub));
    CHECK_FALSE(f.core.unsubscribe(b.sub)); // stale
    CHECK(f.core.wants_read());
    CHECK_FALSE(f.core.unsubscribe(z.sub));
    CHECK_FALSE(f.core.wants_read());
}

TEST_CASE("client_core: a receive takes one queued message, or waits for one; a second receive is in_progress") {
    fixture f;
    auto s = f.core.subscribe(5, {}).sub;
    header h;
    h.id = module_id;
    f.core.start_receive(s, 1, {});
    CHECK_FALSE(f.core.has_completions());
    CHECK(f.core.receive_waits(s, 1));
    f.core.start_receive(s, 2, {});
    auto done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].op == 2);
    CHECK(done[0].ec == cnasio::detail::in_progress_error());
    CHECK(f.core.receive_waits(s, 1));

    for (int i = 0; i < 3; ++i) f.feed(h, "m" + std::to_string(i), 0, 5);
    f.feed(h, "other group", 0, 6);
    done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(text_of(done[0].message) == "m0");
    CHECK(f.core.queued(s) == 2);
    CHECK(f.core.stats().unclaimed == 1);

    message into;
    f.core.start_receive(s, 3, {.into = &into});
    done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(text_of(into) == "m1");
    error_code ec;
    REQUIRE(f.core.try_receive(s, into, ec));
    CHECK_FALSE(ec);
    CHECK(text_of(into) == "m2");
    CHECK_FALSE(f.core.try_receive(s, into, ec));
    CHECK(f.core.subscription_statistics(s).delivered == 3);
}

TEST_CASE("client_core: a batch receive takes every queued message up to its maximum") {
    fixture f;
    auto s = f.core.subscribe(0, {}).sub;
    header h;
    for (int i = 0; i < 5; ++i) f.feed(h, std::to_string(i));
    std::vector<message> batch;
    f.core.start_receive(s, 1, {.batch = &batch, .batch_max = 3});
    auto done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].count == 3);
    CHECK(text_of(batch[2]) == "2");
    f.core.start_receive(s, 2, {.batch = &batch, .batch_max = 10});
    done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].count == 2);
    CHECK(text_of(batch[0]) == "3");
}

// What the glue's recvmmsg gives on_read(): datagram i from `port` through `group`.
struct read_datagram {
    std::vector<std::byte> data;
    std::uint32_t port = 0;
    unsigned group_ = 0;
    std::span<const std::byte> bytes;
    bool truncated = false;
    std::uint32_t port_id() const { return port; }
    unsigned group() const { return group_; }
};

std::vector<read_datagram> one_read(unsigned group, int first, int count) {
    std::vector<read_datagram> r(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
        auto& d = r[static_cast<std::size_t>(i)];
        d.data = datagram(header{}, std::to_string(first + i));
        d.bytes = d.data;
        d.group_ = group;
    }
    return r;
}

TEST_CASE("client_core: a waiting batch receive completes once per read, with all it brought; a one-message receive at the first") {
    fixture f;
    auto batched = f.core.subscribe(3, {}).sub;
    auto single = f.core.subscribe(3, {}).sub;
    std::vector<message> batch;
    message one;
    f.core.start_receive(batched, 1, {.batch = &batch, .batch_max = 64});
    f.core.start_receive(single, 2, {.into = &one});
    f.core.on_read(one_read(3, 0, 5));
    auto done = f.take_all();
    REQUIRE(done.size() == 2);
    // The single receive completed at the first message, the batch after the fifth.
    CHECK(done[0].op == 2);
    CHECK(text_of(one) == "0");
    CHECK(done[1].op == 1);
    CHECK(done[1].count == 5);
    CHECK(text_of(batch[0]) == "0");
    CHECK(text_of(batch[4]) == "4");
    CHECK(f.core.queued(batched) == 0);
    CHECK(f.core.queued(single) == 4);

    // A batch that fills up completes at once; the rest of the read waits in the queue.
    f.core.start_receive(batched, 3, {.batch = &batch, .batch_max = 2});
    f.core.on_read(one_read(3, 5, 3));
    done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].count == 2);
    CHECK(text_of(batch[1]) == "6");
    CHECK(f.core.queued(batched) == 1);

    // on_datagram() is a read of one datagram: the batch completes with it.
    f.core.start_receive(batched, 4, {.batch = &batch, .batch_max = 64});
    done = f.take_all();
    REQUIRE(done.size() == 1); // "7", queued
    CHECK(done[0].count == 1);
    f.core.start_receive(batched, 5, {.batch = &batch, .batch_max = 64});
    f.feed(header{}, "8", 0, 3);
    done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].count == 1);
    CHECK(text_of(batch[0]) == "8");

    // A queue limit below batch_max: the batch is served when the queue is full, so nothing drops.
    subscription_options small;
    small.queue_limit = 2;
    auto tight = f.core.subscribe(4, small).sub;
    f.core.start_receive(tight, 6, {.batch = &batch, .batch_max = 64});
    f.core.on_read(one_read(4, 0, 4));
    done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].count == 2);
    CHECK(f.core.queued(tight) == 2);
    CHECK(f.core.subscription_statistics(tight).dropped == 0);
}

TEST_CASE("client_core: an overrun reaches every subscriber once, before its next message") {
    fixture f;
    auto waiting = f.core.subscribe(5, {}).sub;
    auto idle = f.core.subscribe(6, {}).sub;
    f.core.start_receive(waiting, 1, {});
    f.core.on_overrun();
    auto done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].ec == error::overrun);
    CHECK(f.core.stats().overruns == 1);

    header h;
    f.feed(h, "after", 0, 6);
    message m;
    error_code ec;
    REQUIRE(f.core.try_receive(idle, m, ec));
    CHECK(ec == error::overrun);
    REQUIRE(f.core.try_receive(idle, m, ec));
    CHECK_FALSE(ec);
    CHECK(text_of(m) == "after");
    CHECK(f.core.subscription_statistics(idle).overruns == 1);
}

TEST_CASE("client_core: a receive is cancelled by its own number only") {
    fixture f;
    auto s = f.core.subscribe(5, {}).sub;
    f.core.start_receive(s, 1, {});
    const auto first = f.core.receive_number(s);
    f.core.cancel_receive(s, first);
    auto done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].ec == cnasio::detail::aborted_error());
    f.core.start_receive(s, 2, {});
    f.core.cancel_receive(s, first); // the earlier receive's: stale
    CHECK_FALSE(f.core.has_completions());
    CHECK(f.core.receive_waits(s, 2));
}

TEST_CASE("client_core: only_id filters by connector id; {0,0} takes every id") {
    fixture f;
    subscription_options one;
    one.only_id = {20, 5};
    subscription_options idx_only; // {20,0} is an id like any other, not a wildcard
    idx_only.only_id = {20, 0};
    auto s_any = f.core.subscribe(20, {}).sub;
    auto s_one = f.core.subscribe(20, one).sub;
    auto s_idx = f.core.subscribe(20, idx_only).sub;
    for (cnasio::connector::id id : {cnasio::connector::id{20, 5}, {20, 6}, {21, 5}, {0, 0}, {20, 0}}) {
        header h;
        h.id = id;
        f.feed(h, "x", 0, 20);
    }
    CHECK(f.core.queued(s_any) == 5);
    CHECK(f.core.queued(s_one) == 1);
    CHECK(f.core.queued(s_idx) == 1);
}

TEST_CASE("client_core: subscription queues are bounded in bytes, per subscription and for the client") {
    const std::string big(cnasio::connector::max_payload, 'b');
    const std::size_t cost = cnasio::detail::subscriber_queue::cost(big.size());
    header h;

    SUBCASE("per subscription, drop_oldest keeps the newest that fit") {
        fixture f;
        subscription_options o;
        o.byte_limit = 4 * cost;
        auto s = f.core.subscribe(5, o).sub;
        for (int i = 0; i < 10; ++i) {
            h.seq = static_cast<std::uint32_t>(i);
            f.feed(h, big, 0, 5);
        }
        CHECK(f.core.queued(s) == 4);
        CHECK(f.core.subscription_statistics(s).dropped == 6);
        CHECK(f.core.subscription_statistics(s).queued_bytes <= o.byte_limit);
        message m;
        error_code ec;
        REQUIRE(f.core.try_receive(s, m, ec));
        CHECK(m.seq() == 6);
    }
    SUBCASE("per subscription, drop_newest keeps the oldest") {
        fixture f;
        subscription_options o;
        o.byte_limit = 4 * cost;
        o.policy = cnasio::overflow_policy::drop_newest;
        auto s = f.core.subscribe(5, o).sub;
        for (int i = 0; i < 10; ++i) {
            h.seq = static_cast<std::uint32_t>(i);
            f.feed(h, big, 0, 5);
        }
        CHECK(f.core.queued(s) == 4);
        message m;
        error_code ec;
        REQUIRE(f.core.try_receive(s, m, ec));
        CHECK(m.seq() == 0);
    }
    SUBCASE("one message larger than the byte limit still gets through an empty queue") {
        fixture f;
        subscription_options o;
        o.byte_limit = 100;
        auto s = f.core.subscribe(5, o).sub;
        f.feed(h, big, 0, 5);
        f.feed(h, big, 0, 5);
        CHECK(f.core.queued(s) == 1);
    }
    SUBCASE("1,000 subscribers share the client's budget, and the bytes come back once consumed") {
        client_core core{core_options{.default_timeout = 1000ms, .admitted_ports = {}, .subscription_bytes = 16u << 20}, 1};
        std::vector<cnasio::detail::subscription_ref> subs;
        for (int i = 0; i < 1000; ++i) subs.push_back(core.subscribe(7, {}).sub);
        const auto d = datagram(h, big);
        for (int i = 0; i < 20; ++i) core.on_datagram(0, 7, d, false);
        CHECK(core.held_bytes() <= (16u << 20));
        std::uint64_t dropped = 0, queued = 0;
        for (auto s : subs) {
            dropped += core.subscription_statistics(s).dropped;
            queued += core.queued(s);
        }
        CHECK(queued + dropped == 20 * 1000);
        CHECK(dropped > 0);
        CHECK(queued >= (16u << 20) / cost - 1000);
        message m;
        for (auto s : subs) discard_queued(core, s, m);
        CHECK(core.held_bytes() <= 1000 * cnasio::detail::subscriber_queue::idle_slot_limit);
    }
}

TEST_CASE("client_core: close ends pending requests and receives; later operations fail with client_closed") {
    fixture f;
    const auto r = f.core.start_request(1, module_id, 0, {}, t0);
    auto s = f.core.subscribe(5, {}).sub;
    f.core.start_receive(s, 2, {});
    f.core.close();
    auto done = f.take_all();
    REQUIRE(done.size() == 2);
    CHECK(done[0].op == 1);
    CHECK(done[1].op == 2);
    for (const auto& c : done) CHECK(c.ec == cnasio::detail::aborted_error());
    CHECK_FALSE(f.core.wants_read());
    CHECK_FALSE(f.core.next_deadline());

    CHECK_FALSE(f.core.start_request(3, module_id, 0, {}, t0).send);
    f.core.start_receive(s, 4, {});
    CHECK(f.core.subscribe(5, {}).ec == error::client_closed);
    done = f.take_all();
    REQUIRE(done.size() == 2);
    CHECK(done[0].ec == error::client_closed);
    CHECK(done[1].ec == error::client_closed);
    f.feed(reply_to(r.header), "late");
    CHECK_FALSE(f.core.has_completions());
    CHECK_FALSE(f.core.unsubscribe(s)); // nothing to leave on a closed socket
}

TEST_CASE("client_core: completions come out in the order the operations finished") {
    fixture f;
    const auto a = f.core.start_request(10, module_id, 0, {}, t0);
    const auto b = f.core.start_request(11, module_id, 0, {}, t0);
    f.core.complete(12, {});
    f.feed(reply_to(b.header), "b");
    f.feed(reply_to(a.header), "a");
    auto done = f.take_all();
    REQUIRE(done.size() == 3);
    CHECK(done[0].op == 12);
    CHECK(done[1].op == 11);
    CHECK(done[2].op == 10);
}

TEST_CASE("client_core: acks are spread and never collide with a pending request's") {
    fixture f;
    std::vector<std::uint32_t> acks;
    for (op_id op = 0; op < 1000; ++op) acks.push_back(f.core.start_request(op, module_id, 0, {}, t0).header.ack);
    std::sort(acks.begin(), acks.end());
    CHECK(std::adjacent_find(acks.begin(), acks.end()) == acks.end());
    // Two cores with different seeds start from different acks.
    client_core other{core_options{}, 43};
    CHECK(other.start_request(0, module_id, 0, {}, t0).header.ack != f.core.one_way_header(module_id, 0).ack);
}

// ---- multi-part answers (request_options::parts, match::seq_only) ----

namespace {

// A part rule for the tests: "end" is the last part, "foreign" is not a part.
cnasio::part_verdict until_end(const header&, const cnasio::connector::message_view& m) {
    const std::string_view text(reinterpret_cast<const char*>(m.payload.data()), m.payload.size());
    if (text == "foreign") return cnasio::part_verdict::not_part;
    return text == "end" ? cnasio::part_verdict::last : cnasio::part_verdict::more;
}

request_options parts_options() {
    request_options o;
    o.match = match::seq_only;
    o.parts = until_end;
    return o;
}

// A 1-Wire-style part: the request's seq and id, an ack of the peer's choosing.
header part_of(const header& request, std::uint32_t ack) {
    header h = request;
    h.ack = ack;
    return h;
}

std::vector<std::string> texts(const std::vector<message>& v) {
    std::vector<std::string> out;
    for (const auto& m : v) out.push_back(text_of(m));
    return out;
}

} // namespace

TEST_CASE("client_core: a multi-part answer is gathered part by part and ends at the rule's last part") {
    fixture f;
    std::vector<message> parts{message{}}; // cleared at the start
    const auto r = f.core.start_request(5, module_id, 0, parts_options(), t0, nullptr, &parts);
    REQUIRE(r.send);
    CHECK(parts.empty());
    f.feed(part_of(r.header, r.header.seq + 1), "one");
    f.feed(part_of(r.header, r.header.ack), "two");
    CHECK_FALSE(f.core.has_completions());
    CHECK(f.core.request_pending(r.t));
    CHECK(texts(parts) == std::vector<std::string>{"one", "two"});
    f.feed(part_of(r.header, 77), "end");
    auto done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].op == 5);
    CHECK_FALSE(done[0].ec);
    CHECK(texts(parts) == std::vector<std::string>{"one", "two", "end"});
    CHECK(f.core.stats().replies == 3);
    CHECK_FALSE(f.core.wants_read());
    // After the last part: the same seq and id again is a duplicate.
    f.feed(part_of(r.header, 1), "more");
    CHECK(f.core.stats().duplicate_replies == 1);
    CHECK(parts.size() == 3);
}

TEST_CASE("client_core: seq_only needs the request's connector id; the part rule can disown a message") {
    fixture f;
    std::vector<message> parts;
    const auto r = f.core.start_request(1, module_id, 0, parts_options(), t0, nullptr, &parts);
    header other = part_of(r.header, 0);
    other.id = {1, 1}; // e.g. a proc event whose per-CPU counter equals our seq
    f.feed(other, "end");
    f.feed(part_of(r.header, 0), "foreign");
    CHECK(f.core.stats().unsolicited == 2);
    CHECK(f.core.stats().replies == 0);
    CHECK(parts.empty());
    CHECK(f.core.request_pending(r.t));
    f.feed(part_of(r.header, 0), "end");
    CHECK(f.take_all().size() == 1);
    CHECK(texts(parts) == std::vector<std::string>{"end"});
}

TEST_CASE("client_core: two multi-part requests interleaved each gather their own parts") {
    fixture f;
    std::vector<message> pa, pb;
    const auto a = f.core.start_request(1, module_id, 0, parts_options(), t0, nullptr, &pa);
    const auto b = f.core.start_request(2, module_id, 0, parts_options(), t0, nullptr, &pb);
    CHECK(a.header.seq != b.header.seq);
    f.feed(part_of(b.header, 0), "b1");
    f.feed(part_of(a.header, 0), "a1");
    f.feed(part_of(b.header, 0), "b2");
    f.feed(part_of(a.header, 0), "end");
    auto done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].op == 1);
    f.feed(part_of(b.header, 0), "end");
    done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].op == 2);
    CHECK(texts(pa) == std::vector<std::string>{"a1", "end"});
    CHECK(texts(pb) == std::vector<std::string>{"b1", "b2", "end"});
}

TEST_CASE("client_core: a timeout in the middle of a stream keeps the parts that came; the rest are late") {
    fixture f;
    std::vector<message> parts;
    request_options o = parts_options();
    o.timeout = 100ms;
    const auto r = f.core.start_request(9, module_id, 0, std::move(o), t0, nullptr, &parts);
    f.feed(part_of(r.header, 0), "one");
    f.core.on_timer(t0 + 99ms);
    CHECK_FALSE(f.core.has_completions()); // a part does not extend the deadline, nor end it early
    f.core.on_timer(t0 + 100ms);
    auto done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].ec == error::timeout);
    CHECK(texts(parts) == std::vector<std::string>{"one"});
    f.feed(part_of(r.header, 0), "two");
    f.feed(part_of(r.header, 0), "end");
    CHECK(f.core.stats().late_replies == 2);
    CHECK(parts.size() == 1);
}

TEST_CASE("client_core: a cancelled stream ends at once; a missing last part means a timeout") {
    fixture f;
    std::vector<message> parts;
    const auto r = f.core.start_request(3, module_id, 0, parts_options(), t0, nullptr, &parts);
    f.feed(part_of(r.header, 0), "one");
    f.core.cancel_request(r.t);
    auto done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].ec == cnasio::detail::aborted_error());
    f.feed(part_of(r.header, 0), "end");
    CHECK(f.core.stats().late_replies == 1);

    const auto m = f.core.start_request(4, module_id, 0, parts_options(), t0, nullptr, &parts);
    f.feed(part_of(m.header, 0), "one");
    f.feed(part_of(m.header, 0), "two"); // "end" never comes
    f.core.on_timer(t0 + 1000ms);
    done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].ec == error::timeout);
    CHECK(parts.size() == 2);
}

TEST_CASE("client_core: parts out of order: the last part ends the request and what follows is a duplicate") {
    fixture f;
    std::vector<message> parts;
    const auto r = f.core.start_request(6, module_id, 0, parts_options(), t0, nullptr, &parts);
    f.feed(part_of(r.header, 0), "end");
    f.feed(part_of(r.header, 0), "one");
    CHECK(f.take_all().size() == 1);
    CHECK(texts(parts) == std::vector<std::string>{"end"});
    CHECK(f.core.stats().duplicate_replies == 1);
}

TEST_CASE("client_core: without a parts vector the last part is the reply") {
    fixture f;
    const auto r = f.core.start_request(2, module_id, 0, parts_options(), t0);
    f.feed(part_of(r.header, 0), "one");
    f.feed(part_of(r.header, 0), "end");
    auto done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(text_of(done[0].message) == "end");
    CHECK(f.core.stats().replies == 2);
}

// ---- streamed multi-part answers (start_stream, stream_next) ----

namespace {

using cnasio::detail::stream_ref;

// A stream with its request, plus helpers to ask for the next part.
struct stream_fixture : fixture {
    client_core::stream_start s;
    op_id next_op = 100;

    void start(request_options o = parts_options(), std::size_t limit = 16) {
        s = core.start_stream(module_id, 0, std::move(o), t0, limit);
        REQUIRE(s.start.send);
    }
    // Asks for the next part and returns the completions that came out at once.
    std::vector<completion> next() {
        core.stream_next(s.stream, next_op++);
        return take_all();
    }
    // Takes parts until the end, returning their texts and the end's error.
    std::vector<std::string> drain(error_code& end) {
        std::vector<std::string> out;
        for (;;) {
            auto done = next();
            REQUIRE(done.size() == 1);
            if (done[0].ec) {
                end = done[0].ec;
                return out;
            }
            out.push_back(text_of(done[0].message));
        }
    }
};

} // namespace

TEST_CASE("streamed parts in order: each next takes one part, then end_of_answer; later ones are duplicates") {
    stream_fixture f;
    f.start();
    const header& h = f.s.start.header;
    CHECK(f.next().empty()); // nothing yet: it waits
    CHECK(f.core.stream_waits(f.s.stream, 100));
    f.feed(part_of(h, h.seq + 1), "one"); // completes the waiting next at once
    auto done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].op == 100);
    CHECK_FALSE(done[0].ec);
    CHECK(text_of(done[0].message) == "one");
    f.feed(part_of(h, h.ack), "two"); // nobody waits: queued
    f.feed(part_of(h, 7), "end");
    CHECK_FALSE(f.core.has_completions());
    CHECK(f.core.stream_queued(f.s.stream) == 2);
    CHECK_FALSE(f.core.request_pending(f.s.start.t)); // the request ended at its last part
    CHECK(f.core.stream_ended(f.s.stream));
    error_code end;
    CHECK(f.drain(end) == std::vector<std::string>{"two", "end"});
    CHECK(end == error::end_of_answer);
    auto again = f.next(); // the end is sticky
    REQUIRE(again.size() == 1);
    CHECK(again[0].ec == error::end_of_answer);
    CHECK(f.core.stats().replies == 3);
    CHECK(f.core.stream_parts(f.s.stream) == 3);
    f.feed(part_of(h, 1), "more");
    CHECK(f.core.stats().duplicate_replies == 1);
    CHECK_FALSE(f.core.wants_read());
    f.core.close_stream(f.s.stream);
    CHECK(f.core.streams() == 0);
    CHECK(f.next()[0].ec == error::client_closed); // a stale stream
}

TEST_CASE("streamed parts out of order: the rule's last part ends the answer; what follows it is a duplicate") {
    stream_fixture f;
    f.start();
    const header& h = f.s.start.header;
    f.feed(part_of(h, 0), "end");
    f.feed(part_of(h, 0), "one");
    error_code end;
    CHECK(f.drain(end) == std::vector<std::string>{"end"});
    CHECK(end == error::end_of_answer);
    CHECK(f.core.stats().duplicate_replies == 1);
    CHECK(f.core.stats().replies == 1);
}

TEST_CASE("streamed parts with the last part missing: the parts that came, then a timeout at the deadline") {
    stream_fixture f;
    request_options o = parts_options();
    o.timeout = 100ms;
    f.start(std::move(o));
    const header& h = f.s.start.header;
    f.feed(part_of(h, 0), "one");
    f.feed(part_of(h, 0), "two");
    auto first = f.next();
    REQUIRE(first.size() == 1);
    CHECK(text_of(first[0].message) == "one");
    f.core.on_timer(t0 + 99ms);
    CHECK(f.core.request_pending(f.s.start.t));
    f.core.on_timer(t0 + 100ms);
    CHECK(f.core.stats().timeouts == 1);
    CHECK_FALSE(f.core.has_completions()); // nobody waits: the end waits behind the queued part
    error_code end;
    CHECK(f.drain(end) == std::vector<std::string>{"two"});
    CHECK(end == error::timeout);
    f.feed(part_of(h, 0), "end");
    CHECK(f.core.stats().late_replies == 1);
}

TEST_CASE("streamed parts: a timeout in the middle of the stream completes the waiting next with it") {
    stream_fixture f;
    f.start();
    const header& h = f.s.start.header;
    f.feed(part_of(h, 0), "one");
    CHECK(text_of(f.next()[0].message) == "one");
    CHECK(f.next().empty()); // waits for the second part
    f.core.on_timer(t0 + 1000ms);
    auto done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].ec == error::timeout);
    f.feed(part_of(h, 0), "two");
    CHECK(f.core.stats().late_replies == 1);
    CHECK(f.core.stream_queued(f.s.stream) == 0);
}

TEST_CASE("streamed parts: a second request interleaved; each stream gets its own parts, and a gathered one too") {
    stream_fixture f;
    f.start();
    const auto b = f.core.start_stream(module_id, 0, parts_options(), t0, 16);
    std::vector<message> gathered;
    const auto g = f.core.start_request(50, module_id, 0, parts_options(), t0, nullptr, &gathered);
    const header& a = f.s.start.header;
    f.feed(part_of(b.start.header, 0), "b1");
    f.feed(part_of(a, 0), "a1");
    f.feed(part_of(g.header, 0), "g1");
    f.feed(part_of(b.start.header, 0), "b2");
    f.feed(part_of(a, 0), "end");
    f.feed(part_of(g.header, 0), "end");
    auto done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].op == 50);
    CHECK(texts(gathered) == std::vector<std::string>{"g1", "end"});
    error_code end;
    CHECK(f.drain(end) == std::vector<std::string>{"a1", "end"});
    CHECK(end == error::end_of_answer);
    CHECK(f.core.stream_queued(b.stream) == 2);
    CHECK_FALSE(f.core.stream_ended(b.stream));
    f.core.stream_next(b.stream, 7);
    done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(text_of(done[0].message) == "b1");
}

TEST_CASE("streamed parts: cancel mid-stream; partial cancellation ends the wait, terminal the answer") {
    stream_fixture f;
    f.start();
    const header& h = f.s.start.header;
    CHECK(f.next().empty());
    const auto n = f.core.next_number(f.s.stream);
    f.core.cancel_next(f.s.stream, n + 1, true); // stale: nothing
    CHECK_FALSE(f.core.has_completions());
    f.core.cancel_next(f.s.stream, n, false);
    auto done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].ec == cnasio::detail::aborted_error());
    CHECK(f.core.request_pending(f.s.start.t)); // the answer goes on
    f.feed(part_of(h, 0), "one");
    CHECK(f.core.stream_queued(f.s.stream) == 1);
    CHECK(text_of(f.next()[0].message) == "one");
    CHECK(f.next().empty());
    f.core.cancel_next(f.s.stream, f.core.next_number(f.s.stream), true);
    done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].ec == cnasio::detail::aborted_error());
    CHECK_FALSE(f.core.request_pending(f.s.start.t));
    f.feed(part_of(h, 0), "two");
    CHECK(f.core.stats().late_replies == 1);
    CHECK(f.next()[0].ec == cnasio::detail::aborted_error()); // the answer's end, sticky
}

TEST_CASE("streamed parts: closing the stream ends its request and its wait; later parts are late") {
    stream_fixture f;
    f.start();
    const header& h = f.s.start.header;
    f.feed(part_of(h, 0), "one");
    CHECK(text_of(f.next()[0].message) == "one");
    CHECK(f.next().empty());
    f.core.close_stream(f.s.stream);
    auto done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].ec == cnasio::detail::aborted_error());
    CHECK_FALSE(f.core.wants_read());
    f.feed(part_of(h, 0), "end");
    CHECK(f.core.stats().late_replies == 1);
    CHECK(f.core.streams() == 0);
}

TEST_CASE("streamed parts: a full queue ends the answer with parts_overflow after the parts it holds") {
    stream_fixture f;
    f.start(parts_options(), 2);
    const header& h = f.s.start.header;
    f.feed(part_of(h, 0), "one");
    f.feed(part_of(h, 0), "two");
    CHECK(f.core.request_pending(f.s.start.t));
    f.feed(part_of(h, 0), "three"); // no room
    CHECK_FALSE(f.core.request_pending(f.s.start.t));
    f.feed(part_of(h, 0), "end");
    CHECK(f.core.stats().late_replies == 1);
    CHECK(f.core.stream_parts(f.s.stream) == 3);
    error_code end;
    CHECK(f.drain(end) == std::vector<std::string>{"one", "two"});
    CHECK(end == error::parts_overflow);
}

TEST_CASE("streamed parts: a failed start, a failed send, a read error and close each end the stream") {
    stream_fixture f;
    auto big = f.core.start_stream(module_id, cnasio::connector::max_payload + 1, parts_options(), t0, 4);
    CHECK_FALSE(big.start.send);
    f.core.stream_next(big.stream, 1);
    CHECK(f.take_all().at(0).ec == error::payload_too_large);
    const auto failed = f.core.failed_stream(error::not_registered);
    f.core.stream_next(failed, 2);
    CHECK(f.take_all().at(0).ec == error::not_registered);

    f.start();
    f.core.send_failed(f.s.start.t, cnasio::errno_code(EPERM));
    CHECK(f.next().at(0).ec == std::errc::operation_not_permitted);

    f.start();
    CHECK(f.next().empty());
    f.core.on_read_error(cnasio::errno_code(EIO));
    CHECK(f.take_all().at(0).ec == std::errc::io_error);

    f.start();
    f.core.stream_next(f.s.stream, 3);
    f.core.stream_next(f.s.stream, 4); // one wait at a time
    auto two = f.take_all();
    REQUIRE(two.size() == 1);
    CHECK(two[0].op == 4);
    CHECK(two[0].ec == cnasio::detail::in_progress_error());
    f.core.close();
    CHECK(f.take_all().at(0).ec == cnasio::detail::aborted_error());
    auto late = f.core.start_stream(module_id, 0, parts_options(), t0, 4);
    CHECK_FALSE(late.start.send);
    f.core.stream_next(late.stream, 5);
    CHECK(f.take_all().at(0).ec == error::client_closed);
}

// ---- the send queue ----

namespace {

// A scripted socket for flush_sends: ports in `full` answer EAGAIN, ports in
// `broken` the given error; the others take the datagram, recorded in order.
struct scripted_sends {
    std::vector<std::uint32_t> full;
    std::vector<std::uint32_t> broken;
    error_code broken_with = error_code(ECONNREFUSED, boost::system::system_category());
    std::vector<std::pair<std::uint32_t, std::vector<std::byte>>> sent;

    auto try_send() {
        return [this](std::uint32_t port, std::span<const std::byte> d) -> error_code {
            if (std::find(full.begin(), full.end(), port) != full.end()) return cnasio::detail::would_block_error();
            if (std::find(broken.begin(), broken.end(), port) != broken.end()) return broken_with;
            sent.emplace_back(port, std::vector<std::byte>(d.begin(), d.end()));
            return {};
        };
    }
};

request_options to_port(std::uint32_t port, std::chrono::milliseconds timeout = 0ms) {
    request_options o;
    o.port_id = port;
    o.timeout = timeout;
    return o;
}

} // namespace

TEST_CASE("client_core: a full peer holds back only what goes to it, in order; the rest is sent at once") {
    fixture f;
    scripted_sends sock;
    // Request A to peer 100 met EAGAIN: the glue queues it.
    const auto a = f.core.start_request(1, module_id, 1, to_port(100), t0);
    CHECK_FALSE(f.core.send_waits(100));
    f.core.queue_request(a.t, datagram(a.header, "A"));
    CHECK(f.core.has_queued_sends());
    // B to the same peer must queue behind A, whatever the socket would say; C to
    // peer 200 and D to the kernel are not held back.
    CHECK(f.core.send_waits(100));
    const auto b = f.core.start_request(2, module_id, 1, to_port(100), t0);
    f.core.queue_request(b.t, datagram(b.header, "B"));
    CHECK_FALSE(f.core.send_waits(200));
    CHECK_FALSE(f.core.send_waits(0));
    CHECK(f.core.stats().sends_queued == 2);

    sock.full = {100};
    f.core.flush_sends(sock.try_send());
    CHECK(sock.sent.empty());
    CHECK(f.core.has_queued_sends());

    sock.full.clear();
    f.core.flush_sends(sock.try_send());
    REQUIRE(sock.sent.size() == 2);
    CHECK(sock.sent[0] == std::pair{std::uint32_t{100}, datagram(a.header, "A")});
    CHECK(sock.sent[1] == std::pair{std::uint32_t{100}, datagram(b.header, "B")});
    CHECK_FALSE(f.core.has_queued_sends());
    CHECK_FALSE(f.core.send_waits(100));
    CHECK(f.core.queued_send_bytes() == 0);
    CHECK(f.core.stats().sends_late == 2);
    CHECK(f.core.stats().sends_dropped == 0);
    CHECK(f.core.pending_requests() == 2); // sent: now they wait for their replies
    CHECK_FALSE(f.core.has_completions());
}

TEST_CASE("client_core: two full peers each keep their order; one getting room does not wait for the other") {
    fixture f;
    scripted_sends sock;
    std::vector<std::vector<std::byte>> to100, to200;
    for (int i = 0; i < 3; ++i) {
        const auto r1 = f.core.start_request(op_id(i), module_id, 1, to_port(100), t0);
        to100.push_back(datagram(r1.header, "x"));
        f.core.queue_request(r1.t, to100.back());
        const auto r2 = f.core.start_request(op_id(10 + i), module_id, 1, to_port(200), t0);
        to200.push_back(datagram(r2.header, "y"));
        f.core.queue_request(r2.t, to200.back());
    }
    sock.full = {100};
    f.core.flush_sends(sock.try_send());
    REQUIRE(sock.sent.size() == 3);
    for (int i = 0; i < 3; ++i) CHECK(sock.sent[i].second == to200[i]);
    CHECK(f.core.send_waits(100));
    CHECK_FALSE(f.core.send_waits(200));
    sock.full.clear();
    f.core.flush_sends(sock.try_send());
    REQUIRE(sock.sent.size() == 6);
    for (int i = 0; i < 3; ++i) CHECK(sock.sent[3 + i].second == to100[i]);
}

TEST_CASE("client_core: a queued request that times out, is cancelled or closed is never sent") {
    fixture f;
    scripted_sends sock;
    const auto a = f.core.start_request(1, module_id, 1, to_port(100, 10ms), t0);
    f.core.queue_request(a.t, datagram(a.header, "A"));
    const auto b = f.core.start_request(2, module_id, 1, to_port(100, 500ms), t0);
    f.core.queue_request(b.t, datagram(b.header, "B"));
    const auto c = f.core.start_request(3, module_id, 1, to_port(100, 500ms), t0);
    f.core.queue_request(c.t, datagram(c.header, "C"));
    CHECK(f.core.queue_message(100, datagram(c.header, "M")) == error_code{});
    const std::size_t bytes = f.core.queued_send_bytes();

    f.core.on_timer(t0 + 10ms); // A times out
    f.core.cancel_request(b.t); // B is cancelled
    auto done = f.take_all();
    REQUIRE(done.size() == 2);
    CHECK(done[0].op == 1);
    CHECK(done[0].ec == error::timeout);
    CHECK(done[1].op == 2);
    CHECK(done[1].ec == cnasio::detail::aborted_error());
    CHECK(f.core.stats().sends_dropped == 2);
    CHECK(f.core.queued_send_bytes() == bytes - datagram(a.header, "A").size() - datagram(b.header, "B").size());

    f.core.flush_sends(sock.try_send());
    REQUIRE(sock.sent.size() == 2);
    CHECK(sock.sent[0].second == datagram(c.header, "C"));
    CHECK(sock.sent[1].second == datagram(c.header, "M"));
    CHECK(f.core.stats().sends_late == 2);

    // Close: a queued request ends with operation_aborted and a queued one-way message goes too.
    const auto d = f.core.start_request(4, module_id, 1, to_port(100), t0);
    f.core.queue_request(d.t, datagram(d.header, "D"));
    CHECK(f.core.queue_message(100, datagram(d.header, "N")) == error_code{});
    f.core.close();
    CHECK_FALSE(f.core.has_queued_sends());
    CHECK(f.core.queued_send_bytes() == 0);
    CHECK(f.core.stats().sends_dropped == 4);
    f.core.flush_sends(sock.try_send());
    CHECK(sock.sent.size() == 2);
}

TEST_CASE("client_core: a queued send that fails later ends its request with the send's error") {
    fixture f;
    scripted_sends sock;
    const auto a = f.core.start_request(1, module_id, 1, to_port(100), t0);
    f.core.queue_request(a.t, datagram(a.header, "A"));
    CHECK(f.core.queue_message(100, datagram(a.header, "M")) == error_code{});
    const auto b = f.core.start_request(2, module_id, 1, to_port(200), t0);
    f.core.queue_request(b.t, datagram(b.header, "B"));
    sock.broken = {100}; // the peer went away: ECONNREFUSED
    f.core.flush_sends(sock.try_send());
    auto done = f.take_all();
    REQUIRE(done.size() == 1);
    CHECK(done[0].op == 1);
    CHECK(done[0].ec == std::errc::connection_refused);
    CHECK_FALSE(f.core.request_pending(a.t));
    CHECK(f.core.request_pending(b.t));
    CHECK(f.core.stats().sends_dropped == 2); // A and the one-way message
    CHECK(f.core.stats().sends_late == 1);    // B
    CHECK_FALSE(f.core.has_queued_sends());
}

TEST_CASE("client_core: the send queue is bounded in bytes; past it a send fails with send_queue_full") {
    client_core core{core_options{.default_timeout = 1000ms, .admitted_ports = {}, .subscription_bytes = 64u << 20,
                                  .send_queue_bytes = 100},
                     42};
    const auto a = core.start_request(1, module_id, 1, to_port(100), t0);
    // An empty queue takes one message of any size.
    core.queue_request(a.t, std::vector<std::byte>(150));
    CHECK(core.request_pending(a.t));
    CHECK(core.queued_send_bytes() == 150);
    const auto b = core.start_request(2, module_id, 1, to_port(200), t0);
    core.queue_request(b.t, std::vector<std::byte>(10));
    completion c;
    REQUIRE(core.pop_completion(c));
    CHECK(c.op == 2);
    CHECK(c.ec == error::send_queue_full);
    CHECK(core.queue_message(300, std::vector<std::byte>(1)) == error::send_queue_full);
    CHECK(core.stats().sends_queued == 1);
    CHECK(core.queued_send_bytes() == 150);
    core.cancel_request(a.t);
    CHECK(core.queued_send_bytes() == 0);
    CHECK(core.queue_message(300, std::vector<std::byte>(60)) == error_code{});
    CHECK(core.queue_message(300, std::vector<std::byte>(40)) == error_code{}); // exactly the bound
    CHECK(core.queue_message(300, std::vector<std::byte>(1)) == error::send_queue_full);
}
