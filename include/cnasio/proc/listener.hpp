// cnasio/proc/listener.hpp - typed process events from the kernel, on top of a client.
//
//     cnasio::client c(io.get_executor());
//     cnasio::proc::listener l(c, {.filter = proc::event_type::exit});
//     co_await l.async_start(asio::use_awaitable);
//     proc::event ev;
//     for (;;) {
//         auto [ec] = co_await l.async_receive(ev, asio::as_tuple(asio::use_awaitable));
//         if (ec == cnasio::error::overrun) { /* l.stats().lost: how many, when known */ continue; }
//         ...
//     }
//
// Starting and stopping follow proc::start_fsm (start_fsm.hpp: the sequence
// and why): join group CN_IDX_PROC, then LISTEN - with a filter, first the
// 8-byte proc_input LISTEN with mask ALL (only such a socket sees its own
// ack), then the real mask one-way (6.6+); no ack to that probe within
// `probe_timeout` means a kernel before 6.6: a classic BPF socket filter
// (filter.hpp) and the 4-byte LISTEN. Either way filtered-out events never
// reach user space, except in the short window between the two 8-byte
// LISTENs: events of other types that arrive then are dropped here (counted in
// stats().filtered). This file is the glue that does the machine's actions
// with the client.
// Stopping: close() (and the destructor) send IGNORE through the client's
// send path - the kernel does not decrement its listener count when a socket
// closes - detach the BPF filter and leave the group. IGNORE is only sent after
// an acknowledged LISTEN: before 6.6 every IGNORE decrements the count, also one
// that answers no LISTEN.
//
// Loss accounting (loss.hpp): every proc message the socket gets, acks
// included (ours: the LISTEN's reply; others': delivered or skipped), feeds
// the per-CPU sequence counter.
//  - Without a filter (loss_mode::exact) a hole in a CPU's sequence is a lost
//    event and stats().lost is exact. Holes show when the CPU's next message
//    arrives, so the count behind an overrun grows over the messages after it.
//  - With a filter the kernel numbers the events it keeps from us too, so holes
//    are not losses: stats().lost is nullopt ("overrun, count unknown") and
//    stats().skipped says how many numbers were not seen.
// async_receive completes with error::overrun once per ENOBUFS from the
// socket, and once per batch of messages the subscription's bounded queue
// dropped (this listener's consumer fell behind the client's reader); the
// event during which the drop was noticed is held back and delivered by the
// next receive. Not every hole gets its own report: the kernel reports
// ENOBUFS once per congestion period (until the socket's queue is empty
// again), and a period can leave several holes per CPU, all of them counted
// in stats().lost. The report comes before the messages queued ahead of it
// (the client signals an overrun at once), so the count grows after it.
// async_receive_batch reports the same overruns in the same places: a batch
// ends before the event during which a drop is noticed.
//
// Use: one listener per client (filters are per socket: a BPF filter passes
// every message that is not a proc event, but a kernel mask or an IGNORE
// affects the whole socket). The client must outlive the listener. Like the
// client, not thread-safe: use it from the client's executor. async_start once,
// then one receive (async_receive or async_receive_batch) at a time.
// Cancellation: async_receive and async_receive_batch honour the cancellation
// types subscription::async_receive does; cancel() aborts them.
#pragma once

#include <cnasio/client.hpp>
#include <cnasio/error.hpp>
#include <cnasio/proc/event.hpp>
#include <cnasio/proc/filter.hpp>
#include <cnasio/proc/loss.hpp>
#include <cnasio/proc/start_fsm.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace cnasio::proc {

