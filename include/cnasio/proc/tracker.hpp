// cnasio::proc::tracker - a process_table kept current from a proc::listener
// (the thin Asio part; the table itself is sans-IO: process_table.hpp).
//
//     cnasio::client c(io.get_executor());
//     cnasio::proc::tracker t(c);
//     co_await t.async_start(asio::use_awaitable);      // LISTEN, scan /proc, merge
//     auto [ec, status] = co_await t.async_wait_exit(pid, asio::as_tuple(asio::use_awaitable));
//
// Bootstrap (race-free): LISTEN first (async_start of the listener completes
// once the kernel acknowledged it), then scan /proc (every pid, read_process),
// feeding the table the scan records, and only then the events that queued up
// meanwhile. The table's merge rules (process_table.hpp) make events win over
// the scan, and an exit event of a process the scan never saw creates nothing.
//
// The receive loop runs from async_start's completion until close(): each
// event goes to the table, then the table's wanted /proc reads are done,
// synchronously, if no more than `enrich_backlog` messages wait in the
// listener's queue; otherwise they are skipped and counted (table
// stats().enrich_skipped). Events are never skipped for enrichment.
//
// Overrun (events lost): the tracker rescans /proc (once the events queued
// behind the report are handled): processes that are no
// longer there end with an unknown status (wait_status `none`), new ones are
// added; stats().resyncs, resync_ended and resync_added say so, and
// last_resync() (and the on_resync callback) lists what the rescan changed.
// Waiters of a process that ended unseen complete with error::overrun.
//
// Not thread-safe; use from the client's executor. The client must outlive
// the tracker.
#pragma once

#include <cnasio/proc/listener.hpp>
#include <cnasio/proc/process_table.hpp>
#include <cnasio/proc/procfs.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <vector>

namespace cnasio::proc {

struct tracker_options {
    process_table_options table;
    /// Enrichment (/proc reads) is skipped while more messages than this wait.
    std::size_t enrich_backlog = 256;
    std::size_t queue_limit = 65536;
    std::size_t keep_messages = 1024; ///< listener_options::keep_messages
    std::string proc_root = "/proc";
};

struct tracker_stats {
    std::uint64_t scanned = 0;      ///< processes the bootstrap scan added
    std::uint64_t overruns = 0;     ///< error::overrun reports from the listener
    std::uint64_t resyncs = 0;      ///< rescans after an overrun
    std::uint64_t resync_ended = 0; ///< live entries a rescan found gone (status unknown)
    std::uint64_t resync_added = 0; ///< processes a rescan found that the table did not have
};

/// What one rescan after an overrun changed in the table.
struct resync_report {
    std::uint64_t when_ns = 0;        ///< CLOCK_MONOTONIC at the end of the rescan
    std::vector<pid_type> ended;      ///< live entries not in /proc any more: ended, status unknown
    std::vector<pid_type> added;      ///< in /proc, not live in the table: added from the scan
    std::vector<pid_type> replaced;   ///< a live entry whose pid now holds another process (subset of added)
};

namespace detail {

struct exit_waiter {
    explicit exit_waiter(const boost::asio::any_io_executor& ex) : timer(ex, boost::asio::steady_timer::time_point::max()) {}
    boost::asio::steady_timer timer;
    bool done = false;
    error_code ec;
    std::uint32_t status = 0;
    void complete(error_code e, std::uint32_t s) {
        done = true;
        ec = e;
        status = s;
        timer.cancel();
    }
};

struct tracker_state : std::enable_shared_from_this<tracker_state> {
    tracker_state(client& c, const tracker_options& o)
        : c(&c), options(o), l(c, make_listener_options(o)), table(o.table) {}

    static listener_options make_listener_options(const tracker_options& o) {
        listener_options lo; // every event type: the table needs them all
        lo.queue_limit = o.queue_limit;
        lo.keep_messages = o.keep_messages;
        return lo;
    }

