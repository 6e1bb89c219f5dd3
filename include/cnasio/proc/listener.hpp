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
// Starting (the order matters, see KERNEL-FACTS and filter.hpp):
//  1. join group CN_IDX_PROC first: a LISTEN sent before joining is accepted
//     but nothing arrives, not even its ack;
//  2. LISTEN through the request layer, matched on ack + 1 only (the proc
//     connector overwrites seq with its per-CPU counter). The ack's `err` is
//     the kernel's answer (EPERM without CAP_NET_ADMIN on kernels before 6.x);
//     no ack at all means the kernel has no proc connector, or this process is
//     in a user or pid namespace where the connector ignores it.
//  Filtering (only when a filter other than "all" is asked for):
//   - 6.6+ kernels: the 8-byte proc_input LISTEN with mask ALL is sent first,
//     because only a socket whose mask is exactly ALL sees its own ack; once
//     acked, the same LISTEN with the real mask follows (no ack can come back:
//     the mask now hides acks). A second LISTEN on one socket counts once in
//     the kernel's listener count on these kernels.
//   - No ack to the 8-byte form within `probe_timeout`: the kernel predates
//     6.6 (it drops 8-byte requests without counting them). Then a classic
//     BPF socket filter (filter.hpp) is attached and the 4-byte LISTEN sent.
//   Either way filtered-out events never reach user space, except in the short
//   window between the two 8-byte LISTENs: events of other types that arrive
//   then are dropped here (counted in stats().filtered).
// Stopping: close() (and the destructor) send IGNORE - the kernel does not
// decrement its listener count when a socket closes - detach the BPF filter
// and leave the group. IGNORE is only sent after an acknowledged LISTEN: before
// 6.6 every IGNORE decrements the count, also one that answers no LISTEN.
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
//
// Use: one listener per client (filters are per socket: a BPF filter passes
// every message that is not a proc event, but a kernel mask or an IGNORE
// affects the whole socket). The client must outlive the listener. Like the
// client, not thread-safe: use it from the client's executor. async_start once,
// then one async_receive at a time. Cancellation: async_receive honours the
// cancellation types subscription::async_receive does; cancel() aborts it.
#pragma once

#include <cnasio/client.hpp>
#include <cnasio/error.hpp>
#include <cnasio/proc/event.hpp>
#include <cnasio/proc/filter.hpp>
#include <cnasio/proc/loss.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/async_result.hpp>
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

/// How the event-type filter is applied.
enum class filter_path {
    none,        ///< no filter: every event type (and exact loss counts)
    kernel_mask, ///< the 6.6+ proc_input mask (cn_filter() in the kernel)
    bpf,         ///< a classic BPF socket filter (kernels before 6.6, or forced)
};

