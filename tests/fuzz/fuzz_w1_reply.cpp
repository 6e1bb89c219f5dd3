// Fuzz target: the 1-Wire reply path of cnasio::w1 (w1/protocol.hpp,
// w1/ds18b20.hpp) on arbitrary replies. Properties beyond "no sanitizer
// report":
//   - for_each_message / for_each_command visit views that lie inside their
//     input, back to back; without an error they cover it exactly;
//   - reply_rule: a part with neither the request's ack nor its seq + 1 is
//     never a part; one status per command at most before the answer ends
//     (a status with a command and a status other than ENODEV ends it exactly
//     at the last command); nothing is fed after the last part;
//   - read_answer: no error means every expected status came; what it
//     gathered fits in the bytes it was given;
//   - ds18b20::decode accepts only a 9-byte scratchpad whose CRC8 holds and
//     that is not all zeros, with a resolution of 9..12 bits;
//   - rom_id::parse accepts exactly what name() prints back (any case).
//
// Input: a byte of settings (commands 0..7), then parts: a byte saying which
// ack the part carries (0: seq + 1, data; 1: the request's ack, status;
// other: another), a byte of length, that many bytes of payload.
#include <cnasio/w1/ds18b20.hpp>
#include <cnasio/w1/protocol.hpp>

#include "fuzz_check.hpp"

#include <cctype>
#include <cerrno>
#include <string>
#include <vector>

using namespace cnasio;

namespace {

void check_views(std::span<const std::byte> payload) {
    std::size_t covered = 0;
    const std::byte* expect = payload.data();
    const error_code ec = w1::for_each_message(payload, [&](const w1::message_view& m) {
        FUZZ_CHECK(m.data.data() == expect + w1::msg_header_size);
        FUZZ_CHECK(m.data.data() + m.data.size() <= payload.data() + payload.size());
        expect = m.data.data() + m.data.size();
        covered += w1::msg_header_size + m.data.size();
        std::size_t cmd_covered = 0;
        const error_code cec = w1::for_each_command(m.data, [&](const w1::command_view& c) {
            FUZZ_CHECK(c.data.data() >= m.data.data() && c.data.data() + c.data.size() <= m.data.data() + m.data.size());
            cmd_covered += w1::cmd_header_size + c.data.size();
        });
        FUZZ_CHECK(cec ? cmd_covered < m.data.size() : cmd_covered == m.data.size());
    });
    FUZZ_CHECK(ec ? covered < payload.size() : covered == payload.size());
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::input in(data, size);
    const std::size_t commands = in.take<std::uint8_t>() % 8;
    connector::header request;
    request.id = w1::connector_id;
    request.seq = 100;
    request.ack = 5000;

    w1::reply_rule rule(commands);
    std::vector<connector::message> parts;
    std::size_t statuses = 0, total = 0;
    bool ended = false;
    while (!in.empty() && !ended) {
        const auto kind = in.take<std::uint8_t>();
        const auto len = in.take<std::uint8_t>();
        connector::message m;
        m.header = request;
        m.header.ack = kind == 0 ? request.seq + 1 : kind == 1 ? request.ack : kind;
        const auto bytes = in.take_bytes(len);
        m.payload.assign(bytes.begin(), bytes.end());
        check_views(bytes);
        const auto v = rule(request, m.view());
        if (kind > 1 && m.header.ack != request.seq + 1 && m.header.ack != request.ack) {
            FUZZ_CHECK(v == part_verdict::not_part);
            continue;
        }
        FUZZ_CHECK(v != part_verdict::not_part);
        parts.push_back(m);
        total += bytes.size();
        if (kind == 1 && bytes.size() >= w1::msg_header_size) {
            std::uint16_t mlen;
            std::memcpy(&mlen, bytes.data() + 2, 2);
            if (mlen >= w1::cmd_header_size) {
                ++statuses;
                const bool enodev = static_cast<std::uint8_t>(bytes[1]) == ENODEV;
                if (!enodev) FUZZ_CHECK((v == part_verdict::last) == (statuses >= commands));
            }
        }
        ended = v == part_verdict::last;
    }
    FUZZ_CHECK(statuses <= (commands == 0 ? 1 : commands));

    w1::answer a;
    const error_code ec = w1::read_answer(request, parts, commands, a);
    if (!ec) FUZZ_CHECK(a.statuses >= commands);
    FUZZ_CHECK(a.masters.size() * 4 + a.slaves.size() * 8 + a.data.size() <= total);

    // The same bytes as a scratchpad, and as a ROM id's name.
    const auto pad = std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size);
    w1::ds18b20::reading r;
    if (!w1::ds18b20::decode(pad, true, r)) {
        FUZZ_CHECK(size == 9);
        std::array<std::uint8_t, 9> b{};
        std::memcpy(b.data(), data, 9);
        FUZZ_CHECK(w1::crc8(b) == 0);
        FUZZ_CHECK(r.resolution >= 9 && r.resolution <= 12);
        FUZZ_CHECK(r.raw != w1::ds18b20::power_on_raw);
    }
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    if (const auto rom = w1::rom_id::parse(text)) {
        std::string lower(text);
        for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        FUZZ_CHECK(rom->name() == lower);
        FUZZ_CHECK(rom->crc_ok());
    }
    return 0;
}
