// echo_client - talk to the cnasio_echo example module (examples/kernel) with
// cnasio::client requests, and print its typed replies.
//
//   echo_client [--id IDX:VAL] [--timeout MS] COMMAND
//     echo TEXT          the module sends TEXT back
//     notify TEXT        the module multicasts TEXT to group IDX (we listen too)
//     burst N            the module multicasts N events to group IDX
//     delay MS [TEXT]    the module sends TEXT back after MS milliseconds
//     stats              the module's counters since it was loaded
//     cmd NUMBER [ARG [TEXT]]   any command number (e.g. 77: an unknown one)
//
// Defaults: --id 14:1 (the module's defaults; IDX is also the multicast
// group), --timeout 1000 (added to MS for delay). Run as root: sending to a
// kernel connector needs CAP_NET_ADMIN on most kernels.
//
// Each request is one cnasio_echo_request (8 bytes: cmd, arg) followed by
// its data; the client matches the module's reply on the same seq and
// ack + 1, as connector.rst prescribes (cnasio's default request_options).
//
// Exit status: 0 success; 1 the module replied with an error (its errno's
// name is printed, e.g. "ERANGE"); 2 usage; 3 no reply or no connector
// (module not loaded: the request vanishes and times out).
#include "cnasio_echo.hpp"

#include <cnasio/client.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace asio = boost::asio;
namespace cn = cnasio::connector;
using namespace std::chrono_literals;

