// cnasio/w1/protocol.hpp - the kernel's 1-Wire netlink protocol, without any I/O.
//
// The w1 core listens on connector id {CN_W1_IDX 3, CN_W1_VAL 1}
// (CONFIG_W1_CON). A request's cn_msg carries one or more `w1_netlink_msg`
// (12-byte header + data); a master or slave message's data is a sequence of
// `w1_netlink_cmd` (4-byte header + data). Neither struct is in the UAPI
// headers: the layouts below are those of drivers/w1/w1_netlink.h, host byte
// order, packed by construction (all fields naturally aligned).
//
//   w1_netlink_msg: u8 type, u8 status, u16 len, u8 id[8] (a slave's ROM id,
//                   or u32 master id + u32 reserved), u8 data[len]
//   w1_netlink_cmd: u8 cmd, u8 res, u16 len, u8 data[len]
//
// How the kernel answers (drivers/w1/w1_netlink.c, the same in 5.10 and 6.1;
// rewritten in 3.16): every reply is unicast to the requester and copies the
// request's cn_msg (id, seq, flags), then sets `ack`:
// - a data reply (read/touch bytes; slave ids of search, alarm search and
//   list slaves; the master ids of LIST_MASTERS): ack = request seq + 1. A long
//   slave list may be split over several data replies.
// - a status reply, one after each command of a master/slave message:
//   ack = the request's ack; w1_netlink_msg.status = -errno as u8 (0: fine),
//   and the command's header with len 0. A message for a missing master or
//   slave, or a malformed one, gets one status with no command (msg len 0).
//   When selecting a slave fails (no reset presence), one status with
//   ENODEV and the first command, and the rest of the commands are skipped.
// - LIST_MASTERS gets data replies only (no status), in pages of 4 KiB.
// - With W1_CN_BUNDLE in the request's cn_msg.flags, the kernel packs several
//   cn_msg (each with its header, back to back) into one netlink message; the
//   framing layer yields each of them, so an answer's parts are the same with
//   or without it (w1::options::flags).
// So a request's answer is the stream of messages with its seq and id, and it
// ends with the status of its last command: reply_rule() says so to the
// client (request_options::parts).
#pragma once

#include <cnasio/connector/message.hpp>
#include <cnasio/error.hpp>
#include <cnasio/options.hpp>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cnasio::w1 {

/// The w1 core's connector id {CN_W1_IDX, CN_W1_VAL}.
inline constexpr connector::id connector_id{3, 1};
/// cn_msg.flags bit asking the kernel to bundle replies (W1_CN_BUNDLE).
inline constexpr std::uint16_t cn_bundle = 1;

/// w1_netlink_msg.type
enum class message_type : std::uint8_t {
    slave_add = 0,
    slave_remove = 1,
    master_add = 2,
    master_remove = 3,
    master_cmd = 4,
    slave_cmd = 5,
    list_masters = 6,
};

/// w1_netlink_cmd.cmd
enum class command : std::uint8_t {
    read = 0,
    write = 1,
    search = 2,
    alarm_search = 3,
    touch = 4,
    reset = 5,
    slave_add = 6,
    slave_remove = 7,
    list_slaves = 8,
};

inline constexpr std::size_t msg_header_size = 12; ///< sizeof(struct w1_netlink_msg)
inline constexpr std::size_t cmd_header_size = 4;  ///< sizeof(struct w1_netlink_cmd)

/// The Dallas/Maxim CRC8 (x^8 + x^5 + x^4 + 1, reflected, initial 0) of ROM
/// ids and scratchpads: the CRC over data followed by its CRC byte is 0.
constexpr std::uint8_t crc8(std::span<const std::uint8_t> bytes) noexcept {
    std::uint8_t crc = 0;
    for (std::uint8_t b : bytes)
        for (int i = 0; i < 8; ++i) {
            const bool mix = ((crc ^ b) & 1u) != 0;
            crc >>= 1;
            if (mix) crc ^= 0x8c;
            b >>= 1;
        }
    return crc;
}

