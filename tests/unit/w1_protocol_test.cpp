// cnasio::w1 without I/O: ROM ids and CRC8, request encoding, reply parsing,
// the rule that ends an answer (as drivers/w1/w1_netlink.c sends it), the
// decoding of gathered answers, and the DS18B20 scratchpad.
#include <cnasio/w1/ds18b20.hpp>
#include <cnasio/w1/protocol.hpp>

#include <doctest/doctest.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace {

using namespace cnasio;
using namespace cnasio::w1;
using connector::header;
using connector::message;

std::vector<std::byte> bytes(std::initializer_list<int> v) {
    std::vector<std::byte> out;
    for (int b : v) out.push_back(std::byte(static_cast<unsigned char>(b)));
    return out;
}

// A reply as the kernel builds it: the request's cn_msg with its own ack, and
// one w1_netlink_msg holding at most one command.
message reply(const header& request, std::uint32_t ack, message_type type, std::uint8_t status,
              std::span<const std::uint8_t, 8> id, const command_spec* cmd) {
    std::vector<std::byte> p(msg_header_size);
    p[0] = std::byte(static_cast<std::uint8_t>(type));
    p[1] = std::byte(status);
    std::memcpy(p.data() + 4, id.data(), 8);
    if (cmd) {
        const std::size_t at = p.size();
        p.resize(at + cmd_header_size + cmd->data.size());
        p[at] = std::byte(static_cast<std::uint8_t>(cmd->cmd));
        const auto len = static_cast<std::uint16_t>(cmd->data.size());
        std::memcpy(p.data() + at + 2, &len, 2);
        if (!cmd->data.empty()) std::memcpy(p.data() + at + cmd_header_size, cmd->data.data(), cmd->data.size());
    }
    const auto msg_len = static_cast<std::uint16_t>(p.size() - msg_header_size);
    std::memcpy(p.data() + 2, &msg_len, 2);
    message m;
    m.header = request;
    m.header.ack = ack;
    m.payload.assign(p.begin(), p.end());
    return m;
}

header request_header() {
    header h;
    h.id = connector_id;
    h.seq = 1000;
    h.ack = 0x5eed;
    return h;
}

// DS18B20 scratchpad bytes with a correct CRC.
std::vector<std::byte> scratchpad(std::int16_t raw, std::uint8_t config = 0x7f) {
    std::array<std::uint8_t, 9> b{static_cast<std::uint8_t>(raw & 0xff), static_cast<std::uint8_t>((raw >> 8) & 0xff),
                                  0x4b, 0x46, config, 0xff, 0x0c, 0x10, 0};
    b[8] = crc8(std::span(b).first(8));
    std::vector<std::byte> out;
    for (auto x : b) out.push_back(std::byte(x));
    return out;
}

} // namespace

TEST_CASE("w1: CRC8 and ROM ids: the datasheet's example, names as sysfs writes them") {
    // Maxim application note 27's example ROM: family 02, serial 1C B8 01 00 00 00, CRC A2.
    const std::uint8_t rom[] = {0x02, 0x1c, 0xb8, 0x01, 0x00, 0x00, 0x00};
    CHECK(crc8(rom) == 0xa2);
    const rom_id r = rom_id::make(0x02, 0x01b81c);
    CHECK(r.crc() == 0xa2);
    CHECK(r.crc_ok());
    CHECK(r.family() == 0x02);
    CHECK(r.serial() == 0x01b81c);
    CHECK(r.name() == "02-00000001b81c");
    const auto back = rom_id::parse("02-00000001b81c");
    REQUIRE(back);
    CHECK(*back == r);
    rom_id bad = r;
    bad.bytes[3] ^= 1;
    CHECK_FALSE(bad.crc_ok());
    CHECK_FALSE(rom_id::parse("02-00000001b81"));   // short
    CHECK_FALSE(rom_id::parse("02_00000001b81c"));  // separator
    CHECK_FALSE(rom_id::parse("02-00000001b8-c"));  // not hex
    CHECK_FALSE(rom_id::parse("+2-00000001b81c"));
    CHECK(rom_id::parse("28-0000075BCD15")->serial() == 0x75bcd15);
}

