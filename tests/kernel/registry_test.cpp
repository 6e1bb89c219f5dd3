// The registry of connector ids on the running kernel: /proc/net/connector as
// read by connector::read_registry and the client's waits on it (the VM suite
// loads and unloads a module to see ids come and go; here nothing changes).
#include <cnasio/client.hpp>
#include <cnasio/connector/registry.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include <linux/cn_proc.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

namespace asio = boost::asio;
using namespace cnasio;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

// An idx in the user range that no kernel driver registers.
constexpr connector::id nobody_id{CN_NETLINK_USERS + 0xe, 0x4242};

long long ms_since(clock_type::time_point t0) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count();
}

// read() system calls this process made so far (/proc/self/io, syscr).
long long read_syscalls() {
    std::ifstream f("/proc/self/io");
    std::string key;
    long long v = -1;
    while (f >> key >> v)
        if (key == "syscr:") return v;
    return -1;
}

double cpu_seconds() {
    rusage u{};
    ::getrusage(RUSAGE_THREAD, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

} // namespace

TEST_SUITE("registry: this kernel") {
    TEST_CASE("the proc connector's 1:1 is listed as cn_proc") {
        error_code ec;
        const auto ids = connector::read_registry(ec);
        REQUIRE_MESSAGE(!ec, ec.message());
        CHECK(connector::contains(ids, connector::proc_id));
        CHECK(std::find(ids.begin(), ids.end(), connector::registered_id{"cn_proc", {1, 1}}) != ids.end());
        CHECK(!connector::contains(ids, nobody_id));
        asio::io_context io;
        client c(io.get_executor());
        CHECK(c.registered_ids(ec) == ids);
    }

    TEST_CASE("waiting for a registered id completes at once; for one that never comes, at its timeout") {
        asio::io_context io;
        client_options o;
        o.registry_interval = 1500ms; // a poll would show as a wait of 1.5 s or more
        client c(io.get_executor(), o);
        error_code present = error::timeout, absent = error::timeout, never{};
        auto t0 = clock_type::now();
        c.async_wait_registered(connector::proc_id, 5s, [&](error_code ec) { present = ec; });
        c.async_wait_unregistered(nobody_id, 5s, [&](error_code ec) { absent = ec; });
        io.run();
        CHECK(!present);
        CHECK(!absent);
        CHECK(ms_since(t0) < 1000); // no poll was needed

        // The clock starts before the wait does: the wait's timer starts inside the call.
        t0 = clock_type::now();
        c.async_wait_registered(nobody_id, 300ms, [&](error_code ec) { never = ec; });
        io.restart();
        io.run(); // returns: after the timeout nothing waits, the poll timer is gone
        const auto took = ms_since(t0);
        CHECK(never == error::timeout);
        CHECK(took >= 300);
        CHECK(took < 1500); // before the first poll: the timer ended it, not a poll
        MESSAGE("wait for an id that never comes: timeout 300 ms, completed after " << took << " ms");
    }

    TEST_CASE("a wait is cancelled per operation; io.run() then returns") {
        asio::io_context io;
        client c(io.get_executor());
        asio::cancellation_signal sig;
        error_code got{};
        bool done = false;
        c.async_wait_registered(nobody_id, 0ms, asio::bind_cancellation_slot(sig.slot(), [&](error_code ec) {
                                    got = ec;
                                    done = true;
                                }));
        asio::steady_timer t(io, 120ms);
        t.async_wait([&](error_code) { sig.emit(asio::cancellation_type::terminal); });
        const auto t0 = clock_type::now();
        io.run();
        CHECK(done);
        CHECK(got == asio::error::operation_aborted);
        CHECK(ms_since(t0) < 1000);
        // close() ends waits too.
        io.restart();
        done = false;
        c.async_wait_unregistered(connector::proc_id, 0ms, [&](error_code ec) {
            got = ec;
            done = true;
        });
        c.close();
        io.run();
        CHECK(done);
        CHECK(got == asio::error::operation_aborted);
    }

    TEST_CASE("one watcher per client: 100 waiters share its reads") {
        asio::io_context io;
        client_options o;
        o.registry_interval = 20ms;
        client c(io.get_executor(), o);
        int timed_out = 0;
        const long long before = read_syscalls();
        REQUIRE(before >= 0);
        for (int i = 0; i < 100; ++i)
            c.async_wait_registered(nobody_id, 400ms, [&](error_code ec) { timed_out += ec == error::timeout; });
        io.run();
        const long long reads = read_syscalls() - before;
        CHECK(timed_out == 100);
        // Each start reads the file once (2 read calls: the text, then EOF); then about 400 / 20 = 20 polls
        // for all of them (measured: 241 to 273 calls in all, other reads of the process included). One
        // timer per waiter would make some 100 * 20 polls, 4,000 calls.
        MESSAGE("100 waiters for 400 ms at a 20 ms interval: " << reads << " read() calls");
        CHECK(reads <= 500);
    }

    // A client and request options that ask for check_registered, with a 300 ms timeout.
    struct checking {
        asio::io_context io;
        client c{io.get_executor()};
        request_options ro;
        checking() {
            ro.check_registered = true;
            ro.timeout = 300ms;
        }
    };

    TEST_CASE("check_registered: an unregistered id fails at once; a registered one that stays silent times out") {
        checking f;
        auto& io = f.io;
        auto& c = f.c;
        auto& ro = f.ro;
        error_code first{}, second{};
        auto t0 = clock_type::now();
        c.async_request(nobody_id, {}, ro, [&](error_code ec, connector::message) { first = ec; });
        io.run();
        CHECK(first == error::not_registered);
        CHECK(ms_since(t0) < 300); // before the timeout: the check failed it, not the timer
        CHECK(c.pending_requests() == 0);
        // The proc connector drops a payload of the wrong length silently: no reply, id registered.
        const std::byte three[3]{};
        t0 = clock_type::now();
        io.restart();
        c.async_request(connector::proc_id, three, ro, [&](error_code ec, connector::message) { second = ec; });
        io.run();
        CHECK(second == error::timeout);
        CHECK(ms_since(t0) >= 300);
        CHECK(c.stats().timeouts == 1);
        // Without the option, a request to an unregistered id times out as before.
        ro.check_registered = false;
        io.restart();
        c.async_request(nobody_id, {}, ro, [&](error_code ec, connector::message) { first = ec; });
        io.run();
        CHECK(first == error::timeout);
        // async_send checks likewise.
        ro.check_registered = true;
        io.restart();
        c.async_send(nobody_id, {}, ro, [&](error_code ec) { first = ec; });
        io.run();
        CHECK(first == error::not_registered);
    }

    TEST_CASE("check_registered on a streamed request: not_registered is the stream's end, at once; a silent registered id times out") {
        checking f;
        auto& io = f.io;
        auto& c = f.c;
        const request_options& ro = f.ro;
        const auto end_of = [&](part_stream& s, error_code& end, std::size_t& parts) {
            std::function<void()> next = [&] {
                s.async_next([&](error_code ec, connector::message) {
                    if (ec) {
                        end = ec;
                        return;
                    }
                    ++parts;
                    next();
                });
            };
            next();
            io.restart();
            io.run();
        };
        error_code end{};
        std::size_t parts = 0;
        auto t0 = clock_type::now();
        part_stream refused = c.request_stream(nobody_id, {}, ro);
        end_of(refused, end, parts);
        CHECK(end == error::not_registered);
        CHECK(parts == 0);
        CHECK(ms_since(t0) < 300); // before the timeout: the check ended it, not the timer
        CHECK(c.pending_requests() == 0);
        CHECK(c.stats().timeouts == 0);

        // A registered id that stays silent (the proc connector drops a payload of the wrong length).
        const std::byte three[3]{};
        end = {};
        t0 = clock_type::now();
        part_stream silent = c.request_stream(connector::proc_id, three, ro);
        end_of(silent, end, parts);
        CHECK(end == error::timeout);
        CHECK(parts == 0);
        CHECK(ms_since(t0) >= 300);
        CHECK(c.stats().timeouts == 1);
    }

    TEST_CASE("from a new network namespace the file is absent: a clear error, unless the client names the initial one") {
        const std::string home = "/proc/" + std::to_string(::getpid()) + "/ns/net"; // the main thread's: this one's
        error_code direct, waited = error::timeout, via_option{}, read_via_option{};
        std::string message;
        std::thread t([&] {
            if (::unshare(CLONE_NEWNET) != 0) {
                direct = errno_code(errno);
                return;
            }
            (void)connector::read_registry(direct);
            message = direct.message();
            asio::io_context io;
            client_options o;
            o.netns = home; // the socket and the registry in the initial namespace
            client in_home(io.get_executor(), o);
            (void)in_home.registered_ids(read_via_option);
            in_home.async_wait_registered(connector::proc_id, 1s, [&](error_code ec) { via_option = ec; });
            error_code open_ec;
            client here(io.get_executor(), {}, open_ec); // a netlink socket opens in any namespace
            here.async_wait_registered(connector::proc_id, 1s, [&](error_code ec) { waited = ec; });
            io.run();
        });
        t.join();
        CHECK(direct == error::registry_unavailable);
        CHECK(message.find("initial network namespace") != std::string::npos);
        CHECK(waited == error::registry_unavailable);
        CHECK(!read_via_option);
        CHECK(!via_option);
    }

    TEST_CASE("cost of one poll: 10,000 reads and parses of /proc/net/connector") {
        constexpr int n = 10000;
        error_code ec;
        const double cpu0 = cpu_seconds();
        const auto t0 = clock_type::now();
        std::size_t found = 0;
        for (int i = 0; i < n; ++i) found += connector::contains(connector::read_registry(ec), connector::proc_id);
        const double wall = std::chrono::duration<double>(clock_type::now() - t0).count();
        const double cpu = cpu_seconds() - cpu0;
        CHECK(!ec);
        CHECK(found == n);
        std::printf("registry poll: %d reads+parses in %.3f s wall, %.3f s CPU: %.1f us CPU per poll\n", n, wall, cpu,
                    cpu / n * 1e6);
        // At the default 100 ms interval that is 10 polls a second. The bound
        // catches a pathological read or parse (tens of ms), not speed: about
        // 12 us here, 540 us in the emulated arm64 VM (qemu TCG), where
        // everything runs some 50 times slower.
        CHECK(cpu / n < 5e-3);
    }
}
