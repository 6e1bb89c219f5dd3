// cnasio/client.hpp - requests and subscriptions over one connector socket.
//
// A `client` owns a connector socket and the one receive loop that reads it.
// Every message read goes to the pending request it answers (see
// detail/correlator.hpp) or else to the subscribers of the group it came
// through (see detail/fanout.hpp); nothing else reads the socket.
//
//     cnasio::client c(io.get_executor());
//     auto reply = co_await c.async_request({idx, val}, payload, asio::use_awaitable);
//
// Receive path: one Asio receive operation waits for the first datagram, then
// the loop drains whatever else is queued with non-blocking recvmsg calls
// before it waits again, so a burst costs one reactor round trip, not one per
// datagram. Right after a request is sent the loop also looks once without
// waiting: the kernel runs a connector callback inside sendto(), so its reply
// is often queued already.
//
// Senders: only port id 0 (the kernel) is believed by default. Any local
// process with CAP_NET_ADMIN can unicast to our port id a message that claims
// anything in its headers; `client_options::admitted_ports` adds user-space
// peers to trust. Everything else is dropped and counted (stats().rejected).
//
// Threads: like an Asio socket, a client is not thread-safe. Call it, and the
// subscriptions it made, from its executor: a single-threaded io_context, or
// a strand when the io_context runs on several threads. Completions run on each
// handler's associated executor.
//
// Cancellation: async_request and subscription::async_receive honour terminal,
// partial and total cancellation. A cancelled request leaves the pending table
// at once and a reply arriving later is counted as late.
#pragma once

#include <cnasio/connector/framing.hpp>
#include <cnasio/connector/message.hpp>
#include <cnasio/connector/socket.hpp>
#include <cnasio/detail/correlator.hpp>
#include <cnasio/detail/fanout.hpp>
#include <cnasio/error.hpp>
#include <cnasio/netlink/options.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <variant>
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
    /// Network namespace file to create the socket in (e.g. "/proc/1/ns/net"); empty: the caller's.
    std::string netns{};
    /// Netlink family (NETLINK_CONNECTOR unless a peer speaks connector framing elsewhere).
    netlink::protocol protocol = netlink::protocol::connector();
    /// Datagrams drained per turn before the loop lets other handlers run;
    /// also the most completions one posted function hands out in a row to a
    /// subscription's receive loop, or to the requests' handlers.
    std::size_t drain_batch = 256;
};

/// How one request is sent and matched.
struct request_options {
    cnasio::match match = match::seq_and_ack;
    /// 0: the client's default_timeout.
    std::chrono::milliseconds timeout{0};
    /// For match::custom.
    reply_matcher matcher{};
    /// Destination port id: 0 is the kernel.
    std::uint32_t port_id = 0;
    /// cn_msg.flags of the request.
    std::uint16_t flags = 0;
};

/// How one subscription queues.
struct subscription_options {
    /// Messages queued before the overflow policy applies.
    std::size_t queue_limit = 4096;
    overflow_policy policy = overflow_policy::drop_oldest;
    /// Only messages for this connector id (both zero: every id of the group).
    connector::id only_id{};
};

/// Counters of a client; every message read is counted in exactly one of
/// replies, unsolicited, late_replies, duplicate_replies, rejected, malformed.
struct client_stats {
    std::uint64_t datagrams = 0;         ///< datagrams read
    std::uint64_t reads = 0;             ///< system calls that read datagrams (recvmmsg: up to 32 each)
    std::uint64_t wakeups = 0;           ///< readiness waits that completed (datagrams / wakeups = burst size)
    std::uint64_t replies = 0;           ///< messages that answered a pending request
    std::uint64_t unsolicited = 0;       ///< messages that answered nothing (to subscribers, if any)
    std::uint64_t unclaimed = 0;         ///< ...of which no subscriber wanted
    std::uint64_t late_replies = 0;      ///< replies after their request timed out or was cancelled (dropped)
    std::uint64_t duplicate_replies = 0; ///< further replies to an answered request (dropped)
    std::uint64_t rejected = 0;          ///< messages from a port id that is not admitted (dropped)
    std::uint64_t malformed = 0;         ///< messages the framing layer refused (dropped)
    std::uint64_t overruns = 0;          ///< ENOBUFS reports: the kernel dropped messages for us
    std::uint64_t timeouts = 0;          ///< requests that ended with error::timeout
};

class subscription;

namespace detail {

struct subscriber;

// Erasing a handler allocates its state with the handler's associated
// allocator; any_completion_handler falls back to Asio's per-thread recycling
// allocator when the handler names none. A composed operation (async_compose:
// proc::listener's receive, a user's own) names std::allocator<void> when its
// handler has none, which would cost a malloc and a free per operation. Such
// handlers are given the recycling allocator, which keeps std::allocator's
// meaning and caches freed blocks per thread.
template <class Erased, class Handler>
Erased erase_handler(Handler&& handler) {
    using bare = std::decay_t<Handler>;
    if constexpr (std::is_same_v<boost::asio::associated_allocator_t<bare>, std::allocator<void>>)
        return Erased(boost::asio::bind_allocator(boost::asio::recycling_allocator<void>(),
                                                  std::forward<Handler>(handler)));
    else
        return Erased(std::forward<Handler>(handler));
}

// All client state. Shared with the handlers of outstanding operations, so it
// outlives the client object until the last of them has run.
struct client_state : std::enable_shared_from_this<client_state> {
    using executor_type = boost::asio::any_io_executor;
    using clock = std::chrono::steady_clock;
    using reply_handler = boost::asio::any_completion_handler<void(error_code, connector::message)>;
    using into_handler = boost::asio::any_completion_handler<void(error_code)>;

