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
// - bootstrap: processes that exist before async_start are in the table.
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
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <fstream>
#include <functional>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

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
