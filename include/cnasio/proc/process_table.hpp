// cnasio::proc::process_table - live processes from proc events and /proc
// records (sans-IO: no Asio, no reads; procfs.hpp reads, tracker.hpp drives).
//
// Feeding it:
//  - on_event(ev): every proc event, in the order the socket delivered them.
//    Events are never skipped.
//  - on_record(rec): a proc_record (procfs.hpp) of a pid the table asked for
//    (take_reads()), or of any pid; the bootstrap scan feeds one per /proc
//    entry with on_scan_record().
//
// Keys and identity: processes are keyed by tgid; a thread (fork event with
// child_pid != child_tgid) is counted under its process. A process is
// identified by its start: the fork event's timestamp (CLOCK_MONOTONIC ns) for
// processes born while listening, the /proc start time (stat field 22, clock
// ticks of CLOCK_BOOTTIME) for the others. A record is applied to an entry only
// if its start time matches (`verified`):
//  - the entry knows its start ticks: equal;
//  - the entry knows its fork timestamp F: the record's start, converted to
//    CLOCK_MONOTONIC, lies in [F - 1 tick - fork_slack, F + fork_slack] (the
//    kernel takes the start time in copy_process(), just before it sends the
//    fork event);
//  - the entry knows neither (first seen in a non-fork event at T, no scan):
//    the record's process started before T + fork_slack; a process holding
//    the pid now that started before T held it at T: it is the one.
// Residual: a pid reused within that slack (default 50 ms) of the original's
// start cannot be told apart by /proc; the kernel's pid allocator hands out
// pids in increasing order, so that needs a full pid-space wrap in 50 ms.
//
// Ordering of records and events: a record says when its read began
// (read_start_ns, same clock as events). Program fields (comm, argv, exe) read
// before the process's last exec event are stale: they are not applied. An
// exec event keeps program fields read after it (the bootstrap case: the scan
// read a process after an exec whose event is processed later).
//
// Provenance (`source`): every value says where it came from: the kernel's
// event, a verified /proc read, or `gone`: the process ended (or the pid was
// taken by another process) before it could be read. A value is never taken
// from a process with another start time. Fields never read: `none`.
//
// Exit: the leader's exit event (pid == tgid) ends the process: wait status
// (event), exit time, lifetime. Exited entries stay `exit_grace_ns` (by event
// time: expire(now)) then go. A leader that leaves with pthread_exit() while
// other threads run ends the entry early (the kernel reports that exit like
// any other).
//
// Memory: at most max_entries entries. A new process at the limit first
// expires the oldest exited entry; with none, it is not tracked (counted in
// stats().untracked). Reads the table wants are queued up to max_pending
// pids; beyond that a wanted read is dropped and counted
// (stats().enrich_skipped). Not thread-safe.
#pragma once

#include <cnasio/proc/container.hpp>
#include <cnasio/proc/decode.hpp>
#include <cnasio/proc/procfs.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace cnasio::proc {

/// Where a value came from.
enum class source : std::uint8_t {
    none,          ///< not known (not read yet, or not readable: e.g. a kernel thread's exe)
    event,         ///< the kernel's proc event
    proc_verified, ///< a /proc read whose start time matched this process
    gone,          ///< the process ended (or its pid went to another) before it could be read
};

constexpr std::string_view to_string(source s) noexcept {
    switch (s) {
    case source::none: return "none";
    case source::event: return "event";
    case source::proc_verified: return "proc";
    case source::gone: return "gone";
    }
    return "none";
}

/// A value and its provenance; `value` is meaningful when has_value().
template <class T>
struct sourced {
    T value{};
    source from = source::none;
    bool has_value() const noexcept { return from == source::event || from == source::proc_verified; }
    void set(T v, source s) {
        value = std::move(v);
        from = s;
    }
    void mark_gone() {
        if (!has_value()) from = source::gone;
    }
    void clear() {
        value = T{};
        from = source::none;
    }
};