    client* c;
    tracker_options options;
    listener l;
    process_table table;
    tracker_stats st;
    event ev;
    bool running = false;
    // An overrun was reported and its rescan waits for the events queued
    // behind the report: the kernel reports ENOBUFS before the datagrams
    // already in the socket, so those (say, the fork of a process whose exit
    // was then lost) come after the report but happened before the loss. A
    // rescan taken at the report would be undone by them; taken once they are
    // handled, it has the last word.
    bool resync_pending = false;
    std::map<pid_type, std::vector<std::shared_ptr<exit_waiter>>> waiters;
    std::function<void(const event&, const table_update&)> on_event;
    std::function<void(const resync_report&)> on_resync;
    resync_report last_resync;

    void scan(bool resync) {
        auto pids = list_pids(options.proc_root);
        std::vector<pid_type> alive;
        alive.reserve(pids.size());
        resync_report report;
        for (auto pid : pids) {
            auto r = read_process(pid, options.proc_root);
            if (r.gone) continue;
            alive.push_back(pid);
            const auto* before = table.find(pid);
            const bool known = before != nullptr;
            const bool was_live = known && !before->exited;
            const auto replaced_before = table.stats().replaced;
            table.on_scan_record(r);
            if (!known && !resync) ++st.scanned;
            if (resync) {
                const auto* after = table.find(pid);
                const bool now_live = after && !after->exited;
                if (table.stats().replaced != replaced_before) {
                    report.replaced.push_back(pid);
                    report.added.push_back(pid);
                } else if (!was_live && now_live) {
                    report.added.push_back(pid);
                }
            }
        }
        if (resync) {
            const auto now = detail_now();
            std::sort(alive.begin(), alive.end());
            std::vector<pid_type> ended_pids;
            table.for_each([&](const process_info& p) {
                if (!p.exited && !std::binary_search(alive.begin(), alive.end(), p.tgid)) ended_pids.push_back(p.tgid);
            });
            const auto ended = table.end_missing(alive, now);
            std::sort(ended_pids.begin(), ended_pids.end());
            report.ended = std::move(ended_pids);
            report.when_ns = now;
            st.resync_ended += ended;
            st.resync_added += report.added.size();
            ++st.resyncs;
            // Waiters of processes that ended unseen.
            for (auto it = waiters.begin(); it != waiters.end();) {
                const auto* p = table.find(it->first);
                if (!p || p->exited) {
                    for (auto& w : it->second)
                        w->complete(p && p->wait_status.has_value() ? error_code{} : make_error_code(error::overrun),
                                    p ? p->wait_status.value : 0);
                    it = waiters.erase(it);
                } else {
                    ++it;
                }
            }
            last_resync = std::move(report);
            if (on_resync) on_resync(last_resync);
        }
    }

    static std::uint64_t detail_now() { return cnasio::proc::detail::clock_ns(CLOCK_MONOTONIC); }

    void enrich() {
        if (table.pending_reads() == 0) return;
        if (l.queued() > options.enrich_backlog) return table.skip_reads();
        for (auto pid : table.take_reads()) table.on_record(read_process(pid, options.proc_root));
    }

    void handle(const event& e) {
        const auto u = table.on_event(e);
        enrich();
        if (on_event) on_event(e, u);
        if (u.what == table_update::kind::exited) {
            auto it = waiters.find(u.tgid);
            if (it != waiters.end()) {
                for (auto& w : it->second) w->complete(error_code{}, u.process->wait_status.value);
                waiters.erase(it);
            }
        }
    }

    void loop() {
        if (!running) return;
        l.async_receive(ev, [self = shared_from_this()](error_code ec) {
            if (!self->running) return;
            if (ec == error::overrun) {
                ++self->st.overruns;
                self->resync_pending = true;
            } else if (ec) {
                self->running = false; // closed or failed: the loop ends
                return;
            } else {
                self->handle(self->ev);
            }
            if (self->resync_pending && self->l.queued() == 0) {
                self->resync_pending = false;
                self->scan(true);
            }
            self->loop();
        });
    }

    void close() {
        running = false;
        l.close();
        for (auto& [pid, ws] : waiters)
            for (auto& w : ws) w->complete(boost::asio::error::operation_aborted, 0);
        waiters.clear();
    }
};

} // namespace detail

class tracker {
public:
    explicit tracker(client& c, tracker_options o = {}) : s_(std::make_shared<detail::tracker_state>(c, o)) {}
    tracker(const tracker&) = delete;
    tracker& operator=(const tracker&) = delete;
    ~tracker() { close(); }

