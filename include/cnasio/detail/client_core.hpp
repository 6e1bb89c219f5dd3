// cnasio/detail/client_core.hpp - the client's protocol logic, without any I/O.
//
// A sans-IO state machine: the Asio glue (detail/client_state.hpp) feeds it
// events and carries out what it asks for. It holds the pending-request table
// (correlator.hpp), the subscriber queues (fanout.hpp), the counters, and one
// queue of finished operations. It never calls a handler, never reads a
// socket and never reads a clock: times come in with the events.
//
// Events in                                  Actions out
//   start_request(op, id, ...)         ->   request_start: the message to send (or none: op already failed)
//   start_stream(id, ...)              ->   stream_start: the same, for an answer handed out part by part
//   stream_next(stream, op, into)      ->   a completion now or when a part comes (or the answer ends)
//   cancel_next(stream, number, all)   ->   a completion (operation_aborted); `all`: the request ends too
//   cancel_stream(stream)              ->   the request ends (operation_aborted; later parts are late)
//   close_stream(stream)               ->   the same, and the stream goes
//   send_failed(ticket, ec)            ->   a completion
//   queue_request / queue_message      ->   the datagram waits for room at its peer (or a completion)
//   flush_sends(try_send)              ->   queued datagrams sent; completions for late failures
//   cancel_request(ticket)             ->   a completion (operation_aborted)
//   subscribe(group, options)          ->   subscribe_result: join the group or not
//   unsubscribe(sub)                   ->   leave the group or not
//   start_receive(sub, op, target)     ->   a completion now or when a message comes
//   cancel_receive(sub, number)        ->   a completion (operation_aborted)
//   on_read(datagrams)                 ->   completions (replies, messages to waiting receivers; a
//                                            waiting batch receive once, at the end of the read)
//   on_datagram(port, group, bytes)    ->   the same, for a read of one datagram
//   on_overrun() / on_read_error(ec)   ->   completions
//   on_timer(now[, registered])        ->   completions (error::timeout, or not_registered)
//   close()                            ->   completions (operation_aborted)
// State the glue keeps in step after each event:
//   wants_read()      a readiness wait is outstanding exactly when this holds;
//   next_deadline()   the timer is armed no later than this;
//   has_queued_sends() a retry (flush_sends) is scheduled while this holds;
//   pop_completion()  every completion is handed to its handler, in order.
//
// Operations are named by an `op_id` the glue chooses (an index into its
// handler table); the core stores it and hands it back in a completion. Every
// operation started ends in exactly one completion, errors at start included.
#pragma once

#include <cnasio/connector/framing.hpp>
#include <cnasio/connector/message.hpp>
#include <cnasio/detail/correlator.hpp>
#include <cnasio/detail/fanout.hpp>
#include <cnasio/detail/send_queue.hpp>
#include <cnasio/error.hpp>
#include <cnasio/options.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace cnasio::detail {

/// Names one operation of the glue's.
using op_id = std::uint32_t;

/// The error an aborted (cancelled, closed) operation completes with; equal to
/// boost::asio::error::operation_aborted.
inline error_code aborted_error() noexcept { return error_code(ECANCELED, boost::system::system_category()); }
/// A second receive while one is outstanding; equal to boost::asio::error::in_progress.
inline error_code in_progress_error() noexcept { return error_code(EINPROGRESS, boost::system::system_category()); }
/// A send that found its peer's queue full (EAGAIN); equal to boost::asio::error::would_block.
inline error_code would_block_error() noexcept { return error_code(EAGAIN, boost::system::system_category()); }

/// Where a receive puts what it takes.
struct receive_target {
    connector::message* into = nullptr;                ///< one message, into the caller's
    std::vector<connector::message>* batch = nullptr;  ///< several, into the caller's vector
    std::size_t batch_max = 0;
    // Neither: the message travels in the completion.
};

/// A finished operation, waiting for its handler to be called.
struct completion {
    op_id op = 0;
    error_code ec;
    connector::message message; ///< the reply or message, when no target took it
    std::size_t count = 0;      ///< messages put in a batch
};

/// Names a subscription inside the core; stale once it is removed.
struct subscription_ref {
    std::uint32_t index = 0;
    std::uint32_t generation = 0;
};

/// Names a streamed request inside the core; stale once it is closed.
struct stream_ref {
    std::uint32_t index = 0;
    std::uint32_t generation = 0;
};

/// The options the core needs (the glue's client_options minus the I/O ones).
struct core_options {
    std::chrono::milliseconds default_timeout{1000};
    std::vector<std::uint32_t> admitted_ports{};
    std::size_t subscription_bytes = 64u << 20;
    std::size_t send_queue_bytes = 4u << 20;
};