    // A pending request: who to tell, and where its reply goes.
    struct pending {
        std::variant<reply_handler, into_handler> handler;
        connector::message* into = nullptr; // the caller's message, for into_handler
        bool local = false;                 // see post_completion
    };
    using table = correlator<pending>;

    client_state(const executor_type& ex, client_options o)
        : ex(ex), sock(ex), timer(ex), send_retry(ex), options(std::move(o)), rng(std::random_device{}()) {}

    // The socket and timers are made on `ex`, so the internal handlers run there
    // without a bind_executor (whose second executor costs a type-erased
    // work-tracking copy per operation).
    executor_type ex;
    connector::socket sock;
    boost::asio::steady_timer timer;
    boost::asio::steady_timer send_retry;
    client_options options;
    table requests;
    fanout<subscriber> subscribers;
    client_stats stats;
    std::mt19937 rng;
    // drain() reads a burst with one recvmmsg() into receive_slots slots of the largest datagram.
    // Left uninitialised: the allocation is mapped lazily, so a slot's pages cost memory only
    // once a datagram has landed there (a small message touches one page of its slot).
    static constexpr std::size_t receive_slots = 32;
    connector::receive_batch<receive_slots> received;
    std::deque<std::pair<std::vector<std::byte>, std::uint32_t>> send_queue; // waiting for room at a peer
    std::size_t receive_buffer_obtained = 0;
    std::size_t receive_buffer_asked = 0;
    bool sized_for_subscription = false;
    bool reading = false, draining = false, sending = false, closed = false;
    clock::time_point timer_at = clock::time_point::max();

    bool admitted(std::uint32_t port) const {
        return port == 0 ||
               std::find(options.admitted_ports.begin(), options.admitted_ports.end(), port) !=
                   options.admitted_ports.end();
    }
    bool wants_to_read() const { return !closed && (!requests.empty() || !subscribers.empty()); }

    // ---- completions: always posted, never run inside the caller ----

    // Runs the handler from the client's executor, then on its own associated
    // executor (dispatch: no second hop when they are the same). Handlers are
    // type-erased, and an erased handler's executor can only be dispatched to.
    //
    // `local`: the handler's executor is the client's own (checked with the
    // concrete handler when the operation started), so the posted function
    // calls it directly. Asking an erased handler for its executor builds an
    // any_completion_executor, which allocates: not on every message.
    template <class Handler, class... Args>
    void post_completion(Handler&& h, bool local, Args&&... args) {
        if (local) {
            boost::asio::post(ex, [h = std::forward<Handler>(h), ... args = std::forward<Args>(args)]() mutable {
                std::move(h)(std::move(args)...);
            });
            return;
        }
        boost::asio::post(ex, [ex = ex, h = std::forward<Handler>(h), ... args = std::forward<Args>(args)]() mutable {
            auto hex = boost::asio::get_associated_executor(h, ex);
            boost::asio::dispatch(hex, boost::asio::append(std::move(h), std::move(args)...));
        });
    }

    // Request completions whose handler runs on the client's executor, called in order by one
    // posted function (run_ready). A loop of requests answered inside sendto() (the kernel's
    // connectors) then goes on from request to request within that function: the next request's
    // completion is queued here while the handler runs, and called when it returns, so the loop
    // pays no scheduler lap (and no reactor poll) per request, up to drain_batch completions per
    // turn. Each call still comes after its initiating function returned, on the handler's
    // executor, as with a post.
    struct ready_request {
        std::variant<reply_handler, into_handler> handler;
        error_code ec;
        connector::message reply; // for reply_handler
    };
    std::vector<ready_request> ready;
    std::size_t ready_head = 0;
    bool ready_posted = false;

    // While the readiness handler drains, the completions it makes ready are not posted: they run
    // at its end (run_deferred). That handler is itself a function running on the client's
    // executor after every initiating function returned, so this is as good as a post, and a
    // wake-up then costs one scheduler lap and one reactor poll instead of two.
    bool in_readiness = false;
    bool ready_deferred = false;
    std::vector<std::shared_ptr<subscriber>> deferred_serve, serving;

    void complete_request(std::variant<reply_handler, into_handler>&& h, bool local, error_code ec,
                          connector::message&& m) {
        if (!local) {
            std::visit(
                [&](auto& hh) {
                    using H = std::decay_t<decltype(hh)>;
                    if constexpr (std::is_same_v<H, reply_handler>)
                        post_completion(std::move(hh), false, ec, std::move(m));
                    else
                        post_completion(std::move(hh), false, ec);
                },
                h);
            return;
        }
        ready.push_back({std::move(h), ec, std::move(m)});
        if (ready_posted) return;
        ready_posted = true;
        if (in_readiness) {
            ready_deferred = true;
            return;
        }
        boost::asio::post(ex, [self = shared_from_this()] { self->run_ready(); });
    }

    void run_ready() {
        try {
            for (std::size_t n = 0; n < options.drain_batch && ready_head < ready.size(); ++n) {
                ready_request r = std::move(ready[ready_head++]); // the handler may queue more
                std::visit(
                    [&](auto& h) {
                        using H = std::decay_t<decltype(h)>;
                        if constexpr (std::is_same_v<H, reply_handler>)
                            std::move(h)(r.ec, std::move(r.reply));
                        else
                            std::move(h)(r.ec);
                    },
                    r.handler);
            }
        } catch (...) {
            // A handler threw: the exception leaves io_context::run(), as from any handler; the
            // completions behind it run when run() is called again.
            if (ready_head < ready.size())
                boost::asio::post(ex, [self = shared_from_this()] { self->run_ready(); });
            else {
                ready.clear();
                ready_head = 0;
                ready_posted = false;
            }
            throw;
        }
        if (ready_head < ready.size()) { // the turn's limit: let others run, then go on
            boost::asio::post(ex, [self = shared_from_this()] { self->run_ready(); });
            return;
        }
        ready.clear(); // keeps the capacity: no allocation once warm
        ready_head = 0;
        ready_posted = false;
    }