struct listener_options {
    /// Event types wanted; all() (the default) means no filter.
    event_mask filter = event_mask::all();
    /// Skip the proc_input probe and filter with BPF (tests of the old-kernel path).
    bool force_bpf = false;
    /// How long to wait for the ack of the 8-byte proc_input LISTEN before
    /// concluding the kernel predates 6.6 (the ack comes inside sendto() when
    /// it comes: this only bounds a busy machine).
    std::chrono::milliseconds probe_timeout{300};
    /// How long to wait for the ack of the 4-byte LISTEN.
    std::chrono::milliseconds listen_timeout{1000};
    /// Deliver acks (PROC_EVENT_NONE, e.g. other listeners' LISTEN acks) as
    /// events; by default they are only counted (stats().acks_skipped).
    bool deliver_acks = false;
    /// The subscription's queue (messages read from the socket, not yet received).
    std::size_t queue_limit = 65536;
    /// Backlog depth the queue is allocated for when the listener starts
    /// (subscription_options::keep_messages, with reserve_payload one event's
    /// size): about 100 KiB for 1024, and then a storm's backlog up to this
    /// depth allocates nothing. 0: storage comes and goes with backlogs.
    std::size_t keep_messages = 1024;
    overflow_policy policy = overflow_policy::drop_oldest;
};

struct listener_stats {
    std::uint64_t events = 0;       ///< events delivered by async_receive
    std::uint64_t acks_skipped = 0; ///< acks received and not delivered
    std::uint64_t filtered = 0;     ///< events of unwanted types dropped here (see the header comment)
    std::uint64_t malformed = 0;    ///< proc messages too short to decode
    std::uint64_t other_ids = 0;    ///< group-1 messages whose id is not {CN_IDX_PROC, CN_VAL_PROC}
    std::uint64_t overruns = 0;     ///< ENOBUFS reports (the kernel dropped messages for this socket)
    std::uint64_t queue_drops = 0;  ///< messages the subscription's full queue dropped
    std::uint64_t reported = 0;     ///< error::overrun completions (ENOBUFS and queue drops)
    std::optional<std::uint64_t> lost; ///< events lost (exact mode); nullopt with a filter: unknown
    std::uint64_t skipped = 0;      ///< sequence numbers not seen (filtered or lost)
};

namespace detail {

struct listener_state {
    listener_state(client& c, const listener_options& o)
        : c(&c), options(o), fsm(start_config{o.filter, o.force_bpf, o.probe_timeout, o.listen_timeout}),
          wanted(fsm.wanted()), loss(wanted.is_all() ? loss_mode::exact : loss_mode::filtered) {}

    client* c;
    listener_options options;
    start_fsm fsm;
    event_mask wanted;
    subscription sub;
    connector::message msg;
    loss_counter loss;
    listener_stats st;
    std::optional<event> listen_ack;
    std::optional<event> held; // came with a queue drop: delivered after the overrun report

    event scratch;              // the event process() decoded (reused: no temporary per message)
    // A batch of messages from the subscription, processed from `batch_next`
    // on; what an overrun report (or max_events) left is processed first by the
    // next receive of either kind, so nothing is lost or reordered.
    std::vector<connector::message> batch;
    std::size_t batch_next = 0;
    std::size_t batch_end = 0;

    enum class verdict { deliver, skip, overrun };

    bool leftover() const noexcept { return batch_next < batch_end; }

    // The subscription queue's drops so far (what process() compares).
    std::uint64_t queue_drops() const { return sub.stats().dropped; }

    // One message; `drops`: queue_drops() now. deliver: the event is in
    // `scratch`. Nothing a user sees is written unless it is delivered.
    verdict process(const connector::message& m, std::uint64_t drops) {
        // The queue's drops since the last look: the consumer fell behind.
        const bool dropped = drops > st.queue_drops;
        st.queue_drops = drops;
        const verdict nothing = dropped ? verdict::overrun : verdict::skip;
        if (m.id() != connector::proc_id) {
            ++st.other_ids;
            return nothing;
        }
        error_code ec;
        if (!decode(std::span<const std::byte>(m.payload.data(), m.payload.size()), message_numbers{m.seq(), m.ack()},
                    scratch, ec)) {
            ++st.malformed;
            return nothing;
        }
        (void)loss.feed(scratch);
        if (scratch.is_ack()) {
            if (!options.deliver_acks) {
                ++st.acks_skipped;
                return nothing;
            }
        } else {
            const auto* x = scratch.get_if<exit_event>();
            if (!wanted.is_all() && !kernel_mask_passes(wanted, scratch.what, x ? x->exit_code : 0)) {
                ++st.filtered;
                return nothing;
            }
        }
        if (dropped) {
            held = scratch;
            return verdict::overrun;
        }
        ++st.events;
        return verdict::deliver;
    }