/// A small, fast generator for the acks of requests (xoshiro128**). The ack
/// only has to be unlikely to collide with another process's requests and
/// with our own recent ones (the correlator checks the pending ones); it is
/// not a secret: any process that can forge a reply can also read our socket's
/// traffic pattern, and the real defence is the sender check (port id 0 or
/// admitted).
class ack_generator {
public:
    explicit ack_generator(std::uint64_t seed) noexcept {
        for (auto& w : s_) { // splitmix64 spreads any seed over the state
            seed += 0x9e3779b97f4a7c15ull;
            std::uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            w = static_cast<std::uint32_t>(z ^ (z >> 31));
        }
        if ((s_[0] | s_[1] | s_[2] | s_[3]) == 0) s_[0] = 1;
    }
    std::uint32_t operator()() noexcept {
        const std::uint32_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint32_t t = s_[1] << 9;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 11);
        return result;
    }

private:
    static std::uint32_t rotl(std::uint32_t x, int k) noexcept { return (x << k) | (x >> (32 - k)); }
    std::uint32_t s_[4];
};

class client_core {
public:
    using clock = std::chrono::steady_clock;

    /// A pending request in the table: who to tell and where its reply goes.
    struct pending_request {
        op_id op;
        connector::message* into; // null: the reply travels in the completion
        connector::id id{};              // where it went, for the check at expiry
        bool check_registered = false;   // request_options::check_registered (to the kernel)
        part_rule rule{};                // request_options::parts: a multi-part answer
        std::vector<connector::message>* parts = nullptr; // where the parts go (a multi-part answer)
        connector::header sent{};        // what was sent, for the part rule
        std::uint32_t stream = no_stream; // a streamed answer: its parts go to streams_[stream]
        std::uint32_t port_id = 0;       // the destination
        bool queued = false;             // its datagram waits in the send queue
    };
    static constexpr std::uint32_t no_stream = 0xffffffffu;
    using table = correlator<pending_request>;
    using ticket = table::ticket;

    client_core(core_options options, std::uint64_t seed, std::uint32_t port_id = 0)
        : options_(std::move(options)), rng_(seed), port_id_(port_id), sends_(options_.send_queue_bytes) {}

    client_core(const client_core&) = delete;
    client_core& operator=(const client_core&) = delete;

    // ---- requests ----

    /// What the glue sends for a request that started.
    struct request_start {
        bool send = false;            ///< false: the operation failed and its completion is queued
        connector::header header{};   ///< the message's headers (seq, ack, ...)
        std::uint32_t port_id = 0;    ///< destination (0: the kernel)
        ticket t{};                   ///< names the request for send_failed / cancel_request
    };

    /// A request starts: it is registered before it is sent, so a reply read
    /// right after the send finds it. Fails at once (queued completion) when
    /// closed or when the payload is too large.
    /// With `parts`, every part of the answer is appended to `*parts` as it
    /// comes (the vector is cleared now); what came before a timeout or a
    /// cancellation stays there. Without, a multi-part answer's last part is
    /// the reply.
    request_start start_request(op_id op, connector::id id, std::size_t payload_size, request_options ro,
                                clock::time_point now, connector::message* into = nullptr,
                                std::vector<connector::message>* parts = nullptr) {
        request_start r;
        if (closed_) return complete(op, error::client_closed), r;
        if (payload_size > connector::max_payload) return complete(op, error::payload_too_large), r;
        std::uint32_t ack;
        do ack = rng_(); while (!requests_.ack_free(ack));
        r.header = make_header(id, ro.flags, ack);
        r.port_id = ro.port_id;
        const auto timeout = ro.timeout.count() > 0 ? ro.timeout : options_.default_timeout;
        if (parts) parts->clear();
        r.t = requests_.add(ro.match, r.header.seq, ack, std::move(ro.matcher), now + timeout,
                            pending_request{op, into, id, ro.check_registered && ro.port_id == 0,
                                            std::move(ro.parts), parts, r.header, no_stream, ro.port_id},
                            id);
        r.send = true;
        return r;
    }

