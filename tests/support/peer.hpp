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

    /// Waits up to `timeout_ms` for one datagram; false on timeout.
    bool receive(std::vector<std::byte>& out, std::uint32_t& from_port, int timeout_ms) {
        ::pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, timeout_ms) <= 0) return false;
        out.resize(64 * 1024);
        ::sockaddr_nl a{};
        socklen_t len = sizeof a;
        const auto n = ::recvfrom(fd_, out.data(), out.size(), 0, reinterpret_cast<::sockaddr*>(&a), &len);
        if (n < 0) return false;
        out.resize(static_cast<std::size_t>(n));
        from_port = a.nl_pid;
        return true;
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
