// Shared pieces of the benchmark programs: timing, CPU accounting, result lines,
// raw netlink connector sockets (plain syscalls, no cnasio) and child processes.
//
// The raw C baselines are written the way a careful C programmer writes them:
// one socket, fixed buffers, no allocation on the hot path, every length checked.
#pragma once

#include "alloc_counter.hpp"

#include <fcntl.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

// ---------------------------------------------------------------- failure

[[noreturn]] inline void die(const char* what)
{
    std::fprintf(stderr, "bench: %s: %s\n", what, std::strerror(errno));
    std::exit(1);
}

[[noreturn]] inline void die_msg(const char* what)
{
    std::fprintf(stderr, "bench: %s\n", what);
    std::exit(1);
}

// Benchmarks need CAP_NET_ADMIN (user-space multicast, SO_RCVBUFFORCE); say so
// and exit 77 like a skipped test rather than printing misleading figures.
inline void require_root(const char* program)
{
    if (::geteuid() != 0) {
        std::fprintf(stderr, "%s: needs root (SO_RCVBUFFORCE, user-space multicast); skipped\n", program);
        std::exit(77);
    }
}

// ---------------------------------------------------------------- time, CPU

inline std::uint64_t now_ns() noexcept
{
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// --pin: runs the calling thread (and what it forks) on the `index`-th CPU the
// process may use (0: the load, 1: the receiver under test), so that the
// scheduler's placement of the two is the same in every run. Dies when fewer
// than two CPUs are allowed.
inline void pin_to_cpu(unsigned index)
{
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
        die("sched_getaffinity");
    unsigned seen = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (!CPU_ISSET(cpu, &allowed) || seen++ != index)
            continue;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        if (sched_setaffinity(0, sizeof one, &one) != 0)
            die("sched_setaffinity");
        return;
    }
    die_msg("--pin needs two CPUs");
}

