// The proc listener's start and stop sequence as a sans-IO state machine:
// events in, actions out, no socket and no Asio. proc::listener runs it.
//
// Start (why each step: filter.hpp and docs/kernel-compat.md):
//   join group CN_IDX_PROC (a LISTEN sent before joining gets nothing back);
//   no filter:   LISTEN (4-byte op) as a request                -> ack -> running, path none
//   filter:      LISTEN (8-byte proc_input, mask ALL) as a request ("the probe"):
//     ack:       LISTEN (8-byte, the real mask), one-way (that socket no longer
//                sees acks)                                      -> sent -> running, path kernel_mask
//     timeout:   the kernel predates 6.6 (it drops 8-byte requests without
//                counting them): attach the BPF filter, LISTEN (4-byte) as a request
//                                                                -> ack -> running, path bpf
//   force_bpf:   attach the BPF filter, LISTEN (4-byte)           -> ack -> running, path bpf
// An ack's err != 0 fails the start with that errno; no ack to the 4-byte
// LISTEN fails it with error::proc_events_unsupported; any other failure
// (join, attach, send, the request) with its error.
//
// IGNORE is owed (listening()) from an acknowledged LISTEN (err 0) until a
// teardown sends it: kernels before 6.6 decrement their listener count on
// every IGNORE, also one that answers no LISTEN, so an unacknowledged LISTEN
// is never answered with IGNORE.
//
// Teardown (one action for every way out: a failed start, close() during the
// start, close() when running): send IGNORE if owed, detach the BPF filter if
// attached, leave the group if joined. A failed start ends in `idle` (it may be
// started again); close() ends in `closed`. close() during a start tears down
// at once; the operation in flight (a request) still completes, and if it was
// a LISTEN that the kernel acknowledged, IGNORE is sent then; the start then
// completes with operation_aborted.
//
// Driving it: feed an event, do the action returned, feed its outcome. join,
// attach_bpf and teardown are synchronous for the driver (feed joined /
// attached / torn_down, or failure(ec), right after doing them); request and
// send are asynchronous: the message leaves when the action is done, its
// outcome (ack / timeout / failure, sent / failure) is fed when it arrives.
// An event the current state does not expect is ignored (action none).
#pragma once

#include <cnasio/error.hpp>
#include <cnasio/proc/event_mask.hpp>
#include <cnasio/proc/filter.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>

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

namespace detail {
// boost::asio::error::operation_aborted and in_progress, without Asio.
inline error_code operation_aborted() noexcept { return {ECANCELED, boost::system::system_category()}; }
inline error_code in_progress() noexcept { return {EINPROGRESS, boost::system::system_category()}; }
} // namespace detail

struct start_config {
    /// The filter; normalised by the machine (kernel_effective()); all(): none.
    event_mask wanted = event_mask::all();
    bool force_bpf = false;
    std::chrono::milliseconds probe_timeout{300};
    std::chrono::milliseconds listen_timeout{1000};
};

/// What happened, fed to start_fsm::on().
struct start_event {
    enum class kind {
        start,     ///< async_start was called
        joined,    ///< the join action succeeded
        attached,  ///< the attach_bpf action succeeded
        ack,       ///< the request's reply: a proc ack carrying `err`
        timeout,   ///< the request got no reply in time
        sent,      ///< the one-way send completed
        failure,   ///< the last action, or the request or send in flight, failed with `ec`
        close,     ///< close() was called
        torn_down, ///< the teardown action was done
    };
    kind what = kind::start;
    std::uint32_t err = 0; // ack
    error_code ec{};       // failure

    static start_event started() noexcept { return {kind::start}; }
    static start_event joined() noexcept { return {kind::joined}; }
    static start_event attached() noexcept { return {kind::attached}; }
    static start_event ack(std::uint32_t err) noexcept { return {kind::ack, err}; }
    static start_event timeout() noexcept { return {kind::timeout}; }
    static start_event sent() noexcept { return {kind::sent}; }
    static start_event failure(error_code ec) noexcept { return {kind::failure, 0, ec}; }
    static start_event close() noexcept { return {kind::close}; }
    static start_event torn_down() noexcept { return {kind::torn_down}; }
};