    /// True when `h` will run on exactly this client's executor.
    template <class Handler>
    bool runs_here(const Handler& h) const {
        auto hex = boost::asio::get_associated_executor(h, ex);
        if constexpr (std::is_same_v<decltype(hex), executor_type>)
            return hex == ex;
        else if constexpr (std::is_copy_constructible_v<decltype(hex)> &&
                           std::is_same_v<std::decay_t<decltype(hex)>, boost::asio::io_context::executor_type>) {
            const auto* mine = ex.target<boost::asio::io_context::executor_type>();
            return mine && *mine == hex;
        } else
            return false;
    }

    // `in_slot`: called from the request's own cancellation handler, which
    // must not clear (destroy) itself while it runs; a stale handler left in
    // the slot is harmless, as its ticket no longer names a request.
    void finish(typename table::ticket t, error_code ec, const connector::message_view* reply,
                typename table::outcome how, bool in_slot = false) {
        auto p = requests.take(t, how);
        if (!p) return;
        connector::message m;
        std::visit(
            [&](auto& h) {
                if (!in_slot) boost::asio::get_associated_cancellation_slot(h).clear();
                using H = std::decay_t<decltype(h)>;
                if constexpr (std::is_same_v<H, reply_handler>) {
                    if (reply) m.assign(*reply);
                } else {
                    if (reply && p->into) p->into->assign(*reply);
                }
            },
            p->handler);
        complete_request(std::move(p->handler), p->local, ec, std::move(m));
    }

    // ---- requests ----

    // Sizes the receive buffer (FORCE, then the capped SO_RCVBUF); a smaller
    // grant still works, and what the kernel granted is observable. The first
    // subscription decides (its option is the user's word on how much
    // multicast to hold); before that, the first request asks for room for
    // replies.
    void size_receive_buffer(std::size_t bytes, bool for_subscription) {
        if (sized_for_subscription || bytes == 0) return;
        if (!for_subscription && receive_buffer_asked != 0) return;
        receive_buffer_asked = bytes;
        sized_for_subscription = for_subscription;
        error_code ignored;
        receive_buffer_obtained = netlink::set_receive_buffer(sock.next_layer(), bytes, ignored).obtained;
    }

    void start_request(connector::id id, std::span<const std::byte> payload, request_options ro,
                       std::variant<reply_handler, into_handler> handler, connector::message* into, bool local) {
        auto fail = [&](error_code ec) { complete_request(std::move(handler), local, ec, connector::message{}); };
        if (closed) return fail(error::client_closed);
        if (payload.size() > connector::max_payload) return fail(error::payload_too_large);
        size_receive_buffer(options.request_receive_buffer, false);

        std::uint32_t ack;
        do ack = static_cast<std::uint32_t>(rng()); while (!requests.ack_free(ack));
        connector::header h;
        h.id = id;
        h.seq = requests.next_seq();
        h.ack = ack;
        h.flags = ro.flags;
        h.nlmsg_seq = h.seq;
        h.nlmsg_pid = sock.port_id();
        error_code ec;
        send(h, payload, ro.port_id, ec);
        if (ec) return fail(ec);

        const auto timeout = ro.timeout.count() > 0 ? ro.timeout : options.default_timeout;
        const auto deadline = clock::now() + timeout;
        const auto mode = ro.match;
        auto t = requests.add(mode, h.seq, ack, std::move(ro.matcher), deadline, pending{std::move(handler), into, local});

        // Per-operation cancellation: the request leaves the table at once.
        std::visit(
            [&](auto& hd) {
                auto slot = boost::asio::get_associated_cancellation_slot(hd);
                if (slot.is_connected())
                    slot.template emplace<cancel_request>(weak_from_this(), t);
            },
            requests.find(t)->handler);

        arm_timer(deadline);
        // The kernel's connectors answer inside sendto(), so a reply from port 0 may be queued
        // already. A user-space peer answers from its own thread, after a wake-up that takes far
        // longer than returning from sendto(): a read now would nearly always find nothing.
        if (ro.port_id == 0) drain_for(t);
        arm_read();
    }

    // The read right after a send. The kernel's connectors answer inside sendto(), so the reply
    // is usually queued already: read one datagram at a time and stop as soon as request `t` has
    // ended. What is queued behind it is left to the readiness wait (its arrival woke the
    // reactor, and a wait armed later sees it at once), which saves the read that would find
    // the queue empty: one system call of about four on the proc connector's round trip.
    void drain_for(typename table::ticket t) {
        if (draining || closed) return;
        draining = true;
        std::size_t n = 0;
        while (!closed && requests.find(t) && n < options.drain_batch && read_burst(1, n) == burst::read) {
        }
        draining = false;
    }

    struct cancel_request {
        // Declared, not aggregate: slot.emplace() constructs with (args...),
        // which clang before 16 cannot do for an aggregate (P0960).
        cancel_request(std::weak_ptr<client_state> s, typename table::ticket t) : state(std::move(s)), ticket(t) {}
        std::weak_ptr<client_state> state;
        typename table::ticket ticket;
        void operator()(boost::asio::cancellation_type type) {
            if (type == boost::asio::cancellation_type::none) return;
            if (auto s = state.lock())
                s->finish(ticket, boost::asio::error::operation_aborted, nullptr, table::outcome::expired, true);
        }
    };

