// cnasio/detail/client_state.hpp - the Asio glue around the sans-IO client core.
//
// client_state owns the socket, the timers and the handlers of outstanding
// operations; client_core (client_core.hpp) decides everything else. The glue
// turns what happens on the socket and the timers into the core's events, and
// keeps three things in step with the core after each of them (settle()):
//  - the readiness wait (or, with client_options::coalesce_window, the
//    window's timer instead) is outstanding exactly while the core wants to
//    read, so io_context::run() returns once nothing waits on the client;
//  - the timer is armed for the earliest deadline of a pending request;
//  - finished operations are handed to their handlers by run_ready(), the
//    one completion path.
//
// run_ready() calls up to completion_batch handlers in order (the client's
// fairness bound; reads have their own, drain_batch), from a function on
// the client's executor: posted, or at the end of the readiness handler (a
// wake-up then costs one scheduler lap and one reactor poll). A handler that
// starts the next operation and gets it finished at once (a queued message, a
// reply the kernel gave inside sendto()) is called in the same turn, so a
// receive or request loop runs without a scheduler lap per step. Every handler
// is called after its initiating function returned; one whose executor is not
// the client's is dispatched to its own. A handler that throws leaves run()
// as from any handler; what is still queued is posted again.
#pragma once

#include <cnasio/client_options.hpp>
#include <cnasio/connector/framing.hpp>
#include <cnasio/connector/message.hpp>
#include <cnasio/connector/registry.hpp>
#include <cnasio/connector/socket.hpp>
#include <cnasio/detail/client_core.hpp>
#include <cnasio/detail/seed.hpp>
#include <cnasio/error.hpp>
#include <cnasio/netlink/options.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <variant>
#include <vector>

#include <sys/epoll.h>
#include <unistd.h>

namespace cnasio::detail {

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

class client_state : public std::enable_shared_from_this<client_state> {
public:
    using executor_type = boost::asio::any_io_executor;
    using clock = client_core::clock;
    /// The three shapes of completion: void(error_code), with a message, with a count.
    using status_handler = boost::asio::any_completion_handler<void(error_code)>;
    using message_handler = boost::asio::any_completion_handler<void(error_code, connector::message)>;
    using count_handler = boost::asio::any_completion_handler<void(error_code, std::size_t)>;

    // The socket and timers are made on `ex`, so the internal handlers run there
    // without a bind_executor (whose second executor costs a type-erased
    // work-tracking copy per operation).
    client_state(const executor_type& ex, client_options o)
        : ex_(ex), sock_(ex), wait_set_(ex), timer_(ex), send_retry_(ex),
          registry_timer_(ex), coalesce_timer_(ex), options_(std::move(o)),
          core_(core_options{options_.default_timeout, options_.admitted_ports, options_.subscription_bytes,
                             options_.send_queue_bytes},
                nonblocking_seed()) {}

    /// Opens and binds the socket; on failure the client is closed.
    void open(error_code& ec) {
        sock_.open(ec, 0, options_.netns, options_.protocol);
        if (!ec) sock_.leave_reactor(ec); // see open_wait_set
        if (!ec) open_wait_set(ec);
        if (ec) core_.close();
        else core_.set_port_id(sock_.port_id());
    }

    const executor_type& get_executor() const noexcept { return ex_; }
    connector::socket& socket() noexcept { return sock_; }
    client_core& core() noexcept { return core_; }
    const client_options& options() const noexcept { return options_; }
    std::size_t receive_buffer_obtained() const noexcept { return receive_buffer_obtained_; }
    void admit(std::uint32_t port) {
        options_.admitted_ports.push_back(port);
        core_.admit(port);
    }

    // ---- operations (called from initiating functions) ----

    /// A request: `Erased` is message_handler (the reply in the completion)
    /// or status_handler (the reply written to `*into`, or its parts appended
    /// to `*parts`).
    template <class Erased, class Handler>
    void start_request(connector::id id, std::span<const std::byte> payload, request_options ro, Handler&& handler,
                       connector::message* into, std::vector<connector::message>* parts = nullptr) {
        const op_id op = add_op<Erased>(std::forward<Handler>(handler));
        const bool to_kernel = ro.port_id == 0;
        connector::header* const sent = ro.sent;
        if (error_code ec; registry_refuses(id, ro, ec)) {
            core_.complete(op, ec);
            return settle();
        }
        if (!core_.closed()) size_receive_buffer(options_.request_receive_buffer, false);
        const auto r = core_.start_request(op, id, payload.size(), std::move(ro), clock::now(), into, parts);
        if (r.send) {
            error_code ec;
            send(r.header, payload, r.port_id, r.t, ec);
            if (ec)
                core_.send_failed(r.t, ec);
            else {
                if (sent) *sent = r.header;
                // The kernel's connectors answer inside sendto(): the reply may be queued already.
                // A user-space peer answers after a wake-up of its own, so a read now would find
                // nothing.
                if (to_kernel) drain_for(r.t);
                if (core_.request_pending(r.t)) watch_cancellation(op, request_canceller{weak_from_this(), r.t});
            }
        }
        settle();
    }

