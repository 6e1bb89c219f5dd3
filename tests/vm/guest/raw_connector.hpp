// A NETLINK_CONNECTOR socket driven with plain system calls, for guest tests
// that must not depend on the library under test (the harness's own proof,
// malformed datagrams the library would never build).
#pragma once

#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "cnasio_echo_proto.h"

namespace guest {

struct received {
    std::uint32_t sender_port = 0;  // from recvfrom: 0 means the kernel
    std::uint32_t idx = 0, val = 0, seq = 0, ack = 0;
    std::vector<std::uint8_t> data;  // the cn_msg payload
};

inline std::system_error sys_error(const char* what)
{
    return std::system_error(errno, std::generic_category(), what);
}

class raw_connector {
public:
    // rcvbuf > 0 forces that receive buffer size (needs CAP_NET_ADMIN).
    explicit raw_connector(int rcvbuf = 0)
        : fd_(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR))
    {
        if (fd_ < 0)
            throw sys_error("socket(NETLINK_CONNECTOR)");
        sockaddr_nl local{};
        local.nl_family = AF_NETLINK;
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) < 0)
            throw sys_error("bind");
        socklen_t len = sizeof local;
        if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &len) < 0)
            throw sys_error("getsockname");
        port_ = local.nl_pid;
        if (rcvbuf > 0 && ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
            throw sys_error("SO_RCVBUFFORCE");
    }
    raw_connector(const raw_connector&) = delete;
    raw_connector& operator=(const raw_connector&) = delete;
    ~raw_connector() { ::close(fd_); }

    int fd() const { return fd_; }
    std::uint32_t port() const { return port_; }

    void join(unsigned group)
    {
        if (::setsockopt(fd_, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0)
            throw sys_error("NETLINK_ADD_MEMBERSHIP");
    }

    // Sends raw bytes to the kernel (port 0); returns sendto's result.
    ssize_t send_bytes(std::span<const std::uint8_t> bytes)
    {
        sockaddr_nl kernel{};
        kernel.nl_family = AF_NETLINK;
        return ::sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&kernel),
                        sizeof kernel);
    }

    // One well-formed nlmsghdr + cn_msg + payload. `nlmsg_pid` is what the
    // header claims; the kernel learns the true port from the socket anyway.
    static std::vector<std::uint8_t> build(std::uint32_t idx, std::uint32_t val, std::uint32_t seq,
                                           std::uint32_t ack, std::span<const std::uint8_t> payload,
                                           std::uint32_t nlmsg_pid = 0)
    {
        std::vector<std::uint8_t> out(NLMSG_HDRLEN + sizeof(cn_msg) + payload.size());
        nlmsghdr nh{};
        nh.nlmsg_len = static_cast<std::uint32_t>(out.size());
        nh.nlmsg_type = NLMSG_DONE;
        nh.nlmsg_seq = seq;
        nh.nlmsg_pid = nlmsg_pid;
        cn_msg cn{};
        cn.id.idx = idx;
        cn.id.val = val;
        cn.seq = seq;
        cn.ack = ack;
        cn.len = static_cast<std::uint16_t>(payload.size());
        std::memcpy(out.data(), &nh, sizeof nh);
        std::memcpy(out.data() + NLMSG_HDRLEN, &cn, sizeof cn);
        if (!payload.empty())
            std::memcpy(out.data() + NLMSG_HDRLEN + sizeof cn, payload.data(), payload.size());
        return out;
    }

    // Waits up to timeout_ms for one datagram and decodes its first message.
    // nullopt on timeout; throws on a datagram that is not a connector message.
    std::optional<received> receive(int timeout_ms)
    {
        pollfd p{fd_, POLLIN, 0};
        int n = ::poll(&p, 1, timeout_ms);
        if (n < 0)
            throw sys_error("poll");
        if (n == 0)
            return std::nullopt;
        std::vector<std::uint8_t> buf(65536);
        sockaddr_nl from{};
        socklen_t from_len = sizeof from;
        ssize_t got = ::recvfrom(fd_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from),
                                 &from_len);
        if (got < 0)
            throw sys_error("recvfrom");
        auto size = static_cast<std::size_t>(got);
        nlmsghdr nh;
        cn_msg cn;
        if (size < NLMSG_HDRLEN + sizeof cn)
            throw std::runtime_error("short datagram: " + std::to_string(size));
        std::memcpy(&nh, buf.data(), sizeof nh);
        std::memcpy(&cn, buf.data() + NLMSG_HDRLEN, sizeof cn);
        if (nh.nlmsg_len > size || NLMSG_HDRLEN + sizeof cn + cn.len > nh.nlmsg_len)
            throw std::runtime_error("inconsistent lengths in datagram");
        received r;
        r.sender_port = from.nl_pid;
        r.idx = cn.id.idx;
        r.val = cn.id.val;
        r.seq = cn.seq;
        r.ack = cn.ack;
        const auto* payload = buf.data() + NLMSG_HDRLEN + sizeof cn;
        r.data.assign(payload, payload + cn.len);
        return r;
    }

private:
    int fd_;
    std::uint32_t port_ = 0;
};

// The module's reply payload, decoded.
struct echo_reply {
    std::int32_t err = 0;
    std::uint32_t arg = 0;
    std::vector<std::uint8_t> data;
};

inline std::optional<echo_reply> decode_reply(const received& r)
{
    if (r.data.size() < sizeof(cnasio_echo_reply))
        return std::nullopt;
    cnasio_echo_reply head;
    std::memcpy(&head, r.data.data(), sizeof head);
    echo_reply out{head.err, head.arg, {}};
    out.data.assign(r.data.begin() + sizeof head, r.data.end());
    return out;
}

struct echo_event {
    cnasio_echo_event head{};
    std::vector<std::uint8_t> data;
};

inline std::optional<echo_event> decode_event(const received& r)
{
    if (r.data.size() < sizeof(cnasio_echo_event))
        return std::nullopt;
    echo_event out;
    std::memcpy(&out.head, r.data.data(), sizeof out.head);
    out.data.assign(r.data.begin() + sizeof out.head, r.data.end());
    return out;
}

inline std::vector<std::uint8_t> request_payload(std::uint32_t cmd, std::uint32_t arg,
                                                 std::span<const std::uint8_t> data = {})
{
    std::vector<std::uint8_t> out(sizeof(cnasio_echo_request) + data.size());
    cnasio_echo_request head{cmd, arg};
    std::memcpy(out.data(), &head, sizeof head);
    if (!data.empty())
        std::memcpy(out.data() + sizeof head, data.data(), data.size());
    return out;
}

inline std::span<const std::uint8_t> bytes_of(const std::string& s)
{
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

} // namespace guest