    // The leftover messages of a batch, processed into `out` (appended) up to
    // `max` events. True: an overrun is to be reported now (`out` gained
    // nothing). A drop noticed once `out` has events stops before the message
    // that shows it: the events go first, the report with the next receive.
    bool gather(std::vector<event>& out, std::size_t max) {
        const std::uint64_t drops = queue_drops(); // nothing drops while this runs
        while (leftover() && out.size() < max) {
            if (!out.empty() && drops > st.queue_drops) break;
            switch (process(batch[batch_next++], drops)) {
            case verdict::deliver: out.push_back(scratch); break;
            case verdict::overrun: ++st.reported; return true;
            case verdict::skip: break;
            }
        }
        return false;
    }

    void refresh_stats() {
        st.lost = loss.lost();
        st.skipped = loss.skipped();
    }

    // The subscription reported ENOBUFS: counted, and the error to complete with.
    error_code socket_overrun() {
        ++st.overruns;
        ++st.reported;
        refresh_stats();
        return make_error_code(error::overrun);
    }

    // The machine's synchronous actions; each returns the outcome to feed back.
    start_event join() {
        subscription_options so;
        so.queue_limit = options.queue_limit;
        so.keep_messages = options.keep_messages;
        so.reserve_payload = event_wire_size;
        so.policy = options.policy;
        error_code ec;
        sub = c->subscribe(connector_idx, so, ec);
        return ec ? start_event::failure(ec) : start_event::joined();
    }

    start_event attach_bpf() {
        error_code ec;
        attach_filter(c->socket().native_handle(), wanted, ec);
        return ec ? start_event::failure(ec) : start_event::attached();
    }

    // The one teardown: IGNORE through the client's send path, the BPF filter
    // off, the group left. Best effort: nobody is left to tell of a failure.
    void teardown(const start_action& a) noexcept {
        if (a.ignore && c->is_open()) {
            const auto payload = op_payload(mcast_op::ignore);
            error_code ignored;
            try {
                c->send(connector::proc_id, payload, request_options{}, ignored);
            } catch (...) {
            }
        }
        if (a.detach_bpf && c->is_open()) {
            error_code ignored;
            detach_filter(c->socket().native_handle(), ignored);
        }
        if (a.leave) sub = subscription{};
    }

    // A LISTEN request through the client, matched on ack + 1.
    template <class Handler>
    void request(std::span<const std::byte> payload, std::chrono::milliseconds timeout, Handler&& h) {
        request_options ro;
        ro.match = match::ack_only;
        ro.timeout = timeout;
        c->async_request(connector::proc_id, payload, std::move(ro), std::forward<Handler>(h));
    }

    // A LISTEN request's outcome as the machine's event; an ack is counted
    // like any proc message and kept (listen_ack()).
    start_event request_outcome(error_code ec, const connector::message& reply) {
        if (ec == error::timeout) return start_event::timeout();
        if (ec) return start_event::failure(ec);
        event ev = decode(std::span<const std::byte>(reply.payload.data(), reply.payload.size()),
                          message_numbers{reply.seq(), reply.ack()}, ec);
        if (ec || !ev.is_ack()) return start_event::failure(make_error_code(error::proc_events_unsupported));
        (void)loss.feed(ev);
        const auto err = std::get<ack_event>(ev.data).err;
        listen_ack = std::move(ev);
        return start_event::ack(err);
    }

