// Process events under a vfork storm: harness and raw C baseline listener.
// See proc_storm.hpp for the workload; prints RESULT lines (issue 6).
#include "proc_storm.hpp"

#include <cstddef>
#include <functional>
#include <thread>

#include <sys/prctl.h>

namespace bench::storm {
namespace {

// Offsets into a proc_event (the connector payload).
constexpr std::size_t what_offset = offsetof(proc_event, what);
constexpr std::size_t cpu_offset = offsetof(proc_event, cpu);
constexpr std::size_t timestamp_offset = offsetof(proc_event, timestamp_ns);
constexpr std::size_t data_offset = offsetof(proc_event, event_data);
constexpr std::size_t fork_parent_tgid_offset = offsetof(proc_event, event_data.fork.parent_tgid);
constexpr std::size_t fork_child_tgid_offset = offsetof(proc_event, event_data.fork.child_tgid);
constexpr std::size_t exit_parent_tgid_offset = offsetof(proc_event, event_data.exit.parent_tgid);
constexpr std::size_t exit_process_tgid_offset = offsetof(proc_event, event_data.exit.process_tgid);
static_assert(fork_child_tgid_offset == 28 && exit_parent_tgid_offset == 36);

// ---------------------------------------------------------------- storm process

// vfork() + _exit() until the deadline; each child is reaped at once so the
// storm never holds more than one zombie. Reports the number of forks.
void storm_main(double seconds, bool pin, int go_read, int result_write)
{
    char go = 0;
    if (pin)
        pin_to_cpu(0);
    read_exact(go_read, &go, 1);
    const std::uint64_t deadline = now_ns() + static_cast<std::uint64_t>(seconds * 1e9);
    std::uint64_t forks = 0;
    while ((forks & 63) != 0 || now_ns() < deadline) {
        const pid_t child = ::vfork();
        if (child == 0)
            ::_exit(0);
        if (child < 0) {
            if (errno == EAGAIN)
                continue;
            ::_exit(4);
        }
        while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
        }
        ++forks;
    }
    write_result(result_write, static_cast<std::int64_t>(forks));
}

// ---------------------------------------------------------------- raw C baseline

// Connector socket bound to group 1 with an 8 MiB SO_RCVBUFFORCE buffer (the
// size that loses nothing in a storm here), LISTEN in its 4-byte form, then
// poll() + recvfrom(MSG_DONTWAIT) until EAGAIN; only datagrams from port 0
// (the kernel) count; every length is checked before a field is read.
// With `sleep_us` > 0 (the raw C form of coalescing, for comparison) the loop
// sleeps that long after each wake-up before it drains, with 1 ns of timer slack.
class baseline_listener final : public listener {
public:
    explicit baseline_listener(unsigned sleep_us = 0)
        : fd_(open_connector(group_mask(CN_IDX_PROC), 8 << 20)), sleep_us_(sleep_us)
    {
    }
    ~baseline_listener() override { ::close(fd_); }

    void run(stats& s) override
    {
        send_proc_op(fd_, PROC_CN_MCAST_LISTEN, 0, 0);
        // usleep() may overrun by the thread's timer slack (50 µs by default), so
        // the loop's window would be 200-250 µs. cnasio's window timer (a timerfd)
        // has no slack. 1 ns makes both windows the same length (bench/README.md).
        if (sleep_us_ > 0 && ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL) != 0)
            die("prctl(PR_SET_TIMERSLACK)");
        s.ready.store(true);
        pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_.fd, POLLIN, 0}};
        alignas(8) unsigned char buf[8192];
        for (;;) {
            if (::poll(fds, 2, -1) < 0) {
                if (errno == EINTR)
                    continue;
                die("poll");
            }
            if (fds[1].revents != 0)
                break;
            if (sleep_us_ > 0)
                ::usleep(sleep_us_);
            for (;;) {
                sockaddr_nl from{};
                socklen_t from_len = sizeof from;
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
                if (from.nl_pid != 0) {
                    ++s.rejected;
                    continue;
                }
                consume(buf, static_cast<unsigned int>(n), s);
            }
        }
        send_proc_op(fd_, PROC_CN_MCAST_IGNORE, 0, 0);
    }

    void stop() override { stop_.signal(); }