    /// A streamed request: its answer is handed out part by part (stream_next)
    /// instead of ending one operation. The stream holds the parts that came
    /// while nobody waited, up to `queue_limit` (at least 1); a part beyond
    /// that ends the request with error::parts_overflow (that part is lost
    /// and the parts after it count as late). When the request ends, however
    /// it ends, the queued parts are still handed out first, then the end:
    /// error::end_of_answer after the last part, else the request's error
    /// (timeout, operation_aborted, the send's error, ...). The stream stays
    /// until close_stream(), which the owner must call.
    struct stream_start {
        request_start start; ///< start.send false: the stream has ended already (its error is its end)
        stream_ref stream{};
    };
    stream_start start_stream(connector::id id, std::size_t payload_size, request_options ro, clock::time_point now,
                              std::size_t queue_limit) {
        stream_start r;
        r.stream = add_stream(queue_limit);
        part_stream_state& s = *streams_[r.stream.index].s;
        if (closed_) return end_stream(s, error::client_closed), r;
        if (payload_size > connector::max_payload) return end_stream(s, error::payload_too_large), r;
        std::uint32_t ack;
        do ack = rng_(); while (!requests_.ack_free(ack));
        r.start.header = make_header(id, ro.flags, ack);
        r.start.port_id = ro.port_id;
        const auto timeout = ro.timeout.count() > 0 ? ro.timeout : options_.default_timeout;
        s.t = requests_.add(ro.match, r.start.header.seq, ack, std::move(ro.matcher), now + timeout,
                            pending_request{0, nullptr, id, ro.check_registered && ro.port_id == 0,
                                            std::move(ro.parts), nullptr, r.start.header, r.stream.index, ro.port_id},
                            id);
        r.start.t = s.t;
        r.start.send = true;
        return r;
    }

    /// A stream that ended before its request could be sent (e.g. the glue's
    /// registry check failed): its first stream_next gives `ec`.
    stream_ref failed_stream(error_code ec) {
        const stream_ref ref = add_stream(1);
        end_stream(*streams_[ref.index].s, ec);
        return ref;
    }

    /// Asks for the next part: the oldest queued part completes `op` at once
    /// (into `*into` when given, else in the completion's message); with none
    /// queued, the end once the answer has ended (and again at every later
    /// call), else `op` waits. One at a time per stream: a second ends with
    /// in_progress. A stale stream ends `op` with client_closed.
    void stream_next(stream_ref ref, op_id op, connector::message* into = nullptr) {
        part_stream_state* s = find(ref);
        if (!s) return complete(op, error::client_closed);
        if (s->waiting) return complete(op, in_progress_error());
        s->waiting = true;
        s->waiter = op;
        s->into = into;
        serve(*s);
    }

    /// Cancels wait `number` of a stream, if still waiting: it ends with
    /// operation_aborted. With `end_request` the request ends too (its stream
    /// then ends with operation_aborted, after the parts queued); without, the
    /// answer keeps coming and queueing.
    void cancel_next(stream_ref ref, std::uint64_t number, bool end_request) {
        part_stream_state* s = find(ref);
        if (!s || !s->waiting || s->next_number != number) return;
        if (end_request && requests_.find(s->t)) {
            finish(s->t, aborted_error(), nullptr, table::outcome::expired); // serves the waiter with the end
            return;
        }
        completion& c = push_completion(s->waiter);
        c.ec = aborted_error();
        end_wait(*s);
    }

    /// Ends the stream's request if it is pending, as cancel_request does: a
    /// waiting stream_next ends with operation_aborted; queued parts stay,
    /// then the stream's end is operation_aborted.
    void cancel_stream(stream_ref ref) {
        if (part_stream_state* s = find(ref); s && requests_.find(s->t))
            finish(s->t, aborted_error(), nullptr, table::outcome::expired);
    }

    /// Ends a stream for good: a pending request ends (operation_aborted; its
    /// later parts count as late), a waiting stream_next ends with
    /// operation_aborted, queued parts are dropped, and `ref` goes stale.
    void close_stream(stream_ref ref) {
        part_stream_state* s = find(ref);
        if (!s) return;
        if (requests_.find(s->t)) finish(s->t, aborted_error(), nullptr, table::outcome::expired);
        if (s->waiting) {
            completion& c = push_completion(s->waiter);
            c.ec = aborted_error();
            end_wait(*s);
        }
        auto& slot = streams_[ref.index];
        slot.s.reset();
        ++slot.generation;
        free_streams_.push_back(ref.index);
    }

    /// The number of the stream's wait in progress (or of the next one): a
    /// cancellation names it, so that a stale one does nothing.
    std::uint64_t next_number(stream_ref ref) const noexcept {
        const part_stream_state* s = find(ref);
        return s ? s->next_number : 0;
    }
    /// True when `op` waits on the stream.
    bool stream_waits(stream_ref ref, op_id op) const noexcept {
        const part_stream_state* s = find(ref);
        return s && s->waiting && s->waiter == op;
    }
    /// Parts queued and not yet handed out.
    std::size_t stream_queued(stream_ref ref) const noexcept {
        const part_stream_state* s = find(ref);
        return s ? s->queue.size() : 0;
    }
    /// Parts the stream took so far (handed out, queued, or lost to a full queue).
    std::uint64_t stream_parts(stream_ref ref) const noexcept {
        const part_stream_state* s = find(ref);
        return s ? s->parts : 0;
    }
    /// True once the stream's request has ended (its queued parts may still wait).
    bool stream_ended(stream_ref ref) const noexcept {
        const part_stream_state* s = find(ref);
        return !s || s->ended;
    }
    /// Streams not yet closed.
    std::size_t streams() const noexcept { return streams_.size() - free_streams_.size(); }

