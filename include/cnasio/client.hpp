// cnasio/client.hpp - requests and subscriptions over one connector socket.
//
// A `client` owns a connector socket and the one receive loop that reads it.
// Every message read goes to the pending request it answers or else to the
// subscribers of the group it came through; nothing else reads the socket.
//
//     cnasio::client c(io.get_executor());
//     auto reply = co_await c.async_request({idx, val}, payload, asio::use_awaitable);
//
// Structure: the protocol logic (request table, subscriber queues, counters,
// finished operations) is a sans-IO state machine, detail/client_core.hpp;
// detail/client_state.hpp is the Asio glue that feeds it and calls the
// handlers; this header and subscription.hpp are the public face.
//
// Senders: only port id 0 (the kernel) is believed by default. Any local
// process with CAP_NET_ADMIN can unicast to our port id a message that claims
// anything in its headers; `client_options::admitted_ports` adds user-space
// peers to trust. Everything else is dropped and counted (stats().rejected).
//
// Threads: like an Asio socket, a client is not thread-safe. Call it, and the
// subscriptions it made, from its executor: a single-threaded io_context, or
// a strand when the io_context runs on several threads. Completions run on each
// handler's associated executor, never inside the initiating function.
//
// Work: the client keeps its io_context busy only while something waits on
// it: a pending request, a subscription, a completion not yet delivered. A
// program that makes its requests and lets go of its subscriptions sees
// io_context::run() return without close().
//
// Cancellation: async_request, part_stream::async_next and
// subscription::async_receive honour terminal, partial and total cancellation. A cancelled request leaves the pending table
// at once and a reply arriving later is counted as late.
#pragma once

#include <cnasio/client_options.hpp>
#include <cnasio/connector/message.hpp>
#include <cnasio/connector/registry.hpp>
#include <cnasio/connector/socket.hpp>
#include <cnasio/detail/client_state.hpp>
#include <cnasio/error.hpp>
#include <cnasio/options.hpp>
#include <cnasio/part_stream.hpp>
#include <cnasio/subscription.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/async_result.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace cnasio {

