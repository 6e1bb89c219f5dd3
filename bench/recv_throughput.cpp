// Receive throughput, user space → user space: harness and raw C baseline.
// See recv_throughput.hpp for the workload; prints RESULT lines (issue 6).
#include "recv_throughput.hpp"

#include <thread>

namespace bench::recv {
namespace {

// ---------------------------------------------------------------- sender process

struct go_message {
    std::uint32_t port;  // receiver's port id (unicast)
    std::uint32_t group; // 0: unicast
};

// Runs in the forked sender: sends as fast as the socket allows until the
// deadline and reports how many sendto calls succeeded.
void sender_main(int fd, double seconds, bool pin, int go_read, int result_write)
{
    go_message go{};
    if (pin)
        pin_to_cpu(0);
    read_exact(go_read, &go, sizeof go);
    // A multicast sendto also unicasts to the kernel (port 0), where the
    // unregistered {idx,val} is dropped without an error.
    const sockaddr_nl dst = go.group != 0 ? netlink_address(0, group_mask(static_cast<int>(go.group)))
                                          : netlink_address(go.port);
    alignas(8) unsigned char msg[NLMSG_SPACE(sizeof(cn_msg) + payload_size)];
    const unsigned char payload[payload_size] = {};
    const std::size_t len = build_message(msg, message_idx, message_val, 0, 0, payload, payload_size);
    const std::uint64_t sent = send_flood(fd, dst, msg, len, seconds);
    write_result(result_write, static_cast<std::int64_t>(sent));
}

// ---------------------------------------------------------------- raw C baseline

// One connector socket, poll() for readiness, then recvfrom(MSG_DONTWAIT) until
// EAGAIN; each datagram is walked with NLMSG_OK/NLMSG_NEXT and every length is
// checked before the payload counter is read.
class baseline_receiver final : public receiver {
public:
    explicit baseline_receiver(const config& cfg) : fd_(open_connector(0, cfg.rcvbuf_force)), cfg_(cfg)
    {
        if (cfg.group != 0)
            join_group(fd_, cfg.group);
    }
    ~baseline_receiver() override { ::close(fd_); }

    std::uint32_t port_id() const override { return port_id_of(fd_); }

    void run(stats& s) override
    {
        pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_.fd, POLLIN, 0}};
        alignas(8) unsigned char buf[8192];
        s.ready.store(true);
        for (;;) {
            if (::poll(fds, 2, -1) < 0) {
                if (errno == EINTR)
                    continue;
                die("poll");
            }
            if (fds[1].revents != 0)
                return;
            ++s.wakeups;
            for (;;) {
                sockaddr_nl from{};
                socklen_t from_len = sizeof from;
                ++s.reads;
                const ssize_t n = ::recvfrom(fd_, buf, sizeof buf, MSG_DONTWAIT,
                                             reinterpret_cast<sockaddr*>(&from), &from_len);
                if (n < 0) {
                    if (errno == EAGAIN)
                        break;
                    if (errno == ENOBUFS) {
                        ++s.enobufs;
                        continue;
                    }
                    if (errno == EINTR)
                        continue;
                    die("recvfrom");
                }
                if (from.nl_pid != cfg_.sender_port) {
                    ++s.rejected;
                    continue;
                }
                consume(buf, static_cast<unsigned int>(n), s);
            }
        }
    }

    void stop() override { stop_.signal(); }

private:
    static void consume(const unsigned char* buf, unsigned int len, stats& s)
    {
        for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf); NLMSG_OK(nlh, len); nlh = NLMSG_NEXT(nlh, len)) {
            const std::size_t payload_len = nlh->nlmsg_len - NLMSG_HDRLEN;
            const auto* data = static_cast<const unsigned char*>(NLMSG_DATA(nlh));
            cn_msg cn;
            if (payload_len < sizeof cn) {
                ++s.rejected;
                return;
            }
            std::memcpy(&cn, data, sizeof cn);
            if (cn.len > payload_len - sizeof cn) {
                ++s.rejected;
                return;
            }
            std::uint64_t counter;
            if (cn.id.idx != message_idx || cn.id.val != message_val || cn.len < sizeof counter) {
                ++s.rejected;
                continue;
            }
            std::memcpy(&counter, data + sizeof cn, sizeof counter);
            s.on_message(counter);
        }
    }

    int fd_;
    config cfg_;
    event_fd stop_;
};

