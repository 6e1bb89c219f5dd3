// The registry watcher against a module that comes and goes: a wait for the
// example module's id 14:1 to go ends within one registry_interval of rmmod
// (and a watch reports it), a check_registered request in flight at rmmod ends
// with not_registered at its deadline (not a plain timeout), one started after
// rmmod fails at once, and a wait for 14:1 to come ends within one interval of
// insmod. Twice, at two intervals, so that the latency is seen to follow it.
// The module is loaded at the start and at the end.
#include "check.hpp"
#include "module.hpp"
#include "cnasio_echo.hpp"

#include <cnasio/client.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using cnasio::error_code;
using clock_type = std::chrono::steady_clock;
namespace cn = cnasio::connector;

namespace {

// Scheduling slack under TCG emulation on a loaded host, beyond the interval.
constexpr auto slack = 150ms;

struct timed {
    bool done = false;
    error_code ec;
    clock_type::time_point at{};
    auto handler() {
        return [this](error_code e, auto&&...) {
            done = true;
            ec = e;
            at = clock_type::now();
        };
    }
};

long long ms(clock_type::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

// When an action (rmmod or insmod) ran: the id changed between `start` and `end`.
struct action_times {
    clock_type::time_point start{}, end{};
};

// Runs `action` `delay` from now, when the watcher is polling, on a thread of its own so that the
// client's polls go on meanwhile; runs `io` until nothing waits, and returns when the action ran.
action_times act_later(asio::io_context& io, asio::steady_timer& t, const std::string& action,
                       std::chrono::milliseconds delay) {
    action_times at;
    std::thread worker;
    t.expires_after(delay);
    t.async_wait([&](error_code) {
        worker = std::thread([&] {
            at.start = clock_type::now();
            CHECK(guest::shell(action));
            at.end = clock_type::now();
        });
    });
    io.restart();
    io.run_for(20s);
    if (worker.joinable()) worker.join();
    return at;
}

// Latencies (ms after the command ended) per interval.
std::vector<long long> latencies[2];

// The wait ended at `seen`: not before the action began, and at most one interval (plus slack) after it ended.
void check_latency(const char* what, clock_type::time_point seen, action_times at, std::chrono::milliseconds interval,
                   std::vector<long long>& out) {
    out.push_back(ms(seen - at.end));
    std::printf("  %s: seen %lld ms after the command ended (it took %lld ms; interval %lld ms)\n", what,
                ms(seen - at.end), ms(at.end - at.start), static_cast<long long>(interval.count()));
    CHECK(seen >= at.start);
    CHECK(seen - at.end <= interval + slack);
}

// `phase`: how far into the poll cycle the commands start (the polls are `interval` apart from the
// wait's start), so that the latencies spread over the interval.
void come_and_go(std::chrono::milliseconds interval, std::chrono::milliseconds phase, std::vector<long long>& out) {
    std::printf("-- registry_interval %lld ms, commands %lld ms into the cycle\n",
                static_cast<long long>(interval.count()), static_cast<long long>(phase.count()));
    asio::io_context io;
    cnasio::client_options o;
    o.registry_interval = interval;
    cnasio::client c(io.get_executor(), o);
    error_code ec;
    auto ids = c.registered_ids(ec);
    REQUIRE(!ec);
    for (const auto& r : ids) std::printf("  registered: %s %u:%u\n", r.name.c_str(), r.id.idx, r.id.val);
    REQUIRE(cn::contains(ids, cnasio_echo::default_id));

    // Going: a wait, a watch, and a checked request whose reply the module would send after 3 s.
    timed gone, watch, in_flight;
    std::vector<cn::id_change> changes;
    c.async_watch_ids(changes, watch.handler());
    c.async_wait_unregistered(cnasio_echo::default_id, 10s, gone.handler());
    cnasio::request_options ro;
    ro.check_registered = true;
    ro.timeout = 3 * interval + phase + 700ms; // expires after the rmmod, before the module's 3 s delay
    const auto sent = clock_type::now();
    c.async_request(cnasio_echo::default_id, cnasio_echo::request(CNASIO_ECHO_CMD_DELAY, 3000), ro,
                    in_flight.handler());
    asio::steady_timer t(io);
    const auto removed = act_later(io, t, "rmmod cnasio_echo", 3 * interval + phase);
    check_latency("gone", gone.at, removed, interval, out);
    CHECK(gone.done && !gone.ec);
    CHECK(watch.done && !watch.ec);
    CHECK(changes.size() == 1 && changes[0].which.id == cnasio_echo::default_id && !changes[0].registered &&
          changes[0].which.name == "cnasio_echo");
    CHECK(in_flight.done);
    CHECK(in_flight.ec == cnasio::error::not_registered);
    std::printf("  request in flight at rmmod: '%s' after %lld ms (timeout %lld ms)\n", in_flight.ec.message().c_str(),
                ms(in_flight.at - sent), static_cast<long long>(ro.timeout.count()));
    CHECK(in_flight.at - sent >= ro.timeout);

    // Gone: a checked request fails at once; an unchecked one times out as before.
    timed at_once, plain;
    auto t0 = clock_type::now();
    c.async_request(cnasio_echo::default_id, cnasio_echo::request(CNASIO_ECHO_CMD_ECHO, 0), ro, at_once.handler());
    cnasio::request_options unchecked;
    unchecked.timeout = 200ms;
    c.async_request(cnasio_echo::default_id, cnasio_echo::request(CNASIO_ECHO_CMD_ECHO, 0), unchecked, plain.handler());
    io.restart();
    io.run_for(5s);
    CHECK(at_once.ec == cnasio::error::not_registered);
    CHECK(at_once.at - t0 < 100ms);
    CHECK(plain.ec == cnasio::error::timeout);

    // Coming back.
    timed back, watch2;
    changes.clear();
    c.async_watch_ids(changes, watch2.handler());
    c.async_wait_registered(cnasio_echo::default_id, 10s, back.handler());
    const auto inserted = act_later(io, t, "insmod /lib/modules/cnasio_echo.ko", 3 * interval + phase);
    CHECK(back.done && !back.ec);
    CHECK(watch2.done && changes.size() == 1 && changes[0].registered);
    check_latency("registered", back.at, inserted, interval, out);

    timed echo;
    c.async_request(cnasio_echo::default_id, cnasio_echo::request(CNASIO_ECHO_CMD_ECHO, 0), ro, echo.handler());
    io.restart();
    io.run_for(5s);
    CHECK(echo.done && !echo.ec);
}

} // namespace

int main() {
    const std::chrono::milliseconds intervals[2]{50ms, 400ms};
    long long mean[2]{};
    for (int i = 0; i < 2; ++i) {
        for (int k = 0; k < 4; ++k) come_and_go(intervals[i], intervals[i] * k / 4, latencies[i]);
        long long sum = 0, max = 0;
        for (auto l : latencies[i]) {
            sum += l;
            max = std::max(max, l);
        }
        mean[i] = sum / static_cast<long long>(latencies[i].size());
        std::printf("registry latency at interval %lld ms: mean %lld ms, max %lld ms over %zu events\n",
                    static_cast<long long>(intervals[i].count()), mean[i], max, latencies[i].size());
    }
    // The latency follows the interval: a longer interval, a longer mean wait.
    CHECK(mean[1] > mean[0] + 50);
    return guest::finish("client_registry");
}
