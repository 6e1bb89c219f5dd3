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
    /// Bytes of datagrams the client may hold for peers whose receive queue
    /// is full (sendto() gave EAGAIN); past it, a send fails with
    /// error::send_queue_full. Each peer has its own queue, kept in order: a
    /// peer that stops reading holds back only what goes to it.
    std::size_t send_queue_bytes = 4u << 20;
    /// Netlink family (NETLINK_CONNECTOR unless a peer speaks connector framing elsewhere).
    netlink::protocol protocol = netlink::protocol::connector();
    /// Datagrams read per scheduler turn before the loop lets other handlers
    /// run (the rest is read in a posted continuation). It bounds a drain and
    /// the reads that follow a burst in the same turn (after a read that brought
    /// two datagrams or more, the socket is read again once they are handed
    /// out, until a read finds nothing, instead of a readiness wait:
    /// docs/design.md).
    std::size_t drain_batch = 256;
    /// The most completions handed out in one scheduler turn, the client's
    /// fairness bound: a loop of operations that finish at once (a receive
    /// loop over queued messages, requests the kernel answers inside
    /// sendto()) runs without a scheduler lap per step, and after this many
    /// handlers the rest waits behind a posted continuation, so other handlers
    /// and the reactor get a turn. Each such yield costs one scheduler lap and
    /// a reactor poll (8-12 us measured on a PVM guest: two or three kernel
    /// requests), which lands on one request's latency: at 256 (drain_batch,
    /// which used to be this bound too) that was every 256th request, enough
    /// to move a request loop's p99 (bench/README.md, "Proc ack p99"). At
    /// about 4 us per kernel request, 1024 holds the thread for about 4 ms at
    /// most. 0 counts as 1.
    std::size_t completion_batch = 1024;
    /// Coalescing; 0 (the default) turns it off. With a window w > 0, a
    /// wake-up that read datagrams does not wait for the next one: the client
    /// reads again w later (a timer), and again while reads find datagrams;
    /// the first read that finds none goes back to waiting for readiness. A
    /// message after a quiet spell is handed out at once, as without the
    /// option; one that arrives while datagrams keep coming waits at most w
    /// (plus the timer's slack). A steady stream that would wake the loop per
    /// message (process events in a fork storm) then costs one wake-up per
    /// window; the price is that latency, one extra timer wake-up and empty
    /// read after every burst, and a receive buffer that must hold a window's
    /// worth of datagrams (bench/README.md has the figures). A window's
    /// datagrams wake nobody: the socket is in no epoll set while the client
    /// does not wait for readiness (client_state::open_wait_set). Replies to
    /// requests to the kernel are read right after sendto() and never wait;
    /// other replies may. Cancellation and timeouts are not delayed.
    std::chrono::microseconds coalesce_window{0};
    /// How often /proc/net/connector is read while someone waits for an id to
    /// come or go (client::async_wait_registered, async_watch_ids): a change is
    /// seen at most this long (plus a read) after it happened. Each read costs
    /// a few microseconds of CPU (docs/reference.md). Clamped to at least 1 ms.
    std::chrono::milliseconds registry_interval{100};
};

} // namespace cnasio
