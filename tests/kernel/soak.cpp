// soak: a long mixed load on one io_context (issue 15), its length a
// parameter. The test suite runs a short one (meson.build); bench/README.md
// records a 10-minute run.
//
//   soak [--seconds S] [--inflight N] [--receive-buffer BYTES] [--coalesce US] [--stalled-peer 1]
//
// What runs together, for S seconds:
//  - a fork storm: a child process forks and reaps bursts of children; a
//    proc::listener on its own client sees every process event of the
//    machine (acks delivered), and this program checks the kernel's per-CPU
//    sequence numbers itself;
//  - requests in flight: N coroutines send requests to an echo peer (a
//    thread), 2 ms apart each; one in 16 goes to a silent peer and is
//    cancelled after 5 ms (awaitable_operators' ||, per-operation
//    cancellation), one in 32 goes to the silent peer with a 20 ms timeout;
//  - subscriptions created and destroyed: every 100 ms, 20 subscriptions of a
//    user group are made, 10 multicasts sent to the group, each subscription
//    must receive all 10, then all 20 are destroyed;
//  - every second, RSS (/proc/self/statm) and open fds (/proc/self/fd).
// Checks, at the end (exit 0 and "soak: PASS" when all hold, else
// "soak: FAIL: <why>" and exit 1; 77 without root):
//  - every request started has ended, in the way expected for its kind, and
//    every echo carried its own payload; none is pending in the client;
//  - every multicast reached every subscription, unless the client reported
//    an overrun in that round;
//  - process events: the gaps this program counts in the sequence numbers
//    equal the listener's stats().lost exactly; loss only with ENOBUFS
//    reported (stats().overruns); storm events missed ≤ lost;
//  - after warm-up (the first fifth, at least 3 s), open fds never exceed
//    their count at its end, and RSS (under ASan: the live heap) in the last
//    half of the run grows by less than 4 MiB over its maximum in the first
//    half.
#include <cnasio/client.hpp>
#include <cnasio/proc/listener.hpp>

#include "peer.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <fstream>
#include <string>
#include <string_view>
#include <tuple>
#include <variant>
#include <thread>
#include <vector>

#include <linux/cn_proc.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
// The sanitizer runtime's count of live heap bytes (declared here: GCC ships no header for it).
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#endif

namespace asio = boost::asio;
namespace proc = cnasio::proc;
using namespace std::chrono_literals;
using namespace boost::asio::experimental::awaitable_operators;
using cnasio::error_code;

namespace {

constexpr cnasio::connector::id echo_id{CN_NETLINK_USERS + 5, 0x77};
constexpr unsigned soak_group = CN_NETLINK_USERS + 9;

struct settings {
    double seconds = 20;
    int inflight = 64;
    std::size_t receive_buffer = 0; // 0: the client's default for the proc listener
    long coalesce_us = 0;
    bool stalled_peer = false; // the silent peer never reads: its queue fills, the client queues what goes to it
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr, "soak: %s\nusage: soak [--seconds S] [--inflight N] [--receive-buffer BYTES] [--coalesce US] "
                 "[--stalled-peer 0|1]\n",
                 why);
    std::exit(2);
}

settings parse(int argc, char** argv) {
    settings s;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (i + 1 >= argc) usage("an option needs a value");
        char* end = nullptr;
        const char* v = argv[++i];
        if (a == "--seconds") s.seconds = std::strtod(v, &end);
        else if (a == "--inflight") s.inflight = static_cast<int>(std::strtol(v, &end, 10));
        else if (a == "--receive-buffer") s.receive_buffer = std::strtoull(v, &end, 10);
        else if (a == "--coalesce") s.coalesce_us = std::strtol(v, &end, 10);
        else if (a == "--stalled-peer") s.stalled_peer = std::strtol(v, &end, 10) != 0;
        else usage("unknown option");
        if (end == v || *end != '\0') usage("not a number");
    }
    if (!(s.seconds >= 1) || s.inflight < 1 || s.inflight > 10000 || s.coalesce_us < 0)
        usage("a value is out of range (seconds >= 1, 1 <= inflight <= 10000, coalesce >= 0)");
    return s;
}