namespace detail {

// A void(error_code, subscription) handler with its subscription bound, as a
// void(error_code) handler: async_subscribe's completion travels the
// completion path like any other. Its executor, allocator and cancellation
// slot are the handler's (see the associator below).
template <class Handler>
struct subscribed_handler {
    Handler handler;
    subscription sub;
    void operator()(error_code ec) { std::move(handler)(ec, std::move(sub)); }
};

} // namespace detail

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
    client& operator=(client&& other) noexcept {
        if (this != &other) {
            if (state_) state_->close();
            state_ = std::move(other.state_);
        }
        return *this;
    }
    /// Completes every pending operation with operation_aborted.
    ~client() {
        if (state_) state_->close();
    }

    executor_type get_executor() const noexcept { return state_->get_executor(); }

    /// This client's port id: the address peers reply to.
    std::uint32_t port_id() const noexcept { return state_->socket().port_id(); }
    bool is_open() const noexcept { return state_ && !state_->core().closed(); }
    const client_stats& stats() const noexcept { return state_->core().stats(); }
    /// Requests waiting for their reply.
    std::size_t pending_requests() const noexcept { return state_->core().pending_requests(); }
    /// Receive buffer the kernel granted at the first subscription or request (0 before).
    std::size_t receive_buffer_size() const noexcept { return state_->receive_buffer_obtained(); }
    /// Bytes the subscription queues hold now: queued messages and storage kept
    /// for reuse (bounded by client_options::subscription_bytes).
    std::size_t held_bytes() const noexcept { return state_->core().held_bytes(); }
    /// The underlying connector socket, for socket options (e.g. a BPF
    /// filter). Do not read from it or send through it: the client's receive
    /// loop and send queue would not see it.
    connector::socket& socket() noexcept { return state_->socket(); }

    /// Trusts messages from a user-space port id too.
    void admit(std::uint32_t port_id) { state_->admit(port_id); }

    /// Ends every pending operation with operation_aborted and closes the socket.
    void close() { state_->close(); }

    /// Sends `payload` to connector id `id` and waits for the reply.
    /// Completion signature: void(error_code, connector::message).
    /// The payload is framed when the operation starts: at once for most
    /// tokens, but only at launch for `deferred`, so keep it alive until then.
    /// Errors: error::timeout, operation_aborted (cancelled or closed),
    /// error::client_closed, error::payload_too_large,
    /// error::connector_unreachable, a socket errno; with
    /// request_options::check_registered also error::not_registered (at
    /// start, or at expiry when the id is gone by then) and the registry's
    /// read errors (at start).
    template <class CompletionToken>
    auto async_request(connector::id id, std::span<const std::byte> payload, request_options options,
                       CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, connector::message)>(
            [st = state_](auto handler, connector::id id, std::span<const std::byte> payload,
                          request_options options) {
                st->start_request<detail::client_state::message_handler>(id, payload, std::move(options),
                                                                          std::move(handler), nullptr);
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
                st->start_request<detail::client_state::status_handler>(id, payload, std::move(options),
                                                                         std::move(handler), reply);
            },
            token, id, payload, &reply, std::move(options));
    }

    /// Sends `payload` and gathers an answer of several messages into `parts`
    /// (cleared at the start; keep it alive until the completion): the
    /// messages `options.match` gives the request go to `options.parts`, the
    /// part rule, in the order they arrive; each part it accepts is appended,
    /// and the request completes after the one it calls the last. The
    /// timeout covers the whole answer; on a timeout or a cancellation the
    /// parts that came stay in `parts`, and the rest count as late replies.
    /// Without a part rule the first matching message is the only part.
    /// Completion: void(error_code). Errors as async_request.
    template <class CompletionToken>
    auto async_request_parts(connector::id id, std::span<const std::byte> payload,
                             std::vector<connector::message>& parts, request_options options,
                             CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [st = state_](auto handler, connector::id id, std::span<const std::byte> payload,
                          std::vector<connector::message>* parts, request_options options) {
                st->start_request<detail::client_state::status_handler>(id, payload, std::move(options),
                                                                         std::move(handler), nullptr, parts);
            },
            token, id, payload, &parts, std::move(options));
    }

    /// Sends `payload` and returns its answer as a stream of parts, taken one
    /// at a time with part_stream::async_next (see part_stream.hpp): the
    /// messages `options.match` gives the request go to `options.parts`, the
    /// part rule, in the order they arrive, and the answer ends after the
    /// part it calls the last (without a rule, the first matching message is
    /// the only part). The timeout covers the whole answer. Up to
    /// `queue_limit` parts (at least 1) wait for a taker; one more ends the
    /// answer with error::parts_overflow. The request is sent now; the
    /// payload need not outlive the call. Errors at start (those of
    /// async_request) are the stream's end, given by its first async_next.
    part_stream request_stream(connector::id id, std::span<const std::byte> payload, request_options options,
                               std::size_t queue_limit = 1024) {
        const auto ref = state_->start_stream(id, payload, std::move(options), queue_limit);
        return part_stream(state_, ref);
    }

    /// Sends one message that expects no reply. Completion: void(error_code).
    template <class CompletionToken>
    auto async_send(connector::id id, std::span<const std::byte> payload, request_options options,
                    CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [st = state_](auto handler, connector::id id, std::span<const std::byte> payload,
                          request_options options) { st->start_send(id, payload, options, std::move(handler)); },
            token, id, payload, std::move(options));
    }

    /// Sends one message that expects no reply, now, through the client's
    /// send queue (a full peer queue keeps it in order for later). For a
    /// teardown that cannot wait for a completion, e.g. the proc connector's
    /// IGNORE from a destructor. Errors as async_send.
    void send(connector::id id, std::span<const std::byte> payload, const request_options& options,
              error_code& ec) {
        state_->send_now(id, payload, options, ec);
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
                st->complete_now(detail::subscribed_handler<decltype(handler)>{std::move(handler), std::move(sub)}, ec);
            },
            token, group, options);
    }
    template <class CompletionToken>
    auto async_subscribe(unsigned group, CompletionToken&& token) {
        return async_subscribe(group, subscription_options{}, std::forward<CompletionToken>(token));
    }

    // ---- the registry of connector ids (connector/registry.hpp) ----
    //
    // The kernel does not announce ids coming and going, so the client polls
    // /proc/net/connector, read in client_options::netns, every
    // client_options::registry_interval (default 100 ms) while at least one
    // wait or watch is outstanding: ONE timer per client however many wait,
    // none when nobody waits (io_context::run() returns). A change is seen
    // within one interval, plus a read; one that is undone within an interval
    // may go unseen. All three honour terminal, partial and total
    // cancellation (operation_aborted), and close() ends them with
    // operation_aborted. A registry that cannot be read (error::
    // registry_unavailable from a network namespace other than the initial
    // one, registry_malformed, an errno) ends them with that error.

    /// The ids registered now, read in client_options::netns (see connector::read_registry).
    std::vector<connector::registered_id> registered_ids(error_code& ec) const {
        return connector::read_registry(state_->options().netns, ec);
    }

    /// Completes once connector id `id` is registered (at once if it is now),
    /// or with error::timeout after `timeout` (0: no limit).
    /// Completion signature: void(error_code).
    template <class CompletionToken>
    auto async_wait_registered(connector::id id, std::chrono::milliseconds timeout, CompletionToken&& token) {
        return async_wait_id(id, false, timeout, std::forward<CompletionToken>(token));
    }

    /// Completes once nobody has `id` registered (at once if so now), or with
    /// error::timeout after `timeout` (0: no limit). Completion: void(error_code).
    template <class CompletionToken>
    auto async_wait_unregistered(connector::id id, std::chrono::milliseconds timeout, CompletionToken&& token) {
        return async_wait_id(id, true, timeout, std::forward<CompletionToken>(token));
    }

    /// Completes when the registered ids differ from those the client's
    /// previous watch saw (the first watch of a client takes the list at its
    /// start as what it saw), writing what went away and what appeared into
    /// `changes` (overwritten; keep it alive until the completion). Call again
    /// from the handler to keep watching: changes in between are reported by
    /// the next call. Completion signature: void(error_code).
    template <class CompletionToken>
    auto async_watch_ids(std::vector<connector::id_change>& changes, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [st = state_](auto handler, std::vector<connector::id_change>* out) {
                st->start_watch_ids(out, std::move(handler));
            },
            token, &changes);
    }

    /// Subscribes at once (joining a group does not wait on anything).
    subscription subscribe(unsigned group, subscription_options options, error_code& ec) {
        return subscribe(state_, group, options, ec);
    }