    /// The headers of a message that expects no reply.
    connector::header one_way_header(connector::id id, std::uint16_t flags) { return make_header(id, flags, rng_()); }

    /// The send of request `t` failed: it ends with `ec`.
    void send_failed(ticket t, error_code ec) { finish(t, ec, nullptr, table::outcome::expired); }

    /// Cancels request `t` (nothing if it has ended): operation_aborted, and a
    /// reply arriving later counts as late.
    void cancel_request(ticket t) { finish(t, aborted_error(), nullptr, table::outcome::expired); }

    bool request_pending(ticket t) noexcept { return requests_.find(t) != nullptr; }

    // ---- the send queue: datagrams waiting for room at a full peer ----
    //
    // sendto() to a peer whose receive queue is full fails with EAGAIN, and
    // netlink tells the sender nothing when room comes back: the glue retries
    // with flush_sends() after a pause while has_queued_sends(). Each
    // destination has its own queue, so a peer that stops reading holds back
    // only what goes to it, in order. A queued request that ends (timeout,
    // cancellation, close) takes its datagram out: it is never sent.

    /// True when messages to `port` wait: the next one must queue behind them
    /// (queue_request / queue_message) instead of being sent.
    bool send_waits(std::uint32_t port) const noexcept { return sends_.waits(port); }
    bool has_queued_sends() const noexcept { return !sends_.empty(); }
    std::size_t queued_send_bytes() const noexcept { return sends_.bytes(); }

    /// Request `t`'s datagram could not go now (EAGAIN, or others wait for
    /// its peer): it waits for flush_sends(). Past the byte bound the request
    /// ends at once with error::send_queue_full.
    void queue_request(ticket t, std::vector<std::byte> datagram) {
        pending_request* p = requests_.find(t);
        if (!p) return;
        if (!sends_.push(p->port_id, std::move(datagram), t))
            return finish(t, error::send_queue_full, nullptr, table::outcome::expired);
        p->queued = true;
        ++stats_.sends_queued;
    }

    /// A one-way message waits for room at `port`; error::send_queue_full past
    /// the byte bound (nothing queued). A later failure has nobody to tell:
    /// it is counted in stats().sends_dropped.
    error_code queue_message(std::uint32_t port, std::vector<std::byte> datagram) {
        if (!sends_.push(port, std::move(datagram), std::nullopt)) return error::send_queue_full;
        ++stats_.sends_queued;
        return {};
    }

    /// Sends what the peers have room for: `try_send(port, datagram)`
    /// (error_code(uint32_t, span<const byte>)) returns EAGAIN
    /// (would_block_error()) for a peer still full, which keeps that peer's
    /// queue; any other error ends the entry's request with it.
    template <class TrySend>
    void flush_sends(TrySend&& try_send) {
        using q = send_queue<ticket>;
        error_code failure; // of the entry flush() is about to drop
        sends_.flush(
            [&](std::uint32_t port, const q::entry& e) {
                failure = try_send(port, std::span<const std::byte>(e.datagram));
                if (failure == would_block_error()) return q::attempt::full;
                // Out of the queue either way: finish() must not look for it there.
                if (e.ticket)
                    if (pending_request* p = requests_.find(*e.ticket)) p->queued = false;
                if (failure) return q::attempt::failed;
                ++stats_.sends_late;
                return q::attempt::sent;
            },
            [&](const q::entry& e) {
                ++stats_.sends_dropped;
                if (e.ticket) finish(*e.ticket, failure, nullptr, table::outcome::expired);
            });
    }
    std::size_t pending_requests() const noexcept { return requests_.size(); }

    // ---- subscriptions ----

    struct subscribe_result {
        error_code ec;
        subscription_ref sub{};
        bool join = false; ///< the first subscriber of a group other than 0: join it now
    };

    subscribe_result subscribe(unsigned group, const subscription_options& o) {
        subscribe_result r;
        if (closed_) return r.ec = error::client_closed, r;
        if (group > fanout<subscriber>::max_group) return r.ec = error::invalid_group, r;
        std::uint32_t index;
        if (!free_subs_.empty()) {
            index = free_subs_.back();
            free_subs_.pop_back();
        } else {
            index = static_cast<std::uint32_t>(subs_.size());
            subs_.emplace_back();
        }
        auto& slot = subs_[index];
        slot.s = std::make_unique<subscriber>(group, o);
        take_bytes(*slot.s, [&] { slot.s->queue.reserve(o.reserve_payload); });
        r.sub = {index, slot.generation};
        r.join = subscribers_.add(group, slot.s.get()) && group != 0;
        return r;
    }