    void close() noexcept {
        const start_action a = fsm.on(start_event::close());
        if (a.what == start_action::kind::teardown) {
            teardown(a);
            (void)fsm.on(start_event::torn_down()); // a start in flight completes when its operation does
        }
        sub = subscription{};
    }
};

// Runs start_fsm: does each action, feeds back its outcome.
struct start_op {
    std::shared_ptr<listener_state> s;
    bool posted = false;
    error_code result{};

    template <class Self>
    void operator()(Self& self) {
        run(self, s->fsm.on(start_event::started()), true);
    }

    // A LISTEN request completed.
    template <class Self>
    void operator()(Self& self, error_code ec, connector::message reply) {
        run(self, s->fsm.on(s->request_outcome(ec, reply)), false);
    }

    // The one-way LISTEN was sent, or the posted completion.
    template <class Self>
    void operator()(Self& self, error_code ec) {
        if (posted) return self.complete(result);
        run(self, s->fsm.on(ec ? start_event::failure(ec) : start_event::sent()), false);
    }

private:
    template <class Self>
    void run(Self& self, start_action a, bool initiating) {
        using K = start_action::kind;
        auto& st = *s;
        for (;;) {
            switch (a.what) {
            case K::join: a = st.fsm.on(st.join()); break;
            case K::attach_bpf: a = st.fsm.on(st.attach_bpf()); break;
            case K::teardown:
                st.teardown(a);
                a = st.fsm.on(start_event::torn_down());
                break;
            case K::request: st.request(a.payload, a.timeout, std::move(self)); return;
            case K::send: st.c->async_send(connector::proc_id, a.payload, request_options{}, std::move(self)); return;
            case K::done: return finish(self, a.ec, initiating);
            case K::none:
                // Not reached: every outcome of this operation's actions leads
                // to another action or to done. Never leave the caller waiting.
                return finish(self, detail::operation_aborted(), initiating);
            }
        }
    }

    template <class Self>
    void finish(Self& self, error_code ec, bool initiating) {
        if (!initiating) return self.complete(ec);
        // Complete outside the initiating function.
        posted = true;
        result = ec;
        auto ex = s->c->get_executor();
        boost::asio::post(ex, boost::asio::append(std::move(self), error_code{}));
    }
};

struct receive_op {
    std::shared_ptr<listener_state> s;
    event* out;
    bool posted = false; // completing with what is here already (or an error), not from the subscription

    template <class Self>
    void operator()(Self& self) {
        auto& st = *s;
        // The subscription's receive honours every type; async_compose would pass terminal only.
        self.reset_cancellation_state(boost::asio::enable_total_cancellation());
        if (st.fsm.closed() || !st.fsm.running() || st.held || st.leftover()) {
            // Complete outside the initiating function.
            posted = true;
            auto ex = st.c->get_executor();
            boost::asio::post(ex, boost::asio::append(std::move(self), error_code{}));
            return;
        }
        st.sub.async_receive(st.msg, std::move(self));
    }

    template <class Self>
    void operator()(Self& self, error_code ec) {
        auto& st = *s;
        if (st.fsm.closed()) return self.complete(make_error_code(error::client_closed));
        if (!st.fsm.running()) return self.complete(boost::asio::error::not_connected);
        if (st.held) { // the event behind the previous overrun report
            ++st.st.events;
            *out = *st.held;
            st.held.reset();
            st.refresh_stats();
            return self.complete(error_code{});
        }
        if (std::exchange(posted, false)) {
            // What a batch receive left, in order, before anything newer.
            while (st.leftover()) {
                if (finish(self, st.process(st.batch[st.batch_next++], st.queue_drops()))) return;
            }
            st.sub.async_receive(st.msg, std::move(self)); // never completes inline: no recursion
            return;
        }
        if (ec == error::overrun) return self.complete(st.socket_overrun());
        if (ec) return self.complete(ec);
        if (finish(self, st.process(st.msg, st.queue_drops()))) return;
        st.sub.async_receive(st.msg, std::move(self)); // never completes inline: no recursion
    }

private:
    // Completes on a delivered event or an overrun report; false: skipped.
    template <class Self>
    bool finish(Self& self, listener_state::verdict v) {
        auto& st = *s;
        switch (v) {
        case listener_state::verdict::deliver:
            *out = st.scratch;
            st.refresh_stats();
            self.complete(error_code{});
            return true;
        case listener_state::verdict::overrun:
            ++st.st.reported;
            st.refresh_stats();
            self.complete(make_error_code(error::overrun));
            return true;
        case listener_state::verdict::skip: break;
        }
        return false;
    }
};

// The batch receive: one subscription batch of messages, each processed into
// an event as receive_op does; the same order of reports and events.
struct batch_receive_op {
    std::shared_ptr<listener_state> s;
    std::vector<event>* out;
    std::size_t max;
    bool posted = false; // as in receive_op

