// A user-space stand-in for a kernel module: a plain, blocking
// NETLINK_CONNECTOR socket (root can unicast to any port id and multicast to
// any group). Tests use it to send crafted datagrams to cnasio and to answer
// cnasio's requests. Deliberately written with raw syscalls, not with cnasio.
#pragma once

#include <cnasio/connector/framing.hpp>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace cnasio::test {

class peer {
public:
    /// Opens and binds a connector socket; `groups` is a bind() mask.
    explicit peer(std::uint32_t groups = 0, int protocol = NETLINK_CONNECTOR) {
        fd_ = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, protocol);
        if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "peer socket");
        ::sockaddr_nl a{};
        a.nl_family = AF_NETLINK;
        a.nl_groups = groups;
        if (::bind(fd_, reinterpret_cast<::sockaddr*>(&a), sizeof a) != 0)
            throw std::system_error(errno, std::generic_category(), "peer bind");
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<::sockaddr*>(&a), &len);
        port_ = a.nl_pid;
    }
    peer(const peer&) = delete;
    peer& operator=(const peer&) = delete;
    ~peer() {
        if (fd_ >= 0) ::close(fd_);
    }

    int fd() const noexcept { return fd_; }
    std::uint32_t port_id() const noexcept { return port_; }

    /// Sends raw bytes to a port id (and/or a group mask). Returns 0 or the errno.
    int send_raw(std::span<const std::byte> bytes, std::uint32_t to_port, std::uint32_t to_groups = 0) {
        ::sockaddr_nl a{};
        a.nl_family = AF_NETLINK;
        a.nl_pid = to_port;
        a.nl_groups = to_groups;
        const auto n = ::sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<::sockaddr*>(&a), sizeof a);
        return n < 0 ? errno : 0;
    }

    /// Frames and sends one connector message. Returns 0 or the errno.
    int send(const connector::header& h, std::span<const std::byte> payload, std::uint32_t to_port,
             std::uint32_t to_groups = 0) {
        error_code ec;
        const auto bytes = connector::build_datagram(h, payload, ec);
        if (ec) throw std::runtime_error("peer: cannot frame: " + ec.message());
        return send_raw(bytes, to_port, to_groups);
    }

    /// Waits up to `timeout_ms` for one datagram; false on timeout. An
    /// overrun (ENOBUFS) is counted in overruns() and the wait goes on: the
    /// datagrams queued after it are still there.
    bool receive(std::vector<std::byte>& out, std::uint32_t& from_port, int timeout_ms) {
        for (;;) {
            ::pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, timeout_ms) <= 0) return false;
            out.resize(64 * 1024);
            ::sockaddr_nl a{};
            socklen_t len = sizeof a;
            const auto n = ::recvfrom(fd_, out.data(), out.size(), 0, reinterpret_cast<::sockaddr*>(&a), &len);
            if (n < 0 && errno == ENOBUFS) {
                ++overruns_;
                continue;
            }
            if (n < 0) return false;
            out.resize(static_cast<std::size_t>(n));
            from_port = a.nl_pid;
            return true;
        }
    }

    /// Times receive() met ENOBUFS: messages were lost before it.
    std::size_t overruns() const noexcept { return overruns_; }

    /// SO_RCVBUFFORCE (root): room for `bytes` of queued datagrams, so that a
    /// busy machine's proc events do not overrun a test's peer.
    void force_receive_buffer(int bytes) {
        if (::setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0)
            throw std::system_error(errno, std::generic_category(), "peer SO_RCVBUFFORCE");
    }

    /// Receives one connector message (first of its datagram); false on timeout.
    bool receive(connector::message& m, std::uint32_t& from_port, int timeout_ms) {
        std::vector<std::byte> bytes;
        if (!receive(bytes, from_port, timeout_ms)) return false;
        connector::message_view v;
        if (connector::parse_message(bytes, v)) return false;
        m.assign(v);
        return true;
    }

private:
    int fd_ = -1;
    std::uint32_t port_ = 0;
    std::size_t overruns_ = 0;
};

/// Bytes of a string literal or text, for payloads.
inline std::vector<std::byte> bytes_of(std::string_view s) {
    std::vector<std::byte> v(s.size());
    std::memcpy(v.data(), s.data(), s.size());
    return v;
}

inline std::string text_of(std::span<const std::byte> b) {
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

} // namespace cnasio::test

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <thread>

namespace cnasio::test {

/// How an echo_peer misbehaves.
struct echo_behaviour {
    std::size_t batch = 1;              ///< collect this many requests, then answer them shuffled
    bool duplicate = false;             ///< answer every request twice
    bool decoys = false;                ///< before each reply send one with ack + 2 and one with seq + 1
    std::chrono::milliseconds delay{0}; ///< wait before answering
};

/// A user-space "module" in a thread: answers each request with the same seq,
/// ack + 1 and the same payload, by unicast to the requester's port id.
class echo_peer {
public:
    explicit echo_peer(echo_behaviour b = {}) : b_(b), thread_([this] { run(); }) {}
    ~echo_peer() {
        stop_ = true;
        thread_.join();
    }
    std::uint32_t port_id() const noexcept { return sock_.port_id(); }
    std::size_t answered() const noexcept { return answered_; }

private:
    struct pending_reply {
        connector::header h;
        std::vector<std::byte> payload;
        std::uint32_t to;
    };

    void run() {
        std::vector<pending_reply> batch;
        std::mt19937 rng(42);
        std::vector<std::byte> bytes;
        while (!stop_) {
            std::uint32_t from = 0;
            const bool got = sock_.receive(bytes, from, 20);
            if (got) {
                connector::for_each_message(
                    bytes, false,
                    [&](const connector::message_view& m) {
                        pending_reply r{m.header, {m.payload.begin(), m.payload.end()}, from};
                        r.h.ack = m.ack() + 1;
                        r.h.nlmsg_pid = sock_.port_id();
                        batch.push_back(std::move(r));
                    },
                    [](error_code, const connector::message_view&) {});
            }
            if (batch.empty() || (got && batch.size() < b_.batch)) continue;
            if (b_.delay.count() > 0) std::this_thread::sleep_for(b_.delay);
            std::shuffle(batch.begin(), batch.end(), rng);
            for (auto& r : batch) {
                if (b_.decoys) {
                    auto wrong_ack = r.h;
                    wrong_ack.ack += 1;
                    sock_.send(wrong_ack, as_payload("decoy: wrong ack"), r.to);
                    auto wrong_seq = r.h;
                    wrong_seq.seq += 1;
                    sock_.send(wrong_seq, as_payload("decoy: wrong seq"), r.to);
                }
                sock_.send(r.h, r.payload, r.to);
                if (b_.duplicate) sock_.send(r.h, r.payload, r.to);
                ++answered_;
            }
            batch.clear();
        }
    }

    static std::span<const std::byte> as_payload(std::string_view s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

    echo_behaviour b_;
    peer sock_;
    std::atomic<bool> stop_{false};
    std::atomic<std::size_t> answered_{0};
    std::thread thread_;
};

} // namespace cnasio::test