    /// A streamed request (client::request_stream): registered, sent, and its
    /// first parts read as for start_request; its parts and its end are handed
    /// out by start_next. Errors at start become the stream's end.
    stream_ref start_stream(connector::id id, std::span<const std::byte> payload, request_options ro,
                            std::size_t queue_limit) {
        const bool to_kernel = ro.port_id == 0;
        connector::header* const sent = ro.sent;
        if (error_code ec; registry_refuses(id, ro, ec)) {
            const auto ref = core_.failed_stream(ec);
            settle();
            return ref;
        }
        if (!core_.closed()) size_receive_buffer(options_.request_receive_buffer, false);
        const auto r = core_.start_stream(id, payload.size(), std::move(ro), clock::now(), queue_limit);
        if (r.start.send) {
            error_code ec;
            send(r.start.header, payload, r.start.port_id, r.start.t, ec);
            if (ec)
                core_.send_failed(r.start.t, ec);
            else {
                if (sent) *sent = r.start.header;
                if (to_kernel) drain_for(r.start.t); // the kernel answers inside sendto(), see start_request
            }
        }
        settle();
        return r.stream;
    }

    /// Waits for the next part of stream `ref`: `Erased` is message_handler
    /// (the part in the completion) or status_handler (the part into `*into`).
    template <class Erased, class Handler>
    void start_next(stream_ref ref, Handler&& handler, connector::message* into) {
        const op_id op = add_op<Erased>(std::forward<Handler>(handler));
        core_.stream_next(ref, op, into);
        if (core_.stream_waits(ref, op))
            watch_cancellation(op, next_canceller{weak_from_this(), ref, core_.next_number(ref)});
        settle();
    }

    /// Ends the request of stream `ref` if it is pending (operation_aborted).
    void cancel_stream(stream_ref ref) {
        core_.cancel_stream(ref);
        settle();
    }

    /// Ends stream `ref` (its request too, if pending).
    void close_stream(stream_ref ref) {
        core_.close_stream(ref);
        settle();
    }

    /// A message that expects no reply; completes with the send's result.
    template <class Handler>
    void start_send(connector::id id, std::span<const std::byte> payload, const request_options& ro,
                    Handler&& handler) {
        const op_id op = add_op<status_handler>(std::forward<Handler>(handler));
        error_code ec;
        if (registry_refuses(id, ro, ec)) {
            core_.complete(op, ec);
            return settle();
        }
        send_now(id, payload, ro, ec);
        core_.complete(op, ec);
        settle();
    }

    /// Sends a message that expects no reply, through the send queue.
    void send_now(connector::id id, std::span<const std::byte> payload, const request_options& ro, error_code& ec) {
        ec.clear();
        if (core_.closed()) {
            ec = error::client_closed;
            return;
        }
        send(core_.one_way_header(id, ro.flags), payload, ro.port_id, std::nullopt, ec);
    }

    /// Completes `handler` (void(error_code)) with `ec` through the completion path.
    template <class Handler>
    void complete_now(Handler&& handler, error_code ec) {
        core_.complete(add_op<status_handler>(std::forward<Handler>(handler)), ec);
        settle();
    }

    /// Subscribes; joins the group with its first subscriber.
    subscription_ref subscribe(unsigned group, const subscription_options& o, error_code& ec) {
        ec.clear();
        const auto r = core_.subscribe(group, o);
        if (r.ec) {
            ec = r.ec;
            return {};
        }
        size_receive_buffer(options_.subscription_receive_buffer, true);
        if (r.join) {
            sock_.join(group, ec);
            if (ec) {
                core_.subscribe_failed(r.sub);
                return {};
            }
        }
        settle();
        return r.sub;
    }

    /// Removes a subscription; leaves the group with its last subscriber.
    void unsubscribe(subscription_ref ref) {
        const unsigned group = core_.group(ref);
        if (core_.unsubscribe(ref)) {
            error_code ignored;
            sock_.leave(group, ignored);
        }
        settle();
    }

    /// A receive on a subscription: `Erased` is status_handler (into
    /// target.into), message_handler (in the completion) or count_handler (a batch).
    template <class Erased, class Handler>
    void start_receive(subscription_ref ref, Handler&& handler, receive_target target) {
        const op_id op = add_op<Erased>(std::forward<Handler>(handler));
        core_.start_receive(ref, op, target);
        if (core_.receive_waits(ref, op))
            watch_cancellation(op, receive_canceller{weak_from_this(), ref, core_.receive_number(ref)});
        settle();
    }