TEST_CASE("w1: requests are one w1_netlink_msg with its commands, as drivers/w1/w1_netlink.h lays them out") {
    const auto lm = list_masters_request();
    CHECK(lm == bytes({6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}));

    const auto data = bytes({0xbe});
    const auto nine = std::vector<std::byte>(9);
    const command_spec cmds[] = {{command::write, data}, {command::read, nine}};
    const auto r = slave_request(rom_id::make(0x28, 0x0a1b2c3d), cmds);
    REQUIRE(r.size() == 12 + 4 + 1 + 4 + 9);
    CHECK(r[0] == std::byte{5});                     // W1_SLAVE_CMD
    CHECK(r[2] == std::byte{18});                    // len: both commands
    CHECK(r[4] == std::byte{0x28});                  // the ROM id, family first
    CHECK(r[5] == std::byte{0x3d});
    CHECK(r[12] == std::byte{1});                    // W1_CMD_WRITE
    CHECK(r[14] == std::byte{1});                    // its len
    CHECK(r[16] == std::byte{0xbe});
    CHECK(r[17] == std::byte{0});                    // W1_CMD_READ
    CHECK(r[19] == std::byte{9});

    const command_spec search[] = {{command::search, {}}};
    const auto m = master_request(0x01020304, search);
    CHECK(m == bytes({4, 0, 4, 0, 4, 3, 2, 1, 0, 0, 0, 0, 2, 0, 0, 0}));

    int seen = 0;
    CHECK_FALSE(for_each_message(r, [&](const message_view& v) {
        ++seen;
        CHECK(v.type == message_type::slave_cmd);
        CHECK(v.slave_id() == rom_id::make(0x28, 0x0a1b2c3d));
        int n = 0;
        CHECK_FALSE(for_each_command(v.data, [&](const command_view& c) {
            CHECK(c.cmd == (n == 0 ? command::write : command::read));
            CHECK(c.data.size() == (n == 0 ? 1u : 9u));
            ++n;
        }));
        CHECK(n == 2);
    }));
    CHECK(seen == 1);
}

TEST_CASE("w1: lengths that run past the payload are malformed, never read") {
    auto p = list_masters_request();
    p[2] = std::byte{1}; // len 1, but nothing follows
    CHECK(for_each_message(p, [](const message_view&) {}) == error::w1_reply_malformed);
    CHECK(for_each_message(std::span(p).first(11), [](const message_view&) {}) == error::w1_reply_malformed);
    const auto cmd = bytes({0, 0, 5, 0, 1, 2});
    CHECK(for_each_command(cmd, [](const command_view&) {}) == error::w1_reply_malformed);
    CHECK(for_each_command(std::span(cmd).first(3), [](const command_view&) {}) == error::w1_reply_malformed);
    CHECK_FALSE(for_each_message({}, [](const message_view&) { FAIL("no message in an empty payload"); }));
}

TEST_CASE("w1: status errors: errno as the kernel stores it, 255 for a reset without presence") {
    CHECK_FALSE(status_error(0));
    CHECK(status_error(ENODEV) == std::errc::no_such_device);
    CHECK(status_error(EINVAL) == std::errc::invalid_argument);
    CHECK(status_error(255) == error::w1_no_presence);
}