namespace {

constexpr int exit_error_reply = 1, exit_usage = 2, exit_no_reply = 3;

struct arguments {
    cn::id id = cnasio_echo::default_id;
    std::chrono::milliseconds timeout{1000};
    std::string command;
    std::uint32_t cmd = 0; // CNASIO_ECHO_CMD_*
    std::uint32_t arg = 0;
    std::string text;
};

int usage(const char* why) {
    std::fprintf(stderr,
                 "echo_client: %s\n"
                 "usage: echo_client [--id IDX:VAL] [--timeout MS] COMMAND\n"
                 "  echo TEXT | notify TEXT | burst N | delay MS [TEXT] | stats | cmd NUMBER [ARG [TEXT]]\n",
                 why);
    return exit_usage;
}

std::optional<std::uint32_t> parse_u32(std::string_view s) {
    std::uint32_t v = 0;
    const auto [end, err] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (err != std::errc{} || end != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

// Fills `a` from argv; returns false (after printing why) on a usage error.
bool parse(int argc, char** argv, arguments& a) {
    std::vector<std::string_view> rest;
    for (int i = 1; i < argc; ++i) {
        const std::string_view s = argv[i];
        if ((s == "--id" || s == "--timeout") && i + 1 < argc) {
            const std::string_view v = argv[++i];
            if (s == "--timeout") {
                const auto ms = parse_u32(v);
                if (!ms) return usage("--timeout wants milliseconds"), false;
                a.timeout = std::chrono::milliseconds(*ms);
                continue;
            }
            const auto colon = v.find(':');
            const auto idx = parse_u32(v.substr(0, colon));
            const auto val = colon == v.npos ? std::nullopt : parse_u32(v.substr(colon + 1));
            if (!idx || !val) return usage("--id wants IDX:VAL, e.g. 14:1"), false;
            a.id = {*idx, *val};
        } else if (s.starts_with("--")) {
            return usage("unknown option"), false;
        } else {
            rest.push_back(s);
        }
    }
    if (rest.empty()) return usage("no command"), false;
    a.command = rest[0];
    const auto n = rest.size();
    auto number = [&](std::size_t i, std::uint32_t& out) {
        const auto v = parse_u32(rest[i]);
        if (v) out = *v;
        return v.has_value();
    };
    if (a.command == "echo" && n == 2) {
        a.cmd = CNASIO_ECHO_CMD_ECHO;
        a.text = rest[1];
    } else if (a.command == "notify" && n == 2) {
        a.cmd = CNASIO_ECHO_CMD_NOTIFY;
        a.text = rest[1];
    } else if (a.command == "burst" && n == 2 && number(1, a.arg)) {
        a.cmd = CNASIO_ECHO_CMD_BURST;
    } else if (a.command == "delay" && (n == 2 || n == 3) && number(1, a.arg)) {
        a.cmd = CNASIO_ECHO_CMD_DELAY;
        if (n == 3) a.text = rest[2];
        a.timeout += std::chrono::milliseconds(a.arg);
    } else if (a.command == "stats" && n == 1) {
        a.cmd = CNASIO_ECHO_CMD_STATS;
    } else if (a.command == "cmd" && n >= 2 && n <= 4 && number(1, a.cmd) && (n < 3 || number(2, a.arg))) {
        if (n == 4) a.text = rest[3];
    } else {
        return usage("bad command or arguments"), false;
    }
    return true;
}

std::string quoted(std::span<const std::byte> data) {
    return '"' + std::string(reinterpret_cast<const char*>(data.data()), data.size()) + '"';
}

// The errno's symbolic name ("ERANGE"), or its number if glibc knows none.
std::string errno_name(const cnasio::error_code& ec) {
    const char* name = ::strerrorname_np(ec.value());
    return name ? name : "errno " + std::to_string(ec.value());
}

// The next message of `sub`, or an error: error::overrun is reported between
// messages when the kernel dropped some; operation_aborted after `wait` of silence.
asio::awaitable<cnasio::error_code> receive_within(cnasio::subscription& sub, cn::message& out,
                                                   std::chrono::milliseconds wait) {
    asio::steady_timer guard(co_await asio::this_coro::executor, wait);
    guard.async_wait([&sub](cnasio::error_code ec) {
        if (!ec) sub.cancel();
    });
    auto [ec] = co_await sub.async_receive(out, asio::as_tuple(asio::use_awaitable));
    guard.cancel();
    co_return ec;
}

// Receives the events of one notify (count 1) or burst (count N) and prints
// what arrived. Returns false if fewer than `count` arrived.
asio::awaitable<bool> print_events(cnasio::subscription& sub, std::uint32_t kind, std::uint32_t count) {
    cn::message m;
    std::uint32_t received = 0, in_order = 0, overruns = 0, burst = 0;
    while (received < count) {
        const auto ec = co_await receive_within(sub, m, 2s);
        if (ec == cnasio::error::overrun) {
            ++overruns;
            continue;
        }
        if (ec) break; // two seconds without an event
        const auto ev = cnasio_echo::parse_event(m.view());
        if (!ev.valid || ev.head.kind != kind) continue; // a tick, or another client's event
        if (kind == CNASIO_ECHO_EVENT_NOTIFY) {
            std::printf("event: notify #%u %s\n", ev.head.index, quoted(ev.data).c_str());
        } else {
            if (received == 0) burst = ev.head.burst;
            if (ev.head.burst == burst && ev.head.index == in_order) ++in_order;
        }
        ++received;
    }
    if (kind == CNASIO_ECHO_EVENT_BURST)
        std::printf("events: %u of %u received (burst #%u, %u in order, %u overrun reports)\n", received, count,
                    burst, in_order, overruns);
    co_return received == count;
}

asio::awaitable<int> run(cnasio::client& client, const arguments& a) {
    // notify and burst answer through the group: subscribe before asking.
    std::optional<cnasio::subscription> events;
    if (a.cmd == CNASIO_ECHO_CMD_NOTIFY || a.cmd == CNASIO_ECHO_CMD_BURST) {
        cnasio::error_code ec;
        events = client.subscribe(a.id.idx, {}, ec);
        if (ec) {
            std::fprintf(stderr, "echo_client: joining group %u: %s\n", a.id.idx, ec.message().c_str());
            co_return exit_no_reply;
        }
    }

    cnasio::request_options options; // match::seq_and_ack: same seq, ack + 1
    options.timeout = a.timeout;
    const auto payload = cnasio_echo::request(a.cmd, a.arg, cn::as_payload(a.text));
    const auto sent = std::chrono::steady_clock::now();
    auto [ec, reply] = co_await client.async_request(a.id, payload, options, asio::as_tuple(asio::use_awaitable));
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - sent);
    if (ec) {
        std::fprintf(stderr, "echo_client: %s: no reply from %u:%u: %s%s\n", a.command.c_str(), a.id.idx, a.id.val,
                     ec.message().c_str(), ec == cnasio::error::timeout ? " (is cnasio_echo loaded?)" : "");
        co_return exit_no_reply;
    }
    const auto rep = cnasio_echo::parse_reply(reply.view());
    if (rep.ec == cnasio::error::connector_header_truncated) {
        std::fprintf(stderr, "echo_client: %s: a reply of %zu bytes is too short\n", a.command.c_str(),
                     reply.payload.size());
        co_return exit_no_reply;
    }
    if (rep.ec) {
        std::fprintf(stderr, "echo_client: %s: the module replied %s (%s)\n", a.command.c_str(),
                     errno_name(rep.ec).c_str(), rep.ec.message().c_str());
        co_return exit_error_reply;
    }

    switch (a.cmd) {
    case CNASIO_ECHO_CMD_ECHO:
        std::printf("echo: %u bytes %s\n", rep.arg, quoted(rep.data).c_str());
        break;
    case CNASIO_ECHO_CMD_NOTIFY:
        std::printf("notify: %s\n", rep.arg ? "a listener got the event" : "no listener got the event");
        if (!co_await print_events(*events, CNASIO_ECHO_EVENT_NOTIFY, 1)) co_return exit_no_reply;
        break;
    case CNASIO_ECHO_CMD_BURST:
        std::printf("burst: %u of %u events delivered\n", rep.arg, a.arg);
        if (!co_await print_events(*events, CNASIO_ECHO_EVENT_BURST, a.arg)) co_return exit_no_reply;
        break;
    case CNASIO_ECHO_CMD_DELAY:
        std::printf("delay: %u ms asked, reply after %lld ms: %s\n", rep.arg, static_cast<long long>(waited.count()),
                    quoted(rep.data).c_str());
        break;
    case CNASIO_ECHO_CMD_STATS: {
        cnasio_echo_stats st{};
        if (rep.data.size() != sizeof st) {
            std::fprintf(stderr, "echo_client: stats: %zu bytes of data, not %zu\n", rep.data.size(), sizeof st);
            co_return exit_no_reply;
        }
        std::memcpy(&st, rep.data.data(), sizeof st); // unaligned in the reply: copy, never cast
        std::printf("stats: requests %llu, replies %llu (dropped %llu), events %llu (dropped %llu), "
                    "delays pending %llu\n",
                    static_cast<unsigned long long>(st.requests), static_cast<unsigned long long>(st.replies),
                    static_cast<unsigned long long>(st.replies_dropped), static_cast<unsigned long long>(st.events),
                    static_cast<unsigned long long>(st.events_dropped),
                    static_cast<unsigned long long>(st.delays_pending));
        break;
    }
    default:
        std::printf("cmd %u: arg %u, %zu bytes %s\n", a.cmd, rep.arg, rep.data.size(), quoted(rep.data).c_str());
    }
    co_return 0;
}

} // namespace

int main(int argc, char** argv) {
    arguments a;
    if (!parse(argc, argv, a)) return exit_usage;

    asio::io_context io;
    cnasio::error_code ec;
    cnasio::client client(io.get_executor(), {}, ec);
    if (ec) {
        std::fprintf(stderr, "echo_client: cannot open the connector: %s\n", ec.message().c_str());
        return exit_no_reply;
    }
    int status = exit_no_reply;
    asio::co_spawn(io, run(client, a), [&](std::exception_ptr e, int rc) {
        // The command is done: closing the client ends its receive loop, so
        // run() returns now whatever the client still had outstanding.
        client.close();
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                std::fprintf(stderr, "echo_client: %s\n", x.what());
            }
            return;
        }
        status = rc;
    });
    io.run();
    return status;
}
