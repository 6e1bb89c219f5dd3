// cnasio::proc::tracker against the running kernel (root), with real
// processes. Other engineers' processes run on this machine: every check looks
// at the test's own pids only.
// - a spawned tree: recorded parents;
// - a double-fork daemon whose parent exits: the recorded parent survives, the
//   live parent is re-read from /proc;
// - threads are counted under their process, not as processes;
// - exec of a new binary: argv and exe right;
// - pid reuse forced with /proc/sys/kernel/ns_last_pid: nothing carried over;
// - async_wait_exit on a process that is not our child;
// - bootstrap: processes that exist before async_start are in the table;
// - a process in its own pid namespace: its NSpid;
// - a process in a cgroup named like a docker scope: that container id;
// - bootstrap while a churn starts and ends processes: nothing missed, nothing
//   resurrected, checked against what the churn did;
// - an overrun storm (a 4 KiB receive buffer): ENOBUFS, then a rescan whose
//   report names what it changed and after which the table equals /proc.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <cnasio/client.hpp>
#include <cnasio/proc/tracker.hpp>

#include <doctest/doctest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <fstream>
#include <deque>
#include <functional>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

namespace asio = boost::asio;
namespace proc = cnasio::proc;
using cnasio::error_code;
using namespace std::chrono_literals;

namespace {

void run(asio::io_context& io, std::function<asio::awaitable<void>()> body, std::chrono::milliseconds limit = 20s) {
    bool done = false;
    std::exception_ptr failure;
    asio::co_spawn(io, body(), [&](std::exception_ptr e) {
        failure = e;
        done = true;
        io.stop();
    });
    io.restart();
    io.run_for(limit);
    REQUIRE_MESSAGE(done, "the test coroutine did not finish in time");
    if (failure) std::rethrow_exception(failure);
}

// Lets the tracker's loop run until pred() holds or `limit` passes.
asio::awaitable<bool> until(std::function<bool()> pred, std::chrono::milliseconds limit = 5s) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > end) co_return false;
        t.expires_after(5ms);
        co_await t.async_wait(asio::use_awaitable);
    }
    co_return true;
}

asio::awaitable<error_code> start(proc::tracker& t) {
    auto [ec] = co_await t.async_start(asio::as_tuple(asio::use_awaitable));
    co_return ec;
}

// A pipe's read end, for children to report pids and to hold them.
struct pipe_pair {
    int fd[2]{-1, -1};
    pipe_pair() { REQUIRE(::pipe(fd) == 0); }
    ~pipe_pair() {
        for (int f : fd)
            if (f >= 0) ::close(f);
    }
    void close_write() {
        ::close(fd[1]);
        fd[1] = -1;
    }
};

// Kills and reaps the children it holds when the test ends, also after a failed
// REQUIRE: a child left behind would hold the test's pipes open.
struct reaper {
    std::vector<pid_t> pids;
    pid_t add(pid_t pid) {
        pids.push_back(pid);
        return pid;
    }
    /// Kills and reaps one now (and forgets it: its pid may be reused).
    void reap(pid_t pid) {
        std::erase(pids, pid);
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
    }
    ~reaper() {
        for (auto pid : pids)
            if (::kill(pid, SIGKILL) == 0) ::waitpid(pid, nullptr, 0);
    }
};

// Child A forks grandchild B; both sleep until `hold` closes. Returns A, B.
[[gnu::noinline]] std::pair<pid_t, pid_t> spawn_tree(pipe_pair& hold) {
    pipe_pair report;
    const pid_t a = ::fork();
    if (a == 0) {
        const pid_t b = ::fork();
        if (b == 0) {
            char c;
            ::close(hold.fd[1]);
            (void)!::read(hold.fd[0], &c, 1);
            ::_exit(0);
        }
        (void)!::write(report.fd[1], &b, sizeof b);
        char c;
        ::close(hold.fd[1]);
        (void)!::read(hold.fd[0], &c, 1);
        ::waitpid(b, nullptr, 0);
        ::_exit(0);
    }
    pid_t b = 0;
    REQUIRE(::read(report.fd[0], &b, sizeof b) == sizeof b);
    return {a, b};
}