struct process_info {
    pid_type tgid = 0;
    /// The parent recorded at birth (fork event's parent_tgid), or the ppid the
    /// first verified read saw; kept after that parent exits.
    sourced<pid_type> parent;
    /// The parent as /proc said at the last verified read (after a parent's
    /// exit, the subreaper or init); never guessed.
    sourced<pid_type> live_parent;
    std::optional<std::uint64_t> fork_ns;    ///< fork event timestamp (CLOCK_MONOTONIC ns)
    sourced<std::uint64_t> start_ticks;      ///< /proc stat field 22
    sourced<std::uint32_t> ruid, euid, rgid, egid;
    sourced<std::string> comm, exe, cgroup;
    sourced<std::vector<std::string>> argv;
    sourced<std::vector<pid_type>> nspid;
    std::uint32_t threads = 0;               ///< live threads besides the leader
    std::uint32_t execs = 0;                 ///< exec events seen
    std::uint64_t first_seen_ns = 0;         ///< event time this entry was created (or the scan read)
    std::uint64_t program_since_ns = 0;      ///< last exec event (0: none seen)
    std::uint64_t program_read_ns = 0;       ///< read_start_ns of the applied program fields
    std::uint64_t threads_as_of_ns = 0;      ///< read_start_ns of a verified thread count
    std::int64_t boot_offset_ns = 0;         ///< of the last verified read (start ticks to monotonic)
    std::uint64_t ticks_per_second = 0;      ///< of the last verified read
    bool exited = false;
    /// Ended because a /proc scan found it a zombie (it had exited, but no exit
    /// event had been seen): its exit event may still be queued, and fills
    /// wait_status when it comes (exit_ns is then the read time, not the event's).
    bool ended_as_zombie = false;
    sourced<std::uint32_t> wait_status;      ///< exit event's exit_code (a waitpid() status)
    std::optional<std::uint64_t> exit_ns;
    sourced<std::uint64_t> lifetime_ns;      ///< event: exit - fork; proc_verified: exit - /proc start

    /// WIFEXITED / WEXITSTATUS / WTERMSIG of wait_status.
    bool exited_normally() const noexcept { return (wait_status.value & 0x7fu) == 0; }
    int exit_status() const noexcept { return static_cast<int>((wait_status.value >> 8) & 0xffu); }
    int term_signal() const noexcept { return static_cast<int>(wait_status.value & 0x7fu); }
    /// The shell's $? for this status: the exit status, or 128 + signal.
    int shell_status() const noexcept { return exited_normally() ? exit_status() : 128 + term_signal(); }
    /// The container its cgroup names (container.hpp), or nullopt: no
    /// container-like cgroup, or the cgroup is not known. Its provenance is
    /// the cgroup's (cgroup.from).
    std::optional<container_ref> container() const {
        if (!cgroup.has_value()) return std::nullopt;
        return container_of(cgroup.value);
    }
};

struct process_table_options {
    std::size_t max_entries = 65536;
    std::uint64_t exit_grace_ns = 5'000'000'000ull;
    std::size_t max_pending = 4096;
    std::uint64_t fork_slack_ns = 50'000'000ull;
    /// Queue a read for each new process (fork) as well as for each exec.
    bool read_on_fork = true;
};

struct process_table_stats {
    std::uint64_t events = 0;
    std::uint64_t forks = 0, threads_created = 0, execs = 0, exits = 0;
    std::uint64_t unknown_pid_events = 0; ///< events of a pid neither seen born nor scanned (not resurrected)
    std::uint64_t records = 0;
    std::uint64_t records_verified = 0;
    std::uint64_t records_mismatched = 0; ///< start time differed: another process at the pid
    std::uint64_t records_gone = 0;
    std::uint64_t records_stale = 0;      ///< program fields read before the last exec: not applied
    std::uint64_t enrich_skipped = 0;     ///< wanted reads dropped (pending queue full, or skip_enrichment)
    std::uint64_t untracked = 0;          ///< processes not tracked: table full of live entries
    std::uint64_t replaced = 0;           ///< live entries ended by a new process at their pid (exit unseen)
    std::uint64_t expired = 0;
};

