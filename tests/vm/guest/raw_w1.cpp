// The w1 netlink protocol (CN_W1_IDX 3, CN_W1_VAL 1) spoken with plain
// system calls against Debian's real w1 core (wire.ko) and the
// cnasio_w1_virtual bus master (examples/kernel): masters listed, the
// emulated DS18B20s found by SEARCH with the ROM ids the module documents,
// temperatures read back exactly as set (CONVERT T, READ SCRATCHPAD, CRC8),
// an injected CRC error seen as a mismatch, a missing presence pulse seen,
// ALARM SEARCH, resolution, a conversion that never ends, W1_CN_BUNDLE and
// the error statuses.
//
// Independent of the library: the message structures are defined here from
// Documentation/w1/w1-netlink.rst and drivers/w1/w1_netlink.h (no UAPI header
// has them), and the reply rules from drivers/w1/w1_netlink.c (3.16+, the same
// in 5.10 and 6.1):
//   - W1_LIST_MASTERS: one message per page of ids, seq = request seq,
//     ack = request seq + 1, no status message.
//   - W1_MASTER_CMD / W1_SLAVE_CMD: for every command, first its data (READ,
//     TOUCH: the bytes; SEARCH, ALARM_SEARCH, LIST_SLAVES: 8-byte ids, split
//     over several messages when long) with ack = request seq + 1, then one
//     status message (the command with len 0) with ack = the request's ack
//     and status = the negated errno as a u8 (a failed reset: -1 -> 255).
//   - An error before any command runs (unknown master or slave, bad flag)
//     is one status message without a command.
//   - Without W1_CN_BUNDLE each cn_msg is its own datagram; with it the
//     replies to one request are packed into one netlink message.
//   - Measured here: a request holding one command without data (a lone
//     RESET) first gets an EMPTY cn_msg (id 0:0, seq 0, ack 0, len 0; a 36-byte
//     datagram): its reply buffer (maxlen) equals the status message's size,
//     so w1_reply_make_space() "flushes" the still empty reply before the
//     status. A client must skip it; this test counts it.
#include "check.hpp"
#include "module.hpp"
#include "raw_connector.hpp"

#include "cnasio_w1_virtual.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <fstream>
#include <set>
#include <thread>

using namespace guest;