    void cancel_receive(subscription_ref ref) {
        core_.cancel_receive(ref);
        settle();
    }

    /// Waits until `id` is registered (`gone`: unregistered), reading the
    /// registry now and then every registry_interval; error::timeout after
    /// `timeout` (0: no limit). Completion: void(error_code).
    template <class Handler>
    void start_wait_id(connector::id id, bool gone, std::chrono::milliseconds timeout, Handler&& handler) {
        const op_id op = add_op<status_handler>(std::forward<Handler>(handler));
        const auto deadline = timeout.count() > 0 ? clock::now() + timeout : clock::time_point::max();
        start_registry_op(op, [&](std::uint64_t n) { id_waiters_.add_wait(op, n, id, gone, deadline); });
    }

    /// Waits until the registered ids differ from what the last watch saw and
    /// writes the changes to `*out`. Completion: void(error_code).
    template <class Handler>
    void start_watch_ids(std::vector<connector::id_change>* out, Handler&& handler) {
        const op_id op = add_op<status_handler>(std::forward<Handler>(handler));
        start_registry_op(op, [&](std::uint64_t n) { id_waiters_.add_watch(op, n, out); });
    }

    /// Ends every operation (operation_aborted) and closes the socket.
    void close() {
        if (core_.closed() && !sock_.is_open()) return;
        core_.close();
        error_code ignored;
        timer_.cancel();
        send_retry_.cancel();
        id_waiters_.end_all(aborted_error(), [&](op_id op, error_code ec) { core_.complete(op, ec); });
        registry_timer_.cancel();
        registry_at_ = clock::time_point::max();
        stop_coalescing();
        wait_set_.close(ignored);
        in_wait_set_ = false;
        sock_.close(ignored);
        timer_at_ = clock::time_point::max();
        settle();
    }

private:
    // ---- handlers of outstanding operations ----

    struct op_slot {
        std::variant<std::monostate, status_handler, message_handler, count_handler> handler;
        bool local = false; // runs on exactly this client's executor: called directly
    };

    template <class Erased, class Handler>
    op_id add_op(Handler&& handler) {
        op_id op;
        if (!free_ops_.empty()) {
            op = free_ops_.back();
            free_ops_.pop_back();
        } else {
            op = static_cast<op_id>(ops_.size());
            ops_.emplace_back();
            // invoke() puts the slot on free_ops_, which never holds more than
            // there are slots, and each slot has at most one completion
            // queued (reserve_completions() adds the core's own slack):
            // growing both here keeps the completion path from allocating
            // when many operations end in one turn.
            if (free_ops_.capacity() < ops_.capacity()) {
                free_ops_.reserve(ops_.capacity());
                core_.reserve_completions(ops_.capacity());
            }
        }
        ops_[op].local = runs_here(handler);
        ops_[op].handler.template emplace<Erased>(erase_handler<Erased>(std::forward<Handler>(handler)));
        return op;
    }

    // Per-operation cancellation. Erasing the handler put a cancellation state
    // of its own into the caller's slot; ours goes into the slot the erased
    // handler hands out. (Emplacing into the caller's slot would destroy that
    // state under the erased handler, which clears its slot later: a use
    // after free.) The slot is cleared when the operation's handler is called.
    template <class Cancel>
    void watch_cancellation(op_id op, Cancel cancel) {
        std::visit(
            [&](auto& h) {
                if constexpr (!std::is_same_v<std::decay_t<decltype(h)>, std::monostate>) {
                    auto slot = boost::asio::get_associated_cancellation_slot(h);
                    if (slot.is_connected()) slot.template emplace<Cancel>(std::move(cancel));
                }
            },
            ops_[op].handler);
    }

    // Declared constructors, not aggregates: slot.emplace() constructs with
    // (args...), which clang before 16 cannot do for an aggregate (P0960).
    struct request_canceller {
        request_canceller(std::weak_ptr<client_state> s, client_core::ticket t) : state(std::move(s)), ticket(t) {}
        std::weak_ptr<client_state> state;
        client_core::ticket ticket;
        void operator()(boost::asio::cancellation_type type) {
            if (type == boost::asio::cancellation_type::none) return;
            if (auto s = state.lock()) {
                s->core_.cancel_request(ticket);
                s->settle();
            }
        }
    };
    struct receive_canceller {
        receive_canceller(std::weak_ptr<client_state> s, subscription_ref r, std::uint64_t n)
            : state(std::move(s)), ref(r), number(n) {}
        std::weak_ptr<client_state> state;
        subscription_ref ref;
        std::uint64_t number;
        void operator()(boost::asio::cancellation_type type) {
            if (type == boost::asio::cancellation_type::none) return;
            if (auto s = state.lock()) {
                s->core_.cancel_receive(ref, number);
                s->settle();
            }
        }
    };

