// cnctl's commands: each runs to completion on its own io_context and returns
// the process's exit status.
#pragma once

#include "arguments.hpp"

namespace cnctl {

/// Exit statuses: 0 done, 1 runtime error (the message names the cause),
/// 2 usage error (one line on stderr), 3 timeout (request without a reply).
inline constexpr int exit_ok = 0, exit_runtime = 1, exit_usage = 2, exit_timeout = 3;

/// Prints process events until interrupted (SIGINT, SIGTERM) or a.count events.
int run_proc(const proc_args& a);
/// Prints a group's connector messages until interrupted or a.count messages.
int run_listen(const listen_args& a);
/// Sends one request and prints its reply; exit_timeout without one.
int run_request(const request_args& a);
/// Sends one message.
int run_send(const send_args& a);

} // namespace cnctl