/// A slave's 64-bit ROM id (`struct w1_reg_num`) as it travels: family code,
/// 48-bit serial number (least significant byte first), CRC8 of the seven.
struct rom_id {
    std::array<std::uint8_t, 8> bytes{};

    std::uint8_t family() const noexcept { return bytes[0]; }
    std::uint64_t serial() const noexcept {
        std::uint64_t s = 0;
        for (int i = 6; i >= 1; --i) s = (s << 8) | bytes[static_cast<std::size_t>(i)];
        return s;
    }
    std::uint8_t crc() const noexcept { return bytes[7]; }
    /// The CRC byte matches the other seven.
    bool crc_ok() const noexcept { return crc8(std::span(bytes).first(7)) == bytes[7]; }

    /// The id with its CRC computed: `family`, the low 48 bits of `serial`.
    static rom_id make(std::uint8_t family, std::uint64_t serial) noexcept {
        rom_id r;
        r.bytes[0] = family;
        for (std::size_t i = 1; i <= 6; ++i, serial >>= 8) r.bytes[i] = static_cast<std::uint8_t>(serial);
        r.bytes[7] = crc8(std::span(r.bytes).first(7));
        return r;
    }

    /// The kernel's sysfs name, e.g. "28-00000a1b2c3d" (family, serial; no CRC).
    std::string name() const {
        static constexpr char hex[] = "0123456789abcdef";
        std::string s(15, '-');
        s[0] = hex[family() >> 4];
        s[1] = hex[family() & 15];
        const std::uint64_t n = serial();
        for (int i = 0; i < 12; ++i) s[static_cast<std::size_t>(14 - i)] = hex[(n >> (4 * i)) & 15];
        return s;
    }

    /// Parses a sysfs name ("28-00000a1b2c3d"): the CRC is computed, as
    /// sysfs names omit it. Nothing on a malformed name.
    static std::optional<rom_id> parse(std::string_view s) {
        if (s.size() != 15 || s[2] != '-') return std::nullopt;
        unsigned family = 0;
        std::uint64_t serial = 0;
        if (!hex_field(s.substr(0, 2), family) || !hex_field(s.substr(3), serial)) return std::nullopt;
        return make(static_cast<std::uint8_t>(family), serial);
    }

    friend bool operator==(const rom_id&, const rom_id&) = default;

private:
    template <class T>
    static bool hex_field(std::string_view s, T& out) {
        for (char c : s)
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
        const auto r = std::from_chars(s.data(), s.data() + s.size(), out, 16);
        return r.ec == std::errc{} && r.ptr == s.data() + s.size();
    }
};

/// One command of a request: what to do and its data (the bytes to write;
/// for read, as many bytes as to read, whatever their value).
struct command_spec {
    w1::command cmd;
    std::span<const std::byte> data{};
};

namespace detail {

inline void put_u16(std::vector<std::byte>& out, std::size_t at, std::uint16_t v) {
    std::memcpy(out.data() + at, &v, sizeof v);
}

inline std::vector<std::byte> build(message_type type, std::span<const std::uint8_t, 8> id,
                                    std::span<const command_spec> commands) {
    std::size_t len = 0;
    for (const auto& c : commands) len += cmd_header_size + c.data.size();
    std::vector<std::byte> out(msg_header_size + len);
    out[0] = std::byte(static_cast<std::uint8_t>(type));
    put_u16(out, 2, static_cast<std::uint16_t>(len));
    std::memcpy(out.data() + 4, id.data(), 8);
    std::size_t at = msg_header_size;
    for (const auto& c : commands) {
        out[at] = std::byte(static_cast<std::uint8_t>(c.cmd));
        put_u16(out, at + 2, static_cast<std::uint16_t>(c.data.size()));
        if (!c.data.empty()) std::memcpy(out.data() + at + cmd_header_size, c.data.data(), c.data.size());
        at += cmd_header_size + c.data.size();
    }
    return out;
}

} // namespace detail