    void send(const connector::header& h, std::span<const std::byte> payload, std::uint32_t port, error_code& ec) {
        const netlink::endpoint to(options.protocol, port, 0);
        if (send_queue.empty()) {
            sock.send(h, payload, ec, to);
            if (ec != boost::asio::error::would_block) return;
            ec.clear();
        }
        // The peer's queue is full: keep the order, send when it has room.
        std::vector<std::byte> d = connector::build_datagram(h, payload, ec);
        if (ec) return;
        send_queue.emplace_back(std::move(d), port);
        flush_sends();
    }

    // A full peer queue does not make our socket unwritable (netlink has no
    // flow control towards the sender), so waiting for writability would
    // spin: retry after a short pause instead.
    void flush_sends() {
        if (sending) return;
        while (!send_queue.empty()) {
            error_code ec;
            auto& [d, port] = send_queue.front();
            if (!connector::try_send(sock.native_handle(), d, netlink::endpoint(options.protocol, port, 0), ec) &&
                !ec) {
                sending = true;
                send_retry.expires_after(std::chrono::microseconds(200));
                send_retry.async_wait([self = shared_from_this()](error_code wec) {
                    self->sending = false;
                    if (!wec && !self->closed) self->flush_sends();
                });
                return;
            }
            // A send that fails now has no caller left to tell; its request will time out.
            send_queue.pop_front();
        }
    }

    // ---- timeouts ----

    void arm_timer(clock::time_point deadline) {
        if (deadline >= timer_at) return;
        timer_at = deadline;
        timer.expires_at(deadline);
        timer.async_wait([self = shared_from_this()](error_code ec) {
            if (ec == boost::asio::error::operation_aborted) return; // re-armed earlier, or closed
            self->on_timer();
        });
    }

    void on_timer() {
        timer_at = clock::time_point::max();
        if (closed) return;
        requests.for_each_expired(clock::now(), [&](typename table::ticket t) {
            ++stats.timeouts;
            finish(t, error::timeout, nullptr, table::outcome::expired);
        });
        if (auto next = requests.next_deadline()) arm_timer(*next);
    }

    // ---- receiving ----

    // Waits for readability; drain() then reads every datagram, in order, into
    // buffers no pending operation owns, which lets a request drain right after
    // its sendto() while this wait is pending. No readiness is lost between a
    // drain that ended on an empty queue and this wait: Asio registers a wait
    // with EPOLL_CTL_MOD, and the kernel re-checks readiness on that call
    // (ep_modify), so data that arrived in between, or a pending ENOBUFS
    // (EPOLLERR), completes the wait at the reactor's next turn, even when
    // another thread's reactor took the earlier edge. A wait costs that one
    // epoll_ctl; the zero-length MSG_PEEK receive it replaced cost two reads
    // (one tried at once, one when ready).
    void arm_read() {
        if (reading || draining || !wants_to_read()) return;
        reading = true;
        sock.next_layer().async_wait(
            boost::asio::socket_base::wait_read,
            [self = shared_from_this()](error_code ec) {
                self->reading = false;
                self->on_readable(ec);
            });
    }

    void on_readable(error_code ec) {
        if (closed || ec == boost::asio::error::operation_aborted) return;
        ++stats.wakeups;
        if (ec) {
            fail_all(ec); // a broken socket: every pending request learns why
            return;
        }
        in_readiness = true;
        drain();
        in_readiness = false;
        arm_read();
        run_deferred();
    }

    void run_deferred();

    // Reads everything already queued, without waiting.
    void drain() {
        if (draining || closed) return;
        draining = true;
        std::size_t n = 0;
        while (!closed && read_burst(receive_slots, n) == burst::read) {
            if (n >= options.drain_batch) { // let others run; come back without waiting
                boost::asio::post(ex, [self = shared_from_this()] {
                    self->draining = false;
                    self->drain();
                    self->arm_read();
                });
                return;
            }
        }
        draining = false;
    }

    enum class burst { read, drained, broken };

    // Reads up to `max` queued datagrams with one recvmmsg() and dispatches them, adding them to
    // `n` (an overrun counts as one, so that a drain always moves towards its batch limit). An
    // overrun is reported and reading goes on; any other error means a broken socket, and every
    // pending request learns why.
    //
    // Fewer than `max` means the queue was empty (recvmmsg stops at the first EAGAIN), so the
    // burst reports `drained` and nobody calls again just to hear EAGAIN: the wait that
    // arm_read() starts next completes at once for whatever arrived since (or for the
    // ENOBUFS that recvmmsg leaves in sk_err when it fails after the first datagram).
    burst read_burst(std::size_t max, std::size_t& n) {
        error_code ec;
        const std::size_t got = received.receive(sock.native_handle(), max, ec);
        ++stats.reads;
        for (std::size_t i = 0; i < got && !closed; ++i) dispatch(received[i]);
        n += got;
        if (ec == error::overrun) {
            ++n;
            on_overrun();
            return burst::read;
        }
        if (ec) {
            fail_all(ec);
            return burst::broken;
        }
        return got == max ? burst::read : burst::drained;
    }

    void dispatch(const connector::received_datagram& d) {
        ++stats.datagrams;
        const bool trusted = admitted(d.port_id());
        d.reader().for_each(
            [&](const connector::message_view& m) {
                if (trusted)
                    deliver(m, d.group());
                else
                    ++stats.rejected;
            },
            [&](error_code, const connector::message_view&) {
                if (trusted)
                    ++stats.malformed;
                else
                    ++stats.rejected;
            });
    }

