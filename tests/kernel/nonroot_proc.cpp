// nonroot_proc - process events for an unprivileged user, through
// cnasio::proc::listener, checked against what the running kernel promises.
//
//   nonroot_proc --expect events     the listener starts and reports the
//                                    fork, exec and exit (status 3) of a child
//                                    it starts (kernels 6.6 and later)
//   nonroot_proc --expect eperm      async_start fails with EPERM, reported as
//                                    std::errc::operation_not_permitted
//                                    (kernels before 6.6, e.g. 5.10)
//   nonroot_proc --expect auto       events on 6.6 and later, else eperm (what
//                                    README's compatibility table promises)
//
// Started as root, it first becomes uid/gid 65534 (nobody) with no
// supplementary groups, which also clears every capability; started as any
// other user it stays that user. Either way it checks that it holds no
// capability before it listens. Exit: 0 the expectation held, 1 it did not,
// 2 usage or setup error. Every wait is bounded (5 s): it cannot hang.
#include <cnasio/client.hpp>
#include <cnasio/proc/listener.hpp>

#include "kernel_version.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <string>
#include <string_view>

#include <grp.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace asio = boost::asio;
namespace proc = cnasio::proc;
using namespace std::chrono_literals;

extern char** environ;

namespace {

constexpr auto as_tuple = asio::as_tuple(asio::use_awaitable);

// The CapEff line of /proc/self/status ("0000000000000000": none), or "?".
std::string effective_capabilities() {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);)
        if (line.starts_with("CapEff:")) return line.substr(line.find_first_not_of(" \t", 7));
    return "?";
}

// Becomes nobody if root; returns false if that failed or capabilities remain.
bool drop_privileges() {
    if (::geteuid() == 0) {
        constexpr uid_t nobody = 65534;
        if (::setgroups(0, nullptr) != 0 || ::setresgid(nobody, nobody, nobody) != 0 ||
            ::setresuid(nobody, nobody, nobody) != 0) {
            std::printf("cannot become uid/gid 65534: %s\n", std::strerror(errno));
            return false;
        }
        // Changing uid made the process non-dumpable; LeakSanitizer (the ASan
        // build of this suite) needs to ptrace its own threads at exit.
        ::prctl(PR_SET_DUMPABLE, 1);
    }
    const std::string caps = effective_capabilities();
    std::printf("running as uid %u gid %u, %d supplementary groups, CapEff %s\n", ::geteuid(), ::getegid(),
                ::getgroups(0, nullptr), caps.c_str());
    if (::geteuid() == 0 || caps != "0000000000000000") {
        std::printf("FAIL: still privileged\n");
        return false;
    }
    return true;
}

// Starts `/bin/sh -c 'exit 3'`; returns its pid, or -1.
pid_t start_child() {
    char sh[] = "/bin/sh", c[] = "-c", script[] = "exit 3";
    char* argv[] = {sh, c, script, nullptr};
    pid_t pid = -1;
    if (const int e = ::posix_spawn(&pid, sh, nullptr, nullptr, argv, environ); e != 0) {
        std::printf("posix_spawn /bin/sh: %s\n", std::strerror(e));
        return -1;
    }
    return pid;
}

// Returns 0 if the expectation held, 1 if not.
asio::awaitable<int> run(cnasio::client& client, bool expect_events) {
    proc::listener listener(client);
    asio::steady_timer guard(co_await asio::this_coro::executor);
    // Bounds the next wait: closing the client ends whatever is outstanding.
    auto arm = [&](std::chrono::seconds s) {
        guard.expires_after(s);
        guard.async_wait([&](cnasio::error_code ec) {
            if (!ec) client.close();
        });
    };

    arm(5s);
    auto [ec] = co_await listener.async_start(as_tuple);
    guard.cancel();
    if (ec) {
        std::printf("async_start: %s (errno %d%s)\n", ec.message().c_str(), ec.value(),
                    ec == std::errc::operation_not_permitted ? ", EPERM" : "");
        if (!expect_events && ec == std::errc::operation_not_permitted) {
            std::printf("PASS: an unprivileged listener is refused with EPERM\n");
            co_return 0;
        }
        std::printf("FAIL: expected %s\n", expect_events ? "events" : "EPERM");
        co_return 1;
    }
    std::printf("listening (the kernel acknowledged LISTEN from uid %u)\n", ::geteuid());
    if (!expect_events) {
        std::printf("FAIL: expected EPERM, the kernel accepted an unprivileged listener\n");
        co_return 1;
    }

    const pid_t child = start_child();
    if (child < 0) co_return 1;
    int status = 0;
    ::waitpid(child, &status, 0); // the events wait in the socket meanwhile
    bool fork_seen = false, exec_seen = false, exit_seen = false;
    proc::event ev;
    arm(5s);
    while (!(fork_seen && exec_seen && exit_seen)) {
        auto [rec] = co_await listener.async_receive(ev, as_tuple);
        if (rec == cnasio::error::overrun) continue;
        if (rec) {
            std::printf("receive: %s\n", rec.message().c_str());
            break;
        }
        if (const auto* f = ev.get_if<proc::fork_event>(); f && f->child_tgid == child) {
            std::printf("fork  parent %d -> child %d\n", f->parent_tgid, f->child_tgid);
            fork_seen = true;
        } else if (const auto* e = ev.get_if<proc::exec_event>(); e && e->process_tgid == child) {
            std::printf("exec  pid %d\n", e->process_tgid);
            exec_seen = true;
        } else if (const auto* x = ev.get_if<proc::exit_event>(); x && x->process_tgid == child) {
            std::printf("exit  pid %d status %d\n", x->process_tgid, x->exit_status());
            exit_seen = x->exited() && x->exit_status() == 3;
        }
    }
    guard.cancel();
    if (!(fork_seen && exec_seen && exit_seen)) {
        std::printf("FAIL: child %d: fork %s, exec %s, exit status 3 %s\n", child, fork_seen ? "seen" : "missing",
                    exec_seen ? "seen" : "missing", exit_seen ? "seen" : "missing");
        co_return 1;
    }
    std::printf("PASS: fork, exec and exit of child %d seen without privileges\n", child);
    co_return 0;
}

} // namespace

int main(int argc, char** argv) {
    std::string_view mode = argc == 3 && std::string_view(argv[1]) == "--expect" ? argv[2] : "";
    if (mode != "events" && mode != "eperm" && mode != "auto") {
        std::fprintf(stderr, "usage: nonroot_proc --expect events|eperm|auto\n");
        return 2;
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0); // lines survive a kill
    if (mode == "auto") {
        // Linux 6.6 let unprivileged users listen (cn_proc: "Allow non-root users access").
        mode = cnasio::test::kernel_at_least(6, 6) ? "events" : "eperm";
        std::printf("expecting %s on this kernel\n", std::string(mode).c_str());
    }
    if (!drop_privileges()) return 2;

    asio::io_context io;
    cnasio::error_code ec;
    cnasio::client client(io.get_executor(), {}, ec);
    if (ec) {
        std::printf("cannot open a connector socket: %s\n", ec.message().c_str());
        return 2;
    }
    int result = 1;
    asio::co_spawn(io, run(client, mode == "events"), [&](std::exception_ptr e, int rc) {
        client.close(); // done: nothing may keep run() busy
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                std::printf("exception: %s\n", x.what());
            }
            return;
        }
        result = rc;
    });
    io.run();
    return result;
}