    /// LISTEN, scan /proc, start the receive loop. Completion: void(error_code),
    /// with the listener's async_start errors.
    template <class CompletionToken>
    auto async_start(CompletionToken&& token) {
        auto s = s_;
        return boost::asio::async_compose<CompletionToken, void(error_code)>(
            [s, started = false](auto& self, error_code ec = {}) mutable {
                if (!started) {
                    started = true;
                    return s->l.async_start(std::move(self));
                }
                if (ec) return self.complete(ec);
                s->scan(false); // after LISTEN: nothing born meanwhile is missed
                s->running = true;
                s->loop();
                self.complete(error_code{});
            },
            token, s_->c->get_executor());
    }

    /// Waits for the exit of process `pid` (any process, not only a child).
    /// Completion: void(error_code, std::uint32_t wait_status) - the status as
    /// waitpid() reports it (exit_event::exit_code). Errors:
    /// std::errc::no_such_process: no such process (not in the table, not in
    /// /proc, or a thread id); error::overrun: it ended while events were lost
    /// (status unknown); operation_aborted: cancelled or closed;
    /// not_connected: async_start has not completed. An exited process still in
    /// the table (grace period) completes at once with its status.
    template <class CompletionToken>
    auto async_wait_exit(pid_type pid, CompletionToken&& token) {
        auto s = s_;
        return boost::asio::async_compose<CompletionToken, void(error_code, std::uint32_t)>(
            [s, pid, w = std::shared_ptr<detail::exit_waiter>(), state = 0](auto& self, error_code posted_ec = {},
                                                                             std::uint32_t posted_status = 0) mutable {
                if (state == 0) {
                    state = 1;
                    error_code ec;
                    std::uint32_t status = 0;
                    if (!s->running) {
                        ec = boost::asio::error::not_connected;
                    } else if (const auto* p = s->table.find(pid); p && p->exited) {
                        if (p->wait_status.has_value())
                            status = p->wait_status.value;
                        else
                            ec = make_error_code(error::overrun);
                    } else if (!p) {
                        auto r = read_process(pid, s->options.proc_root);
                        if (r.gone || (r.tgid && *r.tgid != pid))
                            ec = make_error_code(boost::system::errc::no_such_process);
                    }
                    if (ec || (s->table.find(pid) && s->table.find(pid)->exited)) {
                        state = 2;
                        auto ex = s->c->get_executor();
                        return boost::asio::post(ex, boost::asio::append(std::move(self), ec, status));
                    }
                    w = std::make_shared<detail::exit_waiter>(s->c->get_executor());
                    s->waiters[pid].push_back(w);
                    return w->timer.async_wait(std::move(self));
                }
                if (state == 2) return self.complete(posted_ec, posted_status);
                if (state == 1) {
                    if (w->done) return self.complete(w->ec, w->status);
                    // Cancelled by the caller: forget the waiter.
                    auto& ws = s->waiters[pid];
                    std::erase(ws, w);
                    if (ws.empty()) s->waiters.erase(pid);
                    return self.complete(boost::asio::error::operation_aborted, 0);
                }
            },
            token, s_->c->get_executor());
    }

    /// Called after each event was applied (and its /proc reads done).
    void on_event(std::function<void(const event&, const table_update&)> f) { s_->on_event = std::move(f); }
    /// Called after each rescan after an overrun, with what it changed.
    void on_resync(std::function<void(const resync_report&)> f) { s_->on_resync = std::move(f); }
    /// What the latest rescan changed (empty before the first overrun).
    const resync_report& last_resync() const noexcept { return s_->last_resync; }

    const process_table& table() const noexcept { return s_->table; }
    /// Re-reads one process's /proc facts now (e.g. its live parent).
    process_table::record_result refresh(pid_type pid) {
        return s_->table.on_record(read_process(pid, s_->options.proc_root));
    }
    const tracker_stats& stats() const noexcept { return s_->st; }
    listener& events() noexcept { return s_->l; }
    /// Stops the loop, closes the listener, aborts the waiters.
    void close() {
        if (s_) s_->close();
    }

private:
    std::shared_ptr<detail::tracker_state> s_;
};

} // namespace cnasio::proc