    void deliver(const connector::message_view& m, unsigned group);

    void on_overrun();

    void fail_all(error_code ec) {
        for (auto t : requests.pending()) finish(t, ec, nullptr, table::outcome::expired);
    }

    void close();
};

// A subscription's queue and its waiting receiver.
struct subscriber : std::enable_shared_from_this<subscriber> {
    using into_handler = boost::asio::any_completion_handler<void(error_code)>;
    using value_handler = boost::asio::any_completion_handler<void(error_code, connector::message)>;
    using batch_handler = boost::asio::any_completion_handler<void(error_code, std::size_t)>;

    subscriber(unsigned g, const subscription_options& o) : group(g), only_id(o.only_id), queue(o.queue_limit, o.policy) {}

    unsigned group;
    connector::id only_id;
    subscriber_queue queue;
    std::variant<std::monostate, into_handler, value_handler, batch_handler> waiter; // a receive in progress
    connector::message* out = nullptr;             // for into_handler
    std::vector<connector::message>* batch = nullptr; // for batch_handler
    std::size_t batch_max = 0;
    bool local = false; // see client_state::post_completion
    bool trampoline_posted = false; // see serve()

    bool waiting() const noexcept { return waiter.index() != 0; }
    bool has_news() const noexcept { return queue.overrun_pending() || !queue.empty(); }

    bool accepts(const connector::message_view& m) const {
        return (only_id.idx == 0 && only_id.val == 0) || m.id() == only_id;
    }

    // Most consumers receive in a loop: a coroutine, or a handler that starts
    // the next receive. A completion posted for each message costs a lap of
    // the scheduler (and a reactor poll) per message, while the receive loop
    // reads everything queued per lap, so such a consumer falls behind a
    // sender that a raw recv() loop keeps up with. So a receive whose handler
    // runs on the client's own executor is completed by a trampoline: one
    // posted function that calls the handler, and, while the handler has
    // started the next receive and messages are queued, calls the next one,
    // up to client_options::drain_batch calls: as many as the receive loop may
    // read in one lap, so a consumer that keeps up with the socket keeps up
    // with the loop. Each call happens after the initiating function has
    // returned, from a function running on the handler's executor, as with a
    // post; the only difference is that queued messages are handed out before
    // other posted work, for at most that many calls.

    // Completes the waiting receive if there is something to give it.
    void serve(client_state& c) {
        if (!waiting() || trampoline_posted || !has_news()) return;
        if (local) return post_trampoline(c);
        complete_one(c, [&](auto&& h, auto&&... args) {
            c.post_completion(std::forward<decltype(h)>(h), false, std::forward<decltype(args)>(args)...);
        });
    }

    void post_trampoline(client_state& c);
    void run_trampoline(client_state& c);

    // Takes the next message (or the pending overrun) for the waiting receive
    // and hands its handler and arguments to `done`.
    template <class Done>
    void complete_one(client_state&, Done&& done) {
        if (queue.take_overrun()) {
            if (std::holds_alternative<into_handler>(waiter))
                done(take<into_handler>(), make_error_code(error::overrun));
            else if (std::holds_alternative<value_handler>(waiter))
                done(take<value_handler>(), make_error_code(error::overrun), connector::message{});
            else
                done(take<batch_handler>(), make_error_code(error::overrun), std::size_t{0});
            return;
        }
        if (std::holds_alternative<into_handler>(waiter)) {
            queue.pop(*out);
            done(take<into_handler>(), error_code{});
        } else if (std::holds_alternative<batch_handler>(waiter)) {
            // Everything queued, up to batch_max, swapped into the caller's
            // messages: their storage comes back to the ring for reuse.
            auto& v = *batch;
            std::size_t n = 0;
            while (n < batch_max && !queue.empty()) {
                if (n == v.size()) v.emplace_back();
                queue.pop(v[n++]);
            }
            done(take<batch_handler>(), error_code{}, n);
        } else {
            connector::message m;
            queue.pop(m);
            done(take<value_handler>(), error_code{}, std::move(m));
        }
    }

    // `in_slot`: see client_state::finish.
    void complete(client_state& c, error_code ec, bool in_slot = false) {
        if (std::holds_alternative<into_handler>(waiter)) {
            auto hh = take<into_handler>(in_slot);
            c.post_completion(std::move(hh), local, ec);
        } else if (std::holds_alternative<value_handler>(waiter)) {
            auto hh = take<value_handler>(in_slot);
            c.post_completion(std::move(hh), local, ec, connector::message{});
        } else if (std::holds_alternative<batch_handler>(waiter)) {
            auto hh = take<batch_handler>(in_slot);
            c.post_completion(std::move(hh), local, ec, std::size_t{0});
        }
    }

    template <class H>
    H take(bool in_slot = false) {
        H h = std::move(std::get<H>(waiter));
        waiter = std::monostate{};
        out = nullptr;
        batch = nullptr;
        ++receive_number;
        if (!in_slot) boost::asio::get_associated_cancellation_slot(h).clear();
        return h;
    }