TEST_CASE("w1: reply_rule: data, then one status per command; the last status ends the answer") {
    const header rq = request_header();
    const std::array<std::uint8_t, 8> id{0x28, 1, 2, 3, 4, 5, 6, 0};
    const auto nine = std::vector<std::byte>(9);
    const command_spec write{command::write, {}}, read{command::read, nine};
    reply_rule rule(2);
    // Not ours: neither seq + 1 nor the request's ack.
    CHECK(rule(rq, reply(rq, rq.ack + 1, message_type::slave_cmd, 0, id, &write).view()) ==
          part_verdict::not_part);
    CHECK(rule(rq, reply(rq, rq.ack, message_type::slave_cmd, 0, id, &write).view()) == part_verdict::more);
    CHECK(rule(rq, reply(rq, rq.seq + 1, message_type::slave_cmd, 0, id, &read).view()) == part_verdict::more);
    CHECK(rule(rq, reply(rq, rq.ack, message_type::slave_cmd, 0, id, &read).view()) == part_verdict::last);
}

TEST_CASE("w1: reply_rule: a status with no command, or ENODEV, ends the answer at once") {
    const header rq = request_header();
    const std::array<std::uint8_t, 8> id{};
    const command_spec write{command::write, {}};
    reply_rule missing(3);
    CHECK(missing(rq, reply(rq, rq.ack, message_type::slave_cmd, ENODEV, id, nullptr).view()) ==
          part_verdict::last);
    reply_rule unselected(3);
    CHECK(unselected(rq, reply(rq, rq.ack, message_type::slave_cmd, ENODEV, id, &write).view()) ==
          part_verdict::last);
    reply_rule einval(2); // a per-command error does not stop the others
    CHECK(einval(rq, reply(rq, rq.ack, message_type::master_cmd, EINVAL, id, &write).view()) ==
          part_verdict::more);
    message tiny;
    tiny.header = rq;
    tiny.header.ack = rq.ack;
    CHECK(reply_rule(1)(rq, tiny.view()) == part_verdict::last); // too short: ends, and decoding says why
}

TEST_CASE("w1: reply_rule: LIST_MASTERS ends at its first page that is not full") {
    const header rq = request_header();
    const std::array<std::uint8_t, 8> id{};
    reply_rule rule(0);
    message full = reply(rq, rq.seq + 1, message_type::list_masters, 0, id, nullptr);
    full.payload.resize(4096 - 20); // the kernel's page less the cn_msg: no room for one more id
    CHECK(rule(rq, full.view()) == part_verdict::more);
    message some = reply(rq, rq.seq + 1, message_type::list_masters, 0, id, nullptr);
    some.payload.resize(12 + 8);
    CHECK(rule(rq, some.view()) == part_verdict::last);
}

