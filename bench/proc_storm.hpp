// Process events under a storm (issue 6, benchmark 2).
//
// A child process runs a bounded vfork()+_exit() loop (two events per fork:
// FORK and EXIT, both naming the storm process as parent). The listener under
// test runs in its own thread (RUSAGE_THREAD charges it alone) and hands every
// event to stats::on_event, which finds loss from gaps in the per-CPU sequence
// numbers the kernel stamps on events and from storm events never seen.
// Implementations: raw C baseline (proc_storm.cpp), cnasio (proc_storm_cnasio.cpp).
#pragma once

#include "common.hpp"

#include <array>
#include <cmath>
#include <memory>
#include <vector>

namespace bench::storm {

struct stats {
    std::atomic<bool> ready{false};
    std::atomic<std::uint64_t> received{0};     // every event, whoever caused it
    std::atomic<std::uint64_t> storm_events{0}; // FORK/EXIT events of the storm's children
    std::uint32_t storm_tgid = 0;
    std::uint64_t enobufs = 0;  // overrun reports seen by the listener
    std::uint64_t rejected = 0; // datagrams not from the kernel, bad lengths
    std::uint64_t queue_drops = 0; // events a library dropped from its own queues (filled after run)
    double library_lost = std::nan(""); // the library's own loss count, if it keeps one
    double library_reads = std::nan("");   // the library's read system calls, if it counts them
    double library_wakeups = std::nan(""); // the library's readiness wake-ups, if it counts them
    double library_max_queued = std::nan(""); // the deepest backlog of the library's queue, if it keeps one
    std::uint64_t seq_gaps = 0; // events missing between two received ones of one CPU
    std::uint64_t seq_backwards = 0;
    std::uint64_t first_ns = 0;
    std::uint64_t last_ns = 0;
    steady_allocations allocs;     // allocations per item over the second half
    // Delivery latency: now − the event's timestamp (both CLOCK_MONOTONIC), in
    // µs buckets; the last bucket holds everything from latency_buckets − 1 µs on.
    static constexpr std::size_t latency_buckets = 20001;
    std::vector<std::uint64_t> latency_us = std::vector<std::uint64_t>(latency_buckets);
    std::array<std::uint32_t, 256> next_seq{};
    std::array<bool, 256> cpu_seen{};

    // Children of the storm whose FORK was seen, indexed by pid: their EXIT is
    // matched by pid, because in a vfork storm the kernel sometimes reports
    // parent 0 in the EXIT event (the parent reaped the child before the event
    // was built).
    std::vector<bool> storm_children = std::vector<bool>(pid_limit());

    static std::size_t pid_limit()
    {
        std::size_t limit = 4u << 20; // PID_MAX_LIMIT on 64-bit
        if (std::FILE* f = std::fopen("/proc/sys/kernel/pid_max", "r")) {
            unsigned long v = 0;
            if (std::fscanf(f, "%lu", &v) == 1 && v > 0)
                limit = v;
            std::fclose(f);
        }
        return limit;
    }

    // Every implementation calls this once per proc event (acks included), on
    // its receiving thread. For FORK events `parent_tgid` is fork.parent_tgid and
    // `tgid` fork.child_tgid; for EXIT events exit.parent_tgid and
    // exit.process_tgid; anything for other events. `timestamp_ns` is the
    // event's (ktime_get_ns()).
    void on_event(std::uint32_t cpu, std::uint32_t seq, std::uint32_t what, std::uint32_t parent_tgid,
                  std::uint32_t tgid, std::uint64_t timestamp_ns) noexcept
    {
        const std::uint64_t n = received.load(std::memory_order_relaxed) + 1;
        received.store(n, std::memory_order_relaxed);
        bool from_storm = false;
        if (what == proc_event::PROC_EVENT_FORK && parent_tgid == storm_tgid && tgid < storm_children.size()) {
            storm_children[tgid] = true;
            from_storm = true;
        } else if (what == proc_event::PROC_EVENT_EXIT && tgid < storm_children.size() && storm_children[tgid]) {
            storm_children[tgid] = false;
            from_storm = true;
        }
        if (from_storm)
            storm_events.store(storm_events.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        if (cpu < next_seq.size()) {
            if (!cpu_seen[cpu]) {
                cpu_seen[cpu] = true;
            } else if (seq != next_seq[cpu]) {
                // Serial number arithmetic: the per-CPU counter wraps at 2^32.
                const auto ahead = static_cast<std::int32_t>(seq - next_seq[cpu]);
                if (ahead > 0)
                    seq_gaps += static_cast<std::uint32_t>(ahead);
                else
                    ++seq_backwards;
            }
            next_seq[cpu] = seq + 1;
        }
        const std::uint64_t t = now_ns();
        const std::uint64_t late_us = t > timestamp_ns ? (t - timestamp_ns) / 1000 : 0;
        ++latency_us[std::min<std::uint64_t>(late_us, latency_buckets - 1)];
        if (n == 1)
            first_ns = t;
        last_ns = t;
        allocs.tick();
    }

    // The latency (µs) at or below which fraction p of the events were delivered.
    double latency_percentile(double p) const noexcept
    {
        std::uint64_t total = 0;
        for (auto c : latency_us)
            total += c;
        if (total == 0)
            return std::nan("");
        const auto rank = static_cast<std::uint64_t>(std::ceil(p * static_cast<double>(total)));
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < latency_us.size(); ++i) {
            seen += latency_us[i];
            if (seen >= rank)
                return static_cast<double>(i);
        }
        return static_cast<double>(latency_buckets - 1);
    }
};

class listener {
public:
    virtual ~listener() = default;
    // Joins group 1, sends LISTEN, sets stats.ready, then receives until stop();
    // sends IGNORE before returning (the kernel's listener count outlives sockets).
    virtual void run(stats& s) = 0;
    // Thread-safe; makes run() return soon.
    virtual void stop() = 0;
};

// nullptr while cnasio cannot do this yet. `coalesce_us` > 0: the client's
// coalesce_window (client_options) in µs. `batch` > 0: receive with
// listener::async_receive_batch, up to `batch` events per completion.
std::unique_ptr<listener> make_cnasio_listener(unsigned coalesce_us = 0, std::size_t batch = 0);

} // namespace bench::storm