private:
    static std::uint32_t load_u32(const unsigned char* p)
    {
        std::uint32_t v;
        std::memcpy(&v, p, sizeof v);
        return v;
    }

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
            if (cn.id.idx != CN_IDX_PROC || cn.id.val != CN_VAL_PROC || cn.len < data_offset) {
                ++s.rejected;
                continue;
            }
            const unsigned char* ev = data + sizeof cn;
            const std::uint32_t what = load_u32(ev + what_offset);
            std::uint32_t parent_tgid = 0;
            std::uint32_t tgid = 0;
            if (what == proc_event::PROC_EVENT_FORK && cn.len >= fork_child_tgid_offset + 4) {
                parent_tgid = load_u32(ev + fork_parent_tgid_offset);
                tgid = load_u32(ev + fork_child_tgid_offset);
            } else if (what == proc_event::PROC_EVENT_EXIT && cn.len >= exit_parent_tgid_offset + 4) {
                parent_tgid = load_u32(ev + exit_parent_tgid_offset);
                tgid = load_u32(ev + exit_process_tgid_offset);
            }
            std::uint64_t timestamp_ns;
            std::memcpy(&timestamp_ns, ev + timestamp_offset, sizeof timestamp_ns);
            s.on_event(load_u32(ev + cpu_offset), cn.seq, what, parent_tgid, tgid, timestamp_ns);
        }
    }

    int fd_;
    unsigned sleep_us_;
    event_fd stop_;
};

// ---------------------------------------------------------------- harness

using factory = std::function<std::unique_ptr<listener>()>;

std::unique_ptr<listener> make_baseline_listener() { return std::make_unique<baseline_listener>(); }

struct round_figures {
    double events_per_s;
    double cpu_us_per_event;
    double seq_gaps;
    double missed;
    double enobufs;
    double allocs_per_event;
    double latency_p50_us;
    double latency_p99_us;
};

round_figures run_once(factory make, const options& opt, const char* side)
{
    child_process storm = fork_child([&](int go_read, int result_write) {
        storm_main(opt.seconds, opt.pin, go_read, result_write);
    });
    std::unique_ptr<listener> l = make();
    stats s;
    s.storm_tgid = static_cast<std::uint32_t>(storm.pid);
    double cpu_us = 0;
    double user_us = 0;
    double sleeps = 0;
    std::thread thread([&] {
        if (opt.pin)
            pin_to_cpu(1);
        const double c0 = thread_cpu_us();
        const double u0 = thread_user_us();
        const auto z0 = thread_sleeps();
        l->run(s);
        cpu_us = thread_cpu_us() - c0;
        user_us = thread_user_us() - u0;
        sleeps = static_cast<double>(thread_sleeps() - z0);
    });
    while (!s.ready.load())
        ::usleep(100);
    const char go = 1;
    storm.send_go(&go, 1);
    const std::int64_t forks_signed = storm.wait_result();
    if (forks_signed < 0)
        die_msg("storm process failed");
    const auto expected = 2 * static_cast<std::uint64_t>(forks_signed);
    wait_until_settled([&] { return s.storm_events.load() >= expected; }, [&] { return s.received.load(); });
    l->stop();
    thread.join();
    l.reset();

    const std::uint64_t received = s.received.load();
    round_figures f{};
    const double window_s = static_cast<double>(s.last_ns - s.first_ns) / 1e9;
    f.events_per_s = received > 1 && window_s > 0 ? static_cast<double>(received - 1) / window_s : 0;
    f.cpu_us_per_event = received > 0 ? cpu_us / static_cast<double>(received) : std::nan("");
    f.seq_gaps = static_cast<double>(s.seq_gaps);
    f.missed = static_cast<double>(expected) - static_cast<double>(s.storm_events.load());
    f.enobufs = static_cast<double>(s.enobufs);
    f.allocs_per_event = s.allocs.per_item();
    f.latency_p50_us = s.latency_percentile(0.5);
    f.latency_p99_us = s.latency_percentile(0.99);
    if (s.rejected != 0 || s.seq_backwards != 0)
        std::fprintf(stderr, "bench_proc_storm: %s: %llu datagrams rejected, %llu sequence numbers went back\n",
                     side, static_cast<unsigned long long>(s.rejected),
                     static_cast<unsigned long long>(s.seq_backwards));
    if (opt.verbose && received > 0)
        std::fprintf(stderr, "  %-8s user CPU %.3f us/ev, sleeps (voluntary context switches) per event %.3f\n", side,
                     user_us / static_cast<double>(received), sleeps / static_cast<double>(received));
    if (opt.verbose && !std::isnan(s.library_reads))
        std::fprintf(stderr, "  %-8s events per read %.2f, per readiness wake-up %.2f, deepest queue %.0f\n", side,
                     static_cast<double>(received) / s.library_reads, static_cast<double>(received) / s.library_wakeups,
                     s.library_max_queued);
    if (opt.verbose)
        std::fprintf(stderr,
                     "  %-8s forks %lld, events %llu (storm %llu), %.0f ev/s, %.3f us/ev CPU, gaps %llu, "
                     "ENOBUFS %llu, queue drops %llu, library's loss count %.0f, %.3f allocs/ev, latency p50 %.0f p99 %.0f us\n",
                     side, static_cast<long long>(forks_signed), static_cast<unsigned long long>(received),
                     static_cast<unsigned long long>(s.storm_events.load()), f.events_per_s, f.cpu_us_per_event,
                     static_cast<unsigned long long>(s.seq_gaps), static_cast<unsigned long long>(s.enobufs),
                     static_cast<unsigned long long>(s.queue_drops), s.library_lost, f.allocs_per_event, f.latency_p50_us,
                     f.latency_p99_us);
    return f;
}

} // namespace
} // namespace bench::storm

