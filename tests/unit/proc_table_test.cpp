// cnasio::proc::process_table with scripted events and crafted /proc records:
// fork/exec/exit, threads, pid reuse, enrichment of a process that already
// exited, parent exit, bootstrap merge, bounded memory; and the procfs parsers.
#include <cnasio/proc/process_table.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

// The table is sans-IO: it must not pull in Asio.
#if defined(BOOST_ASIO_VERSION)
#error "process_table.hpp includes Asio"
#endif

namespace proc = cnasio::proc;
using proc::source;

namespace {

constexpr std::uint64_t ms = 1'000'000;
constexpr std::uint64_t hz = 100;              // 10 ms ticks
constexpr std::int64_t boot_offset = 0;         // no suspend in these scripts

proc::event fork_ev(std::uint64_t ts, int parent, int child, int child_tgid = 0) {
    proc::event e;
    e.what = static_cast<std::uint32_t>(proc::event_type::fork);
    e.timestamp_ns = ts;
    e.data = proc::fork_event{parent, parent, child, child_tgid ? child_tgid : child};
    return e;
}
proc::event exec_ev(std::uint64_t ts, int pid) {
    proc::event e;
    e.what = static_cast<std::uint32_t>(proc::event_type::exec);
    e.timestamp_ns = ts;
    e.data = proc::exec_event{pid, pid};
    return e;
}
proc::event exit_ev(std::uint64_t ts, int pid, std::uint32_t code, int tgid = 0) {
    proc::event e;
    e.what = static_cast<std::uint32_t>(proc::event_type::exit);
    e.timestamp_ns = ts;
    proc::exit_event x;
    x.process_pid = pid;
    x.process_tgid = tgid ? tgid : pid;
    x.exit_code = code;
    x.exit_signal = tgid && tgid != pid ? -1 : 17;
    e.data = x;
    return e;
}
proc::event uid_ev(std::uint64_t ts, int pid, std::uint32_t r, std::uint32_t eu) {
    proc::event e;
    e.what = static_cast<std::uint32_t>(proc::event_type::uid);
    e.timestamp_ns = ts;
    e.data = proc::uid_event{pid, pid, r, eu};
    return e;
}

// A record of a process started at `start_ns` (monotonic), read at `read_ns`.
proc::proc_record rec(int pid, std::uint64_t start_ns, std::uint64_t read_ns, std::vector<std::string> argv,
                      int ppid = 1) {
    proc::proc_record r;
    r.pid = pid;
    r.tgid = pid;
    r.read_start_ns = read_ns;
    r.boot_offset_ns = boot_offset;
    r.ticks_per_second = hz;
    r.start_ticks = start_ns / (1'000'000'000 / hz);
    r.ppid = ppid;
    r.state = 'S';
    r.comm = argv.empty() ? std::string("?") : argv[0];
    r.exe = "/usr/bin/" + (argv.empty() ? std::string("x") : argv[0]);
    r.argv = std::move(argv);
    r.cgroup = "/user.slice";
    r.nspid = std::vector<proc::pid_type>{pid};
    r.ruid = r.euid = r.rgid = r.egid = 1000;
    r.threads = 1;
    return r;
}

proc::proc_record gone_rec(int pid, std::uint64_t read_ns) {
    proc::proc_record r;
    r.pid = pid;
    r.gone = true;
    r.read_start_ns = read_ns;
    return r;
}

} // namespace

TEST_CASE("process_table: fork, exec, exit with provenance and lifetime") {
    proc::process_table t;
    t.on_scan_record(rec(100, 1'000 * ms, 5'000 * ms, {"bash"}));
    auto u = t.on_event(fork_ev(10'000 * ms, 100, 200));
    CHECK(u.what == proc::table_update::kind::born);
    const auto* p = t.find(200);
    REQUIRE(p);
    CHECK(p->parent.value == 100);
    CHECK(p->parent.from == source::event);
    CHECK(p->ruid.value == 1000); // inherited from the scanned parent
    CHECK(t.take_reads() == std::vector<proc::pid_type>{200});

    t.on_event(exec_ev(10'005 * ms, 200));
    CHECK(p->execs == 1);
    CHECK(p->argv.from == source::none);
    CHECK(t.take_reads() == std::vector<proc::pid_type>{200});
    // Read after the exec, same start: applied.
    CHECK(t.on_record(rec(200, 10'000 * ms, 10'006 * ms, {"ls", "-l"}, 100)) ==
          proc::process_table::record_result::applied);
    CHECK(p->argv.from == source::proc_verified);
    CHECK(p->argv.value == std::vector<std::string>{"ls", "-l"});
    CHECK(p->exe.value == "/usr/bin/ls");
    CHECK(t.live_count() == 2);

    t.on_event(exit_ev(10'500 * ms, 200, 3 << 8));
    CHECK(p->exited);
    CHECK(p->wait_status.from == source::event);
    CHECK(p->exit_status() == 3);
    CHECK(p->shell_status() == 3);
    CHECK(p->lifetime_ns.value == 500 * ms);
    CHECK(p->lifetime_ns.from == source::event);
    CHECK(p->argv.value == std::vector<std::string>{"ls", "-l"}); // kept after exit
    CHECK(t.live_count() == 1);
    // A signal: 128 + N.
    t.on_event(fork_ev(11'000 * ms, 100, 201));
    t.on_event(exit_ev(11'001 * ms, 201, 9));
    CHECK(t.find(201)->shell_status() == 137);
}

TEST_CASE("process_table: a read from before the exec is stale, one after it is kept by the exec") {
    proc::process_table t;
    t.on_event(fork_ev(1'000 * ms, 1, 50));
    t.on_event(exec_ev(1'010 * ms, 50));
    // Read began before the exec: the parent's program.
    CHECK(t.on_record(rec(50, 1'000 * ms, 1'005 * ms, {"sh"})) == proc::process_table::record_result::stale);
    CHECK(t.find(50)->argv.from == source::none);
    // Bootstrap order: a read after a second exec, then that exec's event.
    CHECK(t.on_record(rec(50, 1'000 * ms, 1'030 * ms, {"prog2"})) == proc::process_table::record_result::applied);
    t.on_event(exec_ev(1'020 * ms, 50));
    CHECK(t.find(50)->argv.value == std::vector<std::string>{"prog2"});
    CHECK(t.find(50)->argv.from == source::proc_verified);
}

TEST_CASE("process_table: threads are counted under their process, not as processes") {
    proc::process_table t;
    t.on_event(fork_ev(1'000 * ms, 1, 300));
    auto u = t.on_event(fork_ev(1'001 * ms, 300, 301, 300));
    CHECK(u.what == proc::table_update::kind::thread_born);
    t.on_event(fork_ev(1'002 * ms, 300, 302, 300));
    CHECK(t.live_count() == 1);
    CHECK(t.find(301) == nullptr);
    CHECK(t.find(300)->threads == 2);
    t.on_event(exit_ev(1'003 * ms, 301, 0, 300));
    CHECK(t.find(300)->threads == 1);
    CHECK_FALSE(t.find(300)->exited);
    t.on_event(exit_ev(1'004 * ms, 300, 0));
    CHECK(t.find(300)->exited);
    CHECK(t.find(300)->threads == 0);
    CHECK(t.live_count() == 0);
    // The last thread's exit event after its leader's: no unknown pid.
    const auto unknown = t.stats().unknown_pid_events;
    t.on_event(exit_ev(1'005 * ms, 302, 0, 300));
    CHECK(t.stats().unknown_pid_events == unknown);
    CHECK(t.find(300)->threads == 0);
}

TEST_CASE("process_table: pid reuse - same pid, another start time: nothing carried over") {
    proc::process_table t;
    t.on_event(fork_ev(1'000 * ms, 1, 400));
    t.on_event(uid_ev(1'001 * ms, 400, 0, 0));
    REQUIRE(t.on_record(rec(400, 1'000 * ms, 1'002 * ms, {"old", "--secret"})) ==
            proc::process_table::record_result::applied);
    t.on_event(exit_ev(1'100 * ms, 400, 0));
    // The new process at pid 400, with its own parent.
    t.on_event(fork_ev(5'000 * ms, 77, 400));
    const auto* p = t.find(400);
    REQUIRE(p);
    CHECK_FALSE(p->exited);
    CHECK(p->parent.value == 77);
    CHECK(p->argv.from == source::none);
    CHECK(p->exe.from == source::none);
    CHECK(p->ruid.from == source::none);
    CHECK(p->wait_status.from == source::none);
    CHECK(p->execs == 0);
    // A late read that saw the old process (start 1000 ms): not applied.
    auto old = rec(400, 1'000 * ms, 4'000 * ms, {"old", "--secret"});
    CHECK(t.on_record(old) == proc::process_table::record_result::mismatched);
    CHECK(p->argv.from == source::gone);
    // And the reverse: an entry of the old process gets a read of the new one.
    proc::process_table t2;
    t2.on_event(fork_ev(1'000 * ms, 1, 500));
    CHECK(t2.on_record(rec(500, 3'000 * ms, 3'001 * ms, {"new"})) == proc::process_table::record_result::mismatched);
    CHECK(t2.find(500)->argv.from == source::gone);
    CHECK(t2.find(500)->argv.value.empty());
    CHECK(t2.stats().records_mismatched == 1);
}

TEST_CASE("process_table: enrichment of a process that already exited is gone; a read before its exit counts") {
    proc::process_table t;
    t.on_event(fork_ev(1'000 * ms, 1, 600));
    t.on_event(exec_ev(1'001 * ms, 600));
    t.on_event(exit_ev(1'002 * ms, 600, 0));
    CHECK(t.on_record(gone_rec(600, 1'003 * ms)) == proc::process_table::record_result::gone);
    const auto* p = t.find(600);
    CHECK(p->argv.from == source::gone);
    CHECK(p->exe.from == source::gone);
    CHECK(p->wait_status.from == source::event);
    // A zombie's read: stat matches, but the program is gone.
    t.on_event(fork_ev(2'000 * ms, 1, 601));
    t.on_event(exec_ev(2'001 * ms, 601));
    auto z = rec(601, 2'000 * ms, 2'002 * ms, {});
    z.state = 'Z';
    z.exe.reset();
    t.on_record(z);
    CHECK(t.find(601)->argv.from == source::gone);
    CHECK(t.find(601)->exe.from == source::gone);
    // A read taken before the exit (verified start) keeps its values after it.
    t.on_event(fork_ev(3'000 * ms, 1, 602));
    t.on_event(exec_ev(3'001 * ms, 602));
    t.on_event(exit_ev(3'003 * ms, 602, 0));
    CHECK(t.on_record(rec(602, 3'000 * ms, 3'002 * ms, {"quick"})) == proc::process_table::record_result::applied);
    CHECK(t.find(602)->argv.value == std::vector<std::string>{"quick"});
}

TEST_CASE("process_table: the recorded parent survives its exit; the live parent comes from /proc") {
    proc::process_table t;
    t.on_event(fork_ev(1'000 * ms, 1, 700));        // the daemon's first process
    t.on_event(fork_ev(1'001 * ms, 700, 701));      // the daemon
    t.on_event(exit_ev(1'002 * ms, 700, 0));        // its parent exits
    const auto* d = t.find(701);
    CHECK(d->parent.value == 700);
    CHECK(d->parent.from == source::event);
    CHECK(d->live_parent.from == source::none); // never guessed
    t.on_record(rec(701, 1'001 * ms, 1'050 * ms, {"daemon"}, 1));
    CHECK(d->parent.value == 700);
    CHECK(d->live_parent.value == 1);
    CHECK(d->live_parent.from == source::proc_verified);
    CHECK(t.ancestors(701) == std::vector<proc::pid_type>{700, 1});
    CHECK(t.children(700) == std::vector<proc::pid_type>{701});
    CHECK(t.descendants(1) == std::vector<proc::pid_type>{701}); // through the exited 700
}

TEST_CASE("process_table: bootstrap merge - events win, the dead are not resurrected") {
    proc::process_table t;
    // Scan: 800 (started before listening), 801 (forked during the scan, read
    // after its fork).
    t.on_scan_record(rec(800, 100 * ms, 5'000 * ms, {"init-ish"}));
    t.on_scan_record(rec(801, 4'990 * ms, 5'001 * ms, {"child"}, 1));
    // Then the events queued during the scan.
    t.on_event(fork_ev(4'991 * ms, 800, 801)); // 801's fork: parent from the event wins
    t.on_event(fork_ev(4'995 * ms, 800, 802)); // born and dead during the scan
    t.on_event(exit_ev(4'996 * ms, 802, 0));
    t.on_event(exit_ev(4'997 * ms, 803, 0)); // exited before the scan read it: unknown
    CHECK(t.find(801)->parent.value == 800);
    CHECK(t.find(801)->parent.from == source::event);
    CHECK(t.find(801)->argv.value == std::vector<std::string>{"child"}); // kept: the merge did not replace it
    CHECK(t.find(802)->exited);
    CHECK(t.find(803) == nullptr);
    CHECK(t.live_count() == 2);
    CHECK(t.stats().replaced == 0);
}

TEST_CASE("process_table: bounded - exited entries expire, a full table does not grow") {
    proc::process_table_options o;
    o.max_entries = 4;
    o.exit_grace_ns = 100 * ms;
    o.max_pending = 2;
    proc::process_table t(o);
    for (int i = 0; i < 4; ++i) t.on_event(fork_ev(1'000 * ms + i, 1, 900 + i));
    CHECK(t.stats().enrich_skipped == 2); // only 2 reads queued
    t.on_event(fork_ev(1'010 * ms, 1, 950));
    CHECK(t.size() == 4);
    CHECK(t.stats().untracked == 1);
    t.on_event(exit_ev(1'020 * ms, 900, 0));
    t.on_event(fork_ev(1'030 * ms, 1, 951)); // evicts the exited 900
    CHECK(t.find(900) == nullptr);
    CHECK(t.find(951));
    t.on_event(exit_ev(1'040 * ms, 951, 0));
    t.on_event(exit_ev(1'500 * ms, 901, 0)); // grace passed for 951
    CHECK(t.find(951) == nullptr);
    CHECK(t.find(901));
}

TEST_CASE("procfs parsers") {
    auto s = proc::parse_stat("42 (a (b) c) S 7 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 1000 10\n");
    REQUIRE(s);
    CHECK(s->comm == "a (b) c");
    CHECK(s->state == 'S');
    CHECK(s->ppid == 7);
    CHECK(s->start_ticks == 12345);
    CHECK_FALSE(proc::parse_stat("42 (x) S 7"));
    CHECK(proc::parse_cmdline(std::string("ls\0-l\0a b\0", 10)) == std::vector<std::string>{"ls", "-l", "a b"});
    CHECK(proc::parse_cmdline(std::string("one string", 10)) == std::vector<std::string>{"one string"});
    CHECK(proc::parse_cmdline("").empty());
    CHECK(proc::parse_cgroup("12:pids:/x\n1:name=systemd:/y\n0::/system.slice/docker-abc.scope\n") ==
          std::string("/system.slice/docker-abc.scope"));
    CHECK_FALSE(proc::parse_cgroup("1:cpu:/x\n"));
    auto st = proc::parse_status("Name:\tx\nTgid:\t42\nUid:\t1000\t0\t0\t0\nGid:\t5\t6\t6\t6\nThreads:\t3\n"
                                 "NSpid:\t42\t1\n");
    CHECK(st.tgid == 42);
    CHECK(st.ruid == 1000u);
    CHECK(st.euid == 0u);
    CHECK(st.rgid == 5u);
    CHECK(st.egid == 6u);
    CHECK(st.threads == 3u);
    CHECK(st.nspid == std::vector<proc::pid_type>{42, 1});
}

TEST_CASE("process_table: a scan that finds a zombie never makes it live") {
    using rr = proc::process_table::record_result;
    proc::process_table t;
    // Its exit was seen, then a rescan reads the zombie (not yet reaped): the
    // same process, still ended, with the event's status.
    t.on_event(fork_ev(1'000 * ms, 1, 800));
    t.on_event(exit_ev(1'002 * ms, 800, 7 << 8));
    auto z = rec(800, 1'000 * ms, 1'003 * ms, {});
    z.state = 'Z';
    CHECK(t.on_scan_record(z) == rr::applied);
    REQUIRE(t.find(800));
    CHECK(t.find(800)->exited);
    CHECK(t.find(800)->wait_status.value == (7u << 8));
    // Unknown until the scan (its exit came before LISTEN, or was lost): ended
    // at once, status unknown...
    auto z2 = rec(801, 1'100 * ms, 1'200 * ms, {});
    z2.state = 'Z';
    t.on_scan_record(z2);
    REQUIRE(t.find(801));
    CHECK(t.find(801)->exited);
    CHECK(t.find(801)->ended_as_zombie);
    CHECK(!t.find(801)->wait_status.has_value());
    // ...until its exit event, queued behind the scan, brings the status.
    CHECK(t.on_event(exit_ev(1'150 * ms, 801, 3 << 8)).what == proc::table_update::kind::exited);
    CHECK(t.find(801)->wait_status.value == (3u << 8));
    CHECK(t.find(801)->wait_status.from == source::event);
    // An exit stamped before the zombie started is an earlier process's at
    // that pid; one stamped after the read is this one's (do_exit() makes the
    // zombie before it sends the event, so a read can see it first).
    auto z3 = rec(802, 1'100 * ms, 1'200 * ms, {});
    z3.state = 'Z';
    t.on_scan_record(z3);
    CHECK(t.on_event(exit_ev(1'050 * ms, 802, 5 << 8)).what == proc::table_update::kind::ignored);
    CHECK(!t.find(802)->wait_status.has_value());
    CHECK(t.on_event(exit_ev(1'200 * ms + 300'000, 802, 9)).what == proc::table_update::kind::exited);
    CHECK(t.find(802)->wait_status.value == 9u);
    CHECK(t.find(802)->wait_status.from == source::event);
    // Only the first: a second exit at that pid without a fork is not news.
    CHECK(t.on_event(exit_ev(1'400 * ms, 802, 6 << 8)).what == proc::table_update::kind::ignored);
    CHECK(t.find(802)->wait_status.value == 9u);
    // Live in the table, a zombie when rescanned: ended.
    t.on_event(fork_ev(2'000 * ms, 1, 803));
    auto z4 = rec(803, 2'000 * ms, 2'100 * ms, {});
    z4.state = 'Z';
    t.on_scan_record(z4);
    CHECK(t.find(803)->exited);
}