namespace {

constexpr std::uint32_t w1_idx = 3, w1_val = 1;
constexpr std::uint16_t w1_cn_bundle = 1;

// struct w1_netlink_msg: type, status, len, then an 8-byte id (a slave's ROM
// id or {u32 master id, u32 reserved}); len bytes of commands follow.
struct w1_msg_hdr {
    std::uint8_t type;
    std::uint8_t status;
    std::uint16_t len;
    std::uint8_t id[8];
};
// struct w1_netlink_cmd: cmd, reserved, len, then len data bytes.
struct w1_cmd_hdr {
    std::uint8_t cmd;
    std::uint8_t res;
    std::uint16_t len;
};
static_assert(sizeof(w1_msg_hdr) == 12 && sizeof(w1_cmd_hdr) == 4);

enum : std::uint8_t {  // enum w1_netlink_message_types
    w1_slave_add = 0, w1_slave_remove, w1_master_add, w1_master_remove,
    w1_master_cmd, w1_slave_cmd, w1_list_masters,
};
enum : std::uint8_t {  // enum w1_commands
    cmd_read = 0, cmd_write, cmd_search, cmd_alarm_search, cmd_touch, cmd_reset,
    cmd_slave_add, cmd_slave_remove, cmd_list_slaves,
};

using rom_id = std::array<std::uint8_t, 8>;

struct command {
    std::uint8_t cmd = 0;
    std::vector<std::uint8_t> data;
};

struct message {  // one w1_netlink_msg of a reply
    std::uint8_t type = 0, status = 0;
    std::array<std::uint8_t, 8> id{};
    std::vector<std::uint8_t> payload;   // LIST_MASTERS: u32 ids
    std::vector<command> commands;       // MASTER_CMD / SLAVE_CMD
};

struct part {  // one cn_msg of a reply
    std::uint32_t seq = 0, ack = 0;
    std::uint16_t flags = 0;
    std::size_t datagram = 0;  // which datagram carried it (counts from 0)
    bool empty = false;        // the all-zero cn_msg described above
    std::vector<message> messages;
};

std::uint8_t crc8_maxim(const std::uint8_t* p, std::size_t n)
{
    std::uint8_t crc = 0;
    for (std::size_t i = 0; i < n; ++i) {
        crc ^= p[i];
        for (int b = 0; b < 8; ++b)
            crc = (crc & 1) ? static_cast<std::uint8_t>((crc >> 1) ^ 0x8C) : static_cast<std::uint8_t>(crc >> 1);
    }
    return crc;
}

rom_id expected_rom(unsigned g)
{
    rom_id r{};
    r[0] = CNASIO_W1V_FAMILY;
    std::uint64_t serial = CNASIO_W1V_SERIAL_BASE + g;
    for (int i = 0; i < 6; ++i)
        r[1 + i] = static_cast<std::uint8_t>(serial >> (8 * i));
    r[7] = crc8_maxim(r.data(), 7);
    return r;
}

std::string hex(std::span<const std::uint8_t> b)
{
    std::string s;
    char buf[4];
    for (auto x : b) {
        std::snprintf(buf, sizeof buf, "%02x ", x);
        s += buf;
    }
    return s;
}

const guest::module_params params{"cnasio_w1_virtual"};

void write_param(const char* name, const std::string& value) { params.write(name, value); }
unsigned param_uint(const char* name) { return params.read_uint(name); }

// Decodes the w1 messages of one cn_msg payload; false if malformed.
bool decode_messages(const std::uint8_t* p, std::size_t n, std::vector<message>& out)
{
    while (n > 0) {
        w1_msg_hdr h;
        if (n < sizeof h)
            return false;
        std::memcpy(&h, p, sizeof h);
        if (sizeof h + h.len > n)
            return false;
        message m;
        m.type = h.type;
        m.status = h.status;
        std::memcpy(m.id.data(), h.id, 8);
        const std::uint8_t* body = p + sizeof h;
        if (h.type == w1_master_cmd || h.type == w1_slave_cmd) {
            std::size_t left = h.len;
            while (left > 0) {
                w1_cmd_hdr c;
                if (left < sizeof c)
                    return false;
                std::memcpy(&c, body, sizeof c);
                if (sizeof c + c.len > left)
                    return false;
                m.commands.push_back({c.cmd, {body + sizeof c, body + sizeof c + c.len}});
                body += sizeof c + c.len;
                left -= sizeof c + c.len;
            }
        } else {
            m.payload.assign(body, body + h.len);
        }
        out.push_back(std::move(m));
        p += sizeof h + h.len;
        n -= sizeof h + h.len;
    }
    return true;
}

class w1_socket {
public:
    // Sends one request: a cn_msg to {3,1} holding `msgs` (already encoded).
    void send(std::uint32_t seq, std::uint32_t ack, std::span<const std::uint8_t> payload,
              std::uint16_t flags = 0)
    {
        auto bytes = raw_connector::build(w1_idx, w1_val, seq, ack, payload);
        std::memcpy(bytes.data() + NLMSG_HDRLEN + offsetof(cn_msg, flags), &flags, sizeof flags);
        REQUIRE(s_.send_bytes(bytes) == static_cast<ssize_t>(bytes.size()));
    }