/// Longest data of one request (CONNECTOR_MAX_MSG_SIZE less the headers):
/// longer ones fail with error::payload_too_large when sent.
inline constexpr std::size_t max_request_data = 16384 - msg_header_size - cmd_header_size;

/// The payload of a LIST_MASTERS request.
inline std::vector<std::byte> list_masters_request() {
    constexpr std::array<std::uint8_t, 8> none{};
    return detail::build(message_type::list_masters, none, {});
}

/// The payload of a request for bus master `master`.
inline std::vector<std::byte> master_request(std::uint32_t master, std::span<const command_spec> commands) {
    std::array<std::uint8_t, 8> id{};
    std::memcpy(id.data(), &master, sizeof master);
    return detail::build(message_type::master_cmd, id, commands);
}

/// The payload of a request for slave `slave` (the kernel resets the bus and
/// selects the slave with MATCH ROM before the commands).
inline std::vector<std::byte> slave_request(const rom_id& slave, std::span<const command_spec> commands) {
    return detail::build(message_type::slave_cmd, slave.bytes, commands);
}

// ---- reading replies ----

/// One w1_netlink_msg of a received payload.
struct message_view {
    message_type type{};
    std::uint8_t status = 0;
    std::array<std::uint8_t, 8> id{};
    std::span<const std::byte> data; ///< `len` bytes after the header

    std::uint32_t master_id() const noexcept {
        std::uint32_t m;
        std::memcpy(&m, id.data(), sizeof m);
        return m;
    }
    rom_id slave_id() const noexcept { return {id}; }
};

/// One w1_netlink_cmd of a message's data.
struct command_view {
    w1::command cmd{};
    std::span<const std::byte> data;
};

/// Calls `f(const message_view&)` for each w1_netlink_msg of a cn_msg
/// payload. error::w1_reply_malformed when a length runs past the payload
/// (what came before was visited); an empty payload holds no message.
template <class F>
error_code for_each_message(std::span<const std::byte> payload, F&& f) {
    while (!payload.empty()) {
        if (payload.size() < msg_header_size) return error::w1_reply_malformed;
        message_view m;
        m.type = static_cast<message_type>(payload[0]);
        m.status = static_cast<std::uint8_t>(payload[1]);
        std::uint16_t len;
        std::memcpy(&len, payload.data() + 2, sizeof len);
        std::memcpy(m.id.data(), payload.data() + 4, 8);
        if (len > payload.size() - msg_header_size) return error::w1_reply_malformed;
        m.data = payload.subspan(msg_header_size, len);
        f(m);
        payload = payload.subspan(msg_header_size + len);
    }
    return {};
}

/// Calls `f(const command_view&)` for each w1_netlink_cmd of a master or
/// slave message's data; error::w1_reply_malformed as for_each_message.
template <class F>
error_code for_each_command(std::span<const std::byte> data, F&& f) {
    while (!data.empty()) {
        if (data.size() < cmd_header_size) return error::w1_reply_malformed;
        command_view c;
        c.cmd = static_cast<command>(data[0]);
        std::uint16_t len;
        std::memcpy(&len, data.data() + 2, sizeof len);
        if (len > data.size() - cmd_header_size) return error::w1_reply_malformed;
        c.data = data.subspan(cmd_header_size, len);
        f(c);
        data = data.subspan(cmd_header_size + len);
    }
    return {};
}

/// The error a status reply's `status` stands for (0: none). The kernel
/// stores -errno in a u8, so `status` is the errno; a reset that saw no
/// presence pulse returns 1, which arrives as 255: error::w1_no_presence.
inline error_code status_error(std::uint8_t status) noexcept {
    if (status == 0) return {};
    if (status == 255) return error::w1_no_presence;
    return errno_code(status);
}

/// Where a request's answer ends, for request_options::parts (use with
/// match::seq_only): after the status of each of its `commands` commands;
/// at once after a status with no command (missing device, malformed
/// request) or with ENODEV (the slave did not answer its selection, and the
/// kernel skips the other commands). A LIST_MASTERS request (`commands` 0)
/// ends with its first data reply that is not a full 4 KiB page. Messages
/// with neither the request's ack nor its seq + 1 are not parts. A message too
/// short to read ends the answer, so that the caller's decoding reports it.
class reply_rule {
public:
    explicit reply_rule(std::size_t commands) noexcept : commands_(commands) {}