    template <class Self>
    void operator()(Self& self) {
        auto& st = *s;
        self.reset_cancellation_state(boost::asio::enable_total_cancellation()); // as receive_op
        if (max == 0) max = 1;
        if (st.fsm.closed() || !st.fsm.running() || st.held || st.leftover()) {
            // Complete outside the initiating function.
            posted = true;
            auto ex = st.c->get_executor();
            boost::asio::post(ex, boost::asio::append(std::move(self), error_code{}, std::size_t{0}));
            return;
        }
        st.sub.async_receive_batch(st.batch, max, std::move(self));
    }

    template <class Self>
    void operator()(Self& self, error_code ec, std::size_t n) {
        auto& st = *s;
        auto& v = *out;
        v.clear();
        if (st.fsm.closed()) return self.complete(make_error_code(error::client_closed), std::size_t{0});
        if (!st.fsm.running()) return self.complete(boost::asio::error::not_connected, std::size_t{0});
        if (std::exchange(posted, false)) {
            if (st.held) { // the event behind the previous overrun report, then what its batch left
                ++st.st.events;
                v.push_back(*st.held);
                st.held.reset();
            }
        } else {
            if (ec == error::overrun) return self.complete(st.socket_overrun(), std::size_t{0});
            if (ec) return self.complete(ec, std::size_t{0});
            // The subscription's batch: everything the client's read brought
            // (it completes a batch receive once per read), up to max.
            st.batch_next = 0;
            st.batch_end = n;
        }
        const bool overrun = st.gather(v, max);
        if (overrun || !v.empty()) {
            st.refresh_stats();
            return self.complete(overrun ? make_error_code(error::overrun) : error_code{}, v.size());
        }
        st.sub.async_receive_batch(st.batch, max, std::move(self)); // never completes inline: no recursion
    }
};

} // namespace detail

/// Process events of the kernel's proc connector through a client.
class listener {
public:
    explicit listener(client& c, listener_options options = {})
        : s_(std::make_shared<detail::listener_state>(c, options)) {}
    listener(listener&&) noexcept = default;
    listener& operator=(listener&& other) noexcept {
        if (this != &other) {
            close();
            s_ = std::move(other.s_);
        }
        return *this;
    }
    listener(const listener&) = delete;
    listener& operator=(const listener&) = delete;
    /// Sends IGNORE (if listening) and leaves the group; see close().
    ~listener() { close(); }

    /// Joins CN_IDX_PROC, sends LISTEN and sets up the filter (see the header
    /// comment). Completion signature: void(error_code). Errors:
    /// - an errno from the kernel's ack (EPERM: not permitted, e.g. without
    ///   CAP_NET_ADMIN on older kernels), or from joining the group (EPERM too);
    /// - error::connector_unreachable: not in the initial network namespace
    ///   (open the client with client_options::netns);
    /// - error::proc_events_unsupported: no ack (no CONFIG_PROC_EVENTS, or a
    ///   user/pid namespace where the connector ignores requests);
    /// - operation_aborted: the client was closed, or close() was called
    ///   during the start; error::client_closed: the listener was closed
    ///   before; in_progress: started already (or starting).
    template <class CompletionToken>
    auto async_start(CompletionToken&& token) {
        return boost::asio::async_compose<CompletionToken, void(error_code)>(detail::start_op{s_}, token,
                                                                             s_->c->get_executor());
    }