private:
    template <class CompletionToken>
    auto async_wait_id(connector::id id, bool gone, std::chrono::milliseconds timeout, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [st = state_](auto handler, connector::id id, bool gone, std::chrono::milliseconds timeout) {
                st->start_wait_id(id, gone, timeout, std::move(handler));
            },
            token, id, gone, timeout);
    }

    void open(const executor_type& ex, client_options options, error_code& ec) {
        state_ = std::make_shared<detail::client_state>(ex, std::move(options));
        state_->open(ec);
    }

    static subscription subscribe(const std::shared_ptr<detail::client_state>& st, unsigned group,
                                  const subscription_options& options, error_code& ec) {
        const auto ref = st->subscribe(group, options, ec);
        if (ec) return {};
        return subscription(st, ref, group);
    }

    std::shared_ptr<detail::client_state> state_;
};

} // namespace cnasio

template <template <class, class> class Associator, class Handler, class DefaultCandidate>
struct boost::asio::associator<Associator, cnasio::detail::subscribed_handler<Handler>, DefaultCandidate>
    : Associator<Handler, DefaultCandidate> {
    static typename Associator<Handler, DefaultCandidate>::type
    get(const cnasio::detail::subscribed_handler<Handler>& h) noexcept {
        return Associator<Handler, DefaultCandidate>::get(h.handler);
    }
    static auto get(const cnasio::detail::subscribed_handler<Handler>& h, const DefaultCandidate& c) noexcept
        -> decltype(Associator<Handler, DefaultCandidate>::get(h.handler, c)) {
        return Associator<Handler, DefaultCandidate>::get(h.handler, c);
    }
};