    // A cancellation that allows partial or total ends only the wait for a
    // part, with no other effect: the answer keeps queueing. One that allows
    // terminal alone ends the whole answer too (the request leaves the table;
    // its later parts count as late).
    struct next_canceller {
        next_canceller(std::weak_ptr<client_state> s, stream_ref r, std::uint64_t n)
            : state(std::move(s)), ref(r), number(n) {}
        std::weak_ptr<client_state> state;
        stream_ref ref;
        std::uint64_t number;
        void operator()(boost::asio::cancellation_type type) {
            if (type == boost::asio::cancellation_type::none) return;
            if (auto s = state.lock()) {
                using ct = boost::asio::cancellation_type;
                const bool terminal_only = (type & (ct::partial | ct::total)) == ct::none;
                s->core_.cancel_next(ref, number, terminal_only);
                s->settle();
            }
        }
    };

    struct registry_canceller {
        registry_canceller(std::weak_ptr<client_state> s, std::uint64_t n) : state(std::move(s)), number(n) {}
        std::weak_ptr<client_state> state;
        std::uint64_t number;
        void operator()(boost::asio::cancellation_type type) {
            if (type == boost::asio::cancellation_type::none) return;
            if (auto s = state.lock()) {
                s->id_waiters_.cancel(number, aborted_error(), [&](op_id op, error_code ec) { s->core_.complete(op, ec); });
                s->settle();
            }
        }
    };

    /// True when `h` will run on exactly this client's executor.
    template <class Handler>
    bool runs_here(const Handler& h) const {
        auto hex = boost::asio::get_associated_executor(h, ex_);
        if constexpr (std::is_same_v<decltype(hex), executor_type>)
            return hex == ex_;
        else if constexpr (std::is_copy_constructible_v<decltype(hex)> &&
                           std::is_same_v<std::decay_t<decltype(hex)>, boost::asio::io_context::executor_type>) {
            const auto* mine = ex_.target<boost::asio::io_context::executor_type>();
            return mine && *mine == hex;
        } else
            return false;
    }

    // ---- the one completion path ----

    // Calls the handler of finished operation `c`.
    void invoke(completion& c) {
        op_slot& slot = ops_[c.op];
        auto handler = std::move(slot.handler);
        slot.handler.template emplace<std::monostate>();
        const bool local = slot.local;
        free_ops_.push_back(c.op);
        std::visit(
            [&](auto& h) {
                using H = std::decay_t<decltype(h)>;
                if constexpr (!std::is_same_v<H, std::monostate>) {
                    boost::asio::get_associated_cancellation_slot(h).clear();
                    if constexpr (std::is_same_v<H, status_handler>)
                        call(std::move(h), local, c.ec);
                    else if constexpr (std::is_same_v<H, message_handler>)
                        call(std::move(h), local, c.ec, std::move(c.message));
                    else
                        call(std::move(h), local, c.ec, c.count);
                }
            },
            handler);
    }

    // A handler on the client's executor is called here (this runs on that
    // executor, after the initiating function returned). Others are
    // dispatched to their own executor: asking an erased handler for it builds
    // an any_completion_executor, which allocates, so not for local ones.
    template <class Handler, class... Args>
    void call(Handler&& h, bool local, Args&&... args) {
        if (local) {
            std::move(h)(std::forward<Args>(args)...);
            return;
        }
        auto hex = boost::asio::get_associated_executor(h, ex_);
        boost::asio::dispatch(hex, boost::asio::append(std::move(h), std::forward<Args>(args)...));
    }

    // Hands finished operations to their handlers, up to completion_batch per
    // turn. A handler that starts the next operation and gets it finished at
    // once (a kernel request answered inside sendto()) does not nest: the
    // completion is queued (settle() only posts outside this loop) and popped
    // by the loop, so n counts every handler called in this turn. Past the
    // bound, settle() posts the rest behind whatever else is queued.
    void run_ready() {
        if (running_ready_) return; // the loop below picks up what a handler finished
        running_ready_ = true;
        try {
            completion c;
            const std::size_t budget = std::max<std::size_t>(options_.completion_batch, 1);
            for (std::size_t n = 0; n < budget && core_.pop_completion(c); ++n) invoke(c);
        } catch (...) {
            running_ready_ = false;
            settle(); // what is still queued is posted again
            throw;
        }
        running_ready_ = false;
        settle();
    }

    // The end of a handler of the client's (readiness, timer): what it
    // finished is handed out here, in this turn, unless a posted run_ready()
    // has it already (one batch per turn).
    void finish_turn() {
        if (ready_posted_)
            settle();
        else
            run_ready();
    }

