// Receive throughput, user space → user space (issue 6, benchmark 1).
//
// A root sender process sends 100-byte connector messages (64-byte payload whose
// first 8 bytes are a running counter) as fast as it can for a bounded time,
// either unicast to the receiver's port id or multicast to a user group. The
// receiver under test runs in its own thread so that RUSAGE_THREAD charges it
// alone. Implementations: the raw C baseline (recv_throughput.cpp) and cnasio
// (recv_throughput_cnasio.cpp).
#pragma once

#include "common.hpp"

#include <memory>

namespace bench::recv {

inline constexpr std::uint32_t message_idx = 20; // a user idx, also the multicast group
inline constexpr std::uint32_t message_val = 1;
inline constexpr std::uint16_t payload_size = 64;

struct config {
    int group = 0;                 // 0: unicast to the receiver's port id; else this group
    std::uint32_t sender_port = 0; // port id the sender's messages come from
    int rcvbuf_force = 8 << 20;    // SO_RCVBUFFORCE for the receiving socket
    bool batch = false;            // cnasio: take bursts (async_receive_batch), not one message per wait
    unsigned coalesce_us = 0;      // cnasio: client_options::coalesce_window, µs
};

// Written by the receiving thread; `ready` and `received` are also read by the
// harness while the receiver runs, everything else only after it stopped.
struct stats {
    std::atomic<bool> ready{false};
    std::atomic<std::uint64_t> received{0};
    std::uint64_t enobufs = 0;     // overrun reports (ENOBUFS) seen by the receiver
    std::uint64_t rejected = 0;    // datagrams dropped: wrong sender, bad lengths
    std::uint64_t queue_drops = 0; // messages a library dropped from its own queues (filled after run)
    std::uint64_t wakeups = 0;     // readiness waits that completed (poll, or cnasio's wake-ups)
    std::uint64_t reads = 0;       // receive system calls, the one that found the queue empty included
    std::uint64_t payload_sum = 0; // sum of the counters: checks payload delivery
    std::uint64_t first_ns = 0;
    std::uint64_t last_ns = 0;
    steady_allocations allocs;     // allocations per item over the second half

    // Every implementation calls this once per valid message, on its receiving thread.
    void on_message(std::uint64_t counter) noexcept
    {
        const std::uint64_t n = received.load(std::memory_order_relaxed) + 1;
        received.store(n, std::memory_order_relaxed);
        payload_sum += counter;
        const std::uint64_t t = now_ns();
        if (n == 1)
            first_ns = t;
        last_ns = t;
        allocs.tick();
    }
};

class receiver {
public:
    virtual ~receiver() = default;
    // The port id a unicast sender addresses.
    virtual std::uint32_t port_id() const = 0;
    // Receives until stop(); sets stats.ready once it would see a message sent now.
    virtual void run(stats& s) = 0;
    // Thread-safe; makes run() return soon.
    virtual void stop() = 0;
};

// nullptr while cnasio cannot do this yet.
std::unique_ptr<receiver> make_cnasio_receiver(const config& cfg);

} // namespace bench::recv
