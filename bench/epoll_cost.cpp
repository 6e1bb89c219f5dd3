// epoll_cost: what a receiver's epoll registration costs a netlink sender.
//
//   build-bench/bench/bench_epoll_cost [--runs N] [--seconds S]     (root)
//
// A forked sender sends 100-byte connector messages to one receiving socket as
// fast as it can (as bench_recv's sender does, unicast); the receiver is the raw
// C loop of bench_recv (poll, then recv(MSG_DONTWAIT) until EAGAIN). In
// alternate runs the receiving socket is also registered EPOLLET with an epoll
// set that nobody waits on, as Asio registers every socket with its reactor
// for the socket's whole life. Nothing else differs, so the difference in
// messages per second is what that registration costs: every queued datagram
// then runs the epoll callback under the socket's wait-queue lock
// (sock_def_readable -> ep_poll_callback), in the sender's system call.
// A diagnostic for bench/README.md ("why a flood stops near the sender's
// speed"), not part of bench/run.
#include "common.hpp"

#include <sys/epoll.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <poll.h>
#include <string>
#include <vector>

namespace {

using namespace bench;

constexpr std::uint32_t message_idx = 0x4242, message_val = 1;
constexpr std::size_t payload_size = 64;

void sender_main(std::uint32_t port, double seconds, int go_read, int result_write)
{
    std::uint32_t go = 0;
    read_exact(go_read, &go, sizeof go);
    const int fd = open_connector();
    const sockaddr_nl dst = netlink_address(port);
    alignas(8) unsigned char msg[NLMSG_SPACE(sizeof(cn_msg) + payload_size)];
    const unsigned char payload[payload_size] = {};
    const std::size_t len = build_message(msg, message_idx, message_val, 0, 0, payload, payload_size);
    const std::uint64_t sent = send_flood(fd, dst, msg, len, seconds);
    write_result(result_write, static_cast<std::int64_t>(sent));
}

// One run: messages per second received (first to last receive).
double run(bool registered, double seconds)
{
    const int fd = open_connector(0, 8 << 20);
    int ep = -1;
    if (registered) {
        ep = ::epoll_create1(EPOLL_CLOEXEC);
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLET;
        if (ep < 0 || ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
            die("epoll");
    }
    const std::uint32_t port = port_id_of(fd);
    auto child = fork_child([&](int go_read, int result_write) { sender_main(port, seconds, go_read, result_write); });
    const std::uint32_t go = 1;
    child.send_go(&go, sizeof go);
    alignas(8) unsigned char buf[8192];
    std::uint64_t got = 0, first = 0, last = 0;
    pollfd pfd{fd, POLLIN, 0};
    for (;;) {
        if (::poll(&pfd, 1, 300) == 0)
            break; // the sender has stopped
        for (;;) {
            const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n < 0)
                break;
            const auto* h = reinterpret_cast<const nlmsghdr*>(buf);
            if (!NLMSG_OK(h, static_cast<std::size_t>(n)) || h->nlmsg_len < NLMSG_LENGTH(sizeof(cn_msg)))
                die_msg("a malformed datagram");
            last = now_ns();
            if (got++ == 0)
                first = last;
        }
    }
    const std::int64_t sent = child.wait_result();
    if (sent < 0 || static_cast<std::uint64_t>(sent) != got)
        die_msg(("the sender sent " + std::to_string(sent) + ", the receiver got " + std::to_string(got)).c_str());
    if (ep >= 0)
        ::close(ep);
    ::close(fd);
    return got > 1 ? static_cast<double>(got - 1) / (static_cast<double>(last - first) / 1e9) : 0;
}

} // namespace

int main(int argc, char** argv)
{
    require_root("bench_epoll_cost");
    int runs = 8;
    double seconds = 1.5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--runs") == 0)
            runs = std::atoi(argv[i + 1]);
        else if (std::strcmp(argv[i], "--seconds") == 0)
            seconds = std::atof(argv[i + 1]);
        else
            die_msg("usage: bench_epoll_cost [--runs N] [--seconds S]");
    }
    std::vector<double> plain, registered;
    for (int i = 0; i < runs; ++i) {
        plain.push_back(run(false, seconds));
        registered.push_back(run(true, seconds));
        std::fprintf(stderr, "run %d: plain %.0f msgs/s, registered %.0f msgs/s\n", i + 1, plain.back(),
                     registered.back());
    }
    std::printf("epoll_registration msgs/s: registered=%.0f plain=%.0f ratio=%.4f (medians of %d alternating runs)\n",
                median(registered), median(plain), median(registered) / median(plain), runs);
}