    // Brings the glue in step with the core (see the header comment). Inside
    // run_ready() only the posting is decided: its end settles the rest, so a
    // request answered and followed by the next in one turn neither disarms
    // nor re-arms the timer and the readiness wait.
    void settle() {
        if (core_.has_completions() && !ready_posted_ && !running_ready_) {
            ready_posted_ = true;
            boost::asio::post(ex_, [self = shared_from_this()] {
                self->ready_posted_ = false;
                self->run_ready();
            });
        }
        if (running_ready_) return;
        const bool busy = core_.has_completions(); // a handler still to run may start something
        if (auto d = core_.next_deadline()) {
            if (*d < timer_at_) arm_timer(*d);
        } else if (timer_at_ != clock::time_point::max() && !busy) {
            timer_at_ = clock::time_point::max();
            timer_.cancel();
        }
        if (id_waiters_.empty() && registry_at_ != clock::time_point::max()) {
            registry_at_ = clock::time_point::max(); // nobody waits for an id: run() may return
            registry_timer_.cancel();
        }
        if (core_.wants_read()) {
            if (!reading_ && !draining_ && !coalescing_ && !handling_readable_) arm_read();
        } else if (reading_ && !busy) {
            error_code ignored;
            // The wait ends with operation_aborted: nothing keeps run() busy.
            leave_wait_set(); // or arrivals would wake the reactor with nobody reading
            wait_set_.cancel(ignored);
        } else if (coalescing_ && !busy) {
            stop_coalescing(); // what is queued stays queued: the next readiness wait sees it at once
        } else if (in_wait_set_ && !reading_ && !busy) {
            leave_wait_set(); // left in after a single datagram (on_readable); nobody reads now
        }
    }

    // ---- sending ----

    // Sends now, or queues in the core when the peer's receive queue is full
    // (EAGAIN) or earlier messages to it still wait: the order to one peer is
    // kept, and other peers are not held back. `t` names the request the
    // message carries (none: a one-way message). An error here is the send's
    // own (or send_queue_full for a one-way message); a request the queue
    // refuses has ended already.
    void send(const connector::header& h, std::span<const std::byte> payload, std::uint32_t port,
              std::optional<client_core::ticket> t, error_code& ec) {
        if (!core_.send_waits(port)) {
            sock_.send(h, payload, ec, netlink::endpoint(options_.protocol, port, 0));
            if (ec != boost::asio::error::would_block) return;
            ec.clear();
        }
        std::vector<std::byte> d = connector::build_datagram(h, payload, ec);
        if (ec) return;
        if (t)
            core_.queue_request(*t, std::move(d));
        else
            ec = core_.queue_message(port, std::move(d));
        arm_send_retry();
    }

    // A full peer queue does not make our socket unwritable (netlink has no
    // flow control towards the sender), so waiting for writability would
    // spin: one timer retries every queued destination after a short pause.
    void arm_send_retry() {
        if (sending_ || !core_.has_queued_sends()) return;
        sending_ = true;
        send_retry_.expires_after(std::chrono::microseconds(200));
        send_retry_.async_wait([self = shared_from_this()](error_code wec) {
            self->sending_ = false;
            if (wec || self->core_.closed()) return;
            self->core_.flush_sends([&](std::uint32_t port, std::span<const std::byte> d) {
                error_code ec;
                if (!self->sock_.try_send(d, netlink::endpoint(self->options_.protocol, port, 0), ec) && !ec)
                    return would_block_error();
                return ec;
            });
            self->arm_send_retry();
            self->finish_turn(); // requests whose late send failed
        });
    }

    // check_registered: nobody registered `id`, so the kernel would drop a
    // message to it silently. True, with `ec` saying why (not_registered, or
    // the registry's read error), when `ro` asks for the check, the message
    // goes to the kernel, the client is open, and the registry refuses it.
    bool registry_refuses(connector::id id, const request_options& ro, error_code& ec) const {
        ec.clear();
        if (!ro.check_registered || ro.port_id != 0 || core_.closed()) return false;
        const auto ids = connector::read_registry(options_.netns, ec);
        if (!ec && !connector::contains(ids, id)) ec = error::not_registered;
        return static_cast<bool>(ec);
    }

    // Sizes the receive buffer (FORCE, then the capped SO_RCVBUF); a smaller
    // grant still works, and what the kernel granted is observable. The first
    // subscription decides (its option is the user's word on how much
    // multicast to hold); before that, the first request asks for room for
    // replies.
    void size_receive_buffer(std::size_t bytes, bool for_subscription) {
        if (sized_for_subscription_ || bytes == 0) return;
        if (!for_subscription && receive_buffer_asked_ != 0) return;
        receive_buffer_asked_ = bytes;
        sized_for_subscription_ = for_subscription;
        error_code ignored;
        receive_buffer_obtained_ = netlink::set_receive_buffer(sock_, bytes, ignored).obtained;
    }

