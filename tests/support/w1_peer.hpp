// A user-space stand-in for the kernel's w1 core (drivers/w1/w1_netlink.c,
// 5.10/6.1; with W1_CN_BUNDLE in a request's flags, all its replies go in one
// netlink message, cn_msg after cn_msg, as the kernel packs them) with one bus master and DS18B20s on it, in
// a thread. It answers as the kernel does: data replies with ack = seq + 1,
// one status reply per command with the request's ack, a status with no
// command for an unknown master or slave, ENODEV with the first command when
// a slave does not answer its selection. Tests of cnasio::w1 use it where no
// w1 module is loaded; the VM suite runs the same client against the real one.
#pragma once

#include "peer.hpp"

#include <cnasio/w1/ds18b20.hpp>
#include <cnasio/w1/protocol.hpp>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace cnasio::test {

/// One emulated DS18B20.
struct w1_sensor {
    w1::rom_id rom;
    std::int16_t raw = 0;        ///< the temperature a conversion yields (1/16 °C)
    std::uint8_t config = 0x1f;  ///< 9-bit resolution: 94 ms conversions keep tests fast
    bool corrupt = false;        ///< flip a bit of every scratchpad read (CRC error)
    bool no_presence = false;    ///< do not answer the reset before selection
    bool never_converts = false; ///< ignore Convert T: the register keeps 85 °C
    std::int16_t reg = w1::ds18b20::power_on_raw; ///< the temperature register now
};

class w1_peer {
public:
    static constexpr std::uint32_t master = 1;

    explicit w1_peer(std::vector<w1_sensor> sensors) : sensors_(std::move(sensors)), thread_([this] { run(); }) {}
    ~w1_peer() {
        stop_ = true;
        thread_.join();
    }
    std::uint32_t port_id() const noexcept { return sock_.port_id(); }
    /// Stop answering (requests then time out).
    void set_silent(bool s) { silent_ = s; }
    /// Send the slave ids of a search in data replies of at most this many ids.
    void set_ids_per_reply(std::size_t n) { ids_per_reply_ = n; }
    std::size_t requests() const noexcept { return requests_; }
    /// Datagrams sent (a bundle is one).
    std::size_t datagrams() const noexcept { return datagrams_; }

private:
    void run() {
        std::vector<std::byte> bytes;
        while (!stop_) {
            std::uint32_t from = 0;
            if (!sock_.receive(bytes, from, 20)) continue;
            ++requests_;
            if (silent_) continue;
            connector::for_each_message(
                bytes, false,
                [&](const connector::message_view& m) {
                    bundle_.clear();
                    bundling_ = (m.header.flags & w1::cn_bundle) != 0;
                    answer(m, from);
                    if (bundling_ && !bundle_.empty()) flush_bundle(m.header, from);
                },
                [](error_code, const connector::message_view&) {});
        }
    }

    // One reply: the request's cn_msg with `ack`, one w1 message (type and id
    // of the request's), its status, and at most one command.
    void send(const connector::message_view& rq, std::uint32_t to, std::uint32_t ack, const w1::message_view& m,
              std::uint8_t status, const w1::command_view* cmd, std::span<const std::byte> data) {
        std::vector<std::byte> p(w1::msg_header_size);
        p[0] = std::byte(static_cast<std::uint8_t>(m.type));
        p[1] = std::byte(status);
        std::memcpy(p.data() + 4, m.id.data(), 8);
        if (cmd) {
            const std::size_t at = p.size();
            p.resize(at + w1::cmd_header_size + data.size());
            p[at] = std::byte(static_cast<std::uint8_t>(cmd->cmd));
            const auto len = static_cast<std::uint16_t>(data.size());
            std::memcpy(p.data() + at + 2, &len, 2);
            if (!data.empty()) std::memcpy(p.data() + at + w1::cmd_header_size, data.data(), data.size());
        }
        const auto len = static_cast<std::uint16_t>(p.size() - w1::msg_header_size);
        std::memcpy(p.data() + 2, &len, 2);
        connector::header h = rq.header;
        h.ack = ack;
        h.nlmsg_pid = sock_.port_id();
        emit(h, p, to);
    }

    // One reply: a datagram of its own, or the next cn_msg of the bundle.
    void emit(const connector::header& h, std::span<const std::byte> payload, std::uint32_t to) {
        if (!bundling_) {
            ++datagrams_;
            sock_.send(h, payload, to);
            return;
        }
        const std::size_t at = bundle_.size();
        bundle_.resize(at + connector::connector_header_size + payload.size());
        std::byte* cn = bundle_.data() + at;
        const auto len = static_cast<std::uint16_t>(payload.size());
        std::memcpy(cn + 0, &h.id.idx, 4);
        std::memcpy(cn + 4, &h.id.val, 4);
        std::memcpy(cn + 8, &h.seq, 4);
        std::memcpy(cn + 12, &h.ack, 4);
        std::memcpy(cn + 16, &len, 2);
        std::memcpy(cn + 18, &h.flags, 2);
        if (!payload.empty()) std::memcpy(cn + connector::connector_header_size, payload.data(), payload.size());
    }

