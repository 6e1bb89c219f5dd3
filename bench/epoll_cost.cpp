// epoll_cost: what a receiver's epoll registration costs a netlink sender.
//
//   build-bench/bench/bench_epoll_cost [--runs N] [--seconds S] [--group G]     (root)
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
// Against the plain loop, which is slower than the sender, the registration
// showed nothing; against the recvmmsg loop below, which keeps up, it costs
// the sender about 5% (bench/README.md). A third loop,
// alternating with the two, reads with recvmmsg, up to 32 datagrams per call:
// a faster receiver, which catches up with the sender and sleeps in poll()
// where the plain loop hardly ever does. Its ratio to the plain loop is what
// waking a sleeping receiver costs the sender, the suspect that remains.
// A diagnostic for bench/README.md ("why a flood stops near the sender's
// speed"), not part of bench/run. --group G (1..32) multicasts to group G
// instead, which the receiver joins (bench_recv's multicast flood uses 20).
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

int group = 0; // --group: multicast to this group instead of unicast

void sender_main(std::uint32_t port, double seconds, int go_read, int result_write)
{
    std::uint32_t go = 0;
    read_exact(go_read, &go, sizeof go);
    const int fd = open_connector();
    const sockaddr_nl dst = group != 0 ? netlink_address(0, group_mask(group)) : netlink_address(port);
    alignas(8) unsigned char msg[NLMSG_SPACE(sizeof(cn_msg) + payload_size)];
    const unsigned char payload[payload_size] = {};
    const std::size_t len = build_message(msg, message_idx, message_val, 0, 0, payload, payload_size);
    const std::uint64_t sent = send_flood(fd, dst, msg, len, seconds);
    write_result(result_write, static_cast<std::int64_t>(sent));
}

enum class receiver { plain, registered, batch, batch_registered };

struct outcome {
    double msgs_per_s;
    double msgs_per_poll; // messages per poll() that found the socket readable (the last one times out)
};

// One run: messages per second received (first to last receive).
outcome run(receiver mode, double seconds)
{
    const bool registered = mode == receiver::registered || mode == receiver::batch_registered;
    const bool batched = mode == receiver::batch || mode == receiver::batch_registered;
    const int fd = open_connector(0, 8 << 20);
    if (group != 0)
        join_group(fd, group);
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
    constexpr unsigned batch = 32;
    static unsigned char bufs[batch][512];
    iovec iov[batch];
    mmsghdr msgs[batch];
    for (unsigned i = 0; i < batch; ++i) {
        iov[i] = {bufs[i], sizeof bufs[i]};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    std::uint64_t got = 0, first = 0, last = 0, polls = 0;
    pollfd pfd{fd, POLLIN, 0};
    for (;;) {
        if (::poll(&pfd, 1, 300) == 0)
            break; // the sender has stopped
        ++polls;
        while (batched) {
            const int n = ::recvmmsg(fd, msgs, batch, MSG_DONTWAIT, nullptr);
            if (n <= 0)
                break;
            for (int i = 0; i < n; ++i) {
                const auto* h = reinterpret_cast<const nlmsghdr*>(bufs[i]);
                if (!NLMSG_OK(h, msgs[i].msg_len) || h->nlmsg_len < NLMSG_LENGTH(sizeof(cn_msg)))
                    die_msg("a malformed datagram");
            }
            last = now_ns();
            if (got == 0)
                first = last;
            got += static_cast<std::uint64_t>(n);
        }
        while (!batched) {
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
    return {got > 1 ? static_cast<double>(got - 1) / (static_cast<double>(last - first) / 1e9) : 0,
            polls > 0 ? static_cast<double>(got) / static_cast<double>(polls) : 0};
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
        else if (std::strcmp(argv[i], "--group") == 0)
            group = std::atoi(argv[i + 1]);
        else
            die_msg("usage: bench_epoll_cost [--runs N] [--seconds S] [--group G]");
    if (group < 0 || group > 32)
        die_msg("bench_epoll_cost: --group takes 1..32");
    }
    std::vector<double> plain, registered, batch, batch_registered, plain_per_poll, batch_per_poll;
    for (int i = 0; i < runs; ++i) {
        const outcome p = run(receiver::plain, seconds);
        const outcome r = run(receiver::registered, seconds);
        const outcome b = run(receiver::batch, seconds);
        const outcome br = run(receiver::batch_registered, seconds);
        batch_registered.push_back(br.msgs_per_s);
        plain.push_back(p.msgs_per_s);
        registered.push_back(r.msgs_per_s);
        batch.push_back(b.msgs_per_s);
        plain_per_poll.push_back(p.msgs_per_poll);
        batch_per_poll.push_back(b.msgs_per_poll);
        std::fprintf(stderr,
                     "run %d: plain %.0f msgs/s (%.0f per poll), registered %.0f msgs/s, recvmmsg %.0f msgs/s (%.0f per poll), recvmmsg registered %.0f msgs/s\n",
                     i + 1, p.msgs_per_s, p.msgs_per_poll, r.msgs_per_s, b.msgs_per_s, b.msgs_per_poll, br.msgs_per_s);
    }
    std::printf("epoll_registration msgs/s: registered=%.0f plain=%.0f ratio=%.4f (medians of %d alternating runs)\n",
                median(registered), median(plain), median(registered) / median(plain), runs);
    std::printf("recvmmsg_receiver msgs/s: recvmmsg=%.0f plain=%.0f ratio=%.4f; messages per poll: %.0f and %.0f\n",
                median(batch), median(plain), median(batch) / median(plain), median(batch_per_poll),
                median(plain_per_poll));
    std::printf("epoll_registration_recvmmsg msgs/s: registered=%.0f unregistered=%.0f ratio=%.4f\n",
                median(batch_registered), median(batch), median(batch_registered) / median(batch));
}