    std::uint64_t receive_number = 0; // tells a stale cancellation handler from the current one
};

inline void client_state::deliver(const connector::message_view& m, unsigned group) {
    typename table::ticket t;
    switch (requests.classify(m, t)) {
    case table::verdict::reply:
        ++stats.replies;
        finish(t, {}, &m, table::outcome::replied);
        return;
    case table::verdict::duplicate:
        ++stats.duplicate_replies;
        return;
    case table::verdict::late:
        ++stats.late_replies;
        return;
    case table::verdict::unrelated:
        break;
    }
    ++stats.unsolicited;
    const auto n = subscribers.deliver(group, m, [&](subscriber& s) {
        s.queue.push(m);
        s.serve(*this);
    });
    if (n == 0) ++stats.unclaimed;
}

inline void subscriber::post_trampoline(client_state& c) {
    trampoline_posted = true;
    if (c.in_readiness) { // run at the end of the readiness handler
        c.deferred_serve.push_back(shared_from_this());
        return;
    }
    boost::asio::post(c.ex, [self = shared_from_this(), st = c.shared_from_this()] { self->run_trampoline(*st); });
}

inline void subscriber::run_trampoline(client_state& c) {
    const std::size_t limit = c.options.drain_batch;
    try {
        for (std::size_t i = 0; i < limit && !c.closed && local && waiting() && has_news(); ++i)
            complete_one(c, [](auto&& h, auto&&... args) {
                std::forward<decltype(h)>(h)(std::forward<decltype(args)>(args)...);
            });
    } catch (...) {
        // A handler threw: the exception leaves io_context::run(), as from any handler, and
        // the subscription stays served: a receive the handler started gets what is queued.
        trampoline_posted = false;
        if (!c.closed) serve(c);
        throw;
    }
    trampoline_posted = false;
    if (!c.closed) serve(c); // the limit was reached, or the next receive is not local
}

inline void client_state::run_deferred() {
    // in_readiness is false by now, so the handlers called below post what they make ready and
    // add nothing to deferred_serve; the swap keeps both vectors' storage for the next wake-up.
    serving.swap(deferred_serve);
    try {
        if (ready_deferred) {
            ready_deferred = false;
            run_ready();
        }
        for (auto& sub : serving) sub->run_trampoline(*this);
    } catch (...) { // a handler threw: the subscribers not served yet are posted for
        for (auto& sub : serving)
            if (sub->trampoline_posted) {
                sub->trampoline_posted = false;
                if (!closed) sub->serve(*this);
            }
        serving.clear();
        throw;
    }
    serving.clear();
}

inline void client_state::on_overrun() {
    ++stats.overruns;
    subscribers.for_each([&](subscriber& s) {
        s.queue.mark_overrun();
        s.serve(*this);
    });
}

inline void client_state::close() {
    if (closed) return;
    closed = true;
    for (auto t : requests.pending())
        finish(t, boost::asio::error::operation_aborted, nullptr, table::outcome::expired);
    subscribers.for_each([&](subscriber& s) { s.complete(*this, boost::asio::error::operation_aborted); });
    error_code ignored;
    timer.cancel();
    send_retry.cancel();
    sock.close(ignored);
    send_queue.clear();
}

} // namespace detail

/// A subscription to one multicast group (or, for group 0, to the unicasts
/// that answer no request). Move-only; destroying it leaves the group when it
/// was the group's last subscriber. Use it from its client's executor.
class subscription {
public:
    subscription() = default;
    subscription(subscription&&) noexcept = default;
    subscription& operator=(subscription&& other) noexcept {
        if (this != &other) {
            reset();
            state_ = std::move(other.state_);
            sub_ = std::move(other.sub_);
        }
        return *this;
    }
    ~subscription() { reset(); }

    /// Waits for the next message and moves it into `out` (whose storage is
    /// recycled: reuse one message to receive without allocating).
    /// Completion signature: void(error_code). error::overrun: the socket lost
    /// messages (once per overrun, then messages flow again);
    /// operation_aborted: cancelled, or the client closed. One receive at a
    /// time per subscription (a second completes with error in_progress).
    /// A loop of receives (a coroutine, or a handler that starts the next
    /// receive) whose handler runs on the client's executor is served by one
    /// posted function, up to client_options::drain_batch messages per turn
    /// of the scheduler, so it keeps up with the socket.
    template <class CompletionToken>
    auto async_receive(connector::message& out, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [st = state_, sub = sub_](auto handler, connector::message* out) {
                start<detail::subscriber::into_handler>(st, sub, std::move(handler), out);
            },
            token, &out);
    }

    /// The same, completing with the message: void(error_code, message).
    template <class CompletionToken>
    auto async_receive(CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, connector::message)>(
            [st = state_, sub = sub_](auto handler) {
                start<detail::subscriber::value_handler>(st, sub, std::move(handler), nullptr);
            },
            token);
    }

    /// Waits for messages and takes every queued one, up to `max_messages`,
    /// into `batch[0..n)`: one completion for a burst instead of one per
    /// message. `batch` only grows, and its messages' storage is recycled, so
    /// a reused batch costs no allocation once warm.
    /// Completion signature: void(error_code, std::size_t n); errors as above
    /// (n is then 0).
    template <class CompletionToken>
    auto async_receive_batch(std::vector<connector::message>& batch, std::size_t max_messages,
                             CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, std::size_t)>(
            [st = state_, sub = sub_](auto handler, std::vector<connector::message>* batch, std::size_t max) {
                start<detail::subscriber::batch_handler>(st, sub, std::move(handler), nullptr, batch,
                                                         max == 0 ? 1 : max);
            },
            token, &batch, max_messages);
    }

    /// Takes a message that is already queued, without waiting: false when
    /// none is (nor an overrun to report). A consumer woken by async_receive
    /// can empty the queue this way without a completion per message.
    /// `ec` is error::overrun once per overrun, as with async_receive.
    bool try_receive(connector::message& out, error_code& ec) {
        ec.clear();
        if (!sub_ || sub_->waiting()) return false; // a pending receive comes first
        if (sub_->queue.take_overrun()) {
            ec = error::overrun;
            return true;
        }
        return sub_->queue.pop(out);
    }

    /// Cancels a receive in progress (it completes with operation_aborted).
    void cancel() {
        if (auto st = state_.lock(); st && sub_) sub_->complete(*st, boost::asio::error::operation_aborted);
    }

    unsigned group() const noexcept { return sub_ ? sub_->group : 0; }
    subscription_stats stats() const { return sub_ ? sub_->queue.stats() : subscription_stats{}; }
    /// Messages queued and not yet received.
    std::size_t queued() const noexcept { return sub_ ? sub_->queue.size() : 0; }
    explicit operator bool() const noexcept { return sub_ != nullptr; }