    /// The group's join failed: forget the subscription again.
    void subscribe_failed(subscription_ref ref) { (void)unsubscribe(ref); }

    /// Removes a subscription (a receive in progress ends with
    /// operation_aborted). True when the glue should leave its group now.
    bool unsubscribe(subscription_ref ref) {
        subscriber* s = find(ref);
        if (!s) return false;
        abort_receive(*s);
        held_bytes_ -= s->queue.held_bytes();
        const bool last = subscribers_.remove(s->group, s) && s->group != 0;
        auto& slot = subs_[ref.index];
        slot.s.reset();
        ++slot.generation;
        free_subs_.push_back(ref.index);
        return last && !closed_;
    }

    /// Starts a receive: it completes at once if a message (or an overrun
    /// report) is queued, else when one comes. One at a time per
    /// subscription: a second ends with in_progress.
    void start_receive(subscription_ref ref, op_id op, receive_target target) {
        subscriber* s = find(ref);
        if (closed_ || !s) return complete(op, error::client_closed);
        if (s->waiting) return complete(op, in_progress_error());
        s->waiting = true;
        s->waiter = op;
        s->target = target;
        if (s->target.batch && s->target.batch_max == 0) s->target.batch_max = 1;
        serve(*s);
    }

    /// The number of the receive in progress (or of the next one): a
    /// cancellation names it, so that a stale one does nothing.
    std::uint64_t receive_number(subscription_ref ref) const noexcept {
        const subscriber* s = find(ref);
        return s ? s->receive_number : 0;
    }

    /// Cancels receive `number` of a subscription, if it is still in progress.
    void cancel_receive(subscription_ref ref, std::uint64_t number) {
        subscriber* s = find(ref);
        if (s && s->waiting && s->receive_number == number) abort_receive(*s);
    }

    /// Cancels whatever receive is in progress.
    void cancel_receive(subscription_ref ref) {
        if (subscriber* s = find(ref)) abort_receive(*s);
    }

    /// Takes a queued message (or the pending overrun report, as `ec`)
    /// without waiting; false when there is none or a receive is in progress.
    bool try_receive(subscription_ref ref, connector::message& out, error_code& ec) {
        ec.clear();
        subscriber* s = find(ref);
        if (!s || s->waiting) return false;
        if (s->queue.take_overrun()) {
            ec = error::overrun;
            return true;
        }
        bool got = false;
        take_bytes(*s, [&] { got = s->queue.pop(out); });
        return got;
    }

    /// True when receive `op` is in progress on the subscription.
    bool receive_waits(subscription_ref ref, op_id op) const noexcept {
        const subscriber* s = find(ref);
        return s && s->waiting && s->waiter == op;
    }
    bool is_waiting(subscription_ref ref) const noexcept {
        const subscriber* s = find(ref);
        return s && s->waiting;
    }
    unsigned group(subscription_ref ref) const noexcept {
        const subscriber* s = find(ref);
        return s ? s->group : 0;
    }
    subscription_stats subscription_statistics(subscription_ref ref) const noexcept {
        const subscriber* s = find(ref);
        return s ? s->queue.stats() : subscription_stats{};
    }
    std::size_t queued(subscription_ref ref) const noexcept {
        const subscriber* s = find(ref);
        return s ? s->queue.size() : 0;
    }
    /// Bytes all subscription queues hold now: queued messages and the
    /// storage they keep for reuse (what core_options::subscription_bytes bounds).
    std::size_t held_bytes() const noexcept { return held_bytes_; }
    bool has_subscribers() const noexcept { return !subscribers_.empty(); }

    // ---- what was read ----

    /// One datagram read from the socket, from `port_id` through `group` (0: unicast):
    /// a read of one datagram, as on_read() below.
    void on_datagram(std::uint32_t port_id, unsigned group, std::span<const std::byte> bytes, bool truncated) {
        take_datagram(port_id, group, bytes, truncated);
        serve_deferred();
    }