/// What one on_event() did.
struct table_update {
    enum class kind { none, born, thread_born, exec, changed, thread_exit, exited, ignored };
    kind what = kind::none;
    pid_type tgid = 0;
    const process_info* process = nullptr; ///< valid until the next call that changes the table
};

class process_table {
public:
    explicit process_table(process_table_options o = {}) : o_(o) {}

    // ---- feeding ----

    table_update on_event(const event& ev) {
        ++st_.events;
        expire(ev.timestamp_ns);
        table_update u;
        const auto ts = ev.timestamp_ns;
        if (const auto* f = ev.get_if<fork_event>()) {
            if (f->child_pid != f->child_tgid) { // a thread
                ++st_.threads_created;
                auto* p = live(f->child_tgid, ts);
                if (!p) return ignored(u, f->child_tgid);
                if (ts > p->threads_as_of_ns) ++p->threads;
                return done(u, table_update::kind::thread_born, p);
            }
            ++st_.forks;
            return born(u, *f, ts);
        }
        if (const auto* x = ev.get_if<exit_event>()) {
            if (x->process_pid != x->process_tgid) {
                // A thread's exit event can come after its leader's (the
                // kernel wakes pthread_join() before it sends the event): the
                // ended process's entry stays as it is.
                if (auto it = map_.find(x->process_tgid); it != map_.end() && it->second.exited)
                    return done(u, table_update::kind::thread_exit, &it->second);
                auto* p = live(x->process_tgid, ts);
                if (!p) return ignored(u, x->process_tgid);
                if (ts > p->threads_as_of_ns && p->threads > 0) --p->threads;
                return done(u, table_update::kind::thread_exit, p);
            }
            ++st_.exits;
            // The exit of a process a scan found a zombie: only the status is
            // news. Its timestamp may follow the read: do_exit() makes the
            // zombie (exit_notify) before it sends the event, and a read saw
            // the zombie first in 329 of 500 exits measured (up to 0.77 ms).
            // So the bound is below: an exit stamped before this process
            // started is an earlier process's at that pid. A later process
            // there announces itself with a fork event first, which replaces
            // this entry.
            if (auto it = map_.find(x->process_tgid); it != map_.end() && it->second.ended_as_zombie &&
                                                      !it->second.wait_status.has_value() &&
                                                      exit_may_follow_start(it->second, ts)) {
                it->second.wait_status.set(x->exit_code, source::event);
                return done(u, table_update::kind::exited, &it->second);
            }
            auto* p = live(x->process_tgid, ts);
            if (!p) return ignored(u, x->process_tgid);
            end(*p, ts, x->exit_code);
            return done(u, table_update::kind::exited, p);
        }
        if (const auto* e = ev.get_if<exec_event>()) {
            ++st_.execs;
            auto* p = live(e->process_tgid, ts);
            if (!p) return ignored(u, e->process_tgid);
            ++p->execs;
            p->program_since_ns = ts;
            p->threads = 0; // exec kills the other threads (de_thread)
            p->threads_as_of_ns = ts;
            if (p->program_read_ns <= ts) { // read before this exec: the old program's
                p->comm.clear();
                p->argv.clear();
                p->exe.clear();
                want_read(p->tgid);
            }
            return done(u, table_update::kind::exec, p);
        }
        if (const auto* c = ev.get_if<comm_event>()) {
            auto* p = live(c->process_tgid, ts);
            if (!p) return ignored(u, c->process_tgid);
            // A thread's comm is its own; the process's name is the leader's.
            if (c->process_pid == c->process_tgid) p->comm.set(std::string(c->name()), source::event);
            return done(u, table_update::kind::changed, p);
        }
        if (const auto* id = ev.get_if<uid_event>()) {
            auto* p = live(id->process_tgid, ts);
            if (!p) return ignored(u, id->process_tgid);
            p->ruid.set(id->ruid, source::event);
            p->euid.set(id->euid, source::event);
            return done(u, table_update::kind::changed, p);
        }
        if (const auto* g = ev.get_if<gid_event>()) {
            auto* p = live(g->process_tgid, ts);
            if (!p) return ignored(u, g->process_tgid);
            p->rgid.set(g->rgid, source::event);
            p->egid.set(g->egid, source::event);
            return done(u, table_update::kind::changed, p);
        }
        return u; // acks, sid, ptrace, coredump: nothing the table keeps
    }