inline const char* to_string(filter_path p) noexcept {
    switch (p) {
    case filter_path::none: return "none";
    case filter_path::kernel_mask: return "kernel_mask";
    case filter_path::bpf: return "bpf";
    }
    return "?";
}

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
        : c(&c), options(o), wanted(o.filter.kernel_effective()),
          loss(wanted.is_all() ? loss_mode::exact : loss_mode::filtered) {}

    client* c;
    listener_options options;
    event_mask wanted;
    subscription sub;
    connector::message msg;
    loss_counter loss;
    listener_stats st;
    filter_path path = filter_path::none;
    std::array<std::byte, 8> request_payload{};
    std::optional<event> listen_ack;
    std::optional<event> held; // came with a queue drop: delivered after the overrun report
    bool started = false, starting = false, listening = false, bpf_attached = false, closed = false;

    enum class verdict { deliver, skip, overrun };

    verdict process(const connector::message& m, event& out) {
        // The queue's drops since the last look: the consumer fell behind.
        const auto drops = sub.stats().dropped;
        const bool dropped = drops > st.queue_drops;
        st.queue_drops = drops;
        const verdict nothing = dropped ? verdict::overrun : verdict::skip;
        if (m.id() != connector::proc_id) {
            ++st.other_ids;
            return nothing;
        }
        error_code ec;
        event ev = decode(std::span<const std::byte>(m.payload.data(), m.payload.size()),
                          message_numbers{m.seq(), m.ack()}, ec);
        if (ec) {
            ++st.malformed;
            return nothing;
        }
        (void)loss.feed(ev);
        if (ev.is_ack()) {
            if (!options.deliver_acks) {
                ++st.acks_skipped;
                return nothing;
            }
        } else {
            const auto* x = ev.get_if<exit_event>();
            if (!wanted.is_all() && !kernel_mask_passes(wanted, ev.what, x ? x->exit_code : 0)) {
                ++st.filtered;
                return nothing;
            }
        }
        if (dropped) {
            held = std::move(ev);
            return verdict::overrun;
        }
        ++st.events;
        out = std::move(ev);
        return verdict::deliver;
    }

    void refresh_stats() {
        st.lost = loss.lost();
        st.skipped = loss.skipped();
    }

    // A LISTEN request through the client, matched on ack + 1.
    template <class Handler>
    void request(std::span<const std::byte> payload, std::chrono::milliseconds timeout, Handler&& h) {
        request_options ro;
        ro.match = match::ack_only;
        ro.timeout = timeout;
        c->async_request(connector::proc_id, payload, std::move(ro), std::forward<Handler>(h));
    }

    // The reply to a LISTEN: its err as an error_code; counted like any proc message.
    error_code take_ack(const connector::message& reply) {
        error_code ec;
        event ev = decode(std::span<const std::byte>(reply.payload.data(), reply.payload.size()),
                          message_numbers{reply.seq(), reply.ack()}, ec);
        if (ec || !ev.is_ack()) return make_error_code(error::proc_events_unsupported);
        (void)loss.feed(ev);
        const auto err = std::get<ack_event>(ev.data).err;
        listen_ack = std::move(ev);
        return err == 0 ? error_code{} : errno_code(static_cast<int>(err));
    }

    void ignore_now() noexcept {
        if (!listening || !c->is_open()) return;
        listening = false;
        connector::header h;
        h.id = connector::proc_id;
        h.nlmsg_pid = c->port_id();
        const auto payload = op_payload(mcast_op::ignore);
        error_code ignored;
        c->socket().send(h, payload, ignored); // best effort: nobody is left to tell
    }

    void close() noexcept {
        if (closed) return;
        closed = true;
        ignore_now();
        if (bpf_attached && c->is_open()) {
            error_code ignored;
            detach_filter(c->socket().native_handle(), ignored);
        }
        bpf_attached = false;
        sub = subscription{};
    }
};

struct start_op {
    std::shared_ptr<listener_state> s;
    enum class step { begin, fail, probe, mask_sent, listen } at = step::begin;
    error_code failure{};

    template <class Self>
    void operator()(Self& self) {
        auto& st = *s;
        if (st.closed) return post_failure(self, error::client_closed);
        if (st.started || st.starting) return post_failure(self, boost::asio::error::in_progress);
        st.starting = true;
        subscription_options so;
        so.queue_limit = st.options.queue_limit;
        so.policy = st.options.policy;
        error_code ec;
        st.sub = st.c->subscribe(connector_idx, so, ec); // before LISTEN, always
        if (ec) return post_failure(self, ec);
        if (st.wanted.is_all()) return listen4(self);
        if (st.options.force_bpf) return attach_bpf_and_listen(self);
        at = step::probe;
        st.request_payload = input_payload(mcast_op::listen, event_mask::all());
        st.request(st.request_payload, st.options.probe_timeout, std::move(self));
    }

    // After a request: the probe's or the 4-byte LISTEN's ack.
    template <class Self>
    void operator()(Self& self, error_code ec, connector::message reply) {
        auto& st = *s;
        if (at == step::probe) {
            if (ec == error::timeout) return attach_bpf_and_listen(self); // before 6.6
            if (!ec) ec = st.take_ack(reply);
            if (ec) return done(self, ec);
            st.listening = true; // counted by the kernel: IGNORE owed from here on
            at = step::mask_sent;
            st.request_payload = input_payload(mcast_op::listen, st.wanted);
            request_options ro;
            st.c->async_send(connector::proc_id, st.request_payload, ro, std::move(self));
            return;
        }
        // step::listen
        if (ec == error::timeout) ec = error::proc_events_unsupported;
        if (!ec) ec = st.take_ack(reply);
        if (!ec) st.listening = true;
        done(self, ec);
    }

