// The framing layer against hand-made datagrams: every malformed case has its
// own error, and nothing is read outside the bytes given.
#include <cnasio/connector/framing.hpp>

#include <doctest/doctest.h>

#include <cstring>
#include <vector>

using namespace cnasio;
using namespace cnasio::connector;

namespace {

// Writes the fields of one netlink message by hand, independent of build_datagram.
struct wire {
    std::vector<std::byte> bytes;

    template <class T> void put(std::size_t at, T v) {
        if (bytes.size() < at + sizeof v) bytes.resize(at + sizeof v);
        std::memcpy(bytes.data() + at, &v, sizeof v);
    }
    // Appends nlmsghdr (+ cn_msg + data unless raw), padded to 4 bytes unless told not to.
    std::size_t add(std::uint32_t nlmsg_len, std::uint16_t type, std::uint32_t cn_seq, std::uint32_t cn_ack,
                    std::uint16_t cn_len, std::string_view data, bool pad = true) {
        const std::size_t at = bytes.size();
        put<std::uint32_t>(at + 0, nlmsg_len);
        put<std::uint16_t>(at + 4, type);
        put<std::uint16_t>(at + 6, 0);
        put<std::uint32_t>(at + 8, cn_seq);
        put<std::uint32_t>(at + 12, 77); // nlmsg_pid: whatever the sender claims
        put<std::uint32_t>(at + 16, 14); // idx
        put<std::uint32_t>(at + 20, 1);  // val
        put<std::uint32_t>(at + 24, cn_seq);
        put<std::uint32_t>(at + 28, cn_ack);
        put<std::uint16_t>(at + 32, cn_len);
        put<std::uint16_t>(at + 34, 0x5);
        bytes.resize(at + 36 + data.size());
        std::memcpy(bytes.data() + at + 36, data.data(), data.size());
        if (pad) bytes.resize((bytes.size() + 3) & ~std::size_t{3});
        return at;
    }
    std::size_t add_message(std::uint32_t seq, std::uint32_t ack, std::string_view data, bool pad = true) {
        return add(static_cast<std::uint32_t>(36 + data.size()), NLMSG_DONE, seq, ack,
                   static_cast<std::uint16_t>(data.size()), data, pad);
    }
    std::span<const std::byte> span() const { return bytes; }
};

std::string text(std::span<const std::byte> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

bool same_header(const header& a, const header& b) {
    return a.id == b.id && a.seq == b.seq && a.ack == b.ack && a.flags == b.flags && a.nlmsg_type == b.nlmsg_type &&
           a.nlmsg_flags == b.nlmsg_flags && a.nlmsg_seq == b.nlmsg_seq && a.nlmsg_pid == b.nlmsg_pid;
}

// Reads the whole datagram: good messages' payloads and the errors, in order.
// Walks it twice, with next() and with for_each() (whose fast path is separate
// code), and requires both to see exactly the same messages and errors.
struct walk {
    std::vector<std::string> payloads;
    std::vector<error_code> errors;
    std::vector<message_view> views;
    walk(std::span<const std::byte> d, bool truncated = false) {
        struct seen {
            error_code ec;
            message_view m;
        };
        std::vector<seen> by_next, by_for_each;
        datagram_reader r(d, truncated);
        message_view m;
        error_code ec;
        int guard = 0;
        while (r.next(m, ec) && ++guard < 100) {
            by_next.push_back({ec, m});
            if (ec)
                errors.push_back(ec);
            else {
                payloads.push_back(text(m.payload));
                views.push_back(m);
            }
        }
        REQUIRE(guard < 100);
        datagram_reader(d, truncated)
            .for_each([&](const message_view& v) { by_for_each.push_back({{}, v}); },
                      [&](error_code e, const message_view& v) { by_for_each.push_back({e, v}); });
        REQUIRE(by_for_each.size() == by_next.size());
        for (std::size_t i = 0; i < by_next.size(); ++i) {
            CAPTURE(i);
            CHECK(by_for_each[i].ec == by_next[i].ec);
            CHECK(same_header(by_for_each[i].m.header, by_next[i].m.header));
            CHECK(by_for_each[i].m.payload.data() == by_next[i].m.payload.data());
            CHECK(by_for_each[i].m.payload.size() == by_next[i].m.payload.size());
        }
    }
};

} // namespace

TEST_SUITE("framing: parsing") {
    TEST_CASE("one well-formed message: every field read") {
        wire w;
        w.add_message(7, 8, "hello");
        walk r(w.span());
        REQUIRE(r.errors.empty());
        REQUIRE(r.payloads == std::vector<std::string>{"hello"});
        const auto& m = r.views[0];
        CHECK(m.header.id == id{14, 1});
        CHECK(m.seq() == 7);
        CHECK(m.ack() == 8);
        CHECK(m.header.flags == 0x5);
        CHECK(m.header.nlmsg_type == NLMSG_DONE);
        CHECK(m.header.nlmsg_pid == 77);
        CHECK(m.header.nlmsg_seq == 7);
    }

    TEST_CASE("several messages in one datagram are all walked, in order") {
        wire w;
        w.add_message(1, 0, "a");
        w.add_message(2, 0, "");
        w.add_message(3, 0, "three");
        walk r(w.span());
        CHECK(r.errors.empty());
        CHECK(r.payloads == std::vector<std::string>{"a", "", "three"});
    }

    TEST_CASE("a user-space sender's unpadded last message (nlmsg_len 47) is accepted") {
        wire w;
        w.add_message(1, 0, "12345678901", /*pad=*/false);
        REQUIRE(w.bytes.size() == 47);
        walk r(w.span());
        CHECK(r.errors.empty());
        CHECK(r.payloads == std::vector<std::string>{"12345678901"});
    }

    TEST_CASE("the kernel's padded message: nlmsg_len unrounded, datagram rounded") {
        wire w;
        w.add_message(1, 0, "abc"); // 39 bytes + 1 padding
        REQUIRE(w.bytes.size() == 40);
        walk r(w.span());
        CHECK(r.payloads == std::vector<std::string>{"abc"});
        CHECK(r.errors.empty());
    }

    TEST_CASE("misaligned buffers parse the same (payload at an odd address)") {
        wire w;
        w.add_message(0x01020304, 0x0a0b0c0d, "payload!");
        std::vector<std::byte> shifted(w.bytes.size() + 1);
        std::memcpy(shifted.data() + 1, w.bytes.data(), w.bytes.size());
        walk r(std::span<const std::byte>(shifted).subspan(1));
        REQUIRE(r.views.size() == 1);
        CHECK(r.views[0].seq() == 0x01020304);
        CHECK(r.views[0].ack() == 0x0a0b0c0d);
        CHECK(r.payloads[0] == "payload!");
    }

    TEST_CASE("an empty datagram has no messages") {
        walk r({});
        CHECK(r.payloads.empty());
        CHECK(r.errors.empty());
        message_view m;
        CHECK(parse_message({}, m) == error::header_truncated);
    }

    TEST_CASE("fewer bytes than a netlink header: header_truncated") {
        for (std::size_t n : {1u, 4u, 15u}) {
            std::vector<std::byte> b(n);
            walk r(b);
            REQUIRE(r.errors.size() == 1);
            CHECK(r.errors[0] == error::header_truncated);
        }
    }

    TEST_CASE("trailing bytes after a good message that cannot be a header: header_truncated") {
        wire w;
        w.add_message(1, 0, "ok");
        w.bytes.resize(w.bytes.size() + 8);
        walk r(w.span());
        CHECK(r.payloads == std::vector<std::string>{"ok"});
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0] == error::header_truncated);
    }

    TEST_CASE("nlmsg_len smaller than the header: length_below_header, walk ends") {
        for (std::uint32_t len : {0u, 1u, 15u}) {
            wire w;
            w.add_message(1, 0, "x");
            w.put<std::uint32_t>(0, len);
            w.add_message(2, 0, "never reached");
            walk r(w.span());
            REQUIRE(r.errors.size() == 1);
            CHECK(r.errors[0] == error::length_below_header);
            CHECK(r.payloads.empty());
        }
    }

    TEST_CASE("nlmsg_len past the end of the datagram: length_beyond_datagram") {
        wire w;
        w.add_message(1, 0, "first");
        const auto at = w.add_message(2, 0, "second");
        w.put<std::uint32_t>(at, 0xffffffffu); // a lying length field
        walk r(w.span());
        CHECK(r.payloads == std::vector<std::string>{"first"});
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0] == error::length_beyond_datagram);
    }

    TEST_CASE("a datagram cut short by the receive buffer (MSG_TRUNC): datagram_truncated") {
        wire w;
        w.add_message(1, 0, "first");
        w.add_message(2, 0, "second, cut");
        const auto cut = std::span<const std::byte>(w.bytes).first(w.bytes.size() - 4);
        walk r(cut, /*truncated=*/true);
        CHECK(r.payloads == std::vector<std::string>{"first"});
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0] == error::datagram_truncated);

        SUBCASE("cut exactly between messages: still reported") {
            wire one;
            one.add_message(1, 0, "only");
            walk t(one.span(), true);
            CHECK(t.payloads == std::vector<std::string>{"only"});
            REQUIRE(t.errors.size() == 1);
            CHECK(t.errors[0] == error::datagram_truncated);
        }
        SUBCASE("cut inside a header") {
            wire one;
            one.add_message(1, 0, "only");
            walk t(std::span<const std::byte>(one.bytes).first(10), true);
            REQUIRE(t.errors.size() == 1);
            CHECK(t.errors[0] == error::datagram_truncated);
        }
    }

    TEST_CASE("netlink payload shorter than cn_msg: connector_header_truncated, next message still read") {
        wire w;
        const auto at = w.add_message(1, 0, "");
        w.put<std::uint32_t>(at, 16 + 19); // one byte short of a cn_msg
        // The message's frame stays 36 bytes long as laid out; make the next start at align4(35)=36.
        w.add_message(2, 0, "next");
        walk r(w.span());
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0] == error::connector_header_truncated);
        CHECK(r.payloads == std::vector<std::string>{"next"});
    }

    TEST_CASE("cn_msg.len past its netlink message: connector_length_beyond_message") {
        wire w;
        w.add(36 + 4, NLMSG_DONE, 1, 0, /*cn_len=*/5, "abcd");
        w.add_message(2, 0, "after");
        walk r(w.span());
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0] == error::connector_length_beyond_message);
        CHECK(r.payloads == std::vector<std::string>{"after"});

        SUBCASE("cn_msg.len may not borrow the next message's bytes") {
            wire v;
            v.add(36 + 4, NLMSG_DONE, 1, 0, 40, "abcd");
            v.add_message(2, 0, "this message is long enough to cover it");
            walk t(v.span());
            REQUIRE(t.errors.size() == 1);
            CHECK(t.errors[0] == error::connector_length_beyond_message);
        }
    }

    TEST_CASE("cn_msg.len shorter than the netlink payload by 1 to 3 bytes: the rest is padding") {
        for (std::uint32_t pad = 1; pad <= 3; ++pad) {
            CAPTURE(pad);
            wire w;
            w.add(36 + 3 + pad, NLMSG_DONE, 1, 0, 3, std::string_view("abcdefgh", 3 + pad));
            w.add_message(2, 0, "after");
            walk r(w.span());
            CHECK(r.errors.empty());
            CHECK(r.payloads == std::vector<std::string>{"abc", "after"});
        }
    }

    TEST_CASE("4 to 19 bytes after the last cn_msg form no cn_msg: bundle_trailing_bytes, the message itself kept") {
        for (std::uint32_t extra : {4u, 5u, 19u}) {
            CAPTURE(extra);
            wire w;
            const std::string data = "abc" + std::string(extra, 'x');
            w.add(static_cast<std::uint32_t>(36 + data.size()), NLMSG_DONE, 1, 0, 3, data);
            w.add_message(2, 0, "after");
            walk r(w.span());
            CHECK(r.payloads == std::vector<std::string>{"abc", "after"});
            REQUIRE(r.errors.size() == 1);
            CHECK(r.errors[0] == error::bundle_trailing_bytes);
        }
    }
    TEST_CASE("NLMSG_NOOP is skipped, NLMSG_ERROR carries the errno, an error 0 ack is skipped") {
        wire w;
        auto at = w.bytes.size();
        w.put<std::uint32_t>(at, 16);
        w.put<std::uint16_t>(at + 4, NLMSG_NOOP);
        w.put<std::uint16_t>(at + 6, 0);
        w.put<std::uint32_t>(at + 8, 0);
        w.put<std::uint32_t>(at + 12, 0);
        at = w.bytes.size(); // NLMSG_ERROR -EPERM echoing a request with nlmsg_seq 42
        w.put<std::uint32_t>(at, 16 + 4 + 16);
        w.put<std::uint16_t>(at + 4, NLMSG_ERROR);
        w.put<std::uint16_t>(at + 6, 0);
        w.put<std::uint32_t>(at + 8, 0);
        w.put<std::uint32_t>(at + 12, 0);
        w.put<std::int32_t>(at + 16, -EPERM);
        w.put<std::uint32_t>(at + 20, 36);
        w.put<std::uint16_t>(at + 24, NLMSG_DONE);
        w.put<std::uint16_t>(at + 26, 0);
        w.put<std::uint32_t>(at + 28, 42);
        w.put<std::uint32_t>(at + 32, 0);
        at = w.bytes.size(); // NLMSG_ERROR 0: an ack
        w.put<std::uint32_t>(at, 20);
        w.put<std::uint16_t>(at + 4, NLMSG_ERROR);
        w.put<std::uint16_t>(at + 6, 0);
        w.put<std::uint32_t>(at + 8, 0);
        w.put<std::uint32_t>(at + 12, 0);
        w.put<std::int32_t>(at + 16, 0);
        w.add_message(5, 0, "data");

        datagram_reader reader(w.span());
        message_view m;
        error_code ec;
        REQUIRE(reader.next(m, ec));
        CHECK(ec == std::errc::operation_not_permitted);
        CHECK(m.header.nlmsg_type == NLMSG_ERROR);
        CHECK(m.header.nlmsg_seq == 42);
        REQUIRE(reader.next(m, ec));
        CHECK_FALSE(ec);
        CHECK(text(m.payload) == "data");
        CHECK_FALSE(reader.next(m, ec));
        CHECK(reader.skipped() == 2);
    }

    TEST_CASE("NLMSG_ERROR too short for its errno: error_message_truncated") {
        wire w;
        w.put<std::uint32_t>(0, 18);
        w.put<std::uint16_t>(4, NLMSG_ERROR);
        w.put<std::uint16_t>(6, 0);
        w.put<std::uint64_t>(8, 0);
        w.bytes.resize(20);
        walk r(w.span());
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0] == error::error_message_truncated);
    }

    TEST_CASE("NLMSG_OVERRUN: netlink_overrun") {
        wire w;
        w.put<std::uint32_t>(0, 16);
        w.put<std::uint16_t>(4, NLMSG_OVERRUN);
        w.put<std::uint16_t>(6, 0);
        w.put<std::uint64_t>(8, 0);
        walk r(w.span());
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0] == error::netlink_overrun);
    }

    TEST_CASE("every prefix of a valid datagram parses without reading past it") {
        // Under ASan, reading one byte too far in any prefix fails this test.
        wire w;
        w.add_message(1, 2, "first payload");
        w.add_message(3, 4, "second");
        for (std::size_t n = 0; n <= w.bytes.size(); ++n) {
            std::vector<std::byte> exact(w.bytes.begin(), w.bytes.begin() + static_cast<std::ptrdiff_t>(n));
            walk r(exact);
            CHECK(r.payloads.size() + r.errors.size() <= 2);
        }
    }
}