// RSS; under ASan the live heap instead (its quarantine keeps freed blocks
// resident, so RSS would grow with any churn).
long rss_kib() {
#if defined(__SANITIZE_ADDRESS__)
    return static_cast<long>(__sanitizer_get_current_allocated_bytes() / 1024);
#else
    std::ifstream f("/proc/self/statm");
    long size = 0, resident = 0;
    f >> size >> resident;
    return resident * (::sysconf(_SC_PAGESIZE) / 1024);
#endif
}

long open_fds() {
    long n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
    return n;
}

// One child that exits at once. Its own function: nothing of the caller's
// lives in registers across vfork().
[[gnu::noinline]] pid_t spawn_exiting_child() {
    const pid_t c = ::vfork();
    if (c == 0) ::_exit(0);
    return c;
}

// The fork storm: a child that vforks bursts of 100 children (each exits at
// once) and reaps them, 10 ms apart, until SIGTERM; then it writes how many it
// forked to `report`.
volatile sig_atomic_t storm_stop = 0;
pid_t start_storm(int& report_read) {
    int p[2];
    if (::pipe(p) != 0) {
        std::perror("soak: pipe");
        std::exit(1);
    }
    const pid_t pid = ::fork();
    if (pid < 0) {
        std::perror("soak: fork");
        std::exit(1);
    }
    if (pid == 0) {
        ::close(p[0]);
        ::signal(SIGTERM, [](int) { storm_stop = 1; });
        ::prctl(PR_SET_PDEATHSIG, SIGTERM); // never outlive the soak
        if (::getppid() == 1) ::_exit(1);
        long long forks = 0;
        while (!storm_stop) {
            for (int i = 0; i < 100 && !storm_stop; ++i) {
                if (spawn_exiting_child() > 0) ++forks;
            }
            while (::waitpid(-1, nullptr, WNOHANG) > 0) {
            }
            ::usleep(10000);
        }
        while (::waitpid(-1, nullptr, 0) > 0) {
        }
        if (::write(p[1], &forks, sizeof forks) != sizeof forks) ::_exit(1);
        ::_exit(0);
    }
    ::close(p[1]);
    report_read = p[0];
    return pid;
}

struct totals {
    // requests
    long long started = 0, ok = 0, timed_out = 0, cancelled = 0, wrong = 0, bad_payload = 0;
    int active = 0;
    // subscriptions
    long long subscriptions = 0, rounds = 0, multicasts_expected = 0, multicasts_received = 0, short_rounds = 0,
              short_rounds_unexplained = 0;
    // process events
    long long events = 0, storm_events = 0, overrun_reports = 0, gaps = 0, backwards = 0;
    std::array<std::uint32_t, 4096> next_seq{};
    std::array<bool, 4096> cpu_seen{};
    std::vector<bool> storm_children = std::vector<bool>(4u << 20);
    // samples
    std::vector<long> rss, fds;
};

asio::awaitable<void> requester(cnasio::client& c, std::uint32_t echo_port, std::uint32_t silent_port, int index,
                                const bool& stop, totals& t) {
    ++t.active;
    cnasio::connector::message reply;
    asio::steady_timer pause(co_await asio::this_coro::executor);
    for (long long k = 0; !stop; ++k) {
        // A pause between requests keeps the soak from taking a whole CPU on a shared machine.
        pause.expires_after(2ms);
        co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
        const std::string payload = "r" + std::to_string(index) + "." + std::to_string(k);
        cnasio::request_options o;
        o.port_id = echo_port;
        const bool cancel_it = k % 16 == 5;
        const bool silent = k % 32 == 7;
        if (silent) {
            o.port_id = silent_port;
            o.timeout = 20ms;
        }
        ++t.started;
        const auto body = cnasio::connector::as_payload(std::string_view(payload));
        error_code ec;
        cnasio::connector::message m;
        if (cancel_it) {
            // To the silent peer, with a long timeout, raced against a 5 ms timer: the timer wins and
            // the race cancels the request (per-operation cancellation, terminal).
            o.port_id = silent_port;
            o.timeout = 2s;
            asio::steady_timer limit(co_await asio::this_coro::executor, 5ms);
            auto r = co_await (c.async_request(echo_id, body, o, asio::as_tuple(asio::use_awaitable)) ||
                               limit.async_wait(asio::as_tuple(asio::use_awaitable)));
            if (r.index() == 0) std::tie(ec, m) = std::get<0>(r);
            else ec = asio::error::operation_aborted; // the request ended that way (its result is dropped)
        } else {
            std::tie(ec, m) = co_await c.async_request(echo_id, body, o, asio::as_tuple(asio::use_awaitable));
        }
        if (!ec) {
            ++t.ok;
            if (cnasio::test::text_of(m.payload) != payload) ++t.bad_payload;
            if (silent || cancel_it) ++t.wrong; // a silent peer cannot answer
        } else if (ec == cnasio::error::timeout) {
            ++t.timed_out;
            if (!silent) {
                ++t.wrong;
                if (t.wrong <= 5) std::fprintf(stderr, "soak: request %d.%lld to the echo peer timed out\n", index, k);
            }
        } else if (ec == asio::error::operation_aborted) {
            ++t.cancelled;
            if (!cancel_it) ++t.wrong;
        } else {
            ++t.wrong;
            std::fprintf(stderr, "soak: request ended with %s\n", ec.message().c_str());
        }
    }
    --t.active;
}