TEST_CASE("w1: read_answer gathers masters, slaves and data; the first status error wins") {
    const header rq = request_header();
    const std::array<std::uint8_t, 8> mid{1, 0, 0, 0, 0, 0, 0, 0};
    SUBCASE("masters") {
        message m = reply(rq, rq.seq + 1, message_type::list_masters, 0, mid, nullptr);
        const std::uint32_t ids[] = {1, 7};
        m.payload.resize(12 + 8);
        std::memcpy(m.payload.data() + 12, ids, 8);
        const std::uint16_t len = 8;
        std::memcpy(m.payload.data() + 2, &len, 2);
        answer a;
        CHECK_FALSE(read_answer(rq, std::span(&m, 1), 0, a));
        CHECK(a.masters == std::vector<std::uint32_t>{1, 7});
    }
    SUBCASE("a search split over two data replies, then its status") {
        const rom_id s1 = rom_id::make(0x28, 1), s2 = rom_id::make(0x28, 2), s3 = rom_id::make(0x10, 3);
        std::vector<std::byte> first(16), second(8);
        std::memcpy(first.data(), s1.bytes.data(), 8);
        std::memcpy(first.data() + 8, s2.bytes.data(), 8);
        std::memcpy(second.data(), s3.bytes.data(), 8);
        const command_spec c1{command::search, first}, c2{command::search, second}, st{command::search, {}};
        const std::vector<message> parts{reply(rq, rq.seq + 1, message_type::master_cmd, 0, mid, &c1),
                                         reply(rq, rq.seq + 1, message_type::master_cmd, 0, mid, &c2),
                                         reply(rq, rq.ack, message_type::master_cmd, 0, mid, &st)};
        answer a;
        CHECK_FALSE(read_answer(rq, parts, 1, a));
        CHECK(a.slaves == std::vector<rom_id>{s1, s2, s3});
        CHECK(a.statuses == 1);
    }
    SUBCASE("read data, and a status error") {
        const auto data = bytes({1, 2, 3});
        const command_spec rd{command::read, data}, st{command::read, {}}, wr{command::write, {}};
        const std::vector<message> parts{reply(rq, rq.ack, message_type::slave_cmd, 0, mid, &wr),
                                         reply(rq, rq.seq + 1, message_type::slave_cmd, 0, mid, &rd),
                                         reply(rq, rq.ack, message_type::slave_cmd, 0, mid, &st)};
        answer a;
        CHECK_FALSE(read_answer(rq, parts, 2, a));
        CHECK(a.data == data);
        answer b;
        const std::vector<message> failed{reply(rq, rq.ack, message_type::slave_cmd, ENODEV, mid, nullptr)};
        CHECK(read_answer(rq, failed, 2, b) == std::errc::no_such_device);
    }
    SUBCASE("an answer cut short or garbled is malformed") {
        const command_spec st{command::write, {}};
        const std::vector<message> one{reply(rq, rq.ack, message_type::slave_cmd, 0, mid, &st)};
        answer a;
        CHECK(read_answer(rq, one, 2, a) == error::w1_reply_malformed);
        message bad = one[0];
        bad.payload.resize(5);
        answer b;
        CHECK(read_answer(rq, std::span(&bad, 1), 0, b) == error::w1_reply_malformed);
    }
}

TEST_CASE("w1::ds18b20: scratchpad decoding, resolutions and conversion times") {
    using namespace cnasio::w1::ds18b20;
    reading r;
    CHECK_FALSE(decode(scratchpad(0x0191), true, r)); // +25.0625 °C, the datasheet's table
    CHECK(r.raw == 0x0191);
    CHECK(r.millicelsius() == 25062);
    CHECK(r.celsius() == doctest::Approx(25.0625));
    CHECK(r.resolution == 12);
    CHECK_FALSE(decode(scratchpad(static_cast<std::int16_t>(0xfc90)), true, r)); // -55 °C
    CHECK(r.millicelsius() == -55000);
    CHECK_FALSE(decode(scratchpad(static_cast<std::int16_t>(0xff5e)), true, r)); // -10.125 °C
    CHECK(r.millicelsius() == -10125);
    // 9 bits (config 0x1f): the three undefined low bits are cleared.
    CHECK_FALSE(decode(scratchpad(0x0197, 0x1f), true, r));
    CHECK(r.resolution == 9);
    CHECK(r.raw == 0x0190);
    CHECK(resolution_of(0x3f) == 10);
    CHECK(conversion_time(9) == std::chrono::microseconds(93750));
    CHECK(conversion_time(12) == std::chrono::microseconds(750000));
}

TEST_CASE("w1::ds18b20: CRC mismatch, an all-zero scratchpad, and 85 °C after a conversion are errors") {
    using namespace cnasio::w1::ds18b20;
    reading r;
    auto s = scratchpad(0x0191);
    s[0] ^= std::byte{1};
    CHECK(decode(s, true, r) == error::w1_crc_mismatch);
    CHECK(decode(std::vector<std::byte>(9), true, r) == error::w1_crc_mismatch);
    CHECK(decode(std::vector<std::byte>(8), true, r) == error::w1_reply_malformed);
    CHECK(decode(scratchpad(power_on_raw), true, r) == error::w1_power_on_reset);
    CHECK_FALSE(decode(scratchpad(power_on_raw), false, r)); // before a conversion it is just the register
    CHECK(r.millicelsius() == 85000);
}