int main(int argc, char** argv)
{
    using namespace bench;
    using namespace bench::storm;
    require_root("bench_proc_storm");
    const options opt = parse_options(argc, argv);
    // One set of figures per cnasio variant; the baseline column is always the plain raw C loop.
    struct figures {
        std::string prefix;
        std::vector<std::string> names; // keeps the figures' name strings alive
        figure rate, cpu, gaps, missed, enobufs, allocs, p50, p99;
        explicit figures(const std::string& p)
            : prefix(p),
              names{p + "_events_per_s", p + "_cpu_per_event", p + "_loss_seq_gaps", p + "_missed_storm_events",
                    p + "_enobufs", p + "_allocs_per_event", p + "_latency_p50", p + "_latency_p99"},
              rate{names[0].c_str(), "events/s"}, cpu{names[1].c_str(), "us/event"},
              gaps{names[2].c_str(), "events(max)", true}, missed{names[3].c_str(), "events(max)", true},
              enobufs{names[4].c_str(), "count(max)", true}, allocs{names[5].c_str(), "allocs/event", true},
              p50{names[6].c_str(), "us"}, p99{names[7].c_str(), "us"}
        {
        }
        void record(std::vector<double> figure::*side, const round_figures& f)
        {
            (rate.*side).push_back(f.events_per_s);
            (cpu.*side).push_back(f.cpu_us_per_event);
            (gaps.*side).push_back(f.seq_gaps);
            (missed.*side).push_back(f.missed);
            (enobufs.*side).push_back(f.enobufs);
            (allocs.*side).push_back(f.allocs_per_event);
            (p50.*side).push_back(f.latency_p50_us);
            (p99.*side).push_back(f.latency_p99_us);
        }
        void print() const
        {
            for (const figure* f : {&rate, &cpu, &gaps, &missed, &enobufs, &allocs, &p50, &p99})
                f->print();
        }
    };
    figures plain("proc_storm");
    // proc_storm_coalesce<N>us_*: the same listener with client_options::coalesce_window = N µs.
    figures coalesced("proc_storm_coalesce" + std::to_string(opt.coalesce_us) + "us");
    // proc_storm_coalesce<N>us_vs_rawsleep_*: the same cnasio figures against the raw C loop that sleeps
    // N µs after each wake-up (what coalescing does, done the raw way).
    figures against_sleep("proc_storm_coalesce" + std::to_string(opt.coalesce_us) + "us_vs_rawsleep");
    // proc_storm_batch<N>_*: the plain client, received with listener::async_receive_batch (up to N
    // events per completion) instead of async_receive (--batch N; off by default).
    figures batched("proc_storm_batch" + std::to_string(opt.batch));
    const factory batching_cnasio = [&] { return make_cnasio_listener(0, opt.batch); };
    const factory sleeping_baseline = [&] { return std::make_unique<baseline_listener>(opt.coalesce_us); };
    const bool have_cnasio = make_cnasio_listener() != nullptr;
    const factory plain_cnasio = [] { return make_cnasio_listener(); };
    const factory coalescing_cnasio = [&] { return make_cnasio_listener(opt.coalesce_us); };
    for (int round = 0; round < opt.rounds; ++round) {
        if (opt.runs("baseline")) {
            const round_figures b = run_once(make_baseline_listener, opt, "baseline");
            plain.record(&figure::baseline, b);
            coalesced.record(&figure::baseline, b);
            batched.record(&figure::baseline, b);
        }
        if (have_cnasio && opt.runs("cnasio"))
            plain.record(&figure::cnasio, run_once(plain_cnasio, opt, "cnasio"));
        if (opt.coalesce_us > 0 && (opt.runs("baseline") || opt.side == "rawsleep"))
            against_sleep.record(&figure::baseline, run_once(sleeping_baseline, opt, "rawsleep"));
        if (have_cnasio && opt.coalesce_us > 0 && (opt.runs("cnasio") || opt.side == "coalesce")) {
            const round_figures f = run_once(coalescing_cnasio, opt, "coalesce");
            coalesced.record(&figure::cnasio, f);
            against_sleep.record(&figure::cnasio, f);
        }
        if (have_cnasio && opt.batch > 0 && (opt.runs("cnasio") || opt.side == "batch"))
            batched.record(&figure::cnasio, run_once(batching_cnasio, opt, "batch"));
    }
    plain.print();
    if (opt.coalesce_us > 0) {
        coalesced.print();
        against_sleep.print();
    }
    if (opt.batch > 0)
        batched.print();
}