asio::awaitable<void> subscriber_rounds(cnasio::client& c, cnasio::test::peer& sender, const bool& stop, totals& t) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    std::vector<cnasio::subscription> subs;
    cnasio::connector::message m;
    for (std::uint32_t round = 0; !stop; ++round) {
        const auto overruns0 = c.stats().overruns;
        for (int i = 0; i < 20; ++i) {
            error_code ec;
            subs.push_back(c.subscribe(soak_group, {}, ec));
            if (ec) {
                std::fprintf(stderr, "soak: subscribe: %s\n", ec.message().c_str());
                ++t.short_rounds_unexplained;
                subs.pop_back();
            }
        }
        t.subscriptions += static_cast<long long>(subs.size());
        for (std::uint32_t i = 0; i < 10; ++i) {
            cnasio::connector::header h;
            h.id = echo_id;
            h.seq = round * 10 + i;
            sender.send(h, cnasio::connector::as_payload(std::string_view("multicast")), 0,
                        cnasio::netlink::endpoint::group_mask(soak_group));
        }
        timer.expires_after(100ms);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        bool short_round = false;
        for (auto& s : subs) {
            long long got = 0;
            error_code ec;
            while (s.try_receive(m, ec)) ++got;
            t.multicasts_expected += 10;
            t.multicasts_received += got;
            if (got != 10) short_round = true;
        }
        if (short_round) {
            ++t.short_rounds;
            if (c.stats().overruns == overruns0) ++t.short_rounds_unexplained;
        }
        ++t.rounds;
        subs.clear(); // destroyed: the group is left with the last one
    }
}

void on_event(const proc::event& ev, pid_t storm, totals& t) {
    ++t.events;
    if (const auto* f = ev.get_if<proc::fork_event>()) {
        const auto child = static_cast<std::size_t>(f->child_tgid);
        if (f->parent_tgid == storm && child < t.storm_children.size()) {
            t.storm_children[child] = true;
            ++t.storm_events;
        }
    } else if (const auto* x = ev.get_if<proc::exit_event>()) {
        const auto pid = static_cast<std::size_t>(x->process_tgid);
        if (pid < t.storm_children.size() && t.storm_children[pid] && x->process_pid == x->process_tgid) {
            t.storm_children[pid] = false;
            ++t.storm_events;
        }
    }
    if (ev.cpu < t.next_seq.size()) {
        if (t.cpu_seen[ev.cpu] && ev.seq != t.next_seq[ev.cpu]) {
            const auto ahead = static_cast<std::int32_t>(ev.seq - t.next_seq[ev.cpu]);
            if (ahead > 0) t.gaps += ahead;
            else ++t.backwards;
        }
        t.cpu_seen[ev.cpu] = true;
        t.next_seq[ev.cpu] = ev.seq + 1;
    }
}

} // namespace