    /// The result of applying one record.
    enum class record_result { applied, gone, mismatched, unknown_pid, stale };

    /// A /proc read of an entry's pid. Applied only to the entry with the same
    /// start time (see the header comment); otherwise the fields still unread
    /// become `gone`.
    record_result on_record(const proc_record& r) {
        ++st_.records;
        auto it = map_.find(r.pid);
        if (it == map_.end()) return record_result::unknown_pid;
        process_info& p = it->second;
        if (r.gone || (r.tgid && *r.tgid != r.pid)) {
            ++st_.records_gone;
            mark_gone(p);
            return record_result::gone;
        }
        if (!matches(p, r)) {
            ++st_.records_mismatched;
            mark_gone(p);
            return record_result::mismatched;
        }
        ++st_.records_verified;
        return apply(p, r) ? record_result::applied : record_result::stale;
    }

    /// A record from a /proc scan (bootstrap, resync): creates the entry when
    /// the pid is unknown; for a known pid it is on_record(). A record of a
    /// process that is gone creates nothing.
    record_result on_scan_record(const proc_record& r) {
        if (r.gone || (r.tgid && *r.tgid != r.pid)) return record_result::gone;
        // A zombie has exited; only its parent's wait() is still to come.
        const bool zombie = r.state == 'Z' || r.state == 'X';
        auto it = map_.find(r.pid);
        if (it != map_.end()) {
            // Its exit was seen: the zombie is that same process, not a new one.
            if (zombie && it->second.exited && matches(it->second, r)) return record_result::applied;
            if (!it->second.exited && matches(it->second, r)) {
                const auto res = on_record(r);
                if (zombie && !it->second.exited) end_as_zombie(it->second, r.read_start_ns);
                return res;
            }
            // Another process at that pid now: the one we had ended unseen.
            if (!it->second.exited) ++st_.replaced;
            erase(it);
        }
        auto* p = insert(r.pid, r.read_start_ns);
        if (!p) return record_result::unknown_pid;
        p->start_ticks.set(r.start_ticks, source::proc_verified);
        p->parent.set(r.ppid, source::proc_verified);
        ++st_.records;
        ++st_.records_verified;
        apply(*p, r);
        // Never a live entry for a process that has ended: no exit event
        // might ever end it (it came before LISTEN, or was lost).
        if (zombie) end_as_zombie(*p, r.read_start_ns);
        return record_result::applied;
    }

    /// Pids whose /proc facts the table wants (new processes, execs), oldest
    /// first; the caller reads them (read_process) and feeds on_record().
    std::vector<pid_type> take_reads() {
        std::vector<pid_type> out(pending_.begin(), pending_.end());
        pending_.clear();
        pending_set_.clear();
        return out;
    }
    /// Drops the wanted reads, counted as skipped (overload).
    void skip_reads() {
        st_.enrich_skipped += pending_.size();
        pending_.clear();
        pending_set_.clear();
    }
    std::size_t pending_reads() const noexcept { return pending_.size(); }

    /// Drops exited entries older than the grace period (by event time).
    void expire(std::uint64_t now_ns) {
        while (!exited_.empty() && exited_.front().first + o_.exit_grace_ns < now_ns) {
            drop_exited_front();
        }
    }