    // ---- timeouts ----

    void arm_timer(clock::time_point deadline) {
        timer_at_ = deadline;
        timer_.expires_at(deadline);
        timer_.async_wait([self = shared_from_this()](error_code ec) {
            if (ec == boost::asio::error::operation_aborted) return; // re-armed, disarmed or closed
            self->timer_at_ = clock::time_point::max();
            // Requests with check_registered learn whether their id is still registered: one read at
            // most, and only when such a request expired.
            std::optional<std::vector<connector::registered_id>> ids;
            self->core_.on_timer(clock::now(), [&](connector::id id) {
                if (!ids) {
                    error_code rec;
                    ids = connector::read_registry(self->options_.netns, rec);
                    if (rec) return true; // unreadable: say timeout, as without the check
                }
                return connector::contains(*ids, id);
            });
            self->finish_turn();
        });
    }

    // ---- the registry watcher: one per client, polling while someone waits ----

    // Starts a wait or watch (`add(number)` registers it), checks the registry at once, and keeps the
    // poll timer armed.
    template <class Add>
    void start_registry_op(op_id op, Add&& add) {
        if (core_.closed()) {
            core_.complete(op, error::client_closed);
            return settle();
        }
        const std::uint64_t number = ++registry_numbers_;
        add(number);
        poll_registry();
        if (id_waiters_.waiting(number)) watch_cancellation(op, registry_canceller{weak_from_this(), number});
        settle();
    }

    // Reads the registry, hands the result to the waiters, and arms the timer for the next read or the
    // earliest deadline, whichever comes first.
    void poll_registry() {
        error_code ec;
        const auto ids = connector::read_registry(options_.netns, ec);
        const auto now = clock::now();
        id_waiters_.on_registry(now, ids, ec, [&](op_id op, error_code oec) { core_.complete(op, oec); });
        if (id_waiters_.empty()) return; // settle() disarms
        auto when = now + std::max(options_.registry_interval, std::chrono::milliseconds(1));
        if (auto d = id_waiters_.next_deadline(); d && *d < when) when = *d;
        if (when >= registry_at_ && registry_at_ > now) return; // armed for sooner
        registry_at_ = when;
        registry_timer_.expires_at(when);
        registry_timer_.async_wait([self = shared_from_this()](error_code tec) {
            if (tec == boost::asio::error::operation_aborted) return; // re-armed, disarmed or closed
            self->registry_at_ = clock::time_point::max();
            if (self->core_.closed()) return;
            self->poll_registry();
            self->finish_turn();
        });
    }

    // ---- receiving ----

    // Waits for readability; drain() then reads every queued datagram. The
    // socket enters the wait set here and leaves it at the wake-up
    // (on_readable), so it sits in an epoll set only while the client waits
    // (see open_wait_set). No readiness is lost between a drain that ended on
    // an empty queue and this wait: EPOLL_CTL_ADD polls the socket, so what
    // arrived in between, or a pending ENOBUFS (EPOLLERR), makes the set
    // ready at once, even when another thread runs the reactor. A socket
    // still in the set (left there after a single datagram) is armed in it,
    // level-triggered: what arrived since is on the set's ready list, and
    // Asio's wait re-polls the set (its EPOLL_CTL_MOD), so no call is needed.
    void arm_read() {
        reading_ = true;
        auto on_ready = [self = shared_from_this()](error_code ec) {
            self->reading_ = false;
            self->on_readable(ec);
        };
        if (!in_wait_set_) {
            epoll_event ev{};
            ev.events = EPOLLIN;
            if (::epoll_ctl(wait_set_.native_handle(), EPOLL_CTL_ADD, sock_.native_handle(), &ev) != 0) {
                const error_code ec(errno, boost::system::system_category());
                return boost::asio::post(ex_, [on_ready = std::move(on_ready), ec]() mutable { on_ready(ec); });
            }
            in_wait_set_ = true;
        }
        wait_set_.async_wait(boost::asio::posix::descriptor_base::wait_read, std::move(on_ready));
    }