private:
    friend class client;

    struct cancel_receive {
        // Not an aggregate, for the same reason as client_state::cancel_request.
        cancel_receive(std::weak_ptr<detail::subscriber> sb, std::weak_ptr<detail::client_state> st,
                       std::uint64_t number)
            : sub(std::move(sb)), state(std::move(st)), receive_number(number) {}
        std::weak_ptr<detail::subscriber> sub;
        std::weak_ptr<detail::client_state> state;
        std::uint64_t receive_number;
        void operator()(boost::asio::cancellation_type type) {
            if (type == boost::asio::cancellation_type::none) return;
            auto st = state.lock();
            auto s = sub.lock();
            if (st && s && s->receive_number == receive_number)
                s->complete(*st, boost::asio::error::operation_aborted, true);
        }
    };

    template <class Erased, class Handler>
    static void start(const std::weak_ptr<detail::client_state>& state, const std::shared_ptr<detail::subscriber>& sub,
                      Handler&& handler, connector::message* out,
                      std::vector<connector::message>* batch = nullptr, std::size_t batch_max = 0) {
        auto st = state.lock();
        auto fail = [&](error_code ec) {
            auto post = [&](auto&&... args) {
                if (st)
                    st->post_completion(std::move(handler), false, ec, std::forward<decltype(args)>(args)...);
                else
                    boost::asio::post(boost::asio::get_associated_executor(handler),
                                      boost::asio::append(std::move(handler), ec, std::forward<decltype(args)>(args)...));
            };
            if constexpr (std::is_same_v<Erased, detail::subscriber::into_handler>)
                post();
            else if constexpr (std::is_same_v<Erased, detail::subscriber::batch_handler>)
                post(std::size_t{0});
            else
                post(connector::message{});
        };
        if (!st || !sub || st->closed) return fail(error::client_closed);
        if (sub->waiting()) return fail(boost::asio::error::in_progress);
        sub->local = st->runs_here(handler);
        sub->waiter.template emplace<Erased>(detail::erase_handler<Erased>(std::forward<Handler>(handler)));
        sub->out = out;
        sub->batch = batch;
        sub->batch_max = batch_max;
        // Erasing the handler put a cancellation state of its own into the
        // caller's slot; ours goes into the slot the erased handler hands out.
        // (Emplacing into the caller's slot would destroy that state under the
        // erased handler, which clears its slot later: a use after free.)
        auto slot = boost::asio::get_associated_cancellation_slot(std::get<Erased>(sub->waiter));
        if (slot.is_connected()) slot.template emplace<cancel_receive>(sub, state, sub->receive_number);
        sub->serve(*st);
        st->arm_read();
    }

    subscription(std::weak_ptr<detail::client_state> st, std::shared_ptr<detail::subscriber> sub)
        : state_(std::move(st)), sub_(std::move(sub)) {}

    void reset() {
        if (!sub_) return;
        if (auto st = state_.lock()) {
            sub_->complete(*st, boost::asio::error::operation_aborted);
            if (st->subscribers.remove(sub_->group, sub_.get()) && sub_->group != 0 && !st->closed) {
                error_code ignored;
                st->sock.leave(sub_->group, ignored);
            }
        }
        sub_.reset();
        state_.reset();
    }

    std::weak_ptr<detail::client_state> state_;
    std::shared_ptr<detail::subscriber> sub_;
};

/// A connector client: requests correlated with their replies, and group subscriptions.
class client {
public:
    using executor_type = boost::asio::any_io_executor;

    /// Opens and binds the socket (in `options.netns` if set). Throws
    /// boost::system::system_error on failure: error::connector_unsupported
    /// when the kernel lacks CONFIG_CONNECTOR, the errno otherwise.
    explicit client(const executor_type& ex, client_options options = {}) {
        error_code ec;
        open(ex, std::move(options), ec);
        if (ec) throw boost::system::system_error(ec, "cnasio::client");
    }
    /// The same, reporting failure in `ec` (the client is then closed).
    client(const executor_type& ex, client_options options, error_code& ec) { open(ex, std::move(options), ec); }

    client(client&&) noexcept = default;
    client& operator=(client&&) noexcept = default;
    /// Completes every pending operation with operation_aborted.
    ~client() {
        if (state_) state_->close();
    }

    executor_type get_executor() const noexcept { return state_->ex; }

    /// This client's port id: the address peers reply to.
    std::uint32_t port_id() const noexcept { return state_->sock.port_id(); }
    bool is_open() const noexcept { return state_ && !state_->closed; }
    const client_stats& stats() const noexcept { return state_->stats; }
    /// Requests waiting for their reply.
    std::size_t pending_requests() const noexcept { return state_->requests.size(); }
    /// Receive buffer the kernel granted at the first subscription or request (0 before).
    std::size_t receive_buffer_size() const noexcept { return state_->receive_buffer_obtained; }
    /// The underlying connector socket (for options; do not read from it).
    connector::socket& socket() noexcept { return state_->sock; }

    /// Trusts messages from a user-space port id too.
    void admit(std::uint32_t port_id) { state_->options.admitted_ports.push_back(port_id); }