    // ---- queries ----

    /// The entry of `tgid` (live, or exited within the grace period).
    const process_info* find(pid_type tgid) const {
        auto it = map_.find(tgid);
        return it == map_.end() ? nullptr : &it->second;
    }
    /// Live processes whose recorded parent is `tgid`.
    std::vector<pid_type> children(pid_type tgid) const {
        std::vector<pid_type> out;
        for (const auto& [pid, p] : map_)
            if (!p.exited && p.parent.has_value() && p.parent.value == tgid && pid != tgid) out.push_back(pid);
        return out;
    }
    /// Live descendants along recorded parents, breadth first; the walk goes
    /// through exited entries still in the table (a double-forked daemon is
    /// its grandparent's descendant while its exited parent's entry remains).
    std::vector<pid_type> descendants(pid_type tgid) const {
        std::vector<pid_type> out, frontier{tgid};
        std::size_t visited = 0;
        while (!frontier.empty() && visited <= map_.size()) {
            std::vector<pid_type> next;
            for (auto f : frontier)
                for (const auto& [pid, p] : map_)
                    if (pid != f && p.parent.has_value() && p.parent.value == f) {
                        if (!p.exited) out.push_back(pid);
                        next.push_back(pid);
                        ++visited; // bounds a cycle (cannot happen with verified data)
                    }
            frontier = std::move(next);
        }
        return out;
    }
    /// Recorded parents from `tgid` upwards, as far as the table knows them
    /// (an exited parent is listed while its entry remains).
    std::vector<pid_type> ancestors(pid_type tgid) const {
        std::vector<pid_type> out;
        const auto* p = find(tgid);
        while (p && p->parent.has_value() && p->parent.value != p->tgid && out.size() <= map_.size()) {
            out.push_back(p->parent.value);
            p = find(p->parent.value);
        }
        return out;
    }
    /// Live processes (threads are not processes).
    std::size_t live_count() const noexcept { return map_.size() - exited_.size(); }
    std::size_t size() const noexcept { return map_.size(); }
    template <class F>
    void for_each(F&& f) const {
        for (const auto& [pid, p] : map_) f(p);
    }
    const process_table_stats& stats() const noexcept { return st_; }
    const process_table_options& options() const noexcept { return o_; }

    /// Ends every live entry not in `alive` (a resync's scan): their exit was
    /// not seen, so their status stays `none`. Returns how many ended.
    std::size_t end_missing(const std::vector<pid_type>& alive, std::uint64_t now_ns) {
        std::unordered_map<pid_type, bool> present;
        for (auto p : alive) present[p] = true;
        std::vector<process_info*> gone;
        for (auto& [pid, p] : map_)
            if (!p.exited && !present.count(pid)) gone.push_back(&p);
        for (auto* p : gone) end(*p, now_ns, std::nullopt);
        return gone.size();
    }

private:
    table_update& done(table_update& u, table_update::kind k, process_info* p) {
        u.what = k;
        u.tgid = p->tgid;
        u.process = p;
        return u;
    }
    table_update& ignored(table_update& u, pid_type tgid) {
        ++st_.unknown_pid_events;
        u.what = table_update::kind::ignored;
        u.tgid = tgid;
        return u;
    }

    // The live entry of tgid, or nullptr (unknown, or exited: its pid's next
    // process must announce itself with a fork).
    process_info* live(pid_type tgid, std::uint64_t) {
        auto it = map_.find(tgid);
        if (it == map_.end() || it->second.exited) return nullptr;
        return &it->second;
    }