    /// Waits for the next event and writes it to `out`. Completion signature:
    /// void(error_code). error::overrun: events were lost (see stats().lost;
    /// nullopt when a filter makes the count unknown), receive again to go on;
    /// operation_aborted: cancelled; error::client_closed: closed;
    /// not_connected: async_start has not succeeded.
    template <class CompletionToken>
    auto async_receive(event& out, CompletionToken&& token) {
        return boost::asio::async_compose<CompletionToken, void(error_code)>(detail::receive_op{s_, &out}, token,
                                                                             s_->c->get_executor());
    }

    /// Waits for events and takes up to `max_events` of them (0 counts as 1)
    /// into `out`: one completion for a burst instead of one per event, with
    /// what async_receive would have delivered one by one, in the same order.
    /// Completion signature: void(error_code, std::size_t n), as
    /// subscription::async_receive_batch (which it uses: a batch of up to
    /// `max_events` messages, each decoded: all that one read of the socket
    /// brought; acks, filtered and malformed messages take no room).
    /// `out` is cleared, then holds the n events (n >= 1 on success; empty on
    /// error); its capacity is reused, so a reused vector costs no allocation
    /// once warm. Errors as async_receive's; error::overrun comes alone
    /// (n == 0), in the place async_receive reports it: events read before
    /// the loss was noticed are delivered first, the report by the next
    /// receive, and the event that came with it after the report. What a
    /// batch left (after an overrun, or beyond `max_events`) is delivered by
    /// the next receive of either kind: nothing is lost or reordered. One
    /// receive (of either kind) at a time.
    ///
    ///     std::vector<proc::event> evs;
    ///     for (;;) {
    ///         auto [ec, n] = co_await l.async_receive_batch(evs, 64, asio::as_tuple(asio::use_awaitable));
    ///         if (ec == cnasio::error::overrun) continue; // l.stats().lost, as above
    ///         if (ec) break;
    ///         for (const proc::event& ev : evs) ...
    ///     }
    template <class CompletionToken>
    auto async_receive_batch(std::vector<event>& out, std::size_t max_events, CompletionToken&& token) {
        return boost::asio::async_compose<CompletionToken, void(error_code, std::size_t)>(
            detail::batch_receive_op{s_, &out, max_events}, token, s_->c->get_executor());
    }

    /// Aborts a receive in progress (operation_aborted).
    void cancel() {
        if (s_) s_->sub.cancel();
    }

    /// Sends IGNORE (best effort, synchronously), removes the BPF filter,
    /// leaves the group. A receive in progress completes with operation_aborted.
    void close() noexcept {
        if (s_) s_->close();
    }

    filter_path path() const noexcept { return s_->fsm.path(); }
    /// The filter in force, as the kernel reads it (all(): none).
    event_mask filter() const noexcept { return s_->wanted; }
    /// An acknowledged LISTEN that close() has not answered with IGNORE yet.
    bool listening() const noexcept { return s_->fsm.listening(); }
    /// Counters (lost and skipped as the loss counter has them now).
    listener_stats stats() const noexcept {
        s_->refresh_stats();
        return s_->st;
    }
    /// The loss counter (per-CPU detail).
    const loss_counter& loss() const noexcept { return s_->loss; }
    /// The kernel's ack of our LISTEN (the 8-byte probe's on the kernel_mask path).
    const std::optional<event>& listen_ack() const noexcept { return s_->listen_ack; }
    /// Messages read from the socket and not yet received.
    std::size_t queued() const noexcept { return s_->sub.queued(); }
    /// The subscription's counters (queue drops).
    subscription_stats subscription_statistics() const { return s_->sub.stats(); }

private:
    std::shared_ptr<detail::listener_state> s_;
};

} // namespace cnasio::proc