namespace {

// A W1_CN_BUNDLE netlink message as drivers/w1/w1_netlink.c builds it: one
// nlmsghdr, then cn_msg after cn_msg (each with its own len and ack), back to
// back with no padding, then `extra` raw bytes inside nlmsg_len.
struct bundled_part {
    std::uint32_t ack;
    std::string data;
    std::uint16_t len_field; // what the cn_msg claims
};
wire bundle(const std::vector<bundled_part>& parts, std::string_view extra = {}, std::uint32_t seq = 9) {
    wire w;
    std::size_t at = 16;
    for (const auto& p : parts) {
        w.put<std::uint32_t>(at + 0, 3); // CN_W1_IDX
        w.put<std::uint32_t>(at + 4, 1);
        w.put<std::uint32_t>(at + 8, seq);
        w.put<std::uint32_t>(at + 12, p.ack);
        w.put<std::uint16_t>(at + 16, p.len_field);
        w.put<std::uint16_t>(at + 18, 1); // W1_CN_BUNDLE, copied from the request
        w.bytes.resize(at + 20 + p.data.size());
        if (!p.data.empty()) std::memcpy(w.bytes.data() + at + 20, p.data.data(), p.data.size());
        at += 20 + p.data.size();
    }
    w.bytes.resize(at + extra.size());
    if (!extra.empty()) std::memcpy(w.bytes.data() + at, extra.data(), extra.size()); // data() may be null
    w.put<std::uint32_t>(0, static_cast<std::uint32_t>(w.bytes.size()));
    w.put<std::uint16_t>(4, NLMSG_DONE);
    w.put<std::uint16_t>(6, 0);
    w.put<std::uint32_t>(8, seq);
    w.put<std::uint32_t>(12, 0);
    w.bytes.resize((w.bytes.size() + 3) & ~std::size_t{3});
    return w;
}

} // namespace