// CPU (user + system) consumed by the calling thread, in microseconds.
inline double thread_cpu_us() noexcept
{
    rusage ru{};
    ::getrusage(RUSAGE_THREAD, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

// Voluntary context switches of the calling thread: how often it slept (a
// readiness wait that found nothing, then a wake-up).
// User-mode CPU time of the calling thread, microseconds.
inline double thread_user_us() noexcept
{
    rusage ru{};
    ::getrusage(RUSAGE_THREAD, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec) * 1e6 + static_cast<double>(ru.ru_utime.tv_usec);
}

inline std::uint64_t thread_sleeps() noexcept
{
    rusage ru{};
    ::getrusage(RUSAGE_THREAD, &ru);
    return static_cast<std::uint64_t>(ru.ru_nvcsw);
}

// ---------------------------------------------------------------- statistics

inline double percentile(std::vector<double> v, double p)
{
    if (v.empty())
        return std::nan("");
    std::sort(v.begin(), v.end());
    // Nearest rank: the smallest value with at least p of the samples at or below it.
    auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
    rank = std::clamp<std::size_t>(rank, 1, v.size());
    return v[rank - 1];
}

inline double median(const std::vector<double>& v)
{
    if (v.empty())
        return std::nan("");
    std::vector<double> s = v;
    std::sort(s.begin(), s.end());
    const std::size_t n = s.size();
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

inline double maximum(const std::vector<double>& v)
{
    return v.empty() ? std::nan("") : *std::max_element(v.begin(), v.end());
}

// cnasio / baseline; 0/0 counts as equal (e.g. no loss on either side).
inline double ratio(double cnasio, double baseline)
{
    if (cnasio == 0 && baseline == 0)
        return 1.0;
    return cnasio / baseline;
}

// The one output format every benchmark shares (issue 6):
//   RESULT <name> cnasio=<v> baseline=<v> ratio=<cnasio/baseline> unit=<unit>
inline void print_result(const char* name, double cnasio, double baseline, const char* unit)
{
    std::printf("RESULT %s cnasio=%.6g baseline=%.6g ratio=%.4g unit=%s\n", name, cnasio, baseline,
                ratio(cnasio, baseline), unit);
    std::fflush(stdout);
}

// Per-round samples of one figure for both sides; printed as medians (or maxima
// for loss counts, where one bad round matters more than a typical one).
struct figure {
    const char* name;
    const char* unit;
    bool use_max = false;
    std::vector<double> cnasio{};
    std::vector<double> baseline{};

    void print() const
    {
        auto pick = [this](const std::vector<double>& v) { return use_max ? maximum(v) : median(v); };
        print_result(name, pick(cnasio), pick(baseline), unit);
    }
};

// ---------------------------------------------------------------- allocations

// Heap allocations per item in steady state: the allocation count is noted
// each time the item count reaches a power of two, and the figure is taken over
// the last half (or more) of the items, so one-time warm-up (queues and
// buffers growing to their working size) is left out whatever the run length.
struct steady_allocations {
    std::array<std::uint64_t, 64> at_power_of_two{};
    std::uint64_t items = 0;
    std::uint64_t last = 0;

    // Call on the counted thread once per item.
    void tick() noexcept
    {
        ++items;
        last = allocations_this_thread();
        if (std::has_single_bit(items)) {
            at_power_of_two[static_cast<std::size_t>(std::bit_width(items) - 1)] = last;
            if (items == 1024 && trace_requested())
                trace_allocations_this_thread(true);
        }
    }

    // BENCH_ALLOC_TRACE=1: print the stack of every allocation past the first
    // 1,024 items (bench/README.md, "Finding an allocation").
    static bool trace_requested() noexcept
    {
        static const bool on = [] {
            const char* v = std::getenv("BENCH_ALLOC_TRACE");
            return v != nullptr && v[0] == '1';
        }();
        return on;
    }

    double per_item() const noexcept
    {
        if (items < 64)
            return std::nan("");
        const std::uint64_t base = std::bit_floor(items / 2);
        const std::uint64_t at_base = at_power_of_two[static_cast<std::size_t>(std::bit_width(base) - 1)];
        return static_cast<double>(last - at_base) / static_cast<double>(items - base);
    }
};

// ---------------------------------------------------------------- options

struct options {
    int rounds = 3;          // alternating rounds per side
    double seconds = 2.0;    // duration of one timed run (senders, storms)
    std::size_t requests = 20000;
    unsigned coalesce_us = 200; // the coalescing variants' client_options::coalesce_window; 0: none
    unsigned batch = 0;         // bench_proc_storm: the batch variant's max_events (listener::async_receive_batch); 0: none
    bool verbose = false;
    // --pin: the load (sender, storm) on one CPU and the receiver thread on another
    // (bench_recv, bench_proc_storm); otherwise the scheduler places them.
    bool pin = false;
    // "baseline" or "cnasio": run only that side (profiling); empty: both. bench_proc_storm also
    // takes "rawsleep", "coalesce" and "batch": only that variant (a profile of one loop).
    std::string side;
    std::string target; // bench_request: "echo", "proc" or "inflight"; bench_recv: "unicast" or "multicast"; empty: all
    bool runs(const char* s) const { return side.empty() || side == s; }
    bool measures(const char* t) const { return target.empty() || target == t; }
};

inline options parse_options(int argc, char** argv)
{
    options o;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc)
                die_msg("option needs a value");
            return argv[++i];
        };
        if (a == "--rounds")
            o.rounds = std::atoi(value());
        else if (a == "--seconds")
            o.seconds = std::atof(value());
        else if (a == "--requests")
            o.requests = static_cast<std::size_t>(std::atol(value()));
        else if (a == "--coalesce")
            o.coalesce_us = static_cast<unsigned>(std::atoi(value()));
        else if (a == "--batch")
            o.batch = static_cast<unsigned>(std::atoi(value()));
        else if (a == "-v" || a == "--verbose")
            o.verbose = true;
        else if (a == "--pin")
            o.pin = true;
        else if (a == "--side")
            o.side = value();
        else if (a == "--target")
            o.target = value();
        else {
            std::fprintf(stderr, "usage: %s [--rounds N] [--seconds S] [--requests N] [--coalesce US] [--batch N] [--pin] [-v] "
                                 "[--side baseline|cnasio|rawsleep|coalesce|batch] "
                                 "[--target echo|proc|inflight]\n", argv[0]);
            std::exit(2);
        }
    }
    if (o.rounds < 1 || o.seconds <= 0 || o.requests < 1000 ||
        !(o.side.empty() || o.side == "baseline" || o.side == "cnasio" || o.side == "rawsleep" || o.side == "coalesce" ||
          o.side == "batch"))
        die_msg("bad option value");
    return o;
}

