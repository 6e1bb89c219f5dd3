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

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <map>
#include <unordered_map>
#include <unordered_set>

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

// --pid/--descendants/--cgroup/--container: which processes' events are shown.
struct selection {
    const proc_args& a;
    std::unordered_set<proc::pid_type> followed; // --pid and, with --descendants, its subtree

    void start(const proc::process_table& t) {
        if (a.pid == 0) return;
        followed.insert(a.pid);
        if (a.descendants)
            for (auto d : t.descendants(a.pid)) followed.insert(d);
    }
    // Every event, shown or not: a followed process's new child is followed.
    void track(const proc::event& ev) {
        if (!a.descendants) return;
        if (const auto* f = ev.get_if<proc::fork_event>();
            f && f->child_pid == f->child_tgid && followed.count(f->parent_tgid))
            followed.insert(f->child_tgid);
    }
    bool matches(proc::pid_type tgid, const proc::process_info* p) const {
        if (a.pid != 0 && !followed.count(tgid)) return false;
        if (!a.cgroup.empty()) {
            if (!p || !p->cgroup.has_value()) return false;
            const auto& cg = p->cgroup.value;
            const bool below = cg.starts_with(a.cgroup) &&
                               (cg.size() == a.cgroup.size() || a.cgroup.back() == '/' || cg[a.cgroup.size()] == '/');
            if (!below) return false;
        }
        if (!a.container.empty()) {
            const auto c = p ? p->container() : std::nullopt;
            if (!c) return false;
            const bool id = !c->id.empty() && c->id.starts_with(a.container);
            if (!id && c->pod != a.container) return false;
        }
        return true;
    }
};

// --stats: counts over the shown events.
struct counters {
    std::map<std::string, std::uint64_t> by_type;
    std::unordered_map<proc::pid_type, std::pair<std::uint64_t, std::string>> forks; // parent -> count, cmdline
    std::unordered_map<std::string, std::uint64_t> programs;                         // exec'd program -> count
    std::uint64_t execs = 0, execs_with_cmdline = 0;

    void count(const proc::event& ev, const proc::process_info* p, const proc::process_table& t) {
        ++by_type[std::string(proc::to_string(ev.type()))];
        if (const auto* f = ev.get_if<proc::fork_event>(); f && f->child_pid == f->child_tgid) {
            auto& e = forks[f->parent_tgid];
            ++e.first;
            if (e.second.empty()) e.second = raw_cmdline(t.find(f->parent_tgid));
        }
        if (ev.get_if<proc::exec_event>()) {
            ++execs;
            if (p && p->argv.has_value() && !p->argv.value.empty()) ++execs_with_cmdline;
            std::string prog = p && p->exe.has_value() ? p->exe.value
                               : p && p->comm.has_value() ? p->comm.value
                                                          : std::string("?");
            ++programs[prog];
        }
    }
    static std::string raw_cmdline(const proc::process_info* p) {
        if (!p) return "?";
        if (p->argv.has_value() && !p->argv.value.empty()) {
            std::string s;
            for (const auto& x : p->argv.value) s += (s.empty() ? "" : " ") + x;
            return s;
        }
        return p->comm.has_value() ? "[" + p->comm.value + "]" : "?";
    }
    proc_summary summary(proc::tracker& t) const {
        proc_summary s;
        for (const auto& [k, n] : by_type) s.events.emplace_back(k, n);
        const auto ls = t.events().stats();
        s.lost = ls.lost.value_or(0);
        s.overruns = ls.overruns;
        s.resyncs = t.stats().resyncs;
        s.enrich_skipped = t.table().stats().enrich_skipped;
        s.execs = execs;
        s.execs_with_cmdline = execs_with_cmdline;
        for (const auto& [pid, e] : forks) s.forkers.push_back({pid, e.first, e.second});
        std::sort(s.forkers.begin(), s.forkers.end(), [](const auto& x, const auto& y) {
            return x.forks != y.forks ? x.forks > y.forks : x.pid < y.pid;
        });
        if (s.forkers.size() > 5) s.forkers.resize(5);
        for (const auto& [prog, n] : programs) s.execers.emplace_back(prog, n);
        std::sort(s.execers.begin(), s.execers.end(), [](const auto& x, const auto& y) {
            return x.second != y.second ? x.second > y.second : x.first < y.first;
        });
        if (s.execers.size() > 5) s.execers.resize(5);
        return s;
    }
};
} // namespace