    // After the masked LISTEN was sent, or a posted failure.
    template <class Self>
    void operator()(Self& self, error_code ec) {
        if (at == step::fail) return done(self, failure);
        if (!ec) s->path = filter_path::kernel_mask;
        done(self, ec);
    }

private:
    template <class Self>
    void listen4(Self& self) {
        at = step::listen;
        auto& st = *s;
        const auto p = op_payload(mcast_op::listen);
        std::copy(p.begin(), p.end(), st.request_payload.begin());
        st.request(std::span<const std::byte>(st.request_payload.data(), p.size()), st.options.listen_timeout,
                   std::move(self));
    }

    template <class Self>
    void attach_bpf_and_listen(Self& self) {
        auto& st = *s;
        error_code ec;
        attach_filter(st.c->socket().native_handle(), st.wanted, ec);
        if (ec) return done(self, ec);
        st.bpf_attached = true;
        st.path = filter_path::bpf;
        listen4(self);
    }

    template <class Self>
    void post_failure(Self& self, error_code ec) {
        at = step::fail;
        failure = ec;
        auto ex = s->c->get_executor();
        boost::asio::post(ex, boost::asio::append(std::move(self), error_code{}));
    }

    template <class Self>
    void done(Self& self, error_code ec) {
        auto& st = *s;
        if (at != step::fail || failure != boost::asio::error::in_progress) {
            st.starting = false;
            if (ec) {
                // Undo what this attempt set up; the listener can be closed or destroyed.
                st.ignore_now();
                if (st.bpf_attached && st.c->is_open()) {
                    error_code ignored;
                    detach_filter(st.c->socket().native_handle(), ignored);
                }
                st.bpf_attached = false;
                st.path = filter_path::none;
                st.sub = subscription{};
            } else {
                st.started = true;
            }
        }
        self.complete(ec);
    }
};

struct receive_op {
    std::shared_ptr<listener_state> s;
    event* out;
    bool started = false;

    template <class Self>
    void operator()(Self& self) {
        auto& st = *s;
        started = true;
        if (st.closed || !st.started || st.held) {
            // Complete outside the initiating function.
            auto ex = st.c->get_executor();
            boost::asio::post(ex, boost::asio::append(std::move(self), error_code{}));
            return;
        }
        st.sub.async_receive(st.msg, std::move(self));
    }

    template <class Self>
    void operator()(Self& self, error_code ec) {
        auto& st = *s;
        if (st.closed) return self.complete(make_error_code(error::client_closed));
        if (!st.started) return self.complete(boost::asio::error::not_connected);
        if (st.held) { // the event behind the previous overrun report
            ++st.st.events;
            *out = std::move(*st.held);
            st.held.reset();
            st.refresh_stats();
            return self.complete(error_code{});
        }
        if (ec == error::overrun) {
            ++st.st.overruns;
            ++st.st.reported;
            st.refresh_stats();
            return self.complete(ec);
        }
        if (ec) return self.complete(ec);
        switch (st.process(st.msg, *out)) {
        case listener_state::verdict::deliver: st.refresh_stats(); return self.complete(error_code{});
        case listener_state::verdict::overrun:
            ++st.st.reported;
            st.refresh_stats();
            return self.complete(make_error_code(error::overrun));
        case listener_state::verdict::skip: break;
        }
        st.sub.async_receive(st.msg, std::move(self)); // never completes inline: no recursion
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
    /// - operation_aborted (client closed), in_progress (started already).
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

    /// Aborts a receive in progress (operation_aborted).
    void cancel() {
        if (s_) s_->sub.cancel();
    }

    /// Sends IGNORE (best effort, synchronously), removes the BPF filter,
    /// leaves the group. A receive in progress completes with operation_aborted.
    void close() noexcept {
        if (s_) s_->close();
    }

    filter_path path() const noexcept { return s_->path; }
    /// The filter in force, as the kernel reads it (all(): none).
    event_mask filter() const noexcept { return s_->wanted; }
    bool listening() const noexcept { return s_->listening; }
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