    part_verdict operator()(const connector::header& request, const connector::message_view& m) {
        const bool data = m.ack() == request.seq + 1u;
        const bool status = m.ack() == request.ack;
        if (!data && !status) return part_verdict::not_part;
        if (m.payload.size() < msg_header_size) return part_verdict::last;
        const auto type = static_cast<message_type>(m.payload[0]);
        if (type == message_type::list_masters && data) {
            // The kernel starts a new message when a page (less the cn_msg) cannot take one more id.
            return m.payload.size() + 4 > page_size - connector_header ? part_verdict::more : part_verdict::last;
        }
        if (data && !status) return part_verdict::more;
        std::uint16_t len;
        std::memcpy(&len, m.payload.data() + 2, sizeof len);
        const auto st = static_cast<std::uint8_t>(m.payload[1]);
        if (len < cmd_header_size || st == ENODEV || ++statuses_ >= commands_) return part_verdict::last;
        return part_verdict::more;
    }

private:
    static constexpr std::size_t page_size = 4096, connector_header = 20;
    std::size_t commands_;
    std::size_t statuses_ = 0;
};

/// What a gathered answer holds, read by read_answer().
struct answer {
    std::vector<std::uint32_t> masters;    ///< LIST_MASTERS
    std::vector<rom_id> slaves;            ///< search, alarm search, list slaves
    std::vector<std::byte> data;           ///< read and touch: the bytes, in command order
    std::size_t statuses = 0;              ///< status replies seen
};

/// Reads the parts of the answer to a request sent with `request` headers
/// (`parts` as async_request_parts gathers them) into `out`. The error is the
/// first status error, else error::w1_reply_malformed for a part that does not
/// parse, else error::w1_reply_malformed when `expect_statuses` statuses did
/// not all come (a stream that ended early); none when all is well.
inline error_code read_answer(const connector::header& request, std::span<const connector::message> parts,
                              std::size_t expect_statuses, answer& out) {
    error_code first_status, malformed;
    for (const auto& part : parts) {
        const bool is_data = part.ack() == request.seq + 1u && part.ack() != request.ack;
        const auto payload = std::span<const std::byte>(part.payload.data(), part.payload.size());
        error_code ec = for_each_message(payload, [&](const message_view& m) {
            if (m.type == message_type::list_masters) {
                if (m.data.size() % 4 != 0) malformed = error::w1_reply_malformed;
                for (std::size_t i = 0; i + 4 <= m.data.size(); i += 4) {
                    std::uint32_t id;
                    std::memcpy(&id, m.data.data() + i, 4);
                    out.masters.push_back(id);
                }
                return;
            }
            if (!is_data) {
                ++out.statuses;
                if (!first_status) first_status = status_error(m.status);
                return;
            }
            error_code cec = for_each_command(m.data, [&](const command_view& c) {
                switch (c.cmd) {
                case command::search:
                case command::alarm_search:
                case command::list_slaves:
                    if (c.data.size() % 8 != 0) malformed = error::w1_reply_malformed;
                    for (std::size_t i = 0; i + 8 <= c.data.size(); i += 8) {
                        rom_id r;
                        std::memcpy(r.bytes.data(), c.data.data() + i, 8);
                        out.slaves.push_back(r);
                    }
                    break;
                case command::read:
                case command::touch: out.data.insert(out.data.end(), c.data.begin(), c.data.end()); break;
                default: malformed = error::w1_reply_malformed; break;
                }
            });
            if (cec) malformed = cec;
        });
        if (ec) malformed = ec;
    }
    if (first_status) return first_status;
    if (malformed) return malformed;
    if (out.statuses < expect_statuses) return error::w1_reply_malformed;
    return {};
}

} // namespace cnasio::w1