// Double fork: A forks D and exits; D waits for `hold`, then exits with `code`.
// Returns A (reaped) and D (not our child).
[[gnu::noinline]] std::pair<pid_t, pid_t> spawn_daemon(pipe_pair& hold, int code) {
    pipe_pair report;
    const pid_t a = ::fork();
    if (a == 0) {
        const pid_t d = ::fork();
        if (d == 0) {
            char c;
            ::close(hold.fd[1]);
            (void)!::read(hold.fd[0], &c, 1);
            ::_exit(code);
        }
        (void)!::write(report.fd[1], &d, sizeof d);
        ::_exit(0);
    }
    pid_t d = 0;
    REQUIRE(::read(report.fd[0], &d, sizeof d) == sizeof d);
    ::waitpid(a, nullptr, 0);
    return {a, d};
}

// A child with `n` extra threads, alive until `hold` closes.
[[gnu::noinline]] pid_t spawn_threads(pipe_pair& hold, pipe_pair& ready, int n) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(hold.fd[1]);
        std::vector<std::thread> ts;
        for (int i = 0; i < n; ++i)
            ts.emplace_back([&] {
                char c;
                (void)!::read(hold.fd[0], &c, 1);
            });
        char one = 1;
        (void)!::write(ready.fd[1], &one, 1);
        for (auto& t : ts) t.join();
        ::_exit(0);
    }
    return pid;
}

// fork + exec of argv.
[[gnu::noinline]] pid_t spawn_exec(const std::vector<std::string>& argv, std::uint32_t uid = 0) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        if (uid != 0 && ::setresuid(uid, uid, uid) != 0) ::_exit(126);
        std::vector<char*> v;
        for (auto& a : argv) v.push_back(const_cast<char*>(a.c_str()));
        v.push_back(nullptr);
        ::execv(v[0], v.data());
        ::_exit(127);
    }
    return pid;
}

bool write_ns_last_pid(pid_t v) {
    std::ofstream f("/proc/sys/kernel/ns_last_pid");
    f << v;
    f.flush();
    return static_cast<bool>(f);
}

} // namespace

TEST_CASE("tracker: bootstrap, a spawned tree, a double-fork daemon, threads") {
    asio::io_context io;
    cnasio::client c(io.get_executor());
    proc::tracker t(c);
    pipe_pair hold_before;
    auto [pre_a, pre_b] = spawn_tree(hold_before); // exists before the tracker starts
    run(io, [&]() -> asio::awaitable<void> {
        REQUIRE(!(co_await start(t)));
        CHECK(t.stats().scanned > 10);
        // Bootstrap: the pre-existing tree is there, parents from /proc.
        REQUIRE(t.table().find(pre_a));
        REQUIRE(t.table().find(pre_b));
        CHECK(t.table().find(pre_a)->parent.value == ::getpid());
        CHECK(t.table().find(pre_b)->parent.value == pre_a);
        CHECK(t.table().find(pre_b)->parent.from == proc::source::proc_verified);

        // A tree spawned while listening: parents from the fork events.
        pipe_pair hold;
        auto [a, b] = spawn_tree(hold);
        REQUIRE(co_await until([&] { return t.table().find(a) && t.table().find(b); }));
        CHECK(t.table().find(a)->parent.value == ::getpid());
        CHECK(t.table().find(a)->parent.from == proc::source::event);
        CHECK(t.table().find(b)->parent.value == a);
        CHECK(t.table().find(b)->parent.from == proc::source::event);
        const auto desc = t.table().descendants(::getpid());
        CHECK(std::count(desc.begin(), desc.end(), b) == 1);
        hold.close_write();
        ::waitpid(a, nullptr, 0);
        REQUIRE(co_await until([&] { return t.table().find(a)->exited && t.table().find(b)->exited; }));
        CHECK(t.table().find(a)->wait_status.from == proc::source::event);
        CHECK(t.table().find(a)->lifetime_ns.from == proc::source::event);

        // Double fork: the daemon's parent exits; the recorded parent stays.
        pipe_pair hold_d;
        auto [da, d] = spawn_daemon(hold_d, 5);
        REQUIRE(co_await until([&] { return t.table().find(da) && t.table().find(da)->exited && t.table().find(d); }));
        const auto* dp = t.table().find(d);
        CHECK(dp->parent.value == da);
        CHECK(dp->parent.from == proc::source::event);
        t.refresh(d); // the live parent, read from /proc
        CHECK(dp->live_parent.from == proc::source::proc_verified);
        CHECK(dp->live_parent.value != da);
        {
            auto r = proc::read_process(d);
            CHECK(dp->live_parent.value == r.ppid);
        }
        {
            const auto up = t.table().ancestors(d); // through the exited parent
            REQUIRE(up.size() >= 2);
            CHECK(up[0] == da);
            CHECK(up[1] == ::getpid());
        }
        // async_wait_exit on a process that is not our child.
        hold_d.close_write();
        auto [wec, status] = co_await t.async_wait_exit(d, asio::as_tuple(asio::use_awaitable));
        CHECK(!wec);
        CHECK(status == (5u << 8));

        // Threads: counted under their process.
        const auto live_before = t.table().find(::getpid()) != nullptr;
        (void)live_before;
        pipe_pair hold_t, ready;
        const pid_t tp = spawn_threads(hold_t, ready, 3);
        char one;
        REQUIRE(::read(ready.fd[0], &one, 1) == 1);
        REQUIRE(co_await until([&] { return t.table().find(tp) && t.table().find(tp)->threads == 3; }));
        // No thread id of tp is a process in the table.
        {
            std::vector<proc::pid_type> tids;
            std::string dir = "/proc/" + std::to_string(tp) + "/task";
            for (auto x : proc::list_pids(dir))
                if (x != tp) tids.push_back(x);
            CHECK(tids.size() == 3);
            for (auto x : tids) CHECK(t.table().find(x) == nullptr);
        }
        hold_t.close_write();
        ::waitpid(tp, nullptr, 0);
        REQUIRE(co_await until([&] { return t.table().find(tp)->exited; }));
        CHECK(t.table().find(tp)->threads == 0);
        hold_before.close_write();
        ::waitpid(pre_a, nullptr, 0);
    });
}