// ---------------------------------------------------------------- raw connector sockets

inline constexpr std::size_t nl_header_size = NLMSG_HDRLEN;        // 16
inline constexpr std::size_t cn_header_size = sizeof(cn_msg);      // 20
inline constexpr std::size_t proc_event_size = sizeof(proc_event); // 40

// Opens a NETLINK_CONNECTOR datagram socket bound to an automatic port id and to
// the multicast groups in `groups_mask` (bit g-1 = group g). `rcvbuf_force` > 0
// sets SO_RCVBUFFORCE (needs CAP_NET_ADMIN) so bursts do not overrun the queue.
inline int open_connector(std::uint32_t groups_mask = 0, int rcvbuf_force = 0)
{
    const int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
    if (fd < 0)
        die("socket(AF_NETLINK, NETLINK_CONNECTOR)");
    if (rcvbuf_force > 0 &&
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf_force, sizeof rcvbuf_force) != 0)
        die("setsockopt(SO_RCVBUFFORCE)");
    sockaddr_nl addr{};
    addr.nl_family = AF_NETLINK;
    addr.nl_groups = groups_mask;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        die("bind(AF_NETLINK)");
    return fd;
}

inline void join_group(int fd, int group)
{
    if (::setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) != 0)
        die("setsockopt(NETLINK_ADD_MEMBERSHIP)");
}

inline std::uint32_t port_id_of(int fd)
{
    sockaddr_nl addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        die("getsockname(AF_NETLINK)");
    return addr.nl_pid;
}

inline sockaddr_nl netlink_address(std::uint32_t port_id, std::uint32_t groups_mask = 0)
{
    sockaddr_nl addr{};
    addr.nl_family = AF_NETLINK;
    addr.nl_pid = port_id;
    addr.nl_groups = groups_mask;
    return addr;
}

inline constexpr std::uint32_t group_mask(int group) { return group > 0 ? 1u << (group - 1) : 0u; }

// Writes one nlmsghdr + cn_msg + payload into `out` (which must hold
// NLMSG_SPACE(20 + payload_len) bytes); returns nlmsg_len.
inline std::size_t build_message(unsigned char* out, std::uint32_t idx, std::uint32_t val, std::uint32_t seq,
                                  std::uint32_t ack, const void* payload, std::uint16_t payload_len)
{
    const std::size_t len = nl_header_size + cn_header_size + payload_len;
    nlmsghdr nlh{};
    nlh.nlmsg_len = static_cast<std::uint32_t>(len);
    nlh.nlmsg_type = NLMSG_DONE;
    nlh.nlmsg_seq = seq;
    nlh.nlmsg_pid = 0;
    cn_msg cn{};
    cn.id.idx = idx;
    cn.id.val = val;
    cn.seq = seq;
    cn.ack = ack;
    cn.len = payload_len;
    std::memcpy(out, &nlh, sizeof nlh);
    std::memcpy(out + nl_header_size, &cn, sizeof cn);
    if (payload_len != 0)
        std::memcpy(out + nl_header_size + cn_header_size, payload, payload_len);
    return len;
}

// Sends a proc connector control op (LISTEN 1 / IGNORE 2) in its 4-byte form,
// which every kernel accepts.
inline void send_proc_op(int fd, std::uint32_t op, std::uint32_t seq, std::uint32_t ack)
{
    alignas(8) unsigned char buf[64];
    const std::size_t len = build_message(buf, CN_IDX_PROC, CN_VAL_PROC, seq, ack, &op, sizeof op);
    const sockaddr_nl kernel = netlink_address(0);
    if (::sendto(fd, buf, len, 0, reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel) < 0)
        die("sendto(proc op)");
}

// A stop signal a poll loop can wait on next to its socket.
struct event_fd {
    int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    event_fd()
    {
        if (fd < 0)
            die("eventfd");
    }
    ~event_fd() { ::close(fd); }
    event_fd(const event_fd&) = delete;
    event_fd& operator=(const event_fd&) = delete;
    void signal() const
    {
        const std::uint64_t one = 1;
        [[maybe_unused]] auto r = ::write(fd, &one, sizeof one);
    }
};

