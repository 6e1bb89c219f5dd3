// cnasio/client_options.hpp - how a client is set up.
#pragma once

#include <cnasio/netlink/protocol.hpp>
#include <cnasio/options.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cnasio {

/// How a client is set up.
struct client_options {
    /// Timeout of a request that names none.
    std::chrono::milliseconds default_timeout{1000};
    /// User-space port ids believed besides the kernel's 0 (daemons, test peers).
    std::vector<std::uint32_t> admitted_ports{};
    /// Receive buffer to ask for when the first subscription is made (SO_RCVBUFFORCE,
    /// falling back to SO_RCVBUF); 0 leaves the kernel's default.
    std::size_t subscription_receive_buffer = 8u << 20;
    /// Receive buffer to ask for at the first request: replies to many
    /// requests in flight arrive together (the default 208 KiB holds fewer
    /// than 300 small ones). 0 leaves the kernel's default.
    std::size_t request_receive_buffer = 1u << 20;
    /// Bytes all subscription queues of this client may hold together; past
    /// it, each subscription's overflow policy applies to its own queue.
    std::size_t subscription_bytes = 64u << 20;
    /// Network namespace file to create the socket in (e.g. "/proc/1/ns/net"); empty: the caller's.
    std::string netns{};
    /// Netlink family (NETLINK_CONNECTOR unless a peer speaks connector framing elsewhere).
    netlink::protocol protocol = netlink::protocol::connector();
    /// Datagrams read per scheduler turn before the loop lets other handlers
    /// run; also the most completions handed out in one turn.
    std::size_t drain_batch = 256;
    /// Coalescing; 0 (the default) turns it off. With a window w > 0 a
    /// readiness wake-up does not read at once: it waits w on a timer and then
    /// reads, in one turn, everything that arrived meanwhile. Each datagram is
    /// then handed out at most w (plus the timer's slack) later than without
    /// coalescing, and a stream that wakes the loop per message (process
    /// events in a fork storm) costs one wake-up per window instead: under the
    /// proc storm 200 us cut the CPU per event to about half (bench/README.md).
    /// The receive buffer must hold a window's worth of datagrams. Replies to
    /// requests to the kernel are read right after sendto() and are not
    /// delayed; replies from user-space peers are. Cancellation and timeouts
    /// are not delayed. Worth it only where wake-ups dominate the cost.
    std::chrono::microseconds coalesce_window{0};
    /// How often /proc/net/connector is read while someone waits for an id to
    /// come or go (client::async_wait_registered, async_watch_ids): a change is
    /// seen at most this long (plus a read) after it happened. Each read costs
    /// a few microseconds of CPU (docs/reference.md). Clamped to at least 1 ms.
    std::chrono::milliseconds registry_interval{100};
};

} // namespace cnasio