TEST_CASE("tracker: exec of a new binary, pid reuse through ns_last_pid") {
    asio::io_context io;
    cnasio::client c(io.get_executor());
    proc::tracker t(c);
    run(io, [&]() -> asio::awaitable<void> {
        REQUIRE(!(co_await start(t)));
        // Lost events end entries with an unknown status (resync): say so.
        INFO("overruns " << t.stats().overruns << ", resyncs " << t.stats().resyncs << ", lost "
                         << t.events().stats().lost.value_or(0) << ", enrich skipped "
                         << t.table().stats().enrich_skipped << ", unknown-pid events "
                         << t.table().stats().unknown_pid_events);
        const pid_t old = spawn_exec({"/bin/sleep", "30"}, 65534);
        REQUIRE(co_await until([&] {
            auto* p = t.table().find(old);
            return p && p->execs == 1 && p->argv.has_value();
        }));
        const auto* p = t.table().find(old);
        CHECK(p->argv.value == std::vector<std::string>{"/bin/sleep", "30"});
        CHECK(p->argv.from == proc::source::proc_verified);
        // The binary the kernel ran: /bin/sleep itself, or what it links to (busybox in the VMs).
        CHECK(p->exe.value == std::filesystem::canonical("/bin/sleep").string());
        CHECK(p->euid.value == 65534u);
        CHECK(p->euid.from == proc::source::event);
        ::kill(old, SIGKILL);
        ::waitpid(old, nullptr, 0);
        REQUIRE(co_await until([&] { return t.table().find(old) && t.table().find(old)->exited; }));
        INFO("status " << t.table().find(old)->wait_status.value << " from "
                       << proc::to_string(t.table().find(old)->wait_status.from) << ", execs "
                       << t.table().find(old)->execs);
        CHECK(t.table().find(old)->shell_status() == 128 + SIGKILL);

        // The same pid for a new process: other processes on the machine may
        // take it first, so try a few times.
        pid_t reused = -1;
        for (int attempt = 0; attempt < 20 && reused != old; ++attempt) {
            if (reused > 0) {
                ::kill(reused, SIGKILL);
                ::waitpid(reused, nullptr, 0);
            }
            REQUIRE(write_ns_last_pid(old - 1));
            reused = spawn_exec({"/bin/sleep", "31"});
        }
        REQUIRE_MESSAGE(reused == old, "could not get pid " << old << " again");
        REQUIRE(co_await until([&] {
            auto* q = t.table().find(old);
            return q && !q->exited && q->execs == 1 && q->argv.has_value();
        }));
        const auto* q = t.table().find(old);
        CHECK(q->argv.value == std::vector<std::string>{"/bin/sleep", "31"});
        CHECK(q->euid.value == 0u); // the old process's uid change is not carried over
        CHECK(q->wait_status.from == proc::source::none);
        CHECK(q->parent.value == ::getpid());
        ::kill(reused, SIGKILL);
        ::waitpid(reused, nullptr, 0);
        auto [wec, status] = co_await t.async_wait_exit(old, asio::as_tuple(asio::use_awaitable));
        CHECK(!wec);
        CHECK(status == SIGKILL);
        // A pid that does not exist.
        auto [nec, nst] = co_await t.async_wait_exit(0x3ffffff, asio::as_tuple(asio::use_awaitable));
        (void)nst;
        CHECK(nec == boost::system::errc::no_such_process);
    });
}

