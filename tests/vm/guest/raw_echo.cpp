// The cnasio_echo module's protocol checked with plain system calls: replies
// (seq, ack + 1, unicast to the true sender), every error reply, multicast
// events to two subscribers, bursts, delayed replies, malformed datagrams.
// Independent of the library, so it also proves the VM harness itself.
#include "check.hpp"
#include "raw_connector.hpp"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>

using namespace guest;

namespace {

constexpr std::uint32_t idx = CNASIO_ECHO_DEFAULT_IDX;
constexpr std::uint32_t val = CNASIO_ECHO_DEFAULT_VAL;

std::optional<echo_reply> exchange(raw_connector& s, std::uint32_t seq, std::uint32_t ack,
                                   std::span<const std::uint8_t> payload, int timeout_ms = 2000)
{
    auto bytes = raw_connector::build(idx, val, seq, ack, payload);
    if (!CHECK(s.send_bytes(bytes) == static_cast<ssize_t>(bytes.size())))
        return std::nullopt;
    auto r = s.receive(timeout_ms);
    if (!CHECK(r.has_value()))
        return std::nullopt;
    CHECK(r->sender_port == 0u);
    CHECK(r->idx == idx);
    CHECK(r->val == val);
    CHECK(r->seq == seq);
    CHECK(r->ack == ack + 1);
    return decode_reply(*r);
}

void echo_round_trip()
{
    raw_connector s;
    std::string text = "hello from the guest";
    auto rep = exchange(s, 1000, 777, request_payload(CNASIO_ECHO_CMD_ECHO, 0, bytes_of(text)));
    REQUIRE(rep.has_value());
    CHECK(rep->err == 0);
    CHECK(rep->arg == text.size());
    CHECK(std::string(rep->data.begin(), rep->data.end()) == text);

    // ack + 1 wraps.
    rep = exchange(s, 1001, 0xffffffffu, request_payload(CNASIO_ECHO_CMD_ECHO, 0));
    REQUIRE(rep.has_value());
    CHECK(rep->err == 0);
    CHECK(rep->data.empty());

    // The largest accepted payload comes back intact.
    std::vector<std::uint8_t> big(CNASIO_ECHO_MAX_DATA);
    for (std::size_t i = 0; i < big.size(); ++i)
        big[i] = static_cast<std::uint8_t>(i * 7);
    rep = exchange(s, 1002, 1, request_payload(CNASIO_ECHO_CMD_ECHO, 0, big));
    REQUIRE(rep.has_value());
    CHECK(rep->err == 0);
    CHECK(rep->data == big);
}

void reply_goes_to_true_sender()
{
    raw_connector a, b;
    // a claims to be b in nlmsg_pid; the reply must still come to a.
    auto bytes = raw_connector::build(idx, val, 5, 6, request_payload(CNASIO_ECHO_CMD_ECHO, 0),
                                      b.port());
    REQUIRE(a.send_bytes(bytes) > 0);
    auto r = a.receive(2000);
    CHECK(r.has_value() && r->seq == 5 && r->ack == 7);
    CHECK(!b.receive(100).has_value());
}

void error_replies()
{
    raw_connector s;
    auto expect_err = [&](std::uint32_t seq, std::span<const std::uint8_t> payload, int err,
                          const char* what) {
        auto rep = exchange(s, seq, seq * 3, payload);
        bool ok = rep.has_value() && rep->err == err && rep->data.empty();
        if (!CHECK(ok))
            std::printf("  %s: expected err %d, got %d\n", what, err, rep ? rep->err : -1);
    };
    expect_err(2000, request_payload(99, 0), EINVAL, "unknown cmd");
    expect_err(2001, request_payload(0, 0), EINVAL, "cmd 0");
    std::vector<std::uint8_t> truncated{1, 0, 0};
    expect_err(2002, truncated, EBADMSG, "3-byte payload");
    expect_err(2003, {}, EBADMSG, "empty payload");
    std::vector<std::uint8_t> oversized(CNASIO_ECHO_MAX_DATA + 1);
    expect_err(2004, request_payload(CNASIO_ECHO_CMD_ECHO, 0, oversized), EMSGSIZE, "oversized");
    expect_err(2005, request_payload(CNASIO_ECHO_CMD_BURST, CNASIO_ECHO_MAX_BURST + 1), ERANGE,
               "burst too long");
    expect_err(2006, request_payload(CNASIO_ECHO_CMD_DELAY, CNASIO_ECHO_MAX_DELAY_MS + 1), ERANGE,
               "delay too long");
    // The error reply names the command that failed.
    auto rep = exchange(s, 2007, 0, request_payload(42, 0));
    CHECK(rep && rep->arg == 42u);
}

void notify_two_subscribers()
{
    raw_connector requester, sub1, sub2;
    sub1.join(idx);
    sub2.join(idx);
    std::string text = "to everyone";
    auto rep = exchange(requester, 3000, 0, request_payload(CNASIO_ECHO_CMD_NOTIFY, 0, bytes_of(text)));
    REQUIRE(rep.has_value());
    CHECK(rep->err == 0);
    CHECK(rep->arg == 1u);
    for (auto* sub : {&sub1, &sub2}) {
        auto m = sub->receive(2000);
        REQUIRE(m.has_value());
        CHECK(m->sender_port == 0u);
        CHECK(m->idx == idx && m->val == val && m->ack == 0u);
        auto ev = decode_event(*m);
        REQUIRE(ev.has_value());
        CHECK(ev->head.kind == CNASIO_ECHO_EVENT_NOTIFY);
        CHECK(std::string(ev->data.begin(), ev->data.end()) == text);
    }
    // The requester did not join: it got the reply and nothing else.
    CHECK(!requester.receive(100).has_value());
}

void notify_without_listener()
{
    raw_connector s;
    auto rep = exchange(s, 3100, 0, request_payload(CNASIO_ECHO_CMD_NOTIFY, 0));
    CHECK(rep && rep->err == 0 && rep->arg == 0u);
}

void burst_in_order()
{
    raw_connector requester;
    raw_connector sub(1 << 22);
    sub.join(idx);
    constexpr std::uint32_t n = 500;
    auto rep = exchange(requester, 4000, 0, request_payload(CNASIO_ECHO_CMD_BURST, n));
    REQUIRE(rep.has_value());
    CHECK(rep->err == 0);
    CHECK(rep->arg == n);
    std::uint32_t burst_id = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
        auto m = sub.receive(2000);
        if (!CHECK(m.has_value()))
            return;
        auto ev = decode_event(*m);
        REQUIRE(ev.has_value());
        if (i == 0)
            burst_id = ev->head.burst;
        bool ok = ev->head.kind == CNASIO_ECHO_EVENT_BURST && ev->head.index == i &&
                  m->seq == i && ev->head.count == n && ev->head.burst == burst_id;
        if (!CHECK(ok)) {
            std::printf("  event %u: kind %u index %u seq %u count %u\n", i, ev->head.kind,
                        ev->head.index, m->seq, ev->head.count);
            return;
        }
    }
    CHECK(!sub.receive(100).has_value());
}