    // The bundle as one netlink message (NLMSG_DONE, the request's seq, as cn_netlink_send_mult builds it).
    void flush_bundle(const connector::header& rq, std::uint32_t to) {
        std::vector<std::byte> d(connector::netlink_header_size);
        const auto total = static_cast<std::uint32_t>(d.size() + bundle_.size());
        const std::uint16_t type = NLMSG_DONE, flags = 0;
        const std::uint32_t pid = sock_.port_id();
        std::memcpy(d.data() + 0, &total, 4);
        std::memcpy(d.data() + 4, &type, 2);
        std::memcpy(d.data() + 6, &flags, 2);
        std::memcpy(d.data() + 8, &rq.seq, 4);
        std::memcpy(d.data() + 12, &pid, 4);
        d.insert(d.end(), bundle_.begin(), bundle_.end());
        ++datagrams_;
        sock_.send_raw(d, to);
    }

    void answer(const connector::message_view& rq, std::uint32_t to) {
        const std::uint32_t data_ack = rq.seq() + 1, status_ack = rq.ack();
        (void)w1::for_each_message(rq.payload, [&](const w1::message_view& m) {
            if (m.type == w1::message_type::list_masters) {
                const std::uint32_t ids[] = {master};
                std::vector<std::byte> p(w1::msg_header_size + 4);
                p[0] = std::byte{6};
                p[2] = std::byte{4};
                std::memcpy(p.data() + w1::msg_header_size, ids, 4);
                connector::header h = rq.header;
                h.ack = data_ack;
                emit(h, p, to);
                return;
            }
            w1_sensor* sensor = nullptr;
            if (m.type == w1::message_type::slave_cmd) {
                for (auto& s : sensors_)
                    if (s.rom.bytes == m.id) sensor = &s;
            }
            const bool known = (m.type == w1::message_type::master_cmd && m.master_id() == master) || sensor;
            if (!known) return send(rq, to, status_ack, m, ENODEV, nullptr, {});
            bool first = true;
            (void)w1::for_each_command(m.data, [&](const w1::command_view& c) {
                if (sensor && sensor->no_presence) {
                    if (first) send(rq, to, status_ack, m, ENODEV, &c, {});
                    first = false;
                    return;
                }
                first = false;
                std::uint8_t status = 0;
                switch (c.cmd) {
                case w1::command::search:
                case w1::command::list_slaves: {
                    std::vector<std::byte> ids;
                    for (const auto& s : sensors_) {
                        ids.insert(ids.end(), reinterpret_cast<const std::byte*>(s.rom.bytes.data()),
                                   reinterpret_cast<const std::byte*>(s.rom.bytes.data()) + 8);
                        if (ids.size() == 8 * ids_per_reply_) {
                            send(rq, to, data_ack, m, 0, &c, ids);
                            ids.clear();
                        }
                    }
                    if (!ids.empty() || sensors_.empty()) send(rq, to, data_ack, m, 0, &c, ids);
                    break;
                }
                case w1::command::reset: status = sensors_.empty() ? 255 : 0; break;
                case w1::command::write:
                    if (sensor && c.data.size() == 1 && c.data[0] == std::byte{w1::ds18b20::convert_t} &&
                        !sensor->never_converts)
                        sensor->reg = sensor->raw;
                    break;
                case w1::command::read:
                case w1::command::touch: {
                    std::vector<std::byte> out(c.data.begin(), c.data.end());
                    if (sensor && c.cmd == w1::command::read) {
                        const auto pad = scratchpad(*sensor);
                        for (std::size_t i = 0; i < out.size() && i < pad.size(); ++i) out[i] = pad[i];
                    }
                    send(rq, to, data_ack, m, 0, &c, out);
                    break;
                }
                default: status = EINVAL; break;
                }
                send(rq, to, status_ack, m, status, &c, {});
            });
        });
    }

    static std::vector<std::byte> scratchpad(const w1_sensor& s) {
        std::array<std::uint8_t, 9> b{static_cast<std::uint8_t>(s.reg & 0xff),
                                      static_cast<std::uint8_t>((s.reg >> 8) & 0xff), 0x4b, 0x46, s.config, 0xff,
                                      0x0c, 0x10, 0};
        b[8] = w1::crc8(std::span(b).first(8));
        if (s.corrupt) b[1] ^= 0x01;
        std::vector<std::byte> out;
        for (auto x : b) out.push_back(std::byte(x));
        return out;
    }

    std::vector<w1_sensor> sensors_;
    peer sock_;
    std::atomic<bool> stop_{false}, silent_{false};
    std::atomic<std::size_t> ids_per_reply_{64}, requests_{0}, datagrams_{0};
    std::vector<std::byte> bundle_; // the cn_msg of a bundle being built (the peer's thread only)
    bool bundling_ = false;
    std::thread thread_;
};

} // namespace cnasio::test