namespace {

// Child M unshares its pid namespace and forks P, pid 1 there; P waits for
// `hold`. Returns M and P's pid in our namespace (what fork() returned to M).
[[gnu::noinline]] std::pair<pid_t, pid_t> spawn_in_pid_namespace(pipe_pair& hold) {
    pipe_pair report;
    const pid_t m = ::fork();
    if (m == 0) {
        if (::unshare(CLONE_NEWPID) != 0) ::_exit(126);
        const pid_t p = ::fork();
        if (p == 0) {
            char c;
            ::close(hold.fd[1]);
            (void)!::read(hold.fd[0], &c, 1);
            ::_exit(0);
        }
        (void)!::write(report.fd[1], &p, sizeof p);
        ::close(hold.fd[1]);
        ::waitpid(p, nullptr, 0);
        ::_exit(0);
    }
    pid_t p = -1;
    REQUIRE(::read(report.fd[0], &p, sizeof p) == sizeof p);
    return {m, p};
}

std::uint64_t monotonic_ns() { return cnasio::proc::detail::clock_ns(CLOCK_MONOTONIC); }

} // namespace

TEST_CASE("tracker: a process in its own pid namespace shows its NSpid") {
    asio::io_context io;
    cnasio::client c(io.get_executor());
    proc::tracker t(c);
    run(io, [&]() -> asio::awaitable<void> {
        REQUIRE(!(co_await start(t)));
        pipe_pair hold;
        auto [m, p] = spawn_in_pid_namespace(hold);
        REQUIRE(p > 0);
        REQUIRE(co_await until([&] {
            const auto* e = t.table().find(p);
            return e && e->nspid.has_value();
        }));
        const auto* e = t.table().find(p);
        INFO("nspid from " << proc::to_string(e->nspid.from));
        CHECK(e->nspid.from == proc::source::proc_verified);
        // Its pid here, then 1: the first process of the new namespace.
        CHECK(e->nspid.value == std::vector<proc::pid_type>{p, 1});
        CHECK(e->parent.value == m);
        CHECK(e->parent.from == proc::source::event);
        // Its parent stays in our namespace: one level.
        REQUIRE(co_await until([&] { return t.table().find(m) && t.table().find(m)->nspid.has_value(); }));
        CHECK(t.table().find(m)->nspid.value == std::vector<proc::pid_type>{m});
        hold.close_write();
        ::waitpid(m, nullptr, 0);
        REQUIRE(co_await until([&] { return t.table().find(p)->exited && t.table().find(m)->exited; }));
        CHECK(t.table().find(p)->nspid.value == std::vector<proc::pid_type>{p, 1}); // kept after the exit
    });
}

