// A running cnasio client while the module is unloaded and loaded again:
// requests time out while the connector id is unregistered (the connector
// drops messages for unknown ids silently), delayed replies pending at unload
// are cancelled without a crash, and the same client works after reload.
#include "check.hpp"
#include "module.hpp"
#include "cnasio_echo.hpp"

#include <cnasio/client.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using cnasio::connector::as_payload;

namespace {

constexpr const char* module_path = "/lib/modules/cnasio_echo.ko";

asio::awaitable<cnasio::error_code> echo(cnasio::client& c, const std::string& sent, std::chrono::milliseconds timeout)
{
    cnasio::request_options ro;
    ro.timeout = timeout;
    auto [ec, m] = co_await c.async_request(cnasio_echo::default_id,
                                            cnasio_echo::request(CNASIO_ECHO_CMD_ECHO, 0, as_payload(sent)), ro,
                                            asio::as_tuple(asio::use_awaitable));
    if (ec)
        co_return ec;
    auto rep = cnasio_echo::parse_reply(m.view());
    if (rep.ec)
        co_return rep.ec;
    CHECK(std::string(reinterpret_cast<const char*>(rep.data.data()), rep.data.size()) == sent);
    co_return cnasio::error_code{};
}

asio::awaitable<void> reload_under_load(asio::io_context& io)
{
    cnasio::client c(io.get_executor());
    CHECK(!(co_await echo(c, "before", 1s)));

    // Delayed replies still queued in the module when it goes away.
    int delayed_done = 0;
    cnasio::error_code delayed_ec;
    for (int i = 0; i < 20; ++i) {
        cnasio::request_options ro;
        ro.timeout = 1500ms;
        c.async_request(cnasio_echo::default_id, cnasio_echo::request(CNASIO_ECHO_CMD_DELAY, 1000), ro,
                        [&](cnasio::error_code ec, cnasio::connector::message) {
                            ++delayed_done;
                            delayed_ec = ec;
                        });
    }
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(guest::shell("rmmod cnasio_echo"));
    auto unload = std::chrono::steady_clock::now() - t0;
    std::printf("  rmmod with 20 delayed replies pending took %lld ms\n",
                static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(unload).count()));

    // While unloaded: requests time out, the client stays usable.
    for (int i = 0; i < 3; ++i) {
        auto ec = co_await echo(c, "while unloaded", 200ms);
        CHECK(ec == cnasio::error::timeout);
    }
    asio::steady_timer wait(io, 1600ms);
    co_await wait.async_wait(asio::use_awaitable);
    CHECK(delayed_done == 20);
    CHECK(delayed_ec == cnasio::error::timeout);

    REQUIRE(guest::shell(std::string("insmod ") + module_path));
    for (int i = 0; i < 5; ++i)
        CHECK(!(co_await echo(c, "after reload " + std::to_string(i), 1s)));
    CHECK(c.is_open());
    std::printf("  client stats: replies %llu timeouts %llu late %llu\n",
                static_cast<unsigned long long>(c.stats().replies),
                static_cast<unsigned long long>(c.stats().timeouts),
                static_cast<unsigned long long>(c.stats().late_replies));
}

// Unload and load in a tight loop while requests keep flowing.
asio::awaitable<void> churn(asio::io_context& io)
{
    cnasio::client c(io.get_executor());
    int ok = 0, timed_out = 0, other = 0;
    for (int round = 0; round < 5; ++round) {
        REQUIRE(guest::shell("rmmod cnasio_echo"));
        auto ec = co_await echo(c, "gone", 100ms);
        (ec == cnasio::error::timeout ? timed_out : other) += 1;
        REQUIRE(guest::shell(std::string("insmod ") + module_path));
        ec = co_await echo(c, "back", 1s);
        (!ec ? ok : other) += 1;
    }
    std::printf("  churn: %d ok, %d timed out, %d other\n", ok, timed_out, other);
    CHECK(ok == 5 && timed_out == 5 && other == 0);
}

template <class F>
void run(const char* name, F test)
{
    std::printf("-- %s\n", name);
    std::fflush(stdout);
    asio::io_context io;
    bool finished = false;
    asio::co_spawn(io, test(io), [&](std::exception_ptr e) {
        finished = true;
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                std::printf("  exception: %s\n", ex.what());
            }
            ++guest::failures();
        }
    });
    io.run_for(60s);
    CHECK(finished);
}

} // namespace

int main()
{
    run("reload_under_load", reload_under_load);
    run("churn", churn);
    return guest::finish("client_reload");
}