    /// The datagrams of one read, in order: each `d` of `datagrams` has
    /// d.port_id(), d.group(), d.bytes and d.truncated. A batch receive that
    /// waits on a subscription completes once, after the whole read, with up
    /// to its batch_max of what the read brought (at once when that many are
    /// queued); a one-message receive, at the first message, as on_datagram().
    template <class Datagrams>
    void on_read(const Datagrams& datagrams) {
        for (const auto& d : datagrams) take_datagram(d.port_id(), d.group(), d.bytes, d.truncated);
        serve_deferred();
    }

private:
    void take_datagram(std::uint32_t port_id, unsigned group, std::span<const std::byte> bytes, bool truncated) {
        ++stats_.datagrams;
        const bool trusted = admitted(port_id);
        connector::datagram_reader(bytes, truncated)
            .for_each(
                [&](const connector::message_view& m) {
                    if (trusted)
                        deliver(m, group);
                    else
                        ++stats_.rejected;
                },
                [&](error_code, const connector::message_view&) {
                    if (trusted)
                        ++stats_.malformed;
                    else
                        ++stats_.rejected;
                });
    }

    // Serves the batch receives deliver() left waiting until the end of a read.
    // Empty between events: deferred_'s pointers never outlive the event.
    void serve_deferred() {
        for (subscriber* s : deferred_) {
            s->deferred = false;
            serve(*s);
        }
        deferred_.clear();
    }

public:
    /// The socket reported ENOBUFS: every subscriber learns it once, before
    /// its next message.
    void on_overrun() {
        ++stats_.overruns;
        subscribers_.for_each([&](subscriber& s) {
            s.queue.mark_overrun();
            serve(s);
        });
    }

    /// Reading failed for good: every pending request ends with `ec`.
    void on_read_error(error_code ec) {
        for (auto t : requests_.pending()) finish(t, ec, nullptr, table::outcome::expired);
    }

    /// Time passed: requests whose deadline is at or before `now` end with error::timeout.
    void on_timer(clock::time_point now) {
        on_timer(now, [](connector::id) { return true; });
    }

    /// The same, for requests made with request_options::check_registered:
    /// each such expired request asks `registered(id)` (bool(connector::id));
    /// false ends it with error::not_registered instead of error::timeout
    /// (not counted in stats().timeouts). `registered` is not called when no
    /// expired request asked for the check, so the glue can read the registry
    /// lazily, at most once per call.
    template <class Registered>
    void on_timer(clock::time_point now, Registered&& registered) {
        requests_.for_each_expired(now, [&](ticket t) {
            const pending_request* p = requests_.find(t);
            if (p->check_registered && !registered(p->id)) {
                finish(t, error::not_registered, nullptr, table::outcome::expired);
                return;
            }
            ++stats_.timeouts;
            finish(t, error::timeout, nullptr, table::outcome::expired);
        });
    }

    /// Ends everything: pending requests and receives complete with
    /// operation_aborted; later operations fail with client_closed.
    void close() {
        if (closed_) return;
        closed_ = true;
        for (auto t : requests_.pending()) finish(t, aborted_error(), nullptr, table::outcome::expired);
        subscribers_.for_each([&](subscriber& s) { abort_receive(s); });
        sends_.clear([&](const send_queue<ticket>::entry&) { ++stats_.sends_dropped; }); // one-way messages
    }

    /// Completes `op` with `ec` (an operation the glue could not start).
    void complete(op_id op, error_code ec) {
        completion& c = push_completion(op);
        c.ec = ec;
    }

    // ---- what the glue keeps in step ----

    /// True while someone waits for what the socket brings: a pending
    /// request or a subscription.
    bool wants_read() const noexcept { return !closed_ && (!requests_.empty() || !subscribers_.empty()); }
    /// The earliest deadline of a pending request.
    std::optional<clock::time_point> next_deadline() { return closed_ ? std::nullopt : requests_.next_deadline(); }
    bool has_completions() const noexcept { return ready_head_ < ready_.size(); }
    std::size_t completions() const noexcept { return ready_.size() - ready_head_; }
    /// Room for the completions of `n` operations without allocating: the
    /// queue holds at most one per pending operation, plus the taken ones
    /// that pop_completion() has not given back yet, which are fewer than
    /// max(compact_after, pending). The glue calls this as its table of
    /// operations grows, so that operations ending together (a close, a
    /// burst of replies) do not grow the queue on the completion path.
    void reserve_completions(std::size_t n) { ready_.reserve(2 * n + compact_after); }
    /// Takes the oldest finished operation.
    bool pop_completion(completion& out) {
        if (ready_head_ == ready_.size()) return false;
        out = std::move(ready_[ready_head_++]);
        if (ready_head_ == ready_.size()) { // keeps the capacity: no allocation once warm
            ready_.clear();
            ready_head_ = 0;
        } else if (ready_head_ >= compact_after && 2 * ready_head_ >= ready_.size()) {
            // Handlers that start operations completing at once (two
            // subscribers taking a backlog) keep the queue from ever running
            // empty: give the taken half back, so it stays as long as what is
            // pending and not as long as the backlog (amortised O(1)).
            ready_.erase(ready_.begin(), ready_.begin() + static_cast<std::ptrdiff_t>(ready_head_));
            ready_head_ = 0;
        }
        return true;
    }