    /// Ends every pending operation with operation_aborted and closes the socket.
    void close() { state_->close(); }

    /// Sends `payload` to connector id `id` and waits for the reply.
    /// Completion signature: void(error_code, connector::message).
    /// The payload is framed when the operation starts: at once for most
    /// tokens, but only at launch for `deferred`, so keep it alive until then.
    /// Errors: error::timeout, operation_aborted (cancelled or closed),
    /// error::payload_too_large, error::connector_unreachable, a socket errno.
    template <class CompletionToken>
    auto async_request(connector::id id, std::span<const std::byte> payload, request_options options,
                       CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, connector::message)>(
            [st = state_](auto handler, connector::id id, std::span<const std::byte> payload,
                          request_options options) {
                const bool local = st->runs_here(handler);
                st->start_request(id, payload, std::move(options),
                                  detail::erase_handler<detail::client_state::reply_handler>(std::move(handler)),
                                  nullptr, local);
            },
            token, id, payload, std::move(options));
    }
    template <class CompletionToken>
    auto async_request(connector::id id, std::span<const std::byte> payload, CompletionToken&& token) {
        return async_request(id, payload, request_options{}, std::forward<CompletionToken>(token));
    }

    /// The same, writing the reply into `reply` (its storage is reused: no
    /// allocation per request once it has grown). Completion: void(error_code).
    template <class CompletionToken>
    auto async_request(connector::id id, std::span<const std::byte> payload, connector::message& reply,
                       request_options options, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [st = state_](auto handler, connector::id id, std::span<const std::byte> payload,
                          connector::message* reply, request_options options) {
                const bool local = st->runs_here(handler);
                st->start_request(id, payload, std::move(options),
                                  detail::erase_handler<detail::client_state::into_handler>(std::move(handler)),
                                  reply, local);
            },
            token, id, payload, &reply, std::move(options));
    }

    /// Sends one message that expects no reply, now, through the client's
    /// send queue (a full peer queue keeps it in order for later). For a
    /// teardown that cannot wait for a completion, e.g. the proc connector's
    /// IGNORE from a destructor. Errors as async_send.
    void send(connector::id id, std::span<const std::byte> payload, const request_options& options,
              error_code& ec) {
        ec.clear();
        if (state_->closed) {
            ec = error::client_closed;
            return;
        }
        connector::header h;
        h.id = id;
        h.seq = state_->requests.next_seq();
        h.ack = static_cast<std::uint32_t>(state_->rng());
        h.flags = options.flags;
        h.nlmsg_seq = h.seq;
        h.nlmsg_pid = state_->sock.port_id();
        state_->send(h, payload, options.port_id, ec);
    }

    /// Sends one message that expects no reply. Completion: void(error_code).
    template <class CompletionToken>
    auto async_send(connector::id id, std::span<const std::byte> payload, request_options options,
                    CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [st = state_](auto handler, connector::id id, std::span<const std::byte> payload,
                          request_options options) {
                error_code ec;
                if (st->closed)
                    ec = error::client_closed;
                else {
                    connector::header h;
                    h.id = id;
                    h.seq = st->requests.next_seq();
                    h.ack = static_cast<std::uint32_t>(st->rng());
                    h.flags = options.flags;
                    h.nlmsg_seq = h.seq;
                    h.nlmsg_pid = st->sock.port_id();
                    st->send(h, payload, options.port_id, ec);
                }
                st->post_completion(std::move(handler), false, ec);
            },
            token, id, payload, std::move(options));
    }

    /// Subscribes to multicast group `group` (1..32; 0: unicasts that answer
    /// no request). Joins the group with the first subscriber; sizes the
    /// receive buffer at the first subscription.
    /// Completion signature: void(error_code, subscription).
    template <class CompletionToken>
    auto async_subscribe(unsigned group, subscription_options options, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, subscription)>(
            [st = state_](auto handler, unsigned group, subscription_options options) {
                error_code ec;
                subscription sub = subscribe(st, group, options, ec);
                st->post_completion(std::move(handler), false, ec, std::move(sub));
            },
            token, group, options);
    }
    template <class CompletionToken>
    auto async_subscribe(unsigned group, CompletionToken&& token) {
        return async_subscribe(group, subscription_options{}, std::forward<CompletionToken>(token));
    }

    /// Subscribes at once (joining a group does not wait on anything).
    subscription subscribe(unsigned group, subscription_options options, error_code& ec) {
        return subscribe(state_, group, options, ec);
    }

private:
    void open(const executor_type& ex, client_options options, error_code& ec) {
        state_ = std::make_shared<detail::client_state>(ex, std::move(options));
        state_->sock.open(ec, 0, state_->options.netns, state_->options.protocol);
        if (ec) state_->closed = true;
    }

    static subscription subscribe(const std::shared_ptr<detail::client_state>& st, unsigned group,
                                  const subscription_options& options, error_code& ec) {
        ec.clear();
        if (st->closed) {
            ec = error::client_closed;
            return {};
        }
        if (group > detail::fanout<detail::subscriber>::max_group) {
            ec = error::invalid_group;
            return {};
        }
        st->size_receive_buffer(st->options.subscription_receive_buffer, true);
        auto sub = std::make_shared<detail::subscriber>(group, options);
        if (st->subscribers.add(group, sub.get()) && group != 0) {
            st->sock.join(group, ec);
            if (ec) {
                st->subscribers.remove(group, sub.get());
                return {};
            }
        }
        st->arm_read();
        return subscription(st, std::move(sub));
    }

    std::shared_ptr<detail::client_state> state_;
};

} // namespace cnasio