void delayed_reply()
{
    raw_connector s;
    std::string text = "later";
    auto bytes = raw_connector::build(idx, val, 5000, 41,
                                      request_payload(CNASIO_ECHO_CMD_DELAY, 300, bytes_of(text)));
    auto start = std::chrono::steady_clock::now();
    REQUIRE(s.send_bytes(bytes) > 0);
    CHECK(!s.receive(150).has_value());
    auto r = s.receive(3000);
    auto waited = std::chrono::steady_clock::now() - start;
    REQUIRE(r.has_value());
    // The module times the delay in jiffies, we in CLOCK_MONOTONIC; under
    // qemu's TCG on a loaded host the two drift apart by tens of ms (seen:
    // a 300 ms delay measured shorter). Immediate replies take microseconds.
    auto waited_ms = std::chrono::duration_cast<std::chrono::milliseconds>(waited).count();
    if (!CHECK(waited_ms >= 200))
        std::printf("  delayed reply after %lld ms\n", static_cast<long long>(waited_ms));
    CHECK(r->seq == 5000 && r->ack == 42);
    auto rep = decode_reply(*r);
    CHECK(rep && rep->err == 0 && rep->arg == 300u);
    CHECK(rep && std::string(rep->data.begin(), rep->data.end()) == text);
}