asio::awaitable<int> proc_view(const proc_args& a, cnasio::client& c,
                               std::function<std::string(cnasio::error_code, const std::string&)> describe) {
    auto ex = co_await asio::this_coro::executor;
    proc::tracker_options o;
    // Without fork lines a new process's /proc read only costs time (its
    // command line is its parent's until it execs, and the exec is read):
    // fewer reads keep the loop closer to the kernel, so that exec reads find
    // short-lived processes still running.
    // (--cgroup and --container need every process's cgroup, read at its fork.)
    o.table.read_on_fork = a.filter.contains(proc::event_type::fork) || !a.cgroup.empty() || !a.container.empty();
    proc::tracker t(c, o);
    auto [sec] = co_await t.async_start(asio::as_tuple(asio::use_awaitable));
    if (sec) {
        std::fprintf(stderr, "cnctl: %s\n", describe(sec, "starting process events").c_str());
        co_return exit_runtime;
    }
    selection sel{a, {}};
    if (a.pid != 0) {
        const auto* p = t.table().find(a.pid);
        if (!p || p->exited) {
            std::fprintf(stderr, "cnctl: proc --pid %d: no such process\n", a.pid);
            co_return exit_runtime;
        }
        sel.start(t.table());
    }
    const std::int64_t offset = static_cast<std::int64_t>(proc::detail::clock_ns(CLOCK_REALTIME)) -
                                static_cast<std::int64_t>(proc::detail::clock_ns(CLOCK_MONOTONIC));
    output out;
    counters stats;
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
                     "cnctl: receive buffer overrun: events lost; rescanned /proc: %zu process(es) ended unseen "
                     "(status unknown), %zu found new\n",
                     r.ended.size(), r.added.size());
    });
    t.on_event([&](const proc::event& ev, const proc::table_update& u) {
        if (done || ev.is_ack()) return;
        sel.track(ev);
        if (!a.filter.contains(ev.type()) || !sel.matches(u.tgid, u.process)) return;
        const auto& table = t.table();
        const proc::process_info* p = u.process;
        if (a.stats) stats.count(ev, p, table);
        std::string line;
        const auto* fork = ev.get_if<proc::fork_event>();
        if (a.json) {
            line = format_enriched_event(ev, p, fork ? table.find(fork->parent_tgid) : nullptr);
        } else {
            line = wall_clock(ev.timestamp_ns, offset) + " " + std::string(proc::to_string(ev.type()));
            proc::pid_type pid = u.tgid;
            if (fork) pid = fork->child_pid;
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
            if (fork && fork->child_pid == fork->child_tgid) line += " <- " + cmdline_text(table.find(fork->parent_tgid));
            line += "\n";
        }
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
    if (a.stats) out.write(format_proc_summary(stats.summary(t), a.json));
    t.close();
    co_return out.finish(exit_ok);
}

namespace {

// The tree below `root` (depth-first, children by pid) from the live entries'
// recorded parents. A process whose recorded parent is not live is a root.
void print_tree(const proc::process_table& table, output& out, bool json, proc::pid_type root) {
    std::map<proc::pid_type, std::vector<proc::pid_type>> kids;
    std::vector<proc::pid_type> roots;
    table.for_each([&](const proc::process_info& p) {
        if (p.exited) return;
        const auto* parent = p.parent.has_value() && p.parent.value != p.tgid ? table.find(p.parent.value) : nullptr;
        if (parent && !parent->exited)
            kids[p.parent.value].push_back(p.tgid);
        else
            roots.push_back(p.tgid);
    });
    for (auto& [pid, v] : kids) std::sort(v.begin(), v.end());
    std::sort(roots.begin(), roots.end());
    if (root != 0) roots = {root};
    // Iterative, bounded by the table's size (recorded parents cannot loop, but
    // a bound costs nothing).
    std::vector<std::pair<proc::pid_type, unsigned>> stack;
    for (auto it = roots.rbegin(); it != roots.rend(); ++it) stack.emplace_back(*it, 0u);
    std::size_t printed = 0;
    while (!stack.empty() && printed <= table.size()) {
        const auto [pid, depth] = stack.back();
        stack.pop_back();
        const auto* p = table.find(pid);
        if (!p) continue;
        ++printed;
        const std::string line = json ? format_tree_json(*p, depth)
                                      : std::string(2 * depth, ' ') + num(pid) + " " + cmdline_text(p) + "\n";
        if (!out.write(line)) return;
        if (auto k = kids.find(pid); k != kids.end())
            for (auto it = k->second.rbegin(); it != k->second.rend(); ++it) stack.emplace_back(*it, depth + 1);
    }
}

} // namespace

asio::awaitable<int> tree_view(const tree_args& a, cnasio::client& c,
                               std::function<std::string(cnasio::error_code, const std::string&)> describe) {
    proc::tracker t(c);
    auto [sec] = co_await t.async_start(asio::as_tuple(asio::use_awaitable));
    if (sec) {
        std::fprintf(stderr, "cnctl: %s\n", describe(sec, "starting process events").c_str());
        co_return exit_runtime;
    }
    if (a.pid != 0) {
        const auto* p = t.table().find(a.pid);
        if (!p || p->exited) {
            t.close();
            std::fprintf(stderr, "cnctl: tree: no such process: %d\n", a.pid);
            co_return exit_runtime;
        }
    }
    output out;
    print_tree(t.table(), out, a.json, a.pid);
    t.close();
    co_return out.finish(exit_ok);
}

} // namespace cnctl
