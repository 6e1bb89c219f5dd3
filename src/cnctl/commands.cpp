// The commands: each opens a client, runs one coroutine on a single-threaded
// io_context, and returns the exit status (commands.hpp).
#include "commands.hpp"

#include "format.hpp"
#include "output.hpp"
#include "proc_view.hpp"
#include "command_support.hpp"

#include <cnasio/client.hpp>
#include <cnasio/proc/listener.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>

namespace cnctl {
namespace {

namespace asio = boost::asio;
namespace proc = cnasio::proc;
namespace cn = cnasio::connector;
using cnasio::error_code;

// ---- errors -----------------------------------------------------------------------

std::string id_text(cn::id id) { return std::to_string(id.idx) + ":" + std::to_string(id.val); }

// A message to an id nobody registered: what the kernel would have done with it.
std::string not_registered(cn::id id, const std::string& doing) {
    return doing + ": " + id_text(id) +
           " is not registered (not listed in /proc/net/connector): the kernel drops messages to it silently; "
           "is its module loaded? (cnctl ids lists the registered ids; cnctl wait-id " + id_text(id) +
           " waits for it)";
}

std::string describe(error_code ec, const std::string& doing) {
    if (ec == boost::system::errc::operation_not_permitted || ec == boost::system::errc::permission_denied)
        return doing + ": not permitted (" + ec.message() +
               "): this needs CAP_NET_ADMIN on this kernel (run as root)";
    if (ec == cnasio::error::connector_unreachable)
        return doing +
               ": the kernel connector is not reachable from this network namespace (ECONNREFUSED): it exists in "
               "the initial network namespace only; open the socket there with --netns /proc/1/ns/net (or the "
               "namespace file of a process outside the container, e.g. /proc/PID/ns/net)";
    if (ec == cnasio::error::proc_events_unsupported)
        return doing +
               ": the kernel did not acknowledge LISTEN: it lacks CONFIG_PROC_EVENTS, or this process is in a user "
               "or pid namespace, where the proc connector ignores requests";
    if (ec == cnasio::error::connector_unsupported)
        return doing + ": the kernel has no netlink connector (EPROTONOSUPPORT): it needs CONFIG_CONNECTOR";
    if (ec == cnasio::error::registry_unavailable)
        return doing +
               ": /proc/net/connector does not exist in this network namespace: the kernel lists its connector ids "
               "in the initial network namespace only; read it there with --netns /proc/1/ns/net (or the namespace "
               "file of a process outside the container, e.g. /proc/PID/ns/net)";
    return doing + ": " + ec.message();
}

int fail(const std::string& message) {
    std::fprintf(stderr, "cnctl: %s\n", message.c_str());
    return exit_runtime;
}

std::optional<cnasio::client> open_client(asio::io_context& io, const common_options& o, int& rc) {
    cnasio::client_options co;
    co.netns = o.netns;
    co.admitted_ports = o.admitted;
    if (o.rcvbuf != 0) co.subscription_receive_buffer = o.rcvbuf;
    error_code ec;
    cnasio::client c(io.get_executor(), std::move(co), ec);
    if (ec) {
        if (!o.netns.empty() && (ec == boost::system::errc::operation_not_permitted ||
                                 ec == boost::system::errc::permission_denied))
            rc = fail("entering network namespace " + o.netns + ": not permitted (" + ec.message() +
                      "): opening the namespace file and setns() need root (CAP_SYS_ADMIN)");
        else
            rc = fail(describe(ec, o.netns.empty() ? std::string("opening the connector socket")
                                                   : "opening the connector socket in network namespace " + o.netns));
        return std::nullopt;
    }
    return std::optional<cnasio::client>(std::move(c));
}

// The --ready-line announcement: from now on, messages sent to `group` reach
// this process's socket and SIGINT/SIGTERM end it cleanly.
void announce_ready(unsigned group) { std::fprintf(stderr, "cnctl: listening on group %u\n", group); }

// ---- commands ------------------------------------------------------------------------

asio::awaitable<int> proc_command(const proc_args& a, cnasio::client& c) {
    if (!a.raw && !a.force_bpf) co_return co_await proc_view(a, c, describe);
    int rc = exit_ok;

    proc::listener_options lo;
    lo.filter = a.filter;
    lo.force_bpf = a.force_bpf;
    proc::listener l(c, lo);
    auto [sec] = co_await l.async_start(asio::as_tuple(asio::use_awaitable));
    if (sec) co_return fail(describe(sec, "starting process events"));

    stop_on_signals signals(c.get_executor(), [&l] { l.cancel(); });
    if (a.ready_line) announce_ready(proc::connector_idx); // joined, LISTEN acknowledged, signals caught

    output out;
    proc::event ev;
    std::uint64_t seen = 0;
    std::uint64_t lost_reported = 0;
    bool overrun_count_pending = false;
    const bool filtered = !a.filter.kernel_effective().is_all();
    auto report_loss = [&](bool final) {
        const auto st = l.stats();
        if (filtered || !st.lost) {
            if (final && st.overruns > 0)
                std::fprintf(stderr, "cnctl: %llu receive buffer overrun(s); events lost: count unknown (filtered)\n",
                             static_cast<unsigned long long>(st.overruns));
            return;
        }
        if (*st.lost > lost_reported) {
            std::fprintf(stderr, "cnctl: %llu events lost (total %llu, %llu overrun(s))\n",
                         static_cast<unsigned long long>(*st.lost - lost_reported),
                         static_cast<unsigned long long>(*st.lost), static_cast<unsigned long long>(st.overruns));
            lost_reported = *st.lost;
        }
    };
    while (!signals.stopping()) {
        auto [ec] = co_await l.async_receive(ev, asio::as_tuple(asio::use_awaitable));
        if (ec == cnasio::error::overrun) {
            if (filtered)
                std::fprintf(stderr, "cnctl: receive buffer overrun: events lost (count unknown: a filter is "
                                     "active, and the kernel numbers filtered events too)\n");
            else
                std::fprintf(stderr, "cnctl: receive buffer overrun: events lost (counting...)\n");
            overrun_count_pending = true;
            continue;
        }
        if (ec) {
            if (signals.stopping()) break;
            rc = fail(describe(ec, "receiving process events"));
            break;
        }
        // The count behind an overrun shows as each CPU's next event arrives.
        if (overrun_count_pending || l.queued() == 0) report_loss(false);
        if (!out.write(format_event(ev, a.json))) break; // finish() reports it
        ++seen;
        if (a.count != 0 && seen >= a.count) break;
        if (l.queued() == 0 && !out.flush()) break; // a burst is flushed once, at its end
    }
    rc = out.finish(rc);
    l.close(); // IGNORE
    report_loss(true);
    co_return rc;
}

asio::awaitable<int> tree_command(const tree_args& a, cnasio::client& c) {
    co_return co_await tree_view(a, c, describe);
}

asio::awaitable<int> listen_command(const listen_args& a, cnasio::client& c) {
    int rc = exit_ok;
    cnasio::subscription_options so;
    so.queue_limit = 65536;
    error_code ec;
    auto sub = c.subscribe(a.group, so, ec);
    if (ec) co_return fail(describe(ec, "joining group " + std::to_string(a.group)));

    stop_on_signals signals(c.get_executor(), [&sub] { sub.cancel(); });
    if (a.ready_line) announce_ready(a.group); // joined, signals caught
    output out;
    cn::message m;
    std::uint64_t seen = 0, overruns = 0;
    while (!signals.stopping()) {
        auto [rec] = co_await sub.async_receive(m, asio::as_tuple(asio::use_awaitable));
        if (rec == cnasio::error::overrun) {
            ++overruns;
            std::fprintf(stderr, "cnctl: receive buffer overrun: messages lost (%llu overrun(s) so far)\n",
                         static_cast<unsigned long long>(overruns));
            continue;
        }
        if (rec) {
            if (signals.stopping()) break;
            rc = fail(describe(rec, "receiving from group " + std::to_string(a.group)));
            break;
        }
        if (!out.write(format_message(m, a.json))) break; // finish() reports it
        ++seen;
        if (a.count != 0 && seen >= a.count) break;
        if (sub.queued() == 0 && !out.flush()) break;
    }
    const auto dropped = sub.stats().dropped;
    if (dropped > 0)
        std::fprintf(stderr, "cnctl: %llu messages dropped by a full queue\n", static_cast<unsigned long long>(dropped));
    co_return out.finish(rc);
}


asio::awaitable<int> request_command(const request_args& a, cnasio::client& c) {
    cnasio::request_options ro;
    ro.match = a.ack_only ? cnasio::match::ack_only : cnasio::match::seq_and_ack;
    ro.timeout = a.timeout;
    ro.port_id = a.to;
    ro.check_registered = a.check_registered && a.to == 0;
    cn::header sent_header{};
    ro.sent = &sent_header;

    stop_on_signals signals(c.get_executor(), [&c] { c.close(); });
    auto [ec, reply] = co_await c.async_request(a.id, a.payload, ro, asio::as_tuple(asio::use_awaitable));
    if (signals.stopping()) co_return exit_ok;
    if (ec == cnasio::error::not_registered)
        co_return fail(not_registered(a.id, "request to " + id_text(a.id)) +
                       (sent_header.seq != 0 ? " (it went away before the timeout)" : ""));
    if (ec == cnasio::error::timeout) {
        std::fprintf(stderr, "cnctl: no reply from %s within %lld ms\n", id_text(a.id).c_str(),
                     static_cast<long long>(a.timeout.count()));
        co_return exit_timeout;
    }
    if (ec) co_return fail(describe(ec, "request to " + id_text(a.id)));
    // The headers the request was sent with (request_options::sent).
    request_numbers sent;
    sent.seq = sent_header.seq;
    sent.ack = sent_header.ack;
    output out;
    out.write(format_request_reply(sent, reply, a.json));
    co_return out.finish(exit_ok);
}

asio::awaitable<int> send_command(const send_args& a, cnasio::client& c) {
    cnasio::request_options ro;
    ro.port_id = a.to;
    ro.check_registered = a.check_registered && a.to == 0;
    auto [ec] = co_await c.async_send(a.id, a.payload, ro, asio::as_tuple(asio::use_awaitable));
    if (ec == cnasio::error::not_registered) co_return fail(not_registered(a.id, "send to " + id_text(a.id)));
    if (ec == boost::system::errc::connection_refused)
        co_return fail("send to " + id_text(a.id) + ": no socket has port id " + std::to_string(a.to));
    if (ec) co_return fail(describe(ec, "send to " + id_text(a.id)));
    co_return exit_ok;
}

asio::awaitable<int> ids_command(const ids_args& a, cnasio::client& c) {
    error_code ec;
    const auto ids = c.registered_ids(ec);
    if (ec) co_return fail(describe(ec, "reading the registered connector ids"));
    output out;
    for (const auto& r : ids)
        if (!out.write(format_registered(r, a.json))) break;
    co_return out.finish(exit_ok);
}

asio::awaitable<int> wait_id_command(wait_id_args a) {
    auto ex = co_await asio::this_coro::executor;
    cnasio::client_options co;
    co.netns = a.netns;
    co.registry_interval = a.interval;
    error_code ec;
    cnasio::client c(ex, std::move(co), ec);
    if (ec) co_return fail(describe(ec, "opening the connector socket"));
    stop_on_signals signals(ex, [&c] { c.close(); });
    const auto t0 = std::chrono::steady_clock::now();
    auto [wec] = a.gone ? co_await c.async_wait_unregistered(a.id, a.timeout, asio::as_tuple(asio::use_awaitable))
                        : co_await c.async_wait_registered(a.id, a.timeout, asio::as_tuple(asio::use_awaitable));
    const auto waited =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    if (signals.stopping()) co_return exit_ok;
    const char* what = a.gone ? "unregistered" : "registered";
    if (wec == cnasio::error::timeout) {
        std::fprintf(stderr, "cnctl: %s not %s within %lld ms\n", id_text(a.id).c_str(), what,
                     static_cast<long long>(a.timeout.count()));
        co_return exit_timeout;
    }
    if (wec) co_return fail(describe(wec, std::string("waiting for ") + id_text(a.id)));
    output out;
    out.write(format_wait_result(a.id, a.gone, static_cast<std::uint64_t>(waited), a.json));
    co_return out.finish(exit_ok);
}

int run(asio::awaitable<int> task) {
    asio::io_context io(1);
    int rc = exit_runtime;
    asio::co_spawn(io, std::move(task), [&rc](std::exception_ptr e, int r) {
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                std::fprintf(stderr, "cnctl: %s\n", x.what());
            }
            rc = exit_runtime;
        } else {
            rc = r;
        }
    });
    io.run();
    return rc;
}

} // namespace