    table_update& born(table_update& u, const fork_event& f, std::uint64_t ts) {
        auto it = map_.find(f.child_tgid);
        if (it != map_.end()) {
            process_info& old = it->second;
            // The scan read this very process before its fork event came: merge,
            // the event wins.
            if (!old.exited && !old.fork_ns && old.start_ticks.has_value() &&
                ticks_match_fork(old.start_ticks.value, old.boot_offset_ns, old.ticks_per_second, ts)) {
                old.fork_ns = ts;
                old.parent.set(f.parent_tgid, source::event);
                return done(u, table_update::kind::born, &old);
            }
            if (!old.exited) ++st_.replaced;
            erase(it);
        }
        auto* p = insert(f.child_tgid, ts);
        if (!p) {
            ++st_.untracked;
            u.what = table_update::kind::ignored;
            u.tgid = f.child_tgid;
            return u;
        }
        p->fork_ns = ts;
        p->parent.set(f.parent_tgid, source::event);
        p->program_since_ns = ts; // the parent's program, until an exec
        // Inherited from the parent (fork copies them), as far as known.
        if (const auto* par = find(f.parent_tgid); par && !par->exited) {
            p->ruid = par->ruid;
            p->euid = par->euid;
            p->rgid = par->rgid;
            p->egid = par->egid;
        }
        if (o_.read_on_fork) want_read(p->tgid);
        return done(u, table_update::kind::born, p);
    }

    void end(process_info& p, std::uint64_t ts, std::optional<std::uint32_t> status) {
        p.exited = true;
        p.exit_ns = ts;
        p.threads = 0; // the process has ended, whatever thread exit events are still to come
        if (status) p.wait_status.set(*status, source::event);
        if (p.fork_ns && ts >= *p.fork_ns)
            p.lifetime_ns.set(ts - *p.fork_ns, source::event);
        else if (const auto start = start_floor_ns(p); start && static_cast<std::int64_t>(ts) >= *start)
            p.lifetime_ns.set(static_cast<std::uint64_t>(static_cast<std::int64_t>(ts) - *start),
                              source::proc_verified);
        mark_gone(p);
        exited_.emplace_back(ts, p.tgid);
    }

    void end_as_zombie(process_info& p, std::uint64_t read_ns) {
        end(p, read_ns, std::nullopt);
        p.ended_as_zombie = true;
    }

    // Fields never read are now unreadable for this process.
    static void mark_gone(process_info& p) {
        p.comm.mark_gone();
        p.argv.mark_gone();
        p.exe.mark_gone();
        p.cgroup.mark_gone();
        p.nspid.mark_gone();
        p.start_ticks.mark_gone();
        p.ruid.mark_gone();
        p.euid.mark_gone();
        p.rgid.mark_gone();
        p.egid.mark_gone();
    }

    // The process's start from its verified /proc start time (monotonic ns,
    // floored to a clock tick), or nullopt when not known.
    static std::optional<std::int64_t> start_floor_ns(const process_info& p) {
        if (!p.start_ticks.has_value() || !p.ticks_per_second) return std::nullopt;
        return start_monotonic_ns(p.start_ticks.value, p.ticks_per_second, p.boot_offset_ns);
    }

    // Whether an exit stamped `ts` can be p's: not before p started. The 1 ms
    // margin covers the error of boot_offset_ns (two clock reads, µs apart).
    static bool exit_may_follow_start(const process_info& p, std::uint64_t ts) {
        const auto start = start_floor_ns(p);
        return !start || static_cast<std::int64_t>(ts) + 1'000'000 >= *start;
    }