    // Why the client waits in an epoll set of its own. Asio keeps a socket in
    // its reactor's epoll set for the socket's whole life, and while a socket
    // is in any epoll set, every datagram queued to it runs the epoll wake-up
    // callback inside the sender's system call (sock_def_readable takes the
    // socket's wait-queue lock with interrupts off and calls ep_poll_callback,
    // which takes the set's lock), whether or not anyone waits. In a flood
    // the client reads while the sender sends, so that is a cost per datagram
    // for nothing: a raw C recvmmsg receiver whose socket sits in an idle
    // epoll set receives 0.92-0.96x the messages per second of the same
    // receiver without it (bench_epoll_cost, "recvmmsg registered"). So
    // open() takes the socket out of the reactor (connector::socket::
    // leave_reactor), and the client waits on this set instead, registered
    // with the client's executor. The socket enters it when a wait is armed
    // (arm_read). It leaves when a wake-up's read brings a burst (on_readable:
    // a sender is at it), when a coalescing client's wake-up reads (the
    // window's arrivals then wake nobody), when the wait is cancelled, and
    // when nobody reads any more (settle). After a wake-up that read a single
    // datagram it stays in, armed (level-triggered), and the next wait needs
    // no call of ours. Nothing calls epoll_wait on this set: the reactor polls
    // it through its own.
    // Costs one file descriptor per client.
    void open_wait_set(error_code& ec) {
        const int fd = ::epoll_create1(EPOLL_CLOEXEC);
        if (fd < 0) {
            ec.assign(errno, boost::system::system_category());
            return;
        }
        wait_set_.assign(fd, ec);
        if (ec) ::close(fd);
    }

    void leave_wait_set() {
        if (!in_wait_set_) return;
        in_wait_set_ = false;
        epoll_event ev{};
        ::epoll_ctl(wait_set_.native_handle(), EPOLL_CTL_DEL, sock_.native_handle(), &ev);
    }

    void on_readable(error_code ec) {
        if (core_.closed() || ec == boost::asio::error::operation_aborted) return settle();
        ++core_.stats().wakeups;
        if (ec) {
            leave_wait_set();
            core_.on_read_error(ec); // a broken socket: every pending request learns why
            return finish_turn();
        }
        // Until the end of this handler, settle() leaves the readiness wait
        // to it: it may read again first (read_on).
        handling_readable_ = true;
        try {
            const std::size_t got = drain();
            // A burst says a sender is at it: the socket leaves the set, so that
            // what it sends while the client hands out and reads on (or a window
            // is open) costs it nothing. After a single datagram (a trickle) it
            // stays in, armed, and the next wait costs no call of ours instead
            // of EPOLL_CTL_DEL now and EPOLL_CTL_ADD then (which frees and
            // allocates the epitem); settle() takes it out if nobody reads.
            if (got >= 2 || options_.coalesce_window.count() > 0) leave_wait_set();
            keep_coalescing(got);
            finish_turn(); // what the drain finished, at the end of this handler
            read_on(got);
        } catch (...) {
            handling_readable_ = false;
            settle();
            throw;
        }
        handling_readable_ = false;
        settle();
    }

    // A read that brought a burst (two datagrams or more) says that a sender
    // is still at it. Once the burst's messages are handed out (the handlers
    // have started their next receives), the socket is read again in the same
    // turn instead of going back to the reactor, and again until a read finds
    // nothing (after a burst, a read of one datagram is read on too, as a raw
    // loop reads until EAGAIN): a readiness wait costs three system calls
    // (EPOLL_CTL_ADD, epoll_wait, EPOLL_CTL_DEL) and a scheduler lap, which is
    // more than a read that finds the next datagrams, and about what one that
    // finds nothing costs. A turn whose first read brought a single datagram
    // or none goes back to the readiness wait, so a trickle (one event per
    // wake-up) pays nothing for this. Bounded by
    // drain_batch datagrams per turn, like a drain; a drain that reached it
    // has posted its continuation, and completions past completion_batch have
    // been posted: both end the loop, so that other work gets its turn.
    void read_on(std::size_t n) {
        while ((last_burst_ >= 2 || (last_burst_ == 1 && n >= 2)) && n < options_.drain_batch && options_.coalesce_window.count() <= 0 && !coalescing_ && !draining_ &&
               !ready_posted_ && !core_.closed() && core_.wants_read()) {
            n += drain();
            finish_turn();
        }
    }

    // Coalescing (client_options::coalesce_window). A readiness wake-up
    // drains at once, as without it (a message after a quiet spell is not
    // delayed); but when that drain read something, the next read is not a
    // readiness wait but a drain when the window's timer expires, and so on
    // while drains find datagrams. A steady stream then costs one timer
    // wake-up per window instead of a readiness wake-up per datagram, and a
    // datagram waits at most the window. The first drain that finds nothing
    // goes back to the readiness wait (settle() arms it once coalescing_ is
    // false). A stale expiry (the window was stopped, and maybe another
    // started) is told apart by its number.
    void keep_coalescing(std::size_t got) {
        if (options_.coalesce_window.count() <= 0 || got == 0 || draining_ || core_.closed()) return;
        coalescing_ = true;
        const std::uint64_t number = ++coalesce_numbers_;
        coalesce_timer_.expires_after(options_.coalesce_window);
        coalesce_timer_.async_wait([self = shared_from_this(), number](error_code) {
            if (number != self->coalesce_numbers_ || !self->coalescing_) return;
            self->coalescing_ = false;
            if (self->core_.closed()) return self->settle();
            self->keep_coalescing(self->drain());
            self->finish_turn();
        });
    }

