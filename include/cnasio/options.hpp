// cnasio/options.hpp - what a user sets on requests and subscriptions, and the
// counters the client keeps. Plain types with no I/O in them: the sans-IO
// client core (detail/client_core.hpp) and the Asio client share them.
#pragma once

#include <cnasio/connector/message.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>

namespace cnasio {

/// How a reply is recognised.
enum class match {
    seq_and_ack, ///< same seq and ack + 1, as connector.rst says (the default)
    ack_only,    ///< ack + 1 only: the proc connector does not echo seq
    custom,      ///< a caller-supplied predicate decides
    seq_only,    ///< same seq and connector id, any ack: 1-Wire sets ack by rules of its own
};

/// A caller's reply predicate for match::custom.
using reply_matcher = std::function<bool(const connector::message_view&)>;

/// What one message the matching rule gave a request is to a multi-part answer.
enum class part_verdict {
    not_part, ///< not an answer after all: it goes on as unrelated (to subscribers)
    more,     ///< a part; more follow
    last,     ///< the last part: the request ends with it
};

/// Decides, message by message and in the order they arrive, where a
/// multi-part answer ends (request_options::parts). It is given the headers
/// the request was sent with (its seq and ack are chosen when it starts) and
/// the message. It may keep state: it is called once per matched message of
/// its one request.
using part_rule = std::function<part_verdict(const connector::header& request, const connector::message_view& m)>;

/// How one request is sent and matched.
struct request_options {
    cnasio::match match = match::seq_and_ack;
    /// 0: the client's default_timeout.
    std::chrono::milliseconds timeout{0};
    /// For match::custom.
    reply_matcher matcher{};
    /// For an answer of several messages: each message the match rule gives
    /// the request is offered to it, and the request ends at the part it calls
    /// the last. Empty: the first matching message is the whole answer.
    /// The timeout covers the whole answer, not each part.
    part_rule parts{};
    /// Destination port id: 0 is the kernel.
    std::uint32_t port_id = 0;
    /// cn_msg.flags of the request.
    std::uint16_t flags = 0;
    /// When set, receives the headers the request was sent with (seq, ack,
    /// ...) once the send succeeded, before the completion handler runs; left
    /// alone when the send fails. Must stay valid until the completion.
    connector::header* sent = nullptr;
    /// For requests to the kernel (port_id 0): read /proc/net/connector when
    /// the request starts and fail at once with error::not_registered if
    /// nobody registered the id; and if the request times out, read it again
    /// and end with error::not_registered instead of error::timeout when the
    /// id is gone by then. A registry that cannot be read fails the start with
    /// its error; at expiry it leaves error::timeout. async_send checks at
    /// start likewise. Off by default: requests without it never read the file.
    bool check_registered = false;
};

/// What a full subscription queue does with one more message.
enum class overflow_policy {
    drop_oldest, ///< make room by dropping the oldest queued messages (the default)
    drop_newest, ///< keep the queue as it is and drop the new message
};

/// How one subscription queues. A queue is full when it holds `queue_limit`
/// messages or `byte_limit` bytes (payload storage plus a message's own
/// size), or when every subscription of the client together holds
/// client_options::subscription_bytes; then `policy` applies. An empty queue
/// always takes a message, whatever the limits, so that every subscriber makes
/// progress: the client's queues together hold at most subscription_bytes plus
/// one message per subscriber (and the storage each keeps for reuse: 16 KiB,
/// or keep_messages small messages if more; budgets count it and take it back
/// first under pressure).
struct subscription_options {
    /// Messages queued before the overflow policy applies.
    std::size_t queue_limit = 4096;
    /// Bytes queued before the overflow policy applies.
    std::size_t byte_limit = 8u << 20;
    /// Ring slots and payload storage (of messages up to 4 KiB) an emptied
    /// queue keeps for reuse, in messages: a backlog up to this deep, once
    /// seen, comes again without allocating. 0: only 16 KiB of payload storage
    /// and up to 256 slots are kept. Size it by subscription_stats::max_queued;
    /// the memory is held only after such a backlog (at most queue_limit).
    std::size_t keep_messages = 0;
    /// With keep_messages: payload bytes (at most 4 KiB) to allocate up front
    /// for each of the keep_messages slots when subscribing, so that not even
    /// the first backlog allocates. 0: the storage comes with the first backlog.
    std::size_t reserve_payload = 0;
    overflow_policy policy = overflow_policy::drop_oldest;
    /// Only messages for this connector id (both zero: every id of the group).
    connector::id only_id{};
};

/// Counters of one subscription.
struct subscription_stats {
    std::uint64_t delivered = 0; ///< messages offered to the subscriber (= received + dropped + still queued)
    std::uint64_t dropped = 0;   ///< messages lost to a full queue (the policy)
    std::uint64_t overruns = 0;  ///< socket overruns (ENOBUFS) signalled to the subscriber
    std::size_t queued_bytes = 0; ///< bytes the queued messages hold now
    std::size_t max_queued = 0;   ///< the deepest backlog so far, in messages
};

/// Counters of a client; every message read is counted in exactly one of
/// replies, unsolicited, late_replies, duplicate_replies, rejected, malformed.
struct client_stats {
    std::uint64_t datagrams = 0;         ///< datagrams read
    std::uint64_t reads = 0;             ///< system calls that read datagrams (recvmmsg: up to 32 each)
    std::uint64_t wakeups = 0;           ///< readiness waits that completed (a wake-up that reads a burst reads again: datagrams / wakeups is what one wake-up took in)
    std::uint64_t replies = 0;           ///< messages that answered a pending request
    std::uint64_t unsolicited = 0;       ///< messages that answered nothing (to subscribers, if any)
    std::uint64_t unclaimed = 0;         ///< ...of which no subscriber wanted
    std::uint64_t late_replies = 0;      ///< replies after their request timed out or was cancelled (dropped)
    std::uint64_t duplicate_replies = 0; ///< further replies to an answered request (dropped)
    std::uint64_t rejected = 0;          ///< messages from a port id that is not admitted (dropped)
    std::uint64_t malformed = 0;         ///< messages the framing layer refused (dropped)
    std::uint64_t overruns = 0;          ///< ENOBUFS reports: the kernel dropped messages for us
    std::uint64_t timeouts = 0;          ///< requests that ended with error::timeout
    // A peer whose receive queue is full (EAGAIN) gets later messages from the
    // client's send queue for it, retried every 200 us.
    std::uint64_t sends_queued = 0;      ///< messages queued because their peer was full
    std::uint64_t sends_late = 0;        ///< ...of which sent from the queue later
    std::uint64_t sends_dropped = 0;     ///< ...of which never sent: their request ended first, their late send failed, or the client closed
};

} // namespace cnasio