// ---------------------------------------------------------------- harness

using factory = std::unique_ptr<receiver> (*)(const config&);

std::unique_ptr<receiver> make_baseline_receiver(const config& cfg)
{
    return std::make_unique<baseline_receiver>(cfg);
}

struct round_figures {
    double msgs_per_s;
    double cpu_us_per_msg;
    double loss;
    double enobufs;
    double allocs_per_msg;
};

round_figures run_once(factory make, int group, bool batch, const options& opt, const char* side,
                       unsigned coalesce_us = 0)
{
    // The sender's socket is made here so the receiver knows which port id to admit.
    const int sender_fd = open_connector();
    const std::uint32_t sender_port = port_id_of(sender_fd);
    child_process sender = fork_child([&](int go_read, int result_write) {
        sender_main(sender_fd, opt.seconds, opt.pin, go_read, result_write);
    });
    ::close(sender_fd);

    std::unique_ptr<receiver> r = make(config{group, sender_port, 8 << 20, batch, coalesce_us});
    stats s;
    double cpu_us = 0;
    double user_us = 0;
    std::uint64_t sleeps = 0;
    std::thread thread([&] {
        if (opt.pin)
            pin_to_cpu(1);
        const double c0 = thread_cpu_us();
        const double u0 = thread_user_us();
        const std::uint64_t s0 = thread_sleeps();
        r->run(s);
        cpu_us = thread_cpu_us() - c0;
        user_us = thread_user_us() - u0;
        sleeps = thread_sleeps() - s0;
    });
    while (!s.ready.load())
        ::usleep(100);
    const go_message go{r->port_id(), static_cast<std::uint32_t>(group)};
    sender.send_go(&go, sizeof go);
    const std::int64_t sent_signed = sender.wait_result();
    if (sent_signed < 0)
        die_msg("sender process failed");
    const auto sent = static_cast<std::uint64_t>(sent_signed);
    wait_until_settled([&] { return s.received.load() >= sent; }, [&] { return s.received.load(); });
    r->stop();
    thread.join();
    r.reset();

    const std::uint64_t received = s.received.load();
    round_figures f{};
    const double window_s = static_cast<double>(s.last_ns - s.first_ns) / 1e9;
    f.msgs_per_s = received > 1 && window_s > 0 ? static_cast<double>(received - 1) / window_s : 0;
    f.cpu_us_per_msg = received > 0 ? cpu_us / static_cast<double>(received) : std::nan("");
    f.loss = static_cast<double>(sent) - static_cast<double>(received);
    f.enobufs = static_cast<double>(s.enobufs);
    f.allocs_per_msg = s.allocs.per_item();
    if (received == sent && s.payload_sum != sent * (sent - 1) / 2)
        std::fprintf(stderr, "bench_recv: %s: payload counters do not add up (corrupted delivery)\n", side);
    if (s.rejected != 0)
        std::fprintf(stderr, "bench_recv: %s: %llu datagrams rejected\n", side,
                     static_cast<unsigned long long>(s.rejected));
    if (opt.verbose)
        std::fprintf(stderr,
                     "  %-8s %s: sent %llu received %llu (%.0f msg/s, %.3f us/msg CPU (%.3f user), %llu ENOBUFS, %llu queue drops, "
                     "%.3f allocs/msg, %.1f msgs/sleep, %.1f msgs/wakeup, %.2f msgs/read)\n",
                     side, group != 0 ? "multicast" : "unicast", static_cast<unsigned long long>(sent),
                     static_cast<unsigned long long>(received), f.msgs_per_s, f.cpu_us_per_msg,
                     received > 0 ? user_us / static_cast<double>(received) : 0.0,
                     static_cast<unsigned long long>(s.enobufs), static_cast<unsigned long long>(s.queue_drops),
                     f.allocs_per_msg, sleeps ? static_cast<double>(received) / static_cast<double>(sleeps) : 0.0,
                     s.wakeups ? static_cast<double>(received) / static_cast<double>(s.wakeups) : 0.0,
                     s.reads ? static_cast<double>(received) / static_cast<double>(s.reads) : 0.0);
    return f;
}