    // Receives every cn_msg that arrives within timeout_ms of the last one,
    // until `done(parts)` says the reply is complete (then waits settle_ms
    // more to catch anything extra). Checks that the kernel sent each.
    template <class Done>
    std::vector<part> collect(Done done, int timeout_ms = 5000, int settle_ms = 150)
    {
        std::vector<part> parts;
        bool complete = false;
        for (;;) {
            pollfd p{s_.fd(), POLLIN, 0};
            int n = ::poll(&p, 1, complete ? settle_ms : timeout_ms);
            if (n < 0)
                throw sys_error("poll");
            if (n == 0)
                break;
            std::vector<std::uint8_t> buf(65536);
            sockaddr_nl from{};
            socklen_t from_len = sizeof from;
            ssize_t got = ::recvfrom(s_.fd(), buf.data(), buf.size(), 0,
                                     reinterpret_cast<sockaddr*>(&from), &from_len);
            if (got < 0)
                throw sys_error("recvfrom");
            CHECK(from.nl_pid == 0u);
            auto size = static_cast<std::size_t>(got);
            nlmsghdr nh;
            REQUIRE(size >= NLMSG_HDRLEN);
            std::memcpy(&nh, buf.data(), sizeof nh);
            REQUIRE(nh.nlmsg_len <= size);
            // One netlink message; with W1_CN_BUNDLE several cn_msg in it.
            std::size_t off = NLMSG_HDRLEN;
            while (off < nh.nlmsg_len) {
                cn_msg cn;
                REQUIRE(off + sizeof cn <= nh.nlmsg_len);
                std::memcpy(&cn, buf.data() + off, sizeof cn);
                REQUIRE(off + sizeof cn + cn.len <= nh.nlmsg_len);
                part pt;
                pt.empty = cn.id.idx == 0 && cn.id.val == 0 && cn.seq == 0 && cn.ack == 0 && cn.len == 0 &&
                           cn.flags == 0;
                if (!pt.empty && !CHECK(cn.id.idx == w1_idx && cn.id.val == w1_val))
                    std::printf("  cn_msg %u:%u seq %u ack %u len %u flags %u in a %zu-byte datagram: %s\n",
                                cn.id.idx, cn.id.val, cn.seq, cn.ack, cn.len, cn.flags, size,
                                hex({buf.data(), std::min<std::size_t>(size, 96)}).c_str());
                pt.seq = cn.seq;
                pt.ack = cn.ack;
                pt.flags = cn.flags;
                pt.datagram = datagrams_;
                REQUIRE(decode_messages(buf.data() + off + sizeof cn, cn.len, pt.messages));
                parts.push_back(std::move(pt));
                off += sizeof cn + cn.len;
            }
            ++datagrams_;
            if (done(parts))
                complete = true;
        }
        CHECK(complete);
        return parts;
    }

