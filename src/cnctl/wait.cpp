// `cnctl wait`: a proc::tracker (LISTEN, scan /proc, events) and one
// async_wait_exit per pid; works for processes that are not cnctl's children.
#include "wait.hpp"

#include "command_support.hpp"

#include "output.hpp"

#include <cnasio/client.hpp>
#include <cnasio/proc/tracker.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

namespace cnctl {

namespace {
namespace asio = boost::asio;
namespace proc = cnasio::proc;

constexpr int exit_no_such_process = 127;
constexpr int exit_interrupted = 130;
} // namespace

int run_wait(const wait_args& a) {
    asio::io_context io(1);
    int open_rc = exit_ok;
    auto opened = open_command_client(io, a, open_rc); // names --netns and advice in its errors
    if (!opened) return open_rc;
    cnasio::client& c = *opened;
    proc::tracker t(c);
    std::vector<int> status(a.pids.size(), -1);
    std::size_t pending = a.pids.size();
    int rc = exit_ok;
    output out;
    bool interrupted = false;
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](cnasio::error_code e, int) {
        if (e) return;
        interrupted = true;
        t.close();
        c.close();
    });
    t.async_start([&](cnasio::error_code sec) {
        if (sec) {
            rc = fail_with(describe_error(sec, "starting process events"));
            signals.cancel();
            return;
        }
        for (std::size_t i = 0; i < a.pids.size(); ++i) {
            const auto pid = a.pids[i];
            t.async_wait_exit(pid, [&, i, pid](cnasio::error_code wec, std::uint32_t ws) {
                if (wec == boost::system::errc::no_such_process) {
                    std::fprintf(stderr, "cnctl: wait: no such process: %d\n", pid);
                    status[i] = exit_no_such_process;
                } else if (wec == cnasio::error::overrun) {
                    std::fprintf(stderr, "cnctl: wait: %d ended while events were lost: status unknown\n", pid);
                    status[i] = exit_runtime;
                } else if (wec) {
                    if (!interrupted) rc = fail_with("waiting for " + std::to_string(pid) + ": " + wec.message());
                    status[i] = exit_runtime;
                } else {
                    const unsigned sig = ws & 0x7fu;
                    if (sig == 0) {
                        status[i] = static_cast<int>((ws >> 8) & 0xffu);
                        out.write(std::to_string(pid) + " exited " + std::to_string(status[i]) + "\n");
                    } else {
                        status[i] = 128 + static_cast<int>(sig);
                        out.write(std::to_string(pid) + " killed by signal " + std::to_string(sig) +
                                  ((ws & 0x80u) ? " (core dumped)" : "") + "\n");
                    }
                    out.flush();
                }
                if (--pending == 0) {
                    signals.cancel();
                    t.close();
                    c.close();
                }
            });
        }
    });
    io.run();
    if (interrupted) return out.finish(exit_interrupted);
    if (rc != exit_ok) return out.finish(rc);
    return out.finish(status.empty() || status.back() < 0 ? exit_runtime : status.back());
}

} // namespace cnctl
