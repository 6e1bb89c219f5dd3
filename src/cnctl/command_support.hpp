// What commands.cpp shares with the commands kept in files of their own
// (w1.cpp): running a command's coroutine, opening its client, and the
// messages for errors every command can meet.
#pragma once

#include "arguments.hpp"

#include <cnasio/client.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <optional>
#include <string>

namespace cnctl {

/// Runs `task` on a fresh single-threaded io_context; its result is the exit status.
int run_task(boost::asio::awaitable<int> task);
/// The command's client, or nothing with `rc` set and the reason printed.
std::optional<cnasio::client> open_command_client(boost::asio::io_context& io, const common_options& o, int& rc);
/// "DOING: REASON", with advice for the errors that have some.
std::string describe_error(cnasio::error_code ec, const std::string& doing);
/// Prints "cnctl: MESSAGE" on stderr and returns exit_runtime.
int fail_with(const std::string& message);

} // namespace cnctl
