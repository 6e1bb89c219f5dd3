// Exact per-CPU loss accounting for process events (sans-IO).
//
// Where the numbers come from (drivers/connector/cn_proc.c, 6.6 .. 6.18):
//
//   static inline void send_msg(struct cn_msg *msg)
//     local_lock(&local_event.lock);
//     msg->seq = __this_cpu_inc_return(local_event.count) - 1;
//     ((struct proc_event *)msg->data)->cpu = smp_processor_id();
//     ... cn_netlink_send_mult(msg, ..., cn_filter, filter_data);
//     local_unlock(&local_event.lock);
//
// Every message the module generates - each event and each acknowledgement
// (cn_proc_ack() fills in msg->seq = rcvd_seq and cpu = -1, then calls
// send_msg(), which overwrites both) - takes the next value of a per-CPU u32
// counter, and the lock keeps one CPU's messages in counter order while they
// are queued. A socket that receives everything therefore sees, per CPU, the
// sequence 0,1,2,... (from wherever it joined); a hole is a message the
// kernel generated and did not deliver to this socket: a full receive buffer
// (the ENOBUFS overrun) or an skb allocation failure.
//
// Consequences for the caller:
// - Feed every proc message the socket receives, acks included (its own and
//   other listeners'): an ack skipped here would look like a lost event.
// - Feed only messages the kernel sent (recvfrom's nl_pid == 0): a root
//   process can forge proc messages with any seq.
// - A filter breaks the equation. The counter advances for every message
//   generated, also those that the 6.6+ proc_input mask (cn_filter()) or a
//   BPF socket filter keeps from this socket; with a mask other than ALL the
//   socket does not even see acks (cn_filter() tests `mask & what`, and
//   what == 0 for acks). Holes then mix filtered and lost messages, so in
//   loss_mode::filtered the counter reports no loss count (lost() and
//   take_lost() return nullopt): an overrun is reported "without count".
//   skipped() still says how many numbers were not seen.
// - Gaps are found when the next message of the same CPU arrives, so the loss
//   behind an ENOBUFS shows up over the following messages, one CPU at a time.
// - Restarting (IGNORE, later LISTEN again) leaves a hole made of events this
//   socket was not subscribed to: call reset() when (re)starting.
//
// Reordering: on the kernels above, one socket's messages of one CPU arrive in
// counter order, so this should not happen; for older kernels and for safety,
// a number older than the next expected one is checked against a window of the
// last `reorder_window` numbers of its CPU: if it was counted as missing, it
// is taken out of the count again (`late`), otherwise it is a `duplicate`;
// older than the window or than the CPU's first number, it is `stale` and
// changes nothing. Consequently lost()
// can go down; take_lost() reports only increases (see there).
//
// Memory: one 32-byte state per CPU number up to the highest seen, CPU numbers
// at or above max_cpus are not tracked (counted in out_of_range()): at most
// max_cpus * 32 bytes (default 8192 CPUs, the largest NR_CPUS of x86-64:
// 256 KiB), whatever arrives. Kernels before send_msg() sent acks with
// cpu = 0xffffffff; those are not tracked either.
#pragma once

#include <cnasio/proc/event.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace cnasio::proc {

enum class loss_mode {
    exact,    // no filter on the socket: every hole is a lost message
    filtered, // a kernel mask or a BPF filter is active: holes are not counted as loss
};

// What one feed() learned.
struct loss_observation {
    std::uint32_t skipped = 0; // numbers jumped over before this one (lost in exact mode)
    bool first = false;        // first number seen on this CPU: nothing counted before it
    bool late = false;         // older than expected, had been counted missing: count reduced
    bool duplicate = false;    // older than expected, had been seen already
    bool stale = false;        // older than the reorder window or the first number: ignored
    bool out_of_range = false; // cpu >= max_cpus: ignored
};

class loss_counter {
public:
    static constexpr std::uint32_t default_max_cpus = 8192;
    static constexpr std::uint32_t reorder_window = 64;

    explicit loss_counter(loss_mode mode = loss_mode::exact, std::uint32_t max_cpus = default_max_cpus)
        : mode_{mode}, max_cpus_{max_cpus} {}

    loss_mode mode() const noexcept { return mode_; }
    // Switching mode keeps the per-CPU positions. Switching from filtered to
    // exact: holes found from then on count as loss.
    void set_mode(loss_mode m) noexcept { mode_ = m; }