// Requests sent back to back before reading any reply: every one answered,
// each matched by seq and ack + 1.
void many_outstanding()
{
    raw_connector s(1 << 23);
    constexpr std::uint32_t n = 1000;
    for (std::uint32_t i = 0; i < n; ++i) {
        auto payload = request_payload(CNASIO_ECHO_CMD_ECHO, 0,
                                       bytes_of("n" + std::to_string(i)));
        auto bytes = raw_connector::build(idx, val, 10000 + i, i * 2, payload);
        if (!CHECK(s.send_bytes(bytes) > 0))
            return;
    }
    std::set<std::uint32_t> seen;
    for (std::uint32_t i = 0; i < n; ++i) {
        auto r = s.receive(2000);
        if (!CHECK(r.has_value()))
            break;
        std::uint32_t k = r->seq - 10000;
        auto rep = decode_reply(*r);
        bool ok = k < n && r->ack == k * 2 + 1 && rep && rep->err == 0 &&
                  std::string(rep->data.begin(), rep->data.end()) == "n" + std::to_string(k);
        if (!CHECK(ok))
            break;
        seen.insert(k);
    }
    CHECK(seen.size() == n);
}

// Datagrams the connector core itself rejects get no reply; the module keeps
// answering afterwards.
void malformed_datagrams()
{
    raw_connector s;
    auto good = raw_connector::build(idx, val, 6000, 1, request_payload(CNASIO_ECHO_CMD_ECHO, 0));

    // cn_msg.len claims more bytes than the datagram holds.
    auto lying = good;
    std::uint16_t big_len = 1000;
    std::memcpy(lying.data() + NLMSG_HDRLEN + offsetof(cn_msg, len), &big_len, sizeof big_len);
    s.send_bytes(lying);
    // nlmsg_len larger than the datagram.
    auto long_nl = good;
    std::uint32_t nl_len = 4000;
    std::memcpy(long_nl.data(), &nl_len, sizeof nl_len);
    s.send_bytes(long_nl);
    // Shorter than a cn_msg; shorter than an nlmsghdr; empty.
    std::vector<std::uint8_t> short_cn(good.begin(), good.begin() + NLMSG_HDRLEN + 8);
    std::uint32_t short_len = static_cast<std::uint32_t>(short_cn.size());
    std::memcpy(short_cn.data(), &short_len, sizeof short_len);
    s.send_bytes(short_cn);
    std::vector<std::uint8_t> tiny(good.begin(), good.begin() + 7);
    s.send_bytes(tiny);
    s.send_bytes({});
    CHECK(!s.receive(200).has_value());

    auto rep = exchange(s, 6001, 9, request_payload(CNASIO_ECHO_CMD_ECHO, 0));
    CHECK(rep && rep->err == 0);
}

void stats_count_requests()
{
    raw_connector s;
    auto first = exchange(s, 7000, 0, request_payload(CNASIO_ECHO_CMD_STATS, 0));
    REQUIRE(first && first->data.size() == sizeof(cnasio_echo_stats));
    exchange(s, 7001, 0, request_payload(CNASIO_ECHO_CMD_ECHO, 0));
    auto second = exchange(s, 7002, 0, request_payload(CNASIO_ECHO_CMD_STATS, 0));
    REQUIRE(second && second->data.size() == sizeof(cnasio_echo_stats));
    cnasio_echo_stats a, b;
    std::memcpy(&a, first->data.data(), sizeof a);
    std::memcpy(&b, second->data.data(), sizeof b);
    CHECK(b.requests == a.requests + 2);
    CHECK(b.replies == a.replies + 2);
    CHECK(b.delays_pending == 0u);
}

} // namespace

int main()
{
    try {
        echo_round_trip();
        reply_goes_to_true_sender();
        error_replies();
        notify_two_subscribers();
        notify_without_listener();
        burst_in_order();
        delayed_reply();
        many_outstanding();
        malformed_datagrams();
        stats_count_requests();
    } catch (const std::exception& e) {
        std::printf("exception: %s\n", e.what());
        ++failures();
    }
    return finish("raw_echo");
}