TEST_CASE("tracker: a process in a cgroup named like a docker scope shows that container id") {
    // cgroup v2: this machine mounts it at /sys/fs/cgroup/unified (v1 controllers
    // beside it); elsewhere at /sys/fs/cgroup.
    std::string root;
    for (const char* r : {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"})
        if (std::filesystem::exists(std::string(r) + "/cgroup.procs") &&
            !std::filesystem::exists(std::string(r) + "/unified")) {
            root = r;
            break;
        }
    if (root.empty()) {
        MESSAGE("no cgroup v2 hierarchy mounted: skipped");
        return;
    }
    const std::string id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const std::string slice = root + "/cnasio-test-" + std::to_string(::getpid()) + ".slice";
    const std::string scope = slice + "/docker-" + id + ".scope";
    std::error_code fec;
    std::filesystem::create_directories(scope, fec);
    REQUIRE_MESSAGE(!fec, "mkdir " << scope << ": " << fec.message());
    struct cleanup {
        std::string scope, slice;
        ~cleanup() {
            ::rmdir(scope.c_str());
            ::rmdir(slice.c_str());
        }
    } clean{scope, slice};

    reaper children; // declared after `clean`, so destroyed first: a cgroup holding a process cannot be removed
    asio::io_context io;
    cnasio::client c(io.get_executor());
    proc::tracker t(c);
    run(io, [&]() -> asio::awaitable<void> {
        REQUIRE(!(co_await start(t)));
        // The child waits until it was moved, then execs: the exec's /proc read
        // sees the new cgroup.
        pipe_pair go;
        const pid_t pid = ::fork();
        if (pid == 0) {
            char ch;
            ::close(go.fd[1]);
            if (::read(go.fd[0], &ch, 1) != 1) ::_exit(125);
            ::execl("/bin/sleep", "/bin/sleep", "30", static_cast<char*>(nullptr));
            ::_exit(127);
        }
        children.add(pid);
        {
            std::ofstream procs(scope + "/cgroup.procs");
            procs << pid;
            procs.flush();
            CHECK(static_cast<bool>(procs));
        }
        char one = 1;
        REQUIRE(::write(go.fd[1], &one, 1) == 1);
        REQUIRE(co_await until([&] {
            const auto* p = t.table().find(pid);
            return p && p->execs == 1 && p->argv.has_value() && p->cgroup.has_value();
        }));
        const auto* p = t.table().find(pid);
        const auto want_path = scope.substr(root.size());
        CHECK(p->cgroup.value == want_path);
        CHECK(p->cgroup.from == proc::source::proc_verified);
        const auto ct = p->container();
        REQUIRE(ct.has_value());
        CHECK(ct->runtime == "docker");
        CHECK(ct->id == id);
        // The test process itself is in no container-like cgroup.
        if (const auto* me = t.table().find(::getpid()); me && me->cgroup.has_value())
            CHECK(!me->container().has_value());
        children.reap(pid);
        REQUIRE(co_await until([&] { return t.table().find(pid)->exited; }));
    });
}

namespace {

// A churn of processes: a thread keeps `live` children alive, each iteration
// starting one and killing the oldest, and records when each was surely alive.
struct churn {
    struct child {
        pid_t pid = 0;
        std::uint64_t after_fork = 0;  // alive from here (monotonic ns)
        std::uint64_t before_kill = 0; // ... until here (0: not killed yet)
        std::uint64_t after_reap = 0;  // surely gone from here
    };
    std::vector<child> children; // read after stop()
    std::atomic<bool> stopping{false};
    std::thread worker;

    // `live` children at a time, each killed when `live` newer ones exist;
    // the first `keep` live until stop(), so that some surely span the
    // bootstrap however slow the machine is (under arm64 emulation the scan
    // outlasts 40 forks).
    explicit churn(std::size_t live = 40, std::size_t keep = 3) {
        worker = std::thread([this, live, keep] {
            std::deque<std::size_t> running, kept;
            while (!stopping.load()) {
                const pid_t pid = ::fork();
                if (pid == 0) {
                    for (;;) ::pause();
                }
                if (pid < 0) break;
                children.push_back({pid, monotonic_ns(), 0});
                if (kept.size() < keep) {
                    kept.push_back(children.size() - 1);
                    continue;
                }
                running.push_back(children.size() - 1);
                if (running.size() > live) {
                    kill_one(running.front());
                    running.pop_front();
                }
                std::this_thread::sleep_for(2ms);
            }
            for (auto i : running) kill_one(i);
            for (auto i : kept) kill_one(i);
        });
    }
    void kill_one(std::size_t i) {
        children[i].before_kill = monotonic_ns();
        ::kill(children[i].pid, SIGKILL);
        ::waitpid(children[i].pid, nullptr, 0);
        children[i].after_reap = monotonic_ns();
    }
    void stop() {
        stopping = true;
        if (worker.joinable()) worker.join();
    }
    ~churn() { stop(); }
};

} // namespace

TEST_CASE("tracker: bootstrap while processes start and end") {
    asio::io_context io;
    cnasio::client c(io.get_executor());
    proc::tracker_options o;
    o.table.exit_grace_ns = 600'000'000'000ull; // keep every exited entry for the checks
    proc::tracker t(c, o);
    churn ch;
    run(io, [&]() -> asio::awaitable<void> {
        asio::steady_timer pause(co_await asio::this_coro::executor);
        pause.expires_after(200ms); // the churn runs before...
        co_await pause.async_wait(asio::use_awaitable);
        const auto t0 = monotonic_ns();
        REQUIRE(!(co_await start(t))); // ...during...
        const auto t1 = monotonic_ns();
        pause.expires_after(500ms); // ...and after the bootstrap
        co_await pause.async_wait(asio::use_awaitable);
        ch.stop();
        INFO("overruns " << t.stats().overruns << ", churn children " << ch.children.size());
        REQUIRE(ch.children.size() > 20); // fork() from a big process: ~100/s on a loaded 2-CPU VM
        // Settle: every churn child the table has must have ended.
        std::vector<pid_t> mine;
        for (const auto& k : ch.children) mine.push_back(k.pid);
        REQUIRE(co_await until([&] {
            for (auto pid : mine)
                if (const auto* p = t.table().find(pid); p && !p->exited) return false;
            return true;
        }, 10s));
        CHECK(t.stats().overruns == 0); // otherwise a rescan, not the bootstrap, made the table
        std::size_t spanning = 0, later = 0, seen = 0;
        for (const auto& k : ch.children) {
            INFO("child " << k.pid << " alive " << k.after_fork << ".." << k.before_kill << ", start " << t0 << ".."
                          << t1);
            const auto* p = t.table().find(k.pid);
            if (p) {
                ++seen;
                // Whoever it came from (scan or event), it is the churn's child,
                // and its end came from the kernel's exit event.
                CHECK(p->parent.value == ::getpid());
                CHECK(p->exited);
                CHECK(p->wait_status.from == proc::source::event);
                CHECK(p->wait_status.value == static_cast<std::uint32_t>(SIGKILL));
            }
            if (k.after_fork < t0 && k.before_kill > t1) { // alive during the whole bootstrap: scanned
                ++spanning;
                REQUIRE(p);
                CHECK(p->parent.from == proc::source::proc_verified);
                CHECK(p->start_ticks.has_value());
            } else if (k.after_fork > t1 + 1'000'000) { // born after it: from its fork event
                ++later;
                REQUIRE(p);
                CHECK(p->parent.from == proc::source::event);
                CHECK(p->fork_ns.has_value());
            } else if (k.after_reap != 0 && k.after_reap < t0 && p) {
                // Reaped before the bootstrap began: nothing could show it, not
                // even a stale scan. (Killed before but reaped after: the scan
                // may see it, and its exit event ends it.)
                CHECK_MESSAGE(false, "child " << k.pid << " ended before async_start, yet is in the table");
            }
        }
        MESSAGE("churn: " << ch.children.size() << " children, " << spanning << " alive through the bootstrap, "
                          << later << " born after it, " << seen << " in the table");
        CHECK(spanning >= 1);
        CHECK(later >= 5);
    });
}

TEST_CASE("process_table: a zombie read before its exit event was stamped still gets that event's status") {
    // do_exit() makes the zombie (exit_notify) before it sends the exit event
    // (proc_exit_connector): a /proc read can see 'Z' before the event's
    // timestamp. As in a bootstrap, the table first learns of each child from
    // the scan of its zombie (its fork came "before LISTEN": not fed), then
    // gets its exit event.
    asio::io_context io;
    cnasio::client c(io.get_executor());
    proc::listener l(c);
    run(io, [&]() -> asio::awaitable<void> {
        auto [sec] = co_await l.async_start(asio::as_tuple(asio::use_awaitable));
        REQUIRE(!sec);
        proc::process_table table;
        constexpr int rounds = 30;
        int stamped_after_read = 0;
        for (int i = 0; i < rounds; ++i) {
            const pid_t pid = ::fork();
            if (pid == 0) ::_exit(i);
            // The scan's read, as soon as the child is a zombie: its state is
            // polled with a light read of stat (read_process() reads seven
            // files and would mostly start after the event), and the record
            // carries that read's start.
            std::uint64_t seen_ns = 0;
            const std::string stat_path = "/proc/" + std::to_string(pid) + "/stat";
            for (;;) {
                seen_ns = proc::detail::clock_ns(CLOCK_MONOTONIC);
                const auto text = proc::detail::read_file(stat_path);
                REQUIRE(text);
                const auto st = proc::parse_stat(*text);
                REQUIRE(st);
                if (st->state == 'Z') break;
            }
            proc::proc_record r = proc::read_process(pid);
            REQUIRE(!r.gone);
            REQUIRE(r.state == 'Z');
            r.read_start_ns = seen_ns;
            CHECK(table.on_scan_record(r) == proc::process_table::record_result::applied);
            REQUIRE(table.find(pid));
            CHECK(table.find(pid)->exited);
            ::waitpid(pid, nullptr, 0);
            proc::event ev;
            for (;;) {
                asio::steady_timer limit(co_await asio::this_coro::executor, 5s);
                limit.async_wait([&](error_code e) {
                    if (!e) l.cancel();
                });
                auto [ec] = co_await l.async_receive(ev, asio::as_tuple(asio::use_awaitable));
                REQUIRE_MESSAGE(!ec, ec.message());
                const auto* x = ev.get_if<proc::exit_event>();
                if (x && x->process_tgid == pid && x->process_pid == pid) break;
            }
            if (ev.timestamp_ns > r.read_start_ns) ++stamped_after_read;
            INFO("child " << i << ": read " << r.read_start_ns << ", exit event " << ev.timestamp_ns);
            CHECK(table.on_event(ev).what == proc::table_update::kind::exited);
            const auto* p = table.find(pid);
            REQUIRE(p);
            CHECK(p->wait_status.from == proc::source::event);
            CHECK(p->exit_status() == i);
        }
        MESSAGE(stamped_after_read << " of " << rounds << " exit events were stamped after the read that saw the zombie");
    });
}

namespace {

// A child that pauses until killed.
pid_t spawn_sleeper() {
    const pid_t pid = ::fork();
    if (pid == 0)
        for (;;) ::pause();
    return pid;
}

// /proc's processes now: pid -> (start ticks, ppid).
std::map<proc::pid_type, std::pair<std::uint64_t, proc::pid_type>> proc_now() {
    std::map<proc::pid_type, std::pair<std::uint64_t, proc::pid_type>> out;
    for (auto pid : proc::list_pids("/proc")) {
        auto r = proc::read_process(pid);
        // Zombies have ended: the table holds them as exited.
        if (!r.gone && (!r.tgid || *r.tgid == pid) && r.state != 'Z' && r.state != 'X')
            out[pid] = {r.start_ticks, r.ppid};
    }
    return out;
}

// n short-lived children, one after the other. Not inside a coroutine: g++ 12
// crashes (internal compiler error) on vfork() in a coroutine body.
[[gnu::noinline]] void vfork_storm(int n) {
    for (int i = 0; i < n; ++i) {
        const pid_t pid = ::vfork();
        if (pid == 0) ::_exit(0);
        ::waitpid(pid, nullptr, 0);
    }
}

bool has(const std::vector<proc::pid_type>& v, pid_t pid) { return std::find(v.begin(), v.end(), pid) != v.end(); }

// The table equals /proc. Other processes come and go meanwhile: a pid listed
// by /proc before and after the table's snapshot (same start) must be live in
// the table with /proc's parent (or, reparented, a recorded parent that has
// ended); a live entry must be in one of the two listings. `why` says what
// differed.
bool table_equals_proc(const proc::process_table& table, std::string& why) {
    const auto a = proc_now();
    std::map<proc::pid_type, proc::pid_type> live;
    table.for_each([&](const proc::process_info& p) {
        if (!p.exited) live[p.tgid] = p.parent.value;
    });
    const auto b = proc_now();
    for (const auto& entry : a) {
        const auto pid = entry.first;
        auto ib = b.find(pid);
        if (ib == b.end() || ib->second.first != entry.second.first) continue; // came or went meanwhile
        auto it = live.find(pid);
        if (it == live.end()) {
            why = "pid " + std::to_string(pid) + " in /proc, not live in the table";
            return false;
        }
        if (it->second != entry.second.second) {
            const auto* parent = table.find(it->second);
            if (parent && !parent->exited) {
                why = "pid " + std::to_string(pid) + ": parent " + std::to_string(it->second) + " in the table, " +
                      std::to_string(entry.second.second) + " in /proc";
                return false;
            }
        }
    }
    for (const auto& entry : live)
        if (!a.count(entry.first) && !b.count(entry.first)) {
            const auto* q = table.find(entry.first);
            why = "pid " + std::to_string(entry.first) + " live in the table, not in /proc (parent " +
                  std::to_string(q->parent.value) + " from " + std::to_string(static_cast<int>(q->parent.from)) +
                  ", forked " + (q->fork_ns ? std::to_string(*q->fork_ns) : std::string("-")) + ", comm '" +
                  q->comm.value + "', start ticks " + std::to_string(q->start_ticks.value) + ")";
            return false;
        }
    return true;
}

// The rescans after the storm name what they changed: old[0..2] ended unseen
// (status unknown), `fresh` started unseen, old[3..] unchanged. (Other
// processes on the machine can overflow the 4 KiB buffer again: the union of
// the reports counts.)
void check_resyncs(const std::vector<proc::resync_report>& reports, const proc::process_table& table,
                   const std::vector<pid_t>& old, const std::vector<pid_t>& fresh) {
    proc::resync_report r;
    for (const auto& one : reports) {
        r.ended.insert(r.ended.end(), one.ended.begin(), one.ended.end());
        r.added.insert(r.added.end(), one.added.begin(), one.added.end());
    }
    for (std::size_t i = 0; i < 3; ++i) {
        const pid_t pid = old[i];
        INFO("ended unseen: " << pid);
        CHECK(has(r.ended, pid));
        const auto* p = table.find(pid);
        REQUIRE(p);
        CHECK(p->exited);
        CHECK(p->wait_status.from == proc::source::none); // status unknown, marked so
    }
    for (auto pid : fresh) {
        INFO("started unseen: " << pid);
        CHECK(has(r.added, pid));
        const auto* p = table.find(pid);
        REQUIRE(p);
        CHECK(!p->exited);
        CHECK(p->parent.value == ::getpid());
    }
    for (std::size_t i = 3; i < old.size(); ++i) {
        CHECK(!has(r.ended, old[i]));
        CHECK(!has(r.added, old[i]));
        CHECK(!table.find(old[i])->exited);
    }
}

} // namespace

TEST_CASE("tracker: an overrun storm, then a resync that leaves the table equal to /proc") {
    asio::io_context io;
    cnasio::client_options co;
    co.subscription_receive_buffer = 4096; // overflows at once when nobody reads
    cnasio::client c(io.get_executor(), co);
    proc::tracker t(c);
    std::vector<proc::resync_report> reports;
    t.on_resync([&](const proc::resync_report& r) { reports.push_back(r); });
    reaper children;
    run(io, [&]() -> asio::awaitable<void> {
        REQUIRE(!(co_await start(t)));
        std::vector<pid_t> old;
        for (int i = 0; i < 5; ++i) old.push_back(children.add(spawn_sleeper()));
        REQUIRE(co_await until([&] {
            for (auto pid : old)
                if (!t.table().find(pid)) return false;
            return true;
        }));
        // The storm, without yielding: nobody reads, the kernel drops events.
        const auto resyncs_before = t.stats().resyncs;
        const auto reports_before = reports.size();
        vfork_storm(1500);
        // Behind the overflow: three processes end and three start unseen.
        for (int i = 0; i < 3; ++i) children.reap(old[static_cast<std::size_t>(i)]);
        std::vector<pid_t> fresh;
        for (int i = 0; i < 3; ++i) fresh.push_back(children.add(spawn_sleeper()));
        REQUIRE(co_await until([&] { return t.stats().resyncs > resyncs_before; }, 10s));
        CHECK(t.stats().overruns >= 1);
        CHECK(t.events().stats().overruns >= 1); // ENOBUFS, from the kernel
        REQUIRE(reports.size() > reports_before);
        check_resyncs(std::vector<proc::resync_report>(reports.begin() + static_cast<std::ptrdiff_t>(reports_before),
                                                       reports.end()),
                      t.table(), old, fresh);
        CHECK(t.stats().resync_ended >= 3);
        CHECK(t.stats().resync_added >= 3);

        // The table equals /proc (table_equals_proc), retried while the loop catches up.
        std::string why;
        const bool equal = co_await until([&] { return table_equals_proc(t.table(), why); }, 10s);
        CHECK_MESSAGE(equal, why);
    });
}