/// What the driver does next.
struct start_action {
    enum class kind {
        none,       ///< nothing now (wait for the operation in flight, or nothing left)
        join,       ///< join group CN_IDX_PROC (subscribe)
        request,    ///< send `payload` to the proc connector, wait `timeout` for its ack (match on ack + 1)
        send,       ///< send `payload` to the proc connector, one-way
        attach_bpf, ///< attach make_bpf_filter(filter) to the socket
        teardown,   ///< undo: `ignore` (send IGNORE, 4-byte), `detach_bpf`, `leave` the group
        done,       ///< complete async_start with `ec`
    };
    kind what = kind::none;
    std::span<const std::byte> payload{}; // request, send: the machine's storage, valid until the next on()
    std::chrono::milliseconds timeout{0}; // request
    bool ignore = false, detach_bpf = false, leave = false; // teardown
    error_code ec{};                                        // done
};

class start_fsm {
public:
    enum class state {
        idle,        ///< not started, or a start failed
        joining,     ///< join asked for
        probing,     ///< 8-byte LISTEN with mask ALL in flight
        masking,     ///< 8-byte LISTEN with the real mask being sent
        attaching,   ///< BPF attach asked for
        listening4,  ///< 4-byte LISTEN in flight
        failing,     ///< teardown asked for, then done(ec)
        running,     ///< started
        aborting,    ///< closed during the start: waiting for the request or send in flight
        closing,     ///< teardown asked for by close(), then closed
        closed,
    };

    explicit start_fsm(start_config config) noexcept : cfg_{config} {
        cfg_.wanted = cfg_.wanted.kernel_effective();
    }

    start_action on(const start_event& e) noexcept {
        using K = start_event::kind;
        if (e.what == K::close) return close();
        if (e.what == K::start) {
            if (closed()) return done_only(make_error_code(error::client_closed));
            if (state_ != state::idle) return done_only(detail::in_progress());
            in_flight_ = finish_with_done_ = sent_ignore_ = false;
            state_ = state::joining;
            return {start_action::kind::join};
        }
        switch (state_) {
        case state::joining:
            if (e.what == K::joined) {
                joined_ = true;
                if (cfg_.wanted.is_all()) return listen4();
                if (cfg_.force_bpf) return attach();
                state_ = state::probing;
                payload_ = input_payload(mcast_op::listen, event_mask::all());
                return request(payload_, cfg_.probe_timeout);
            }
            if (e.what == K::failure) return fail(e.ec);
            break;
        case state::probing:
            if (e.what == K::ack) {
                if (e.err != 0) return fail(errno_code(static_cast<int>(e.err)));
                listening_ = true; // counted by the kernel: IGNORE owed from here on
                state_ = state::masking;
                payload_ = input_payload(mcast_op::listen, cfg_.wanted);
                return {start_action::kind::send, std::span<const std::byte>(payload_)};
            }
            if (e.what == K::timeout) return attach(); // before 6.6
            if (e.what == K::failure) return fail(e.ec);
            break;
        case state::masking:
            if (e.what == K::sent) return succeed(filter_path::kernel_mask);
            if (e.what == K::failure) return fail(e.ec);
            break;
        case state::attaching:
            if (e.what == K::attached) {
                bpf_attached_ = true;
                return listen4();
            }
            if (e.what == K::failure) return fail(e.ec);
            break;
        case state::listening4:
            if (e.what == K::ack) {
                if (e.err != 0) return fail(errno_code(static_cast<int>(e.err)));
                listening_ = true;
                return succeed(bpf_attached_ ? filter_path::bpf : filter_path::none);
            }
            if (e.what == K::timeout) return fail(make_error_code(error::proc_events_unsupported));
            if (e.what == K::failure) return fail(e.ec);
            break;
        case state::failing:
            if (e.what == K::torn_down) {
                state_ = state::idle;
                return done_only(failure_);
            }
            break;
        case state::aborting:
            // The request or send in flight ended. A LISTEN the kernel
            // acknowledged is counted: IGNORE it now.
            if (e.what == K::ack && e.err == 0 && !sent_ignore_) {
                state_ = state::closing;
                finish_with_done_ = true;
                return teardown(true, false, false);
            }
            if (e.what == K::ack || e.what == K::timeout || e.what == K::sent || e.what == K::failure) {
                state_ = state::closed;
                return done_only(detail::operation_aborted());
            }
            break;
        case state::closing:
            if (e.what == K::torn_down) {
                if (!finish_with_done_) {
                    // close() during a start with an operation in flight: wait for it.
                    state_ = in_flight_ ? state::aborting : state::closed;
                    return {};
                }
                state_ = state::closed;
                return done_only(detail::operation_aborted());
            }
            break;
        case state::idle:
        case state::running:
        case state::closed: break;
        }
        return {};
    }

