// What every cnctl command shares: running its coroutine, opening its
// client, stopping on SIGINT/SIGTERM, and the messages for errors every
// command can meet (commands.cpp defines the functions).
#pragma once

#include "arguments.hpp"
#include "exit_status.hpp"

#include <cnasio/client.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/this_coro.hpp>

#include <csignal>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace cnctl {

/// Runs `task` on a fresh single-threaded io_context; its result is the exit status.
int run_task(boost::asio::awaitable<int> task);
/// The command's client, or nothing with `rc` set and the reason printed.
std::optional<cnasio::client> open_command_client(boost::asio::io_context& io, const common_options& o, int& rc);
/// "DOING: REASON", with advice for the errors that have some.
std::string describe_error(cnasio::error_code ec, const std::string& doing);
/// Prints "cnctl: MESSAGE" on stderr and returns exit_runtime.
int fail_with(const std::string& message);

/// Opens the command's client (options `o`) and returns what `body(client&)`
/// returns; when the client cannot be opened, the reason is printed and its
/// exit status returned. `body` returns an awaitable<int>; it is kept alive
/// until its awaitable completes.
template <class Body>
boost::asio::awaitable<int> with_client(const common_options& o, Body body) {
    auto ex = co_await boost::asio::this_coro::executor;
    int rc = exit_ok;
    auto c = open_command_client(static_cast<boost::asio::io_context&>(ex.context()), o, rc);
    if (!c) co_return rc;
    co_return co_await body(*c);
}

/// While it lives, SIGINT and SIGTERM stop the command: stopping() becomes
/// true and `stop` runs once (it closes or cancels what the command waits on).
/// A signal handled after it is destroyed does nothing.
class stop_on_signals {
public:
    template <class Executor>
    stop_on_signals(const Executor& ex, std::function<void()> stop)
        : signals_(ex, SIGINT, SIGTERM), state_(std::make_shared<state>()) {
        state_->stop = std::move(stop);
        signals_.async_wait([s = state_](cnasio::error_code ec, int) {
            if (ec || s->gone) return;
            s->stopping = true;
            s->stop();
        });
    }
    stop_on_signals(const stop_on_signals&) = delete;
    stop_on_signals& operator=(const stop_on_signals&) = delete;
    ~stop_on_signals() {
        state_->gone = true;
        cnasio::error_code ignored;
        signals_.cancel(ignored);
    }

    bool stopping() const { return state_->stopping; }

private:
    struct state {
        std::function<void()> stop;
        bool stopping = false;
        bool gone = false;
    };
    boost::asio::signal_set signals_;
    std::shared_ptr<state> state_;
};

} // namespace cnctl