    /// Taken completions pop_completion() lets pile up before giving them back.
    static constexpr std::size_t compact_after = 64;

    // ---- counters and settings ----

    bool closed() const noexcept { return closed_; }
    client_stats& stats() noexcept { return stats_; }
    const client_stats& stats() const noexcept { return stats_; }
    bool admitted(std::uint32_t port) const noexcept {
        return port == 0 || std::find(options_.admitted_ports.begin(), options_.admitted_ports.end(), port) !=
                                options_.admitted_ports.end();
    }
    void admit(std::uint32_t port) { options_.admitted_ports.push_back(port); }
    /// The port id written into nlmsg_pid of what is sent.
    void set_port_id(std::uint32_t port) noexcept { port_id_ = port; }

private:
    struct part_stream_state {
        ticket t{};                                // its request (stale once ended)
        std::deque<connector::message> queue;      // parts not yet handed out
        std::size_t limit = 1;
        std::uint64_t parts = 0;
        error_code end;                            // how the answer ended, once ended
        bool ended = false;
        bool waiting = false;
        op_id waiter = 0;
        connector::message* into = nullptr;
        std::uint64_t next_number = 0;
    };
    struct stream_slot {
        std::unique_ptr<part_stream_state> s;
        std::uint32_t generation = 0;
    };

    stream_ref add_stream(std::size_t limit) {
        std::uint32_t index;
        if (!free_streams_.empty()) {
            index = free_streams_.back();
            free_streams_.pop_back();
        } else {
            index = static_cast<std::uint32_t>(streams_.size());
            streams_.emplace_back();
        }
        auto& slot = streams_[index];
        slot.s = std::make_unique<part_stream_state>();
        slot.s->limit = limit == 0 ? 1 : limit;
        return {index, slot.generation};
    }

    part_stream_state* find(stream_ref ref) const noexcept {
        if (ref.index >= streams_.size()) return nullptr;
        const auto& slot = streams_[ref.index];
        return slot.generation == ref.generation ? slot.s.get() : nullptr;
    }

    // The stream's request ended with `ec` (clear: its last part came).
    void end_stream(part_stream_state& s, error_code ec) {
        s.ended = true;
        s.end = ec ? ec : make_error_code(error::end_of_answer);
        serve(s);
    }

    // Completes the stream's wait if there is a part or the end to give it.
    void serve(part_stream_state& s) {
        if (!s.waiting || (s.queue.empty() && !s.ended)) return;
        completion& c = push_completion(s.waiter);
        connector::message* into = s.into;
        end_wait(s);
        if (s.queue.empty()) {
            c.ec = s.end;
            return;
        }
        (into ? *into : c.message) = std::move(s.queue.front());
        s.queue.pop_front();
    }

    void end_wait(part_stream_state& s) noexcept {
        s.waiting = false;
        s.into = nullptr;
        ++s.next_number;
    }

    struct subscriber {
        subscriber(unsigned g, const subscription_options& o)
            : group(g), only_id(o.only_id), queue(o.queue_limit, o.byte_limit, o.policy, o.keep_messages) {}
        unsigned group;
        connector::id only_id;
        subscriber_queue queue;
        bool waiting = false;
        op_id waiter = 0;
        receive_target target{};
        std::uint64_t receive_number = 0;
        bool deferred = false; // in deferred_

        bool accepts(const connector::message_view& m) const noexcept {
            return (only_id.idx == 0 && only_id.val == 0) || m.id() == only_id;
        }
    };
    struct subscriber_slot {
        std::unique_ptr<subscriber> s;
        std::uint32_t generation = 0;
    };

    subscriber* find(subscription_ref ref) const noexcept {
        if (ref.index >= subs_.size()) return nullptr;
        const auto& slot = subs_[ref.index];
        return slot.generation == ref.generation ? slot.s.get() : nullptr;
    }

    connector::header make_header(connector::id id, std::uint16_t flags, std::uint32_t ack) {
        connector::header h;
        h.id = id;
        h.seq = requests_.next_seq();
        h.ack = ack;
        h.flags = flags;
        h.nlmsg_seq = h.seq;
        h.nlmsg_pid = port_id_;
        return h;
    }

    completion& push_completion(op_id op) {
        completion& c = ready_.emplace_back();
        c.op = op;
        return c;
    }

