// Fuzz target: datagram_reader over arbitrary bytes.
//
// Input: byte 0 bit 0 = the MSG_TRUNC flag, the rest = one received datagram.
// Beyond "no crash, no read outside the bytes" (ASan, UBSan) it checks:
// - the walk ends, within one step per 16 bytes (+1 for the truncation report);
// - it agrees, message for message, with a plain model of the rules written
//   in framing.hpp (NOOP and error-0 skipped, errno of NLMSG_ERROR, which
//   lengths end the walk and which lose one message, every cn_msg of a
//   W1_CN_BUNDLE netlink message, 1-3 trailing bytes as padding and 4-19 as
//   bundle_trailing_bytes);
// - every good message lies inside the datagram and its header fields are
//   the bytes at their wire offsets;
// - a truncated datagram never passes without an error;
// - for_each_message sees what next() sees;
// - a good message rebuilt with build_datagram parses back to itself.
#include <cnasio/connector/framing.hpp>

#include "fuzz_check.hpp"

#include <climits>
#include <vector>

using namespace cnasio;
using namespace cnasio::connector;

namespace {

struct step {
    error_code ec;
    std::size_t at = 0;          // offset of the netlink message
    std::size_t payload_at = 0;  // good messages: offset and size of the payload
    std::size_t payload_len = 0;
    std::size_t cn_at = 0;       // good messages: offset of the cn_msg (several per netlink message in a bundle)
};

template <class T>
T read_at(std::span<const std::byte> d, std::size_t at) {
    T v;
    std::memcpy(&v, d.data() + at, sizeof v);
    return v;
}

// The rules of framing.hpp, written out once more as a flat loop.
std::vector<step> model(std::span<const std::byte> d, bool truncated) {
    std::vector<step> out;
    std::size_t off = 0;
    const std::size_t n = d.size();
    for (;;) {
        const std::size_t rest = n - off;
        if (rest == 0) {
            if (truncated) out.push_back({error::datagram_truncated});
            return out;
        }
        if (rest < 16) {
            out.push_back({truncated ? error::datagram_truncated : error::header_truncated, off});
            return out;
        }
        const auto len = read_at<std::uint32_t>(d, off);
        if (len < 16) {
            out.push_back({error::length_below_header, off});
            return out;
        }
        if (len > rest) {
            out.push_back({truncated ? error::datagram_truncated : error::length_beyond_datagram, off});
            return out;
        }
        const auto nl_type = read_at<std::uint16_t>(d, off + 4);
        const std::size_t body = off + 16, body_len = len - 16;
        const std::size_t padded = (len + 3u) / 4u * 4u;
        const std::size_t next = padded < rest ? off + padded : n;
        if (nl_type == NLMSG_NOOP) {
        } else if (nl_type == NLMSG_OVERRUN) {
            out.push_back({error::netlink_overrun, off});
        } else if (nl_type == NLMSG_ERROR) {
            if (body_len < 4) {
                out.push_back({error::error_message_truncated, off});
            } else {
                const auto err = read_at<std::int32_t>(d, body);
                if (err != 0) {
                    const int e = err == INT_MIN ? EINVAL : (err < 0 ? -err : err);
                    out.push_back({errno_code(e), off});
                }
            }
        } else if (body_len < 20) {
            out.push_back({error::connector_header_truncated, off});
        } else {
            // cn_msg after cn_msg, back to back, to the end of the netlink message.
            const std::size_t stop = off + len;
            for (std::size_t cn = body;;) {
                const std::size_t left = stop - cn;
                if (left < 20) {
                    if (left > 3) out.push_back({error::bundle_trailing_bytes, off});
                    break;
                }
                const std::size_t data_len = read_at<std::uint16_t>(d, cn + 16);
                if (data_len > left - 20) {
                    out.push_back({error::connector_length_beyond_message, off});
                    break;
                }
                out.push_back({{}, off, cn + 20, data_len, cn});
                cn += 20 + data_len;
            }
        }
        off = next;
    }
}

bool ends_walk(const error_code& ec) {
    return ec == error::header_truncated || ec == error::length_below_header ||
           ec == error::length_beyond_datagram || ec == error::datagram_truncated;
}

bool same_header(const header& a, const header& b) {
    return a.id == b.id && a.seq == b.seq && a.ack == b.ack && a.flags == b.flags && a.nlmsg_type == b.nlmsg_type &&
           a.nlmsg_flags == b.nlmsg_flags && a.nlmsg_seq == b.nlmsg_seq && a.nlmsg_pid == b.nlmsg_pid;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const bool truncated = (data[0] & 1u) != 0;
    // libFuzzer's buffer is exactly `size` long, so ASan sees any read past it.
    const std::span<const std::byte> d{reinterpret_cast<const std::byte*>(data + 1), size - 1};
    const std::byte* const begin = d.data();
    const std::byte* const end = begin + d.size();

    const std::vector<step> expected = model(d, truncated);

    datagram_reader r(d, truncated);
    message_view m;
    error_code ec;
    std::size_t calls = 0, errors = 0;
    std::vector<step> seen;
    std::vector<message_view> good;
    bool ended = false;
    while (r.next(m, ec)) {
        ++calls;
        FUZZ_CHECK(!ended); // nothing after an error that ends the walk
        FUZZ_CHECK(calls <= d.size() / netlink_header_size + 1);
        FUZZ_CHECK(seen.size() < expected.size());
        const step& want = expected[seen.size()];
        FUZZ_CHECK(ec == want.ec);
        if (ec) {
            ++errors;
            ended = ends_walk(ec);
            seen.push_back({ec});
            continue;
        }
        // A good message: inside the datagram, where the model put it, with
        // header fields that are the bytes at their offsets.
        FUZZ_CHECK(m.payload.data() >= begin && m.payload.data() + m.payload.size() <= end);
        FUZZ_CHECK(static_cast<std::size_t>(m.payload.data() - begin) == want.payload_at);
        FUZZ_CHECK(m.payload.size() == want.payload_len);
        FUZZ_CHECK(m.header.nlmsg_type != NLMSG_NOOP && m.header.nlmsg_type != NLMSG_ERROR &&
                   m.header.nlmsg_type != NLMSG_OVERRUN);
        const std::size_t at = want.at;
        FUZZ_CHECK(m.header.nlmsg_type == read_at<std::uint16_t>(d, at + 4));
        FUZZ_CHECK(m.header.nlmsg_flags == read_at<std::uint16_t>(d, at + 6));
        FUZZ_CHECK(m.header.nlmsg_seq == read_at<std::uint32_t>(d, at + 8));
        FUZZ_CHECK(m.header.nlmsg_pid == read_at<std::uint32_t>(d, at + 12));
        const std::size_t cn = want.cn_at;
        FUZZ_CHECK(m.header.id.idx == read_at<std::uint32_t>(d, cn + 0));
        FUZZ_CHECK(m.header.id.val == read_at<std::uint32_t>(d, cn + 4));
        FUZZ_CHECK(m.header.seq == read_at<std::uint32_t>(d, cn + 8));
        FUZZ_CHECK(m.header.ack == read_at<std::uint32_t>(d, cn + 12));
        FUZZ_CHECK(m.header.flags == read_at<std::uint16_t>(d, cn + 18));
        seen.push_back(want);
        good.push_back(m);
    }
    FUZZ_CHECK(seen.size() == expected.size());
    FUZZ_CHECK(!r.next(m, ec)); // stays at the end
    if (truncated) FUZZ_CHECK(errors > 0);

    // The callback form walks the same way.
    std::size_t cb_good = 0, cb_bad = 0;
    for_each_message(
        d, truncated,
        [&](const message_view& v) {
            FUZZ_CHECK(cb_good < good.size());
            FUZZ_CHECK(v.payload.data() == good[cb_good].payload.data());
            ++cb_good;
        },
        [&](const error_code& e, const message_view&) {
            FUZZ_CHECK(e);
            ++cb_bad;
        });
    FUZZ_CHECK(cb_good == good.size() && cb_bad == errors);

    // Rebuilt alone, each good message parses back to the same fields.
    for (const message_view& v : good) {
        error_code bec;
        const std::vector<std::byte> again = build_datagram(v.header, v.payload, bec);
        if (v.payload.size() > max_payload) {
            FUZZ_CHECK(bec == error::payload_too_large && again.empty());
            continue;
        }
        FUZZ_CHECK(!bec && again.size() == header_size + v.payload.size());
        message_view back;
        FUZZ_CHECK(!parse_message(again, back));
        FUZZ_CHECK(same_header(back.header, v.header));
        FUZZ_CHECK(fuzz::same_bytes(back.payload, v.payload));
    }
    return 0;
}