// `a` outlives io.run() in run(): the commands may keep references to it.
int run_proc(const proc_args& a) { return run(with_client(a, [&a](cnasio::client& c) { return proc_command(a, c); })); }
int run_listen(const listen_args& a) {
    return run(with_client(a, [&a](cnasio::client& c) { return listen_command(a, c); }));
}
int run_tree(const tree_args& a) { return run(with_client(a, [&a](cnasio::client& c) { return tree_command(a, c); })); }
int run_request(const request_args& a) {
    return run(with_client(a, [&a](cnasio::client& c) { return request_command(a, c); }));
}
int run_send(const send_args& a) { return run(with_client(a, [&a](cnasio::client& c) { return send_command(a, c); })); }
int run_ids(const ids_args& a) { return run(with_client(a, [&a](cnasio::client& c) { return ids_command(a, c); })); }
int run_wait_id(const wait_id_args& a) { return run(wait_id_command(a)); }

} // namespace cnctl

namespace cnctl {

// For the commands in files of their own (command_support.hpp).
int run_task(asio::awaitable<int> task) { return run(std::move(task)); }
std::optional<cnasio::client> open_command_client(asio::io_context& io, const common_options& o, int& rc) {
    return open_client(io, o, rc);
}
std::string describe_error(error_code ec, const std::string& doing) { return describe(ec, doing); }
int fail_with(const std::string& message) { return fail(message); }

} // namespace cnctl