    state current() const noexcept { return state_; }
    /// An acknowledged LISTEN not yet answered by IGNORE.
    bool listening() const noexcept { return listening_; }
    bool bpf_attached() const noexcept { return bpf_attached_; }
    bool joined() const noexcept { return joined_; }
    /// The path of a successful start (none before).
    filter_path path() const noexcept { return path_; }
    bool running() const noexcept { return state_ == state::running; }
    /// close() was fed.
    bool closed() const noexcept {
        return state_ == state::closed || state_ == state::closing || state_ == state::aborting;
    }
    /// The normalised filter.
    event_mask wanted() const noexcept { return cfg_.wanted; }

private:
    start_action request(std::span<const std::byte> p, std::chrono::milliseconds t) noexcept {
        start_action a{start_action::kind::request, p};
        a.timeout = t;
        return a;
    }
    start_action listen4() noexcept {
        state_ = state::listening4;
        const auto p = op_payload(mcast_op::listen);
        std::copy(p.begin(), p.end(), payload_.begin());
        return request(std::span<const std::byte>(payload_.data(), p.size()), cfg_.listen_timeout);
    }
    start_action attach() noexcept {
        state_ = state::attaching;
        return {start_action::kind::attach_bpf};
    }
    start_action succeed(filter_path p) noexcept {
        path_ = p;
        state_ = state::running;
        return done_only(error_code{});
    }
    static start_action done_only(error_code ec) noexcept {
        start_action a{start_action::kind::done};
        a.ec = ec;
        return a;
    }
    // Undo everything this start set up, then done(ec).
    start_action fail(error_code ec) noexcept {
        failure_ = ec;
        path_ = filter_path::none;
        if (!listening_ && !bpf_attached_ && !joined_) {
            state_ = state::idle;
            return done_only(ec);
        }
        state_ = state::failing;
        return teardown(listening_, bpf_attached_, joined_);
    }
    start_action teardown(bool ignore, bool detach, bool leave) noexcept {
        start_action a{start_action::kind::teardown};
        a.ignore = ignore;
        a.detach_bpf = detach;
        a.leave = leave;
        if (ignore) sent_ignore_ = true;
        listening_ = listening_ && !ignore;
        bpf_attached_ = bpf_attached_ && !detach;
        joined_ = joined_ && !leave;
        return a;
    }
    start_action close() noexcept {
        switch (state_) {
        case state::idle:
            state_ = state::closed;
            return {};
        case state::probing:
        case state::masking:
        case state::listening4:
            // A request or send is in flight; it completes later (aborting).
            in_flight_ = true;
            state_ = state::closing;
            return teardown(listening_, bpf_attached_, joined_);
        case state::running:
            in_flight_ = false;
            state_ = state::closing;
            return teardown(listening_, bpf_attached_, joined_);
        case state::joining:
        case state::attaching:
        case state::failing:
            // The driver does these synchronously: close() cannot come in
            // between. Treat it as a close with nothing in flight.
            in_flight_ = false;
            state_ = state::closing;
            return teardown(listening_, bpf_attached_, joined_);
        case state::aborting:
        case state::closing:
        case state::closed: return {};
        }
        return {};
    }

    start_config cfg_;
    state state_ = state::idle;
    std::array<std::byte, 8> payload_{};
    error_code failure_{};
    filter_path path_ = filter_path::none;
    bool joined_ = false, bpf_attached_ = false, listening_ = false;
    bool in_flight_ = false, finish_with_done_ = false, sent_ignore_ = false;
};

} // namespace cnasio::proc
