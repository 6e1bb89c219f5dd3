// Fuzz target: build_datagram and datagram_reader are inverses.
//
// The input describes up to 8 messages (header fields, payload size, payload
// bytes) and how they are packed into one datagram: each message is built with
// build_datagram and padded to 4 bytes (padding bytes also from the input), the
// last one optionally left unpadded as user-space senders do. Parsing the
// datagram back must give every message, in order, with equal fields.
// Around it: a buffer one byte short is refused without a write, and a payload
// above CONNECTOR_MAX_MSG_SIZE is refused.
#include <cnasio/connector/framing.hpp>

#include "fuzz_check.hpp"

#include <algorithm>
#include <vector>

using namespace cnasio;
using namespace cnasio::connector;

namespace {

struct planned {
    header h;
    std::vector<std::byte> payload;
};

bool same_header(const header& a, const header& b) {
    return a.id == b.id && a.seq == b.seq && a.ack == b.ack && a.flags == b.flags && a.nlmsg_type == b.nlmsg_type &&
           a.nlmsg_flags == b.nlmsg_flags && a.nlmsg_seq == b.nlmsg_seq && a.nlmsg_pid == b.nlmsg_pid;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::input in(data, size);
    const std::size_t count = 1 + in.take<std::uint8_t>() % 8;
    const bool pad_last = in.take_bool();

    std::vector<planned> plan;
    std::vector<std::byte> datagram;
    for (std::size_t i = 0; i < count; ++i) {
        planned p;
        p.h.nlmsg_type = in.take<std::uint16_t>();
        // NOOP, ERROR and OVERRUN are not connector messages (see framing.hpp).
        if (p.h.nlmsg_type == NLMSG_NOOP || p.h.nlmsg_type == NLMSG_ERROR || p.h.nlmsg_type == NLMSG_OVERRUN)
            p.h.nlmsg_type = NLMSG_DONE;
        p.h.nlmsg_flags = in.take<std::uint16_t>();
        p.h.nlmsg_seq = in.take<std::uint32_t>();
        p.h.nlmsg_pid = in.take<std::uint32_t>();
        p.h.id.idx = in.take<std::uint32_t>();
        p.h.id.val = in.take<std::uint32_t>();
        p.h.seq = in.take<std::uint32_t>();
        p.h.ack = in.take<std::uint32_t>();
        p.h.flags = in.take<std::uint16_t>();
        // Payload sizes up to just above the limit; bytes past the input's end are zero.
        const std::size_t want = in.take_upto(max_payload + 8);
        const auto bytes = in.take_bytes(want);
        p.payload.assign(bytes.begin(), bytes.end());
        p.payload.resize(want);

        error_code ec;
        if (want > max_payload) {
            const auto refused = build_datagram(p.h, p.payload, ec);
            FUZZ_CHECK(ec == error::payload_too_large && refused.empty());
            p.payload.resize(max_payload); // carry on with the largest allowed
        }

        // Exactly the size needed works; one byte less is refused and leaves the buffer alone.
        const std::size_t total = datagram_size(p.payload.size());
        std::vector<std::byte> shorter(total - 1, std::byte{0xa5});
        FUZZ_CHECK(build_datagram(shorter, p.h, p.payload, ec) == 0 && ec == error::buffer_too_small);
        FUZZ_CHECK(std::all_of(shorter.begin(), shorter.end(), [](std::byte b) { return b == std::byte{0xa5}; }));

        const std::size_t at = datagram.size();
        datagram.resize(at + total);
        FUZZ_CHECK(build_datagram(std::span<std::byte>(datagram).subspan(at), p.h, p.payload, ec) == total);
        FUZZ_CHECK(!ec);
        // nlmsg_len is the unpadded size.
        std::uint32_t nlmsg_len;
        std::memcpy(&nlmsg_len, datagram.data() + at, sizeof nlmsg_len);
        FUZZ_CHECK(nlmsg_len == total);

        if (i + 1 < count || pad_last) {
            while (datagram.size() % 4 != 0) datagram.push_back(in.take<std::byte>());
        }
        plan.push_back(std::move(p));
    }

    // Copy to an exact-size heap block so that ASan catches a read past the end.
    std::vector<std::byte> exact(datagram);
    datagram_reader r(exact);
    message_view m;
    error_code ec;
    std::size_t got = 0;
    while (r.next(m, ec)) {
        FUZZ_CHECK(!ec);
        FUZZ_CHECK(got < plan.size());
        FUZZ_CHECK(same_header(m.header, plan[got].h));
        FUZZ_CHECK(fuzz::same_bytes(m.payload, plan[got].payload));
        ++got;
    }
    FUZZ_CHECK(got == plan.size());
    FUZZ_CHECK(r.skipped() == 0);

    // The owning message keeps what the view showed.
    if (!plan.empty()) {
        message_view first;
        FUZZ_CHECK(!parse_message(exact, first));
        const message owned(first);
        FUZZ_CHECK(same_header(owned.header, plan[0].h));
        FUZZ_CHECK(fuzz::same_bytes(owned.view().payload, plan[0].payload));
    }
    return 0;
}