// One set of RESULT lines: `prefix`_msgs_per_s, _cpu_per_msg, _loss, _enobufs, _allocs_per_msg.
struct figure_set {
    std::string prefix;
    std::string names[5] = {prefix + "_msgs_per_s", prefix + "_cpu_per_msg", prefix + "_loss", prefix + "_enobufs",
                            prefix + "_allocs_per_msg"};
    figure rate{names[0].c_str(), "msgs/s"};
    figure cpu{names[1].c_str(), "us/msg"};
    figure loss{names[2].c_str(), "msgs(max)", true};
    figure enobufs{names[3].c_str(), "count(max)", true};
    figure allocs{names[4].c_str(), "allocs/msg", true};

    explicit figure_set(std::string p) : prefix(std::move(p)) {}
    figure_set(const figure_set&) = delete;
    figure_set& operator=(const figure_set&) = delete;

    void record(std::vector<double> figure::*side, const round_figures& f)
    {
        (rate.*side).push_back(f.msgs_per_s);
        (cpu.*side).push_back(f.cpu_us_per_msg);
        (loss.*side).push_back(f.loss);
        (enobufs.*side).push_back(f.enobufs);
        (allocs.*side).push_back(f.allocs_per_msg);
    }

    void print() const
    {
        for (const figure* f : {&rate, &cpu, &loss, &enobufs, &allocs})
            f->print();
    }
};

// Rounds of baseline, cnasio (one message per wait), cnasio (bursts), cnasio
// (one message per wait, coalescing; unless --coalesce 0), in turn
// so that drifting machine load hits all alike; both cnasio figure sets are
// compared with the same baseline runs.
void run_variant(const char* variant, int group, const options& opt)
{
    figure_set single(std::string("recv_") + variant);
    figure_set batched(std::string("recv_") + variant + "_batch");
    // recv_<variant>_coalesce<N>us: one message per wait, client_options::coalesce_window = N µs.
    figure_set coalesced(std::string("recv_") + variant + "_coalesce" + std::to_string(opt.coalesce_us) + "us");
    const bool have_cnasio = make_cnasio_receiver(config{group, 0, 8 << 20, false}) != nullptr;
    for (int round = 0; round < opt.rounds; ++round) {
        if (opt.runs("baseline")) {
            const round_figures b = run_once(make_baseline_receiver, group, false, opt, "baseline");
            single.record(&figure::baseline, b);
            batched.record(&figure::baseline, b);
            coalesced.record(&figure::baseline, b);
        }
        if (have_cnasio && opt.runs("cnasio")) {
            single.record(&figure::cnasio, run_once(make_cnasio_receiver, group, false, opt, "cnasio"));
            batched.record(&figure::cnasio, run_once(make_cnasio_receiver, group, true, opt, "cnasio-b"));
            if (opt.coalesce_us > 0)
                coalesced.record(&figure::cnasio,
                                 run_once(make_cnasio_receiver, group, false, opt, "cnasio-c", opt.coalesce_us));
        }
    }
    single.print();
    batched.print();
    if (opt.coalesce_us > 0)
        coalesced.print();
}

} // namespace
} // namespace bench::recv

int main(int argc, char** argv)
{
    bench::require_root("bench_recv");
    const bench::options opt = bench::parse_options(argc, argv);
    if (opt.measures("unicast"))
        bench::recv::run_variant("unicast", 0, opt);
    if (opt.measures("multicast"))
        bench::recv::run_variant("multicast", static_cast<int>(bench::recv::message_idx), opt);
}