TEST_SUITE("framing: W1_CN_BUNDLE bundles") {
    TEST_CASE("every cn_msg of a bundled netlink message is yielded, in order, each with its own header") {
        // Status, data, status of a scratchpad read: 9-, 12- and 9-byte-long bodies leave the cn_msg unaligned.
        wire w = bundle({{5, "status--1", 9}, {10, "data-9bytes!", 12}, {5, "status--2", 9}});
        w.add_message(2, 0, "after");
        walk r(w.span());
        CHECK(r.errors.empty());
        REQUIRE(r.payloads == std::vector<std::string>{"status--1", "data-9bytes!", "status--2", "after"});
        const std::uint32_t acks[] = {5, 10, 5};
        for (int i = 0; i < 3; ++i) {
            CAPTURE(i);
            const header& h = r.views[i].header;
            CHECK(h.id == id{3, 1});
            CHECK(h.seq == 9);
            CHECK(h.ack == acks[i]);
            CHECK(h.flags == 1);
            CHECK(h.nlmsg_type == NLMSG_DONE);
            CHECK(h.nlmsg_seq == 9); // the netlink header's, for every cn_msg in it
        }
    }

    TEST_CASE("a bundled cn_msg of len 0 (the kernel's empty flush) is a message like any other") {
        walk r(bundle({{0, "", 0}, {5, "st", 2}}).span());
        CHECK(r.errors.empty());
        CHECK(r.payloads == std::vector<std::string>{"", "st"});
    }

    TEST_CASE("bytes after a bundle's last cn_msg: up to 3 are padding, 4 to 19 bundle_trailing_bytes") {
        walk padded(bundle({{5, "a", 1}, {6, "b", 1}}, "\0\0\0").span());
        CHECK(padded.errors.empty());
        CHECK(padded.payloads == std::vector<std::string>{"a", "b"});
        for (std::size_t extra : {4u, 19u}) {
            CAPTURE(extra);
            wire w = bundle({{5, "a", 1}, {6, "b", 1}}, std::string(extra, '\0'));
            w.add_message(2, 0, "after");
            walk r(w.span());
            CHECK(r.payloads == std::vector<std::string>{"a", "b", "after"});
            REQUIRE(r.errors.size() == 1);
            CHECK(r.errors[0] == error::bundle_trailing_bytes);
        }
    }

    TEST_CASE("a bundled cn_msg whose len runs past its netlink message loses the rest of that message only") {
        wire w = bundle({{5, "ok", 2}, {6, "short", 40}, {7, "never", 5}});
        w.add_message(2, 0, "after");
        walk r(w.span());
        CHECK(r.payloads == std::vector<std::string>{"ok", "after"});
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0] == error::connector_length_beyond_message);
        CHECK(r.views.size() == 2);
    }

    TEST_CASE("every prefix of a bundle parses without reading past it") {
        // Under ASan, reading one byte too far in any prefix fails this test.
        wire w = bundle({{5, "status--1", 9}, {10, "data", 4}, {5, "s", 1}}, "xxxxx");
        for (std::size_t n = 0; n <= w.bytes.size(); ++n) {
            std::vector<std::byte> exact(w.bytes.begin(), w.bytes.begin() + static_cast<std::ptrdiff_t>(n));
            walk r(exact);
            CHECK(r.payloads.size() + r.errors.size() <= 4);
        }
    }
}

