// forkstat-like `cnctl proc` lines from a proc::tracker (see proc_view.hpp).
#include "proc_view.hpp"

#include "format.hpp"
#include "output.hpp"

#include <cnasio/proc/tracker.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <csignal>
#include <cstdio>
#include <ctime>

namespace cnctl {

namespace {
namespace asio = boost::asio;
namespace proc = cnasio::proc;


std::string cmdline_text(const proc::process_info* p) {
    if (!p) return "?";
    if (p->argv.has_value() && !p->argv.value.empty()) {
        std::string s;
        for (const auto& a : p->argv.value) s += (s.empty() ? "" : " ") + escape_text(a);
        return s;
    }
    if (p->comm.has_value()) return "[" + escape_text(p->comm.value) + "]";
    return p->argv.from == proc::source::gone ? "<gone>" : "?";
}

std::string wall_clock(std::uint64_t ts_ns, std::int64_t realtime_minus_monotonic) {
    const auto ns = static_cast<std::int64_t>(ts_ns) + realtime_minus_monotonic;
    const std::time_t secs = static_cast<std::time_t>(ns / 1'000'000'000);
    std::tm tm{};
    ::localtime_r(&secs, &tm);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>((ns / 1'000'000) % 1000));
    return buf;
}

std::string num(std::int64_t v) { return std::to_string(v); }
} // namespace


asio::awaitable<int> proc_view(const proc_args& a, cnasio::client& c,
                               std::function<std::string(cnasio::error_code, const std::string&)> describe) {
    auto ex = co_await asio::this_coro::executor;
    proc::tracker t(c);
    auto [sec] = co_await t.async_start(asio::as_tuple(asio::use_awaitable));
    if (sec) {
        std::fprintf(stderr, "cnctl: %s\n", describe(sec, "starting process events").c_str());
        co_return exit_runtime;
    }
    const std::int64_t offset = static_cast<std::int64_t>(proc::detail::clock_ns(CLOCK_REALTIME)) -
                                static_cast<std::int64_t>(proc::detail::clock_ns(CLOCK_MONOTONIC));
    output out;
    std::uint64_t seen = 0;
    bool done = false;
    asio::steady_timer wake(ex, asio::steady_timer::time_point::max());
    asio::signal_set signals(ex, SIGINT, SIGTERM);
    signals.async_wait([&](cnasio::error_code e, int) {
        if (e) return;
        done = true;
        wake.cancel();
    });
    if (a.ready_line) std::fprintf(stderr, "cnctl: listening on group %u\n", proc::connector_idx);
    t.on_resync([&](const proc::resync_report& r) {
        std::fprintf(stderr,
                     "cnctl: events lost: rescanned /proc, %zu process(es) ended unseen (status unknown), %zu "
                     "found new\n",
                     r.ended.size(), r.added.size());
    });
    t.on_event([&](const proc::event& ev, const proc::table_update& u) {
        if (done || ev.is_ack() || !a.filter.contains(ev.type())) return;
        const auto& table = t.table();
        std::string line = wall_clock(ev.timestamp_ns, offset) + " " + std::string(proc::to_string(ev.type()));
        const proc::process_info* p = u.process;
        proc::pid_type pid = u.tgid;
        if (const auto* f = ev.get_if<proc::fork_event>()) pid = f->child_pid;
        const auto ppid = p && p->parent.has_value() ? num(p->parent.value) : "?";
        const auto uid = p && p->ruid.has_value() ? num(p->ruid.value) : "?";
        line += " " + num(pid) + " " + ppid + " " + uid;
        if (const auto* x = ev.get_if<proc::exit_event>(); x && x->process_pid == x->process_tgid) {
            line += x->signaled() ? " signal=" + num(x->term_signal()) : " status=" + num(x->exit_status());
            if (p && p->lifetime_ns.has_value()) {
                char b[32];
                std::snprintf(b, sizeof b, " lifetime=%.3fs", static_cast<double>(p->lifetime_ns.value) / 1e9);
                line += b;
            }
        }
        line += " " + cmdline_text(p);
        if (const auto* f = ev.get_if<proc::fork_event>(); f && f->child_pid == f->child_tgid)
            line += " <- " + cmdline_text(table.find(f->parent_tgid));
        line += "\n";
        if (!out.write(line)) {
            done = true;
            wake.cancel();
            return;
        }
        ++seen;
        if (a.count != 0 && seen >= a.count) {
            done = true;
            wake.cancel();
            return;
        }
        if (t.events().queued() == 0 && !out.flush()) {
            done = true;
            wake.cancel();
        }
    });
    co_await wake.async_wait(asio::as_tuple(asio::use_awaitable));
    signals.cancel();
    t.close();
    co_return out.finish(exit_ok);
}

} // namespace cnctl