// ---------------------------------------------------------------- child processes

// A pipe pair used to start a child ("go") and to get one number back from it.
struct child_process {
    pid_t pid = -1;
    int go_write = -1;       // parent → child
    int result_read = -1;    // child → parent

    void send_go(const void* data, std::size_t len) const
    {
        if (::write(go_write, data, len) != static_cast<ssize_t>(len))
            die("write(go pipe)");
    }

    // Blocks until the child reports (it does so once, when done); -1 if it died.
    std::int64_t wait_result()
    {
        std::int64_t value = -1;
        std::size_t got = 0;
        auto* p = reinterpret_cast<unsigned char*>(&value);
        while (got < sizeof value) {
            const ssize_t n = ::read(result_read, p + got, sizeof value - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += static_cast<std::size_t>(n);
        }
        reap();
        return got == sizeof value ? value : -1;
    }

    void terminate()
    {
        if (pid > 0)
            ::kill(pid, SIGTERM);
        reap();
    }

    void reap()
    {
        if (pid > 0) {
            int status = 0;
            while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            pid = -1;
        }
        if (go_write >= 0)
            ::close(go_write);
        if (result_read >= 0)
            ::close(result_read);
        go_write = result_read = -1;
    }
};

// Forks a child that runs `body(go_read, result_write)` and then _exit(0)s.
// Call only while the process has a single thread: the child uses plain
// syscalls, never the parent's heap or locks.
template <class Body>
child_process fork_child(Body&& body)
{
    int go[2];
    int result[2];
    if (::pipe2(go, O_CLOEXEC) != 0 || ::pipe2(result, O_CLOEXEC) != 0)
        die("pipe2");
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        // Never outlive the benchmark (e.g. the echo peer when the parent is killed).
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        ::close(go[1]);
        ::close(result[0]);
        body(go[0], result[1]);
        ::_exit(0);
    }
    ::close(go[0]);
    ::close(result[1]);
    return child_process{pid, go[1], result[0]};
}

inline void read_exact(int fd, void* data, std::size_t len)
{
    auto* p = static_cast<unsigned char*>(data);
    std::size_t got = 0;
    while (got < len) {
        const ssize_t n = ::read(fd, p + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            ::_exit(3);
        got += static_cast<std::size_t>(n);
    }
}

// The flood of a forked sender: sends `msg` (`len` bytes, a connector message
// whose payload starts with an 8-byte counter, rewritten before each send) to
// `dst` as fast as the socket allows until `seconds` have passed; returns how
// many sendto calls succeeded. A send error other than EINTR, EAGAIN and
// ENOBUFS ends the child (_exit(4)).
inline std::uint64_t send_flood(int fd, const sockaddr_nl& dst, unsigned char* msg, std::size_t len, double seconds)
{
    const std::uint64_t deadline = now_ns() + static_cast<std::uint64_t>(seconds * 1e9);
    std::uint64_t sent = 0;
    for (;;) {
        if ((sent & 255) == 0 && now_ns() >= deadline)
            break;
        std::memcpy(msg + nl_header_size + cn_header_size, &sent, sizeof sent);
        if (::sendto(fd, msg, len, 0, reinterpret_cast<const sockaddr*>(&dst), sizeof dst) < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == ENOBUFS)
                continue;
            ::_exit(4);
        }
        ++sent;
    }
    return sent;
}

inline void write_result(int fd, std::int64_t value)
{
    [[maybe_unused]] auto r = ::write(fd, &value, sizeof value);
}

// Waits until `done()` holds or nothing changed for `idle_ms` (progress() is a
// counter that grows while work still arrives).
template <class Done, class Progress>
void wait_until_settled(Done done, Progress progress, int idle_ms = 200)
{
    auto last = progress();
    std::uint64_t last_change = now_ns();
    while (!done()) {
        ::usleep(1000);
        const auto p = progress();
        if (p != last) {
            last = p;
            last_change = now_ns();
        } else if (now_ns() - last_change > static_cast<std::uint64_t>(idle_ms) * 1'000'000u) {
            return;
        }
    }
}

} // namespace bench