    void stop_coalescing() {
        if (!coalescing_) return;
        coalescing_ = false;
        ++coalesce_numbers_;
        coalesce_timer_.cancel();
    }

    // Reads everything already queued, up to drain_batch datagrams per turn;
    // returns how many it read (an overrun counts as one).
    std::size_t drain() {
        if (draining_ || core_.closed()) return 0;
        draining_ = true;
        std::size_t n = 0;
        while (!core_.closed() && read_burst(false, n) == burst::read) {
            if (n >= options_.drain_batch) { // let others run; come back without waiting
                boost::asio::post(ex_, [self = shared_from_this()] {
                    self->draining_ = false;
                    self->drain();
                    self->finish_turn();
                });
                return n;
            }
        }
        draining_ = false;
        return n;
    }

    // The read right after a request to the kernel: one datagram at a time,
    // stopping as soon as request `t` has ended. What is queued behind it is
    // left to the readiness wait, which saves a read that would find the queue
    // empty.
    void drain_for(client_core::ticket t) {
        if (draining_ || core_.closed()) return;
        draining_ = true;
        std::size_t n = 0;
        while (!core_.closed() && core_.request_pending(t) && n < options_.drain_batch &&
               read_burst(true, n) == burst::read) {
        }
        draining_ = false;
    }

    enum class burst { read, drained, broken };

    // Reads one datagram (recvfrom) or up to receive_slots (one recvmmsg) and
    // feeds them to the core, adding them to `n` (an overrun counts as one, so
    // that a drain always moves towards its limit). A read that returns fewer
    // than it asked for found the queue empty (recvmmsg stops at the first
    // EAGAIN), so nobody calls again just to hear EAGAIN.
    burst read_burst(bool one, std::size_t& n) {
        error_code ec;
        const std::size_t max = one ? 1 : receive_slots;
        const std::size_t got = one ? sock_.receive_one(received_, ec) : sock_.receive_many(received_, max, ec);
        ++core_.stats().reads;
        last_burst_ = got;
        if (!core_.closed()) core_.on_read(received_.first(got));
        n += got;
        if (ec == error::overrun) {
            ++n;
            core_.on_overrun();
            return burst::read;
        }
        if (ec) {
            core_.on_read_error(ec);
            return burst::broken;
        }
        return got == max ? burst::read : burst::drained;
    }

    executor_type ex_;
    connector::socket sock_; // out of the reactor: the client waits on wait_set_
    boost::asio::posix::stream_descriptor wait_set_; // see open_wait_set
    bool in_wait_set_ = false; // the socket is in wait_set_ (a wait is armed, or was cancelled)
    boost::asio::steady_timer timer_;
    boost::asio::steady_timer send_retry_;
    boost::asio::steady_timer registry_timer_; // the registry watcher's poll (see poll_registry)
    boost::asio::steady_timer coalesce_timer_; // the coalescing window (see keep_coalescing)
    std::uint64_t coalesce_numbers_ = 0;
    id_waiters id_waiters_;
    std::uint64_t registry_numbers_ = 0;
    clock::time_point registry_at_ = clock::time_point::max();
    client_options options_;
    client_core core_;
    std::vector<op_slot> ops_;
    std::vector<op_id> free_ops_;
    // drain() reads a burst with one recvmmsg() into receive_slots slots of the largest datagram,
    // mapped lazily: a slot's pages cost memory only once a datagram has landed there.
    static constexpr std::size_t receive_slots = 32;
    connector::receive_batch<receive_slots> received_;
    std::size_t receive_buffer_obtained_ = 0;
    std::size_t receive_buffer_asked_ = 0;
    clock::time_point timer_at_ = clock::time_point::max();
    bool sized_for_subscription_ = false;
    bool reading_ = false;       // a readiness wait is outstanding
    bool draining_ = false;      // a drain (or its posted continuation) is in progress
    bool handling_readable_ = false; // on_readable() runs: it arms the readiness wait at its end
    std::size_t last_burst_ = 0;     // datagrams the last read brought (see read_on)
    bool coalescing_ = false;    // a coalescing window is open (its timer runs)
    bool sending_ = false;       // the send retry timer is armed (core_.has_queued_sends())
    bool running_ready_ = false; // inside run_ready()
    bool ready_posted_ = false;  // a run_ready() is posted
};

} // namespace cnasio::detail
