// cnctl's commands: each runs to completion on its own io_context and returns
// the process's exit status.
#pragma once

#include "arguments.hpp"
#include "exit_status.hpp"

namespace cnctl {

/// Prints process events until interrupted (SIGINT, SIGTERM) or a.count events.
int run_proc(const proc_args& a);
/// Prints the process tree (or PID's subtree).
int run_tree(const tree_args& a);
/// Prints a group's connector messages until interrupted or a.count messages.
int run_listen(const listen_args& a);
/// Sends one request and prints its reply; exit_timeout without one.
int run_request(const request_args& a);
/// Sends one message (to the kernel: fails if nobody registered the id).
int run_send(const send_args& a);
/// Prints the registered connector ids.
int run_ids(const ids_args& a);
/// Waits until an id is registered (or gone); exit_timeout if not in time.
int run_wait_id(const wait_id_args& a);

} // namespace cnctl