TEST_SUITE("framing: building") {
    TEST_CASE("build then parse round-trips every field") {
        header h;
        h.id = {CN_NETLINK_USERS + 3, 9};
        h.seq = 0xdeadbeef;
        h.ack = 0xffffffff;
        h.flags = 3;
        h.nlmsg_seq = 11;
        h.nlmsg_pid = 1234;
        const std::string data(1000, 'z');
        std::vector<std::byte> buf(2000);
        error_code ec;
        const auto n = build_datagram(buf, h, as_payload(data), ec);
        REQUIRE_FALSE(ec);
        CHECK(n == 36 + 1000);
        message_view m;
        REQUIRE_FALSE(parse_message(std::span<const std::byte>(buf).first(n), m));
        CHECK(m.header.id == h.id);
        CHECK(m.seq() == h.seq);
        CHECK(m.ack() == h.ack);
        CHECK(m.header.flags == 3);
        CHECK(m.header.nlmsg_seq == 11);
        CHECK(m.header.nlmsg_pid == 1234);
        CHECK(m.header.nlmsg_type == NLMSG_DONE);
        CHECK(text(m.payload) == data);
    }

    TEST_CASE("the largest payload is accepted, one more byte is refused before anything is written") {
        std::vector<std::byte> data(max_payload + 1, std::byte{1});
        std::vector<std::byte> buf(max_datagram + 16, std::byte{0xee});
        error_code ec;
        CHECK(build_datagram(buf, {}, std::span<const std::byte>(data).first(max_payload), ec) == max_datagram);
        CHECK_FALSE(ec);
        std::fill(buf.begin(), buf.end(), std::byte{0xee});
        CHECK(build_datagram(buf, {}, data, ec) == 0);
        CHECK(ec == error::payload_too_large);
        CHECK(buf[0] == std::byte{0xee});
        CHECK(build_datagram({}, data, ec).empty());
        CHECK(ec == error::payload_too_large);
    }

    TEST_CASE("a buffer too small is refused") {
        std::vector<std::byte> buf(36 + 3);
        error_code ec;
        CHECK(build_datagram(buf, {}, as_payload("four"), ec) == 0);
        CHECK(ec == error::buffer_too_small);
        CHECK(build_datagram(buf, {}, as_payload("thr"), ec) == 39);
        CHECK_FALSE(ec);
    }

    TEST_CASE("owning messages reuse their storage") {
        wire w;
        w.add_message(1, 0, std::string(100, 'a'));
        w.add_message(2, 0, "short");
        walk r(w.span());
        message m(r.views[0]);
        const auto* storage = m.payload.data();
        m.assign(r.views[1]);
        CHECK(m.payload.data() == storage);
        CHECK(text(m.payload) == "short");
        CHECK(m.seq() == 2);
    }

    TEST_CASE("as_payload takes text without its NUL and plain objects by value") {
        CHECK(as_payload("abc").size() == 3);
        const std::uint32_t op = 1;
        CHECK(as_payload(op).size() == 4);
    }
}
