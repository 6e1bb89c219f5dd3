// cnasio/part_stream.hpp - a multi-part answer handed out one part at a time.
//
//     auto s = c.request_stream(id, payload, options);   // options.parts: the rule that ends it
//     for (;;) {
//         auto [ec, part] = co_await s.async_next(asio::as_tuple(asio::use_awaitable));
//         if (ec == cnasio::error::end_of_answer) break;   // the last part came before
//         if (ec) throw boost::system::system_error(ec);   // timeout, cancelled, ...
//         use(part);
//     }
//
// The client's core is the one owner of the answer: it matches the parts,
// queues those nobody waits for yet, and ends the request (timeout, the last
// part, cancellation) exactly as for a gathered answer; this object only asks
// it for the next part. Accounting is that of any request: each part counts
// in client_stats::replies, parts after the last one as duplicate_replies,
// parts after a timeout or a cancellation as late_replies.
#pragma once

#include <cnasio/connector/message.hpp>
#include <cnasio/detail/client_state.hpp>
#include <cnasio/error.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

namespace cnasio {

class client;

/// The answer of one request, part by part (client::request_stream).
/// Move-only. Destroying it ends the request: a wait in progress ends with
/// operation_aborted, queued parts are dropped, and parts that come later
/// count as late replies (cancel() ends it too, keeping the queued parts). Use it from its client's executor;
/// once the client is gone, async_next fails with client_closed.
///
/// The request's timeout covers the whole answer. Parts that come while
/// nobody waits are queued, up to the queue limit given to request_stream;
/// one more ends the answer with error::parts_overflow (after the queued
/// parts). However the answer ends, the parts queued before its end are
/// handed out first.
///
/// Cancellation: async_next honours terminal, partial and total
/// cancellation. A cancellation that allows partial or total ends the wait
/// only (operation_aborted), with no other effect: parts keep queueing and the
/// next async_next takes them. One that allows terminal alone also ends the
/// request, as cancel() does.
class part_stream {
public:
    part_stream() = default;
    part_stream(part_stream&& other) noexcept
        : state_(std::move(other.state_)), ref_(other.ref_), valid_(std::exchange(other.valid_, false)) {}
    part_stream& operator=(part_stream&& other) noexcept {
        if (this != &other) {
            reset();
            state_ = std::move(other.state_);
            ref_ = other.ref_;
            valid_ = std::exchange(other.valid_, false);
        }
        return *this;
    }
    ~part_stream() { reset(); }

    /// Waits for the next part. Completion signature: void(error_code,
    /// connector::message). error::end_of_answer: the last part was handed
    /// out before (and at every later call); error::timeout, operation_aborted
    /// (cancelled, closed), error::parts_overflow, a socket errno, or an error
    /// at start (error::payload_too_large, error::client_closed,
    /// error::not_registered, ...): the answer ended without its last part,
    /// after the parts queued before. One wait at a time: a second completes
    /// with error in_progress.
    template <class CompletionToken>
    auto async_next(CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, connector::message)>(
            [at = where()](auto handler) {
                start<detail::client_state::message_handler>(at, std::move(handler), nullptr);
            },
            token);
    }

    /// The same, moving the part into `out` (whose storage is recycled).
    /// Completion signature: void(error_code).
    template <class CompletionToken>
    auto async_next(connector::message& out, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [at = where()](auto handler, connector::message* out) {
                start<detail::client_state::status_handler>(at, std::move(handler), out);
            },
            token, &out);
    }

    /// Ends the request now, if it is pending: a wait in progress ends with
    /// operation_aborted, parts that come later count as late replies. The
    /// parts queued before stay to be taken; then async_next gives
    /// operation_aborted.
    void cancel() {
        if (auto st = state_.lock(); st && valid_) st->cancel_stream(ref_);
    }

    /// Parts queued and not yet handed out.
    std::size_t queued() const noexcept {
        auto st = state_.lock();
        return st && valid_ ? st->core().stream_queued(ref_) : 0;
    }
    /// Parts that came so far (handed out, queued, or the one a full queue lost).
    std::uint64_t parts() const noexcept {
        auto st = state_.lock();
        return st && valid_ ? st->core().stream_parts(ref_) : 0;
    }
    /// True once the request has ended (parts may still be queued).
    bool ended() const noexcept {
        auto st = state_.lock();
        return !st || !valid_ || st->core().stream_ended(ref_);
    }
    explicit operator bool() const noexcept { return valid_; }

private:
    friend class client;

    part_stream(std::weak_ptr<detail::client_state> st, detail::stream_ref ref)
        : state_(std::move(st)), ref_(ref), valid_(true) {}

    // What an initiation needs, captured by value: a deferred async_next
    // started after the stream moved still finds it.
    struct next_at {
        std::weak_ptr<detail::client_state> state;
        detail::stream_ref ref;
        bool valid;
    };
    next_at where() const { return {state_, ref_, valid_}; }

    template <class Erased, class Handler>
    static void start(const next_at& at, Handler&& handler, connector::message* out) {
        auto st = at.state.lock();
        if (st && at.valid) return st->start_next<Erased>(at.ref, std::forward<Handler>(handler), out);
        // No client left to queue the completion in: post it to the handler's executor.
        auto ex = boost::asio::get_associated_executor(handler);
        const error_code ec = error::client_closed;
        if constexpr (std::is_same_v<Erased, detail::client_state::status_handler>)
            boost::asio::post(ex, boost::asio::append(std::forward<Handler>(handler), ec));
        else
            boost::asio::post(ex, boost::asio::append(std::forward<Handler>(handler), ec, connector::message{}));
    }

    void reset() {
        if (!valid_) return;
        valid_ = false;
        if (auto st = state_.lock()) st->close_stream(ref_);
        state_.reset();
    }

    std::weak_ptr<detail::client_state> state_;
    detail::stream_ref ref_{};
    bool valid_ = false;
};

} // namespace cnasio