    std::size_t datagrams() const { return datagrams_; }

private:
    raw_connector s_;
    std::size_t datagrams_ = 0;
};

std::vector<std::uint8_t> encode_msg(std::uint8_t type, std::span<const std::uint8_t> id8,
                                     const std::vector<command>& cmds)
{
    // One allocation, filled with memcpy (g++ 12 misreads vector::insert
    // into a grown vector as an out-of-bounds copy, -Warray-bounds).
    std::size_t body = 0;
    for (const auto& c : cmds)
        body += sizeof(w1_cmd_hdr) + c.data.size();
    std::vector<std::uint8_t> out(sizeof(w1_msg_hdr) + body);
    w1_msg_hdr m{};
    m.type = type;
    m.len = static_cast<std::uint16_t>(body);
    std::memcpy(m.id, id8.data(), std::min<std::size_t>(8, id8.size()));
    std::memcpy(out.data(), &m, sizeof m);
    std::size_t off = sizeof m;
    for (const auto& c : cmds) {
        w1_cmd_hdr h{c.cmd, 0, static_cast<std::uint16_t>(c.data.size())};
        std::memcpy(out.data() + off, &h, sizeof h);
        off += sizeof h;
        if (!c.data.empty())
            std::memcpy(out.data() + off, c.data.data(), c.data.size());
        off += c.data.size();
    }
    return out;
}

std::array<std::uint8_t, 8> master_id8(std::uint32_t id)
{
    std::array<std::uint8_t, 8> out{};
    std::memcpy(out.data(), &id, 4);
    return out;
}

// The reply to one MASTER_CMD/SLAVE_CMD request, sorted by the rules above.
struct cmd_reply {
    std::vector<command> data;          // data replies (ack = seq + 1), in order
    std::vector<std::uint8_t> status;   // one per command (ack = request ack)
    std::vector<std::uint8_t> status_cmds;
    std::vector<std::uint8_t> bare_status;  // status messages without a command
    std::vector<part> parts;
    std::size_t empty = 0;              // all-zero cn_msgs (see the top)
    bool stray = false;                 // anything with an unexpected seq/ack/type
};

std::uint32_t next_seq = 100;

cmd_reply exchange(w1_socket& s, std::uint8_t type, std::span<const std::uint8_t> id8,
                   const std::vector<command>& cmds, std::uint16_t flags = 0)
{
    std::uint32_t seq = next_seq++;
    std::uint32_t ack = 0x5a000000u + seq;  // never seq + 1: tells status from data
    s.send(seq, ack, encode_msg(type, id8, cmds), flags);
    cmd_reply r;
    std::size_t want = cmds.size();
    r.parts = s.collect([&](const std::vector<part>& ps) {
        std::size_t statuses = 0;
        for (const auto& p : ps)
            for (const auto& m : p.messages)
                if (p.ack == ack && (m.commands.empty() || ++statuses >= want))
                    return true;
        return false;
    });
    for (const auto& p : r.parts) {
        if (p.empty) {
            ++r.empty;
            continue;
        }
        if (p.seq != seq) {
            r.stray = true;
            continue;
        }
        for (const auto& m : p.messages) {
            if (m.type != type || !std::equal(m.id.begin(), m.id.end(), id8.begin())) {
                r.stray = true;
            } else if (p.ack == seq + 1 && m.commands.size() == 1) {
                r.data.push_back(m.commands[0]);
            } else if (p.ack == ack && m.commands.size() == 1 && m.commands[0].data.empty()) {
                r.status.push_back(m.status);
                r.status_cmds.push_back(m.commands[0].cmd);
            } else if (p.ack == ack && m.commands.empty()) {
                r.bare_status.push_back(m.status);
            } else {
                r.stray = true;
            }
        }
    }
    // The empty cn_msg belongs to a lone RESET only (checked there).
    if (!(cmds.size() == 1 && cmds[0].cmd == cmd_reset))
        CHECK(r.empty == 0);
    return r;
}

std::vector<rom_id> ids_of(const std::vector<command>& data, std::uint8_t cmd)
{
    std::vector<rom_id> out;
    for (const auto& c : data) {
        if (c.cmd != cmd || c.data.size() % 8 != 0) {
            CHECK(false && "search data is not a list of 8-byte ids");
            continue;
        }
        for (std::size_t i = 0; i < c.data.size(); i += 8) {
            rom_id r;
            std::copy_n(c.data.begin() + static_cast<std::ptrdiff_t>(i), 8, r.begin());
            out.push_back(r);
        }
    }
    return out;
}

// ---- the checks ----

// The masters' ids in ascending order: the w1 core gives each new master the
// smallest free id, so the k-th of cnasio_w1_virtual's masters is the k-th.
std::vector<std::uint32_t> list_masters(w1_socket& s, unsigned expected)
{
    std::printf("list masters\n");
    std::uint32_t seq = next_seq++;
    auto msg = encode_msg(w1_list_masters, {}, {});
    s.send(seq, 0, msg);
    auto parts = s.collect([](const std::vector<part>& ps) { return !ps.empty(); });
    REQUIRE(parts.size() == 1);
    CHECK(parts[0].seq == seq);
    CHECK(parts[0].ack == seq + 1);
    REQUIRE(parts[0].messages.size() == 1);
    const auto& m = parts[0].messages[0];
    CHECK(m.type == w1_list_masters);
    CHECK(m.status == 0);
    REQUIRE(m.payload.size() == 4 * expected);
    std::vector<std::uint32_t> ids;
    for (unsigned i = 0; i < expected; ++i) {
        std::uint32_t id;
        std::memcpy(&id, m.payload.data() + 4 * i, 4);
        std::printf("  master %u\n", id);
        // The w1 core names the sysfs device after the same id.
        CHECK(!guest::first_line("/sys/bus/w1/devices/w1_bus_master" + std::to_string(id) + "/w1_master_name").empty());
        ids.push_back(id);
    }
    std::sort(ids.begin(), ids.end());
    return ids;
}

void search(w1_socket& s, std::uint32_t master, unsigned k, unsigned devices)
{
    std::printf("search master %u\n", master);
    std::set<rom_id> expected;  // the k-th master's devices
    for (unsigned g = k * devices; g < (k + 1) * devices; ++g)
        expected.insert(expected_rom(g));
    for (std::uint8_t cmd : {cmd_search, cmd_list_slaves}) {
        auto r = exchange(s, w1_master_cmd, master_id8(master), {{cmd, {}}});
        CHECK(!r.stray);
        REQUIRE(r.status.size() == 1);
        CHECK(r.status[0] == 0);
        CHECK(r.status_cmds[0] == cmd);
        auto ids = ids_of(r.data, cmd);
        for (const auto& id : ids) {
            std::printf("  %s: %s\n", cmd == cmd_search ? "found" : "listed", hex(id).c_str());
            CHECK(id[7] == crc8_maxim(id.data(), 7));
        }
        CHECK(ids.size() == devices);  // each once
        CHECK(std::set<rom_id>(ids.begin(), ids.end()) == expected);
    }
}

// One DS18B20 scratchpad read through SLAVE_CMD: WRITE [BE], READ 9.
struct scratchpad {
    std::array<std::uint8_t, 9> bytes{};
    bool ok = false;  // the reply had the shape the rules give
    bool crc_ok() const { return crc8_maxim(bytes.data(), 8) == bytes[8]; }
    std::int16_t raw() const { return static_cast<std::int16_t>(bytes[0] | (bytes[1] << 8)); }
};

scratchpad read_scratchpad(w1_socket& s, const rom_id& id, std::uint16_t flags = 0)
{
    auto r = exchange(s, w1_slave_cmd, id,
                      {{cmd_write, {CNASIO_W1V_READ_SCRATCHPAD}}, {cmd_read, std::vector<std::uint8_t>(9, 0xff)}}, flags);
    scratchpad sp;
    sp.ok = CHECK(!r.stray) && CHECK((r.status == std::vector<std::uint8_t>{0, 0})) &&
            CHECK((r.status_cmds == std::vector<std::uint8_t>{cmd_write, cmd_read})) &&
            CHECK(r.data.size() == 1) && CHECK(r.data[0].cmd == cmd_read) && CHECK(r.data[0].data.size() == 9);
    if (sp.ok)
        std::copy_n(r.data[0].data.begin(), 9, sp.bytes.begin());
    return sp;
}

// CONVERT T, then one read slot byte in the same request: 0 while busy.
void convert(w1_socket& s, const rom_id& id, bool expect_busy = true)
{
    auto r = exchange(s, w1_slave_cmd, id, {{cmd_write, {CNASIO_W1V_CONVERT_T}}, {cmd_read, {0xff}}});
    CHECK(!r.stray);
    CHECK(r.status == (std::vector<std::uint8_t>{0, 0}));
    if (CHECK(r.data.size() == 1) && CHECK(r.data[0].data.size() == 1) && expect_busy)
        CHECK(r.data[0].data[0] == 0x00);  // read slots during the conversion
}

void power_on_scratchpad(w1_socket& s)
{
    std::printf("power-on scratchpad\n");
    // The datasheet's power-on scratchpad: the test's CRC8 agrees with it.
    const std::array<std::uint8_t, 9> power_on{0x50, 0x05, 0x4B, 0x46, 0x7F, 0xFF, 0x0C, 0x10, 0x1C};
    REQUIRE(crc8_maxim(power_on.data(), 8) == power_on[8]);
    auto sp = read_scratchpad(s, expected_rom(0));
    std::printf("  %s\n", hex(sp.bytes).c_str());
    CHECK(sp.ok && sp.bytes == power_on);
}

// The temperatures set for device g: set_mc[g % 8], exactly representable at
// 12 bits (multiples of 1/16 degC in whole millidegrees).
constexpr int set_mc[] = {23125, -10250, 71500, 0, 125000, -55000, 1000, 42875};

void temperatures(w1_socket& s, unsigned devices)
{
    std::printf("temperatures\n");
    const auto& set = set_mc;
    std::string list;
    for (unsigned g = 0; g < devices; ++g)
        list += (g ? "," : "") + std::to_string(set[g % 8]);
    write_param("temp_mc", list);
    for (unsigned g = 0; g < devices; ++g)
        convert(s, expected_rom(g));
    // The datasheet's maximum at 12 bits, not more: a client waits that long.
    std::this_thread::sleep_for(std::chrono::milliseconds(CNASIO_W1V_CONVERT_MS(3)));
    for (unsigned g = 0; g < devices; ++g) {
        auto sp = read_scratchpad(s, expected_rom(g));
        std::printf("  %s: %s -> %d/16 degC (set %d mC)\n", hex(expected_rom(g)).c_str(), hex(sp.bytes).c_str(),
                    sp.raw(), set[g % 8]);
        CHECK(sp.ok);
        CHECK(sp.crc_ok());
        CHECK(static_cast<long>(sp.raw()) * 1000 == static_cast<long>(set[g % 8]) * 16);
    }
}

void conversion_time(w1_socket& s)
{
    std::printf("conversion time and resolution\n");
    const auto id = expected_rom(0);
    // 9 bits: TH 75, TL 70, configuration 0x1F; 71.625 degC reads 71.5.
    auto w = exchange(s, w1_slave_cmd, id, {{cmd_write, {CNASIO_W1V_WRITE_SCRATCHPAD, 75, 70, 0x1F}}});
    CHECK(w.status == std::vector<std::uint8_t>{0});
    write_param("temp_mc", "71625");
    convert(s, id);
    // 94 ms at 9 bits (not the 750 ms of 12 bits): done well within 300 ms.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto sp = read_scratchpad(s, id);
    std::printf("  9-bit: %s\n", hex(sp.bytes).c_str());
    CHECK(sp.crc_ok());
    CHECK(sp.bytes[4] == CNASIO_W1V_CONFIG_9BIT);
    CHECK(sp.raw() == 71 * 16 + 8);
    // Back to 12 bits (and the set temperature restored) for what follows.
    w = exchange(s, w1_slave_cmd, id, {{cmd_write, {CNASIO_W1V_WRITE_SCRATCHPAD, 75, 70, 0x7F}}});
    CHECK(w.status == std::vector<std::uint8_t>{0});
    write_param("temp_mc", "23125");
    convert(s, id);
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    sp = read_scratchpad(s, id);
    CHECK(sp.crc_ok() && sp.raw() * 1000 == 23125 * 16 && sp.bytes[4] == CNASIO_W1V_CONFIG_12BIT);
}

void crc_error(w1_socket& s)
{
    std::printf("injected CRC error\n");
    const auto id = expected_rom(1);
    write_param("crc_error", "2");  // device 1
    auto bad = read_scratchpad(s, id);
    std::printf("  %s\n", hex(bad.bytes).c_str());
    CHECK(bad.ok);
    CHECK(!bad.crc_ok());  // what a client must report as a CRC mismatch
    write_param("crc_error", "0");
    auto good = read_scratchpad(s, id);
    CHECK(good.crc_ok());
    CHECK(good.raw() * 1000 == -10250 * 16);
    CHECK((bad.bytes[0] ^ good.bytes[0]) == 1);  // one bit flipped on the wire
}

void no_presence(w1_socket& s, std::uint32_t master, unsigned devices)
{
    std::printf("missing presence pulse\n");
    write_param("no_presence", "1");
    // RESET: w1_reset_bus returns 1 (no presence), sent as (u8)-1.
    auto r = exchange(s, w1_master_cmd, master_id8(master), {{cmd_reset, {}}});
    CHECK(!r.stray);
    CHECK(r.status == std::vector<std::uint8_t>{255});
    std::printf("  lone RESET: %zu empty cn_msg(s) before its status\n", r.empty);
    CHECK(r.empty == 1);
    // A slave command: the select (reset + MATCH ROM) fails with ENODEV before
    // any command runs.
    r = exchange(s, w1_slave_cmd, expected_rom(0), {{cmd_write, {CNASIO_W1V_READ_SCRATCHPAD}}});
    CHECK(!r.stray);
    std::printf("  slave command statuses: %zu with command, %zu bare\n", r.status.size(), r.bare_status.size());
    CHECK(r.data.empty());
    CHECK((r.status == std::vector<std::uint8_t>{ENODEV} || r.bare_status == std::vector<std::uint8_t>{ENODEV}));
    // SEARCH finds nothing.
    r = exchange(s, w1_master_cmd, master_id8(master), {{cmd_search, {}}});
    CHECK(r.status == std::vector<std::uint8_t>{0});
    CHECK(ids_of(r.data, cmd_search).empty());
    write_param("no_presence", "0");
    r = exchange(s, w1_master_cmd, master_id8(master), {{cmd_reset, {}}});
    CHECK(!r.stray);
    CHECK(r.status == std::vector<std::uint8_t>{0});
    CHECK(r.empty == 1);
    r = exchange(s, w1_master_cmd, master_id8(master), {{cmd_search, {}}});
    CHECK(ids_of(r.data, cmd_search).size() == devices);
}

void absent_device(w1_socket& s, std::uint32_t master, unsigned devices)
{
    std::printf("unplugged device\n");
    write_param("absent", "1");  // device 0
    auto r = exchange(s, w1_master_cmd, master_id8(master), {{cmd_search, {}}});
    auto ids = ids_of(r.data, cmd_search);
    CHECK(ids.size() == devices - 1);
    CHECK(std::find(ids.begin(), ids.end(), expected_rom(0)) == ids.end());
    // Its scratchpad read: the other devices answer the reset, nobody the
    // MATCH ROM: all 1s, which fail the CRC.
    auto sp = read_scratchpad(s, expected_rom(0));
    std::printf("  %s\n", hex(sp.bytes).c_str());
    CHECK(sp.bytes == (std::array<std::uint8_t, 9>{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}));
    CHECK(!sp.crc_ok());
    write_param("absent", "0");
}

void alarm_search(w1_socket& s, std::uint32_t master, unsigned devices)
{
    std::printf("alarm search\n");
    // Device 0 at 23.125, device 1 at -10.25, device 2 at 71.5 (and the
    // others at set_mc); TH 75, TL 70 (power-on): a device alarms when its
    // whole degrees are >= TH or <= TL: 23 and -11 do, 71 does not. A convert
    // on all at once: SKIP ROM + CONVERT T through the master.
    std::set<rom_id> alarming;
    for (unsigned g = 0; g < devices; ++g) {
        int whole = (set_mc[g % 8] * 16 / 1000) >> 4;  // exact, then floor
        if (whole >= 75 || whole <= 70)
            alarming.insert(expected_rom(g));
    }
    REQUIRE(alarming.count(expected_rom(0)) == 1 && alarming.count(expected_rom(2)) == 0);
    auto r = exchange(s, w1_master_cmd, master_id8(master),
                      {{cmd_reset, {}}, {cmd_write, {CNASIO_W1V_SKIP_ROM, CNASIO_W1V_CONVERT_T}}});
    CHECK(r.status == (std::vector<std::uint8_t>{0, 0}));
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    r = exchange(s, w1_master_cmd, master_id8(master), {{cmd_alarm_search, {}}});
    auto ids = ids_of(r.data, cmd_alarm_search);
    for (const auto& id : ids)
        std::printf("  alarming: %s\n", hex(id).c_str());
    CHECK(ids.size() == alarming.size());
    CHECK(std::set<rom_id>(ids.begin(), ids.end()) == alarming);
    // Device 0: TL -40, TH 100 -> no alarm after the next conversion.
    r = exchange(s, w1_slave_cmd, expected_rom(0),
                 {{cmd_write, {CNASIO_W1V_WRITE_SCRATCHPAD, 100, static_cast<std::uint8_t>(-40), 0x7F}}});
    CHECK(r.status == std::vector<std::uint8_t>{0});
    convert(s, expected_rom(0));
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    r = exchange(s, w1_master_cmd, master_id8(master), {{cmd_alarm_search, {}}});
    ids = ids_of(r.data, cmd_alarm_search);
    alarming.erase(expected_rom(0));
    CHECK(ids.size() == alarming.size());
    CHECK(std::set<rom_id>(ids.begin(), ids.end()) == alarming);
}

void stuck_conversion(w1_socket& s)
{
    std::printf("conversion that never completes\n");
    const auto id = expected_rom(2);
    write_param("stuck", "4");  // device 2
    write_param("temp_mc", "23125,-10250,50000");
    convert(s, id);
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    convert(s, id);  // still busy long after 750 ms
    auto sp = read_scratchpad(s, id);
    std::printf("  stale: %s\n", hex(sp.bytes).c_str());
    CHECK(sp.crc_ok());
    CHECK(sp.raw() == 71 * 16 + 8);  // the previous conversion's 71.5 degC
    write_param("stuck", "0");
    // The second conversion (started 0 ms ago) completes once unstuck.
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    sp = read_scratchpad(s, id);
    CHECK(sp.crc_ok());
    CHECK(sp.raw() == 50 * 16);
}

void bundle(w1_socket& s)
{
    std::printf("W1_CN_BUNDLE\n");
    std::size_t before = s.datagrams();
    auto sp = read_scratchpad(s, expected_rom(1), w1_cn_bundle);
    std::size_t used = s.datagrams() - before;
    std::printf("  3 replies (status, data, status) in %zu datagram(s)\n", used);
    CHECK(sp.ok && sp.crc_ok());
    CHECK(used == 1);
    before = s.datagrams();
    sp = read_scratchpad(s, expected_rom(1));
    CHECK(s.datagrams() - before == 3);  // unbundled: one datagram each
}

void errors(w1_socket& s, std::uint32_t master)
{
    std::printf("error statuses\n");
    // A slave nobody has: ENODEV, no command echoed.
    auto unknown = expected_rom(31);
    auto r = exchange(s, w1_slave_cmd, unknown, {{cmd_read, {0xff}}});
    CHECK(!r.stray);
    CHECK(r.bare_status == std::vector<std::uint8_t>{ENODEV});
    CHECK(r.status.empty() && r.data.empty());
    // An unknown master: the same.
    r = exchange(s, w1_master_cmd, master_id8(master + 1000), {{cmd_reset, {}}});
    CHECK(r.bare_status == std::vector<std::uint8_t>{ENODEV});
    // An unknown command: EINVAL for it, and the next command still runs.
    r = exchange(s, w1_master_cmd, master_id8(master), {{0x77, {}}, {cmd_reset, {}}});
    CHECK(r.status == (std::vector<std::uint8_t>{EINVAL, 0}));
    CHECK(r.status_cmds == (std::vector<std::uint8_t>{0x77, cmd_reset}));
    // An unknown cn_msg flag: EINVAL for the whole request.
    r = exchange(s, w1_master_cmd, master_id8(master), {{cmd_reset, {}}}, 0x8);
    CHECK(r.bare_status == std::vector<std::uint8_t>{EINVAL});
}

} // namespace

int main()
{
    unsigned masters = param_uint("nr_masters");
    unsigned devices = param_uint("devices");
    std::printf("cnasio_w1_virtual: %u master(s), %u device(s) each\n", masters, devices);
    REQUIRE(devices >= 3);
    w1_socket s;
    auto ids = list_masters(s, masters);
    for (unsigned k = 0; k < ids.size(); ++k)
        search(s, ids[k], k, devices);
    // The rest works on the first master's first three devices.
    auto master = ids.at(0);
    power_on_scratchpad(s);
    temperatures(s, devices);
    crc_error(s);
    conversion_time(s);
    no_presence(s, master, devices);
    absent_device(s, master, devices);
    alarm_search(s, master, devices);
    stuck_conversion(s);
    bundle(s);
    errors(s, master);
    return finish("raw_w1");
}