    void finish(ticket t, error_code ec, const connector::message_view* reply, table::outcome how) {
        auto p = requests_.take(t, how);
        if (!p) return;
        if (p->queued && sends_.remove(p->port_id, t)) ++stats_.sends_dropped; // never sent
        if (p->stream != no_stream) return end_stream(*streams_[p->stream].s, ec);
        completion& c = push_completion(p->op);
        c.ec = ec;
        if (reply) {
            if (p->into)
                p->into->assign(*reply);
            else
                c.message.assign(*reply);
        }
    }

    // A message matched to request `t`: its part rule (if any) says whether it
    // is a part and whether the last. False when it is not a part at all.
    bool take_part(ticket t, const connector::message_view& m) {
        pending_request* p = requests_.find(t);
        const part_verdict v = p->rule ? p->rule(p->sent, m) : part_verdict::last;
        if (v == part_verdict::not_part) return false;
        if (p->stream != no_stream) {
            part_stream_state& s = *streams_[p->stream].s;
            ++s.parts;
            if (s.queue.size() >= s.limit) { // nobody takes them: end the answer rather than grow without bound
                finish(t, error::parts_overflow, nullptr, table::outcome::expired);
                return true;
            }
            s.queue.emplace_back().assign(m);
            serve(s);
            if (v == part_verdict::last) finish(t, {}, nullptr, table::outcome::replied);
            return true;
        }
        if (p->parts) p->parts->emplace_back().assign(m);
        if (v == part_verdict::last) finish(t, {}, p->parts ? nullptr : &m, table::outcome::replied);
        return true;
    }

    void deliver(const connector::message_view& m, unsigned group) {
        ticket t;
        switch (requests_.classify(m, t)) {
        case table::verdict::reply:
            if (!take_part(t, m)) break; // the request's part rule disowned it
            ++stats_.replies;
            return;
        case table::verdict::duplicate: ++stats_.duplicate_replies; return;
        case table::verdict::late: ++stats_.late_replies; return;
        case table::verdict::unrelated: break;
        }
        ++stats_.unsolicited;
        const auto n = subscribers_.deliver(group, m, [&](subscriber& s) {
            const std::size_t budget = options_.subscription_bytes;
            const std::size_t room = held_bytes_ < budget ? budget - held_bytes_ : 0;
            take_bytes(s, [&] { s.queue.push(m, room); });
            // A batch receive waits for the end of the read (serve_deferred)
            // unless it can already be filled.
            if (s.waiting && s.target.batch && s.queue.size() < std::min(s.target.batch_max, s.queue.limit())) {
                if (!s.deferred) {
                    s.deferred = true;
                    deferred_.push_back(&s);
                }
                return;
            }
            serve(s);
        });
        if (n == 0) ++stats_.unclaimed;
    }

    // Runs `f`, which changes s's queue, keeping held_bytes_ in step.
    template <class F>
    void take_bytes(subscriber& s, F&& f) {
        const std::size_t before = s.queue.held_bytes();
        f();
        held_bytes_ = held_bytes_ - before + s.queue.held_bytes();
    }

    // Completes s's receive if there is something to give it.
    void serve(subscriber& s) {
        if (!s.waiting || !(s.queue.overrun_pending() || !s.queue.empty())) return;
        completion& c = push_completion(s.waiter);
        end_receive(s);
        if (s.queue.take_overrun()) {
            c.ec = error::overrun;
            return;
        }
        take_bytes(s, [&] {
            if (s.target.batch) {
                // Everything queued, up to batch_max, swapped into the caller's messages:
                // their storage comes back to the ring for reuse.
                auto& v = *s.target.batch;
                std::size_t n = 0;
                while (n < s.target.batch_max && !s.queue.empty()) {
                    if (n == v.size()) v.emplace_back();
                    s.queue.pop(v[n++]);
                }
                c.count = n;
            } else {
                s.queue.pop(s.target.into ? *s.target.into : c.message);
            }
        });
    }

    void abort_receive(subscriber& s) {
        if (!s.waiting) return;
        completion& c = push_completion(s.waiter);
        c.ec = aborted_error();
        end_receive(s);
    }

    void end_receive(subscriber& s) noexcept {
        s.waiting = false;
        ++s.receive_number;
    }

    core_options options_;
    ack_generator rng_;
    std::uint32_t port_id_;
    send_queue<ticket> sends_;
    table requests_;
    std::vector<subscriber_slot> subs_;
    std::vector<stream_slot> streams_;
    std::vector<std::uint32_t> free_streams_;
    std::vector<std::uint32_t> free_subs_;
    fanout<subscriber> subscribers_;
    std::vector<subscriber*> deferred_; // batch receives to serve at the end of the read
    std::size_t held_bytes_ = 0;
    std::vector<completion> ready_;
    std::size_t ready_head_ = 0;
    client_stats stats_;
    bool closed_ = false;
};

} // namespace cnasio::detail