    // Records message number `seq` of CPU `cpu`. May allocate (the per-CPU
    // table grows to the highest CPU seen, bounded by max_cpus).
    loss_observation feed(std::uint32_t cpu, std::uint32_t seq) {
        loss_observation obs;
        if (cpu >= max_cpus_) {
            ++out_of_range_;
            obs.out_of_range = true;
            return obs;
        }
        if (cpu >= cpus_.size()) cpus_.resize(std::size_t{cpu} + 1);
        cpu_state& c = cpus_[cpu];
        ++received_;
        if (!c.seen) {
            c.seen = true;
            c.first = seq;
            c.next = seq + 1;
            c.missing = 0;
            obs.first = true;
            return obs;
        }
        // Modular distance: the counter is a u32 that wraps.
        auto diff = static_cast<std::int32_t>(seq - c.next);
        if (diff >= 0) {
            auto gap = static_cast<std::uint32_t>(diff);
            // Bit i of `missing` stands for number next-1-i. After this message,
            // bit 0 is `seq` (seen) and bits 1..gap are the numbers jumped over.
            if (gap + 1 >= 64) {
                c.missing = ~std::uint64_t{1};
            } else {
                c.missing = (c.missing << (gap + 1)) | (((std::uint64_t{1} << gap) - 1) << 1);
            }
            c.next = seq + 1;
            c.skipped += gap;
            skipped_ += gap;
            if (mode_ == loss_mode::exact) lost_ += gap;
            obs.skipped = gap;
            return obs;
        }
        auto back = static_cast<std::uint32_t>(-static_cast<std::int64_t>(diff)); // next - seq, >= 1
        std::uint32_t bit = back - 1;
        // Older than the first number seen on this CPU: before our time, nothing
        // was counted for it.
        bool before_first = back > c.next - c.first;
        if (bit >= reorder_window || before_first) {
            ++stale_;
            obs.stale = true;
            return obs;
        }
        std::uint64_t m = std::uint64_t{1} << bit;
        if (c.missing & m) {
            c.missing &= ~m;
            --c.skipped;
            --skipped_;
            if (mode_ == loss_mode::exact && lost_ > 0) --lost_;
            ++late_;
            obs.late = true;
        } else {
            ++duplicates_;
            obs.duplicate = true;
        }
        return obs;
    }

    loss_observation feed(const event& ev) { return feed(ev.cpu, ev.seq); }

    // Messages counted lost so far (holes minus late arrivals), or nullopt in
    // filtered mode, where holes are not losses ("overrun without count").
    std::optional<std::uint64_t> lost() const noexcept {
        if (mode_ != loss_mode::exact) return std::nullopt;
        return lost_;
    }

    // Loss found since the previous take_lost(), for the count that goes with an
    // overrun report; nullopt in filtered mode. Never negative: if late arrivals
    // bring lost() below what was already reported, later holes fill that up
    // first.
    std::optional<std::uint64_t> take_lost() noexcept {
        if (mode_ != loss_mode::exact) return std::nullopt;
        std::uint64_t fresh = lost_ > reported_ ? lost_ - reported_ : 0;
        if (lost_ > reported_) reported_ = lost_;
        return fresh;
    }

    // Numbers not seen (holes minus late arrivals), whatever the mode.
    std::uint64_t skipped() const noexcept { return skipped_; }
    std::uint64_t skipped_on_cpu(std::uint32_t cpu) const noexcept {
        return cpu < cpus_.size() ? cpus_[cpu].skipped : 0;
    }
    std::uint64_t received() const noexcept { return received_; } // tracked messages fed
    std::uint64_t late() const noexcept { return late_; }
    std::uint64_t duplicates() const noexcept { return duplicates_; }
    std::uint64_t stale() const noexcept { return stale_; }
    std::uint64_t out_of_range() const noexcept { return out_of_range_; }
    std::uint32_t max_cpus() const noexcept { return max_cpus_; }
    // Size of the per-CPU table (highest CPU seen + 1): the memory in use.
    std::size_t tracked_cpus() const noexcept { return cpus_.size(); }

    // Forgets every position and count (the mode stays).
    void reset() noexcept {
        cpus_.clear();
        lost_ = reported_ = skipped_ = received_ = late_ = duplicates_ = stale_ = out_of_range_ = 0;
    }

private:
    struct cpu_state {
        std::uint64_t missing = 0; // bit i: number next-1-i was jumped over and not seen since
        std::uint64_t skipped = 0;
        std::uint32_t next = 0;  // the number expected next
        std::uint32_t first = 0; // the first number seen
        bool seen = false;
    };

    loss_mode mode_;
    std::uint32_t max_cpus_;
    std::vector<cpu_state> cpus_;
    std::uint64_t lost_ = 0;
    std::uint64_t reported_ = 0;
    std::uint64_t skipped_ = 0;
    std::uint64_t received_ = 0;
    std::uint64_t late_ = 0;
    std::uint64_t duplicates_ = 0;
    std::uint64_t stale_ = 0;
    std::uint64_t out_of_range_ = 0;
};

} // namespace cnasio::proc