    bool ticks_match_fork(std::uint64_t ticks, std::int64_t boot_offset, std::uint64_t hz, std::uint64_t fork_ns) const {
        const auto tick = static_cast<std::int64_t>(1'000'000'000ull / (hz ? hz : 100));
        const auto start = start_monotonic_ns(ticks, hz, boot_offset);
        const auto f = static_cast<std::int64_t>(fork_ns);
        const auto slack = static_cast<std::int64_t>(o_.fork_slack_ns);
        return start >= f - tick - slack && start <= f + slack;
    }

    bool matches(process_info& p, const proc_record& r) const {
        if (p.start_ticks.has_value()) return p.start_ticks.value == r.start_ticks;
        if (p.fork_ns) return ticks_match_fork(r.start_ticks, r.boot_offset_ns, r.ticks_per_second, *p.fork_ns);
        return r.start_monotonic_ns() <= static_cast<std::int64_t>(p.first_seen_ns + o_.fork_slack_ns);
    }

    // Applies a verified record; false if its program fields were stale.
    bool apply(process_info& p, const proc_record& r) {
        p.boot_offset_ns = r.boot_offset_ns;
        p.ticks_per_second = r.ticks_per_second;
        p.start_ticks.set(r.start_ticks, source::proc_verified);
        p.live_parent.set(r.ppid, source::proc_verified);
        if (!p.parent.has_value()) p.parent.set(r.ppid, source::proc_verified);
        const bool zombie = r.state == 'Z' || r.state == 'X';
        auto put = [&](auto& field, const auto& value) {
            if (value && !(zombie && field.from != source::event))
                field.set(*value, source::proc_verified);
            else if (!value || zombie)
                field.mark_gone();
        };
        // Credentials and cgroup: the events carry later changes; a read fills
        // only what no event has said.
        auto fill = [&](auto& field, const auto& value) {
            if (field.from != source::event && value) field.set(*value, source::proc_verified);
        };
        fill(p.ruid, r.ruid);
        fill(p.euid, r.euid);
        fill(p.rgid, r.rgid);
        fill(p.egid, r.egid);
        if (r.cgroup) p.cgroup.set(*r.cgroup, source::proc_verified);
        if (r.nspid) p.nspid.set(*r.nspid, source::proc_verified);
        if (r.threads && r.read_start_ns >= p.threads_as_of_ns && *r.threads > 0) {
            p.threads = *r.threads - 1;
            p.threads_as_of_ns = r.read_start_ns;
        }
        if (r.read_start_ns < p.program_since_ns) {
            ++st_.records_stale;
            return false;
        }
        if (p.comm.from != source::event || r.read_start_ns > p.program_read_ns) {
            if (r.comm && !zombie) p.comm.set(*r.comm, source::proc_verified);
        }
        // A zombie's argv reads empty and its exe unreadable: it has ended.
        if (zombie) {
            p.argv.mark_gone();
            p.exe.mark_gone();
        } else {
            put(p.argv, r.argv);
            put(p.exe, r.exe);
        }
        p.program_read_ns = r.read_start_ns;
        return true;
    }

    process_info* insert(pid_type tgid, std::uint64_t ts) {
        if (map_.size() >= o_.max_entries && !exited_.empty()) drop_exited_front();
        if (map_.size() >= o_.max_entries) return nullptr;
        auto& p = map_[tgid];
        p = process_info{};
        p.tgid = tgid;
        p.first_seen_ns = ts;
        return &p;
    }

    void erase(std::unordered_map<pid_type, process_info>::iterator it) {
        if (it->second.exited)
            for (auto e = exited_.begin(); e != exited_.end(); ++e)
                if (e->second == it->first) {
                    exited_.erase(e);
                    break;
                }
        map_.erase(it);
    }

    void drop_exited_front() {
        const auto [ts, tgid] = exited_.front();
        exited_.pop_front();
        auto it = map_.find(tgid);
        if (it != map_.end() && it->second.exited) map_.erase(it);
        ++st_.expired;
    }

    void want_read(pid_type tgid) {
        if (pending_set_.count(tgid)) return;
        if (pending_.size() >= o_.max_pending) {
            ++st_.enrich_skipped;
            return;
        }
        pending_.push_back(tgid);
        pending_set_.insert(tgid);
    }

    process_table_options o_;
    std::unordered_map<pid_type, process_info> map_;
    std::deque<std::pair<std::uint64_t, pid_type>> exited_; // exit time order
    std::deque<pid_type> pending_;
    std::unordered_set<pid_type> pending_set_;
    process_table_stats st_;
};

} // namespace cnasio::proc