int main(int argc, char** argv) {
    const settings cfg = parse(argc, argv);
    if (::geteuid() != 0) {
        std::fprintf(stderr, "soak: needs root (proc connector, multicast); skipped\n");
        return 77;
    }
    ::signal(SIGPIPE, SIG_IGN);
    asio::io_context io(1);
    totals t;
    bool stop = false;

    // Process events: their own client, as proc::listener wants.
    cnasio::client_options po;
    if (cfg.receive_buffer) po.subscription_receive_buffer = cfg.receive_buffer;
    po.coalesce_window = std::chrono::microseconds(cfg.coalesce_us);
    cnasio::client proc_client(io.get_executor(), po);
    proc::listener_options lo;
    lo.deliver_acks = true;
    proc::listener listener(proc_client, lo);

    cnasio::test::echo_peer echo;
    // The silent peer reads and drops every request: a module that never
    // answers. With --stalled-peer it never reads either: its queue fills and
    // the client queues what goes to it, which must hold back nothing else.
    cnasio::test::peer silent;
    std::atomic<bool> silent_stop{false};
    std::thread silent_reader([&] {
        std::vector<std::byte> bytes;
        std::uint32_t from = 0;
        while (!silent_stop)
            if (cfg.stalled_peer) std::this_thread::sleep_for(std::chrono::milliseconds(20));
            else silent.receive(bytes, from, 20);
    });
    cnasio::test::peer sender;
    cnasio::client_options ro;
    ro.admitted_ports = {echo.port_id(), silent.port_id(), sender.port_id()};
    ro.coalesce_window = std::chrono::microseconds(cfg.coalesce_us);
    cnasio::client c(io.get_executor(), ro);

    int storm_report = -1;
    pid_t storm = -1;
    bool listening = false;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        auto [ec] = co_await listener.async_start(asio::as_tuple(asio::use_awaitable));
        if (ec) {
            std::fprintf(stderr, "soak: FAIL: proc listener start: %s\n", ec.message().c_str());
            std::exit(1);
        }
        listening = true;
        storm = start_storm(storm_report);
        proc::event ev;
        for (;;) {
            auto [rec] = co_await listener.async_receive(ev, asio::as_tuple(asio::use_awaitable));
            if (rec == cnasio::error::overrun) {
                ++t.overrun_reports;
                continue;
            }
            if (rec) co_return;
            on_event(ev, storm, t);
        }
    }, asio::detached);
    for (int i = 0; i < cfg.inflight; ++i)
        asio::co_spawn(io, requester(c, echo.port_id(), silent.port_id(), i, stop, t), asio::detached);
    asio::co_spawn(io, subscriber_rounds(c, sender, stop, t), asio::detached);

    // Samples, progress, and the end.
    const auto start = std::chrono::steady_clock::now();
    const auto length = std::chrono::duration<double>(cfg.seconds);
    asio::steady_timer tick(io);
    int seconds = 0;
    std::function<void()> sample = [&] {
        tick.expires_at(start + std::chrono::seconds(++seconds));
        tick.async_wait([&](error_code) {
            t.rss.push_back(rss_kib());
            t.fds.push_back(open_fds());
            if (seconds % 60 == 0)
                std::fprintf(stderr, "soak: %d s: %lld events, %lld requests, %lld subscriptions, RSS %ld KiB, %ld fds\n",
                             seconds, t.events, t.started, t.subscriptions, t.rss.back(), t.fds.back());
            if (std::chrono::steady_clock::now() - start < length) return sample();
            stop = true; // requesters and rounds end after their current step
        });
    };
    sample();
    // Run until stopped and every requester has returned, then let the storm's last events come in.
    while (!stop || t.active > 0) io.run_for(100ms);
    long long forks = -1;
    if (storm > 0) {
        ::kill(storm, SIGTERM);
        pollfd p{storm_report, POLLIN, 0};
        if (::poll(&p, 1, 10000) != 1 || ::read(storm_report, &forks, sizeof forks) != sizeof forks) {
            std::printf("soak: FAIL: the storm did not report within 10 s of SIGTERM\n");
            ::kill(storm, SIGKILL);
            forks = -1;
        }
        ::waitpid(storm, nullptr, 0);
    }
    // A loss shows as a gap only when the same CPU's next event arrives: one
    // short-lived child per CPU, pinned there, makes an EXIT event on each.
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (::sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
        for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
            if (!CPU_ISSET(cpu, &allowed)) continue;
            const pid_t child = ::fork();
            if (child == 0) {
                cpu_set_t one;
                CPU_ZERO(&one);
                CPU_SET(cpu, &one);
                ::sched_setaffinity(0, sizeof one, &one);
                ::_exit(0);
            }
            if (child > 0) ::waitpid(child, nullptr, 0);
        }
    }
    for (int i = 0; i < 50 && t.storm_events < 2 * forks; ++i) io.run_for(100ms);
    io.run_for(300ms); // the subscription round in progress ends
    const proc::listener_stats ls = listener.stats();
    listener.close();
    silent_stop = true;
    silent_reader.join();

    // The verdict.
    std::vector<std::string> fails;
    auto check = [&](bool ok, const std::string& why) {
        if (!ok) fails.push_back(why);
    };
    check(t.active == 0, "requesters still running");
    check(t.started == t.ok + t.timed_out + t.cancelled, "a request never ended, or ended with another error");
    check(t.wrong == 0, std::to_string(t.wrong) + " requests ended the wrong way for their kind");
    check(t.bad_payload == 0, std::to_string(t.bad_payload) + " replies carried another request's payload");
    check(c.pending_requests() == 0, "requests still pending in the client");
    check(t.ok > 0 && t.timed_out > 0 && t.cancelled > 0, "some kind of request never ran");
    check(t.short_rounds_unexplained == 0,
          std::to_string(t.short_rounds_unexplained) + " subscription rounds lost multicasts without an overrun");
    check(t.rounds > 0, "no subscription round ran");
    check(listening && forks > 0, "the storm did not run");
    const long long lost = ls.lost ? static_cast<long long>(*ls.lost) : -1;
    check(lost == t.gaps, "listener's lost " + std::to_string(lost) + " != sequence gaps " + std::to_string(t.gaps));
    check(t.gaps == 0 || ls.overruns > 0, "events lost without ENOBUFS");
    check(t.backwards == 0, "sequence numbers went back");
    const long long missed = 2 * forks - t.storm_events;
    check(missed >= 0 && missed <= t.gaps, "storm events missed (" + std::to_string(missed) + ") beyond the loss counted");
    const std::size_t warm = std::max<std::size_t>(3, t.rss.size() / 5);
    long fd_warm = 0, fd_max = 0, rss_first = 0, rss_last = 0;
    if (t.rss.size() > warm + 1) {
        fd_warm = t.fds[warm - 1];
        const std::size_t half = warm + (t.rss.size() - warm) / 2;
        for (std::size_t i = warm; i < t.rss.size(); ++i) {
            fd_max = std::max(fd_max, t.fds[i]);
            (i < half ? rss_first : rss_last) = std::max(i < half ? rss_first : rss_last, t.rss[i]);
        }
        check(fd_max <= fd_warm, "open fds grew from " + std::to_string(fd_warm) + " to " + std::to_string(fd_max));
        check(rss_last < rss_first + 4096,
              "RSS grew from " + std::to_string(rss_first) + " to " + std::to_string(rss_last) + " KiB");
    } else {
        check(false, "too few samples");
    }

    std::printf("soak: %.0f s, coalesce %ld us; storm: %lld forks, %lld process events (%lld of the storm), "
                "ENOBUFS %llu, lost %lld (gaps counted here %lld), storm events missed %lld; requests: %lld "
                "(%lld answered, %lld timed out, %lld cancelled, %d in flight at a time); subscriptions: %lld in "
                "%lld rounds, multicasts %lld/%lld received, %lld short rounds (all after an overrun: %s); RSS after "
                "warm-up max %ld KiB, last half max %ld KiB; open fds %ld (after warm-up max %ld)\n",
                cfg.seconds, cfg.coalesce_us, forks, t.events, t.storm_events,
                static_cast<unsigned long long>(ls.overruns), lost, t.gaps, missed, t.started, t.ok, t.timed_out,
                t.cancelled, cfg.inflight, t.subscriptions, t.rounds, t.multicasts_received, t.multicasts_expected,
                t.short_rounds, t.short_rounds_unexplained == 0 ? "yes" : "no", rss_first, rss_last, fd_warm, fd_max);
    if (!fails.empty()) {
        for (const auto& f : fails) std::printf("soak: FAIL: %s\n", f.c_str());
        return 1;
    }
    const auto& cs = c.stats();
    std::printf("soak: send queue (stalled peer: %s): %llu queued, %llu sent late, %llu dropped\n",
                cfg.stalled_peer ? "yes" : "no", static_cast<unsigned long long>(cs.sends_queued),
                static_cast<unsigned long long>(cs.sends_late), static_cast<unsigned long long>(cs.sends_dropped));
    std::printf("soak: PASS\n");
    return 0;
}
