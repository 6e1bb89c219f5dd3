// cnasio/subscription.hpp - one subscription to a multicast group of a client.
#pragma once

#include <cnasio/connector/message.hpp>
#include <cnasio/detail/client_state.hpp>
#include <cnasio/error.hpp>
#include <cnasio/options.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace cnasio {

class client;

/// A subscription to one multicast group (or, for group 0, to the unicasts
/// that answer no request). Move-only; destroying it leaves the group when it
/// was the group's last subscriber. Use it from its client's executor; once
/// the client is gone, its receives fail with client_closed and its counters
/// read zero.
///
/// Cancellation: async_receive and async_receive_batch honour terminal,
/// partial and total cancellation; cancel() aborts the receive in progress.
class subscription {
public:
    subscription() = default;
    subscription(subscription&& other) noexcept
        : state_(std::move(other.state_)), ref_(other.ref_), group_(other.group_), valid_(std::exchange(other.valid_, false)) {}
    subscription& operator=(subscription&& other) noexcept {
        if (this != &other) {
            reset();
            state_ = std::move(other.state_);
            ref_ = other.ref_;
            group_ = other.group_;
            valid_ = std::exchange(other.valid_, false);
        }
        return *this;
    }
    ~subscription() { reset(); }

    /// Waits for the next message and moves it into `out` (whose storage is
    /// recycled: reuse one message to receive without allocating).
    /// Completion signature: void(error_code). error::overrun: the socket lost
    /// messages (once per overrun, then messages flow again);
    /// operation_aborted: cancelled, or the client closed; client_closed: the
    /// client was closed before. One receive at a time per subscription (a
    /// second completes with error in_progress). A loop of receives (a
    /// coroutine, or a handler that starts the next receive) whose handler
    /// runs on the client's executor gets up to client_options::completion_batch
    /// queued messages per turn of the scheduler, so it keeps up with the socket.
    template <class CompletionToken>
    auto async_receive(connector::message& out, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [st = where()](auto handler, connector::message* out) {
                start<detail::client_state::status_handler>(st, std::move(handler), {.into = out});
            },
            token, &out);
    }

    /// The same, completing with the message: void(error_code, message).
    template <class CompletionToken>
    auto async_receive(CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, connector::message)>(
            [st = where()](auto handler) { start<detail::client_state::message_handler>(st, std::move(handler), {}); },
            token);
    }

    /// Waits for messages and takes every queued one, up to `max_messages`,
    /// into `batch[0..n)`: one completion for a burst instead of one per
    /// message. A waiting batch receive completes once per read of the
    /// client's socket (one recvmmsg, up to 32 datagrams), with all it brought,
    /// or as soon as `max_messages` are queued. `batch` only grows, and its messages' storage is recycled, so
    /// a reused batch costs no allocation once warm.
    /// Completion signature: void(error_code, std::size_t n); errors as above
    /// (n is then 0).
    template <class CompletionToken>
    auto async_receive_batch(std::vector<connector::message>& batch, std::size_t max_messages,
                             CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, std::size_t)>(
            [st = where()](auto handler, std::vector<connector::message>* batch, std::size_t max) {
                start<detail::client_state::count_handler>(st, std::move(handler),
                                                           {.batch = batch, .batch_max = max == 0 ? 1 : max});
            },
            token, &batch, max_messages);
    }

    /// Takes a message that is already queued, without waiting: false when
    /// none is (nor an overrun to report), or a receive is in progress. A
    /// consumer woken by async_receive can empty the queue this way without a
    /// completion per message. `ec` is error::overrun once per overrun, as
    /// with async_receive.
    bool try_receive(connector::message& out, error_code& ec) {
        ec.clear();
        auto st = state_.lock();
        return st && valid_ && st->core().try_receive(ref_, out, ec);
    }

    /// Cancels a receive in progress (it completes with operation_aborted).
    void cancel() {
        if (auto st = state_.lock(); st && valid_) st->cancel_receive(ref_);
    }

    unsigned group() const noexcept { return valid_ ? group_ : 0; }
    subscription_stats stats() const {
        auto st = state_.lock();
        return st && valid_ ? st->core().subscription_statistics(ref_) : subscription_stats{};
    }
    /// Messages queued and not yet received.
    std::size_t queued() const noexcept {
        auto st = state_.lock();
        return st && valid_ ? st->core().queued(ref_) : 0;
    }
    explicit operator bool() const noexcept { return valid_; }

private:
    friend class client;

    subscription(std::weak_ptr<detail::client_state> st, detail::subscription_ref ref, unsigned group)
        : state_(std::move(st)), ref_(ref), group_(group), valid_(true) {}

    // What an initiation needs: captured by value, so that a deferred
    // operation started after the subscription moved still finds it.
    struct receive_at {
        std::weak_ptr<detail::client_state> state;
        detail::subscription_ref ref;
        bool valid;
    };
    receive_at where() const { return {state_, ref_, valid_}; }

    template <class Erased, class Handler>
    static void start(const receive_at& at, Handler&& handler, detail::receive_target target) {
        auto st = at.state.lock();
        if (st && at.valid) return st->start_receive<Erased>(at.ref, std::forward<Handler>(handler), target);
        // No client left to queue the completion in: post it to the handler's executor.
        auto ex = boost::asio::get_associated_executor(handler);
        const error_code ec = error::client_closed;
        if constexpr (std::is_same_v<Erased, detail::client_state::status_handler>)
            boost::asio::post(ex, boost::asio::append(std::forward<Handler>(handler), ec));
        else if constexpr (std::is_same_v<Erased, detail::client_state::message_handler>)
            boost::asio::post(ex, boost::asio::append(std::forward<Handler>(handler), ec, connector::message{}));
        else
            boost::asio::post(ex, boost::asio::append(std::forward<Handler>(handler), ec, std::size_t{0}));
    }

    void reset() {
        if (!valid_) return;
        valid_ = false;
        if (auto st = state_.lock()) st->unsubscribe(ref_);
        state_.reset();
    }

    std::weak_ptr<detail::client_state> state_;
    detail::subscription_ref ref_{};
    unsigned group_ = 0;
    bool valid_ = false;
};

} // namespace cnasio
