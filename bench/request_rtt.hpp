// Request round trips (issue 6, benchmark 3).
//
// Two responders: a root user-space echo peer (a forked process with its own
// NETLINK_CONNECTOR socket that answers each {echo_idx, echo_val} message by
// unicast to the sender's port id, same seq, ack + 1, same payload), and the
// kernel's proc connector, which answers a LISTEN op with an ack event
// (ack + 1) multicast to group 1 before sendto returns. Figures: latency
// percentiles of sequential requests, and throughput with a window of
// requests in flight. Implementations: raw C (request_rtt.cpp), cnasio
// (request_rtt_cnasio.cpp). Requesters run on the calling thread.
#pragma once

#include "common.hpp"

#include <memory>

namespace bench::request {

inline constexpr std::uint32_t echo_idx = 21; // a user idx the echo peer answers
inline constexpr std::uint32_t echo_val = 1;
inline constexpr std::uint16_t payload_size = 64;

enum class responder { echo_peer, proc_ack };

struct target {
    responder kind = responder::echo_peer;
    std::uint32_t peer_port = 0; // echo peer's port id (echo_peer only)
};

struct stats {
    std::uint64_t completed = 0;
    steady_allocations allocs;     // allocations per item over the second half

    // Every implementation calls this once per completed (validated) request.
    void on_complete() noexcept
    {
        ++completed;
        allocs.tick();
    }
};

class requester {
public:
    virtual ~requester() = default;
    // `n` requests one after the other; appends each round trip in µs to
    // `latencies_us` (capacity reserved by the caller, so no allocation).
    virtual void round_trips(std::size_t n, std::vector<double>& latencies_us, stats& s) = 0;
    // `n` requests with up to `window` (≤ 64) outstanding; returns when all completed.
    virtual void pipelined(std::size_t n, std::size_t window, stats& s) = 0;
};

// nullptr while cnasio cannot do this yet.
std::unique_ptr<requester> make_cnasio_requester(const target& t);

} // namespace bench::request
