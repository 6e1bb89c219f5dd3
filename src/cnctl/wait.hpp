// `cnctl wait PID...`: waits for the exit of any processes (wait.cpp).
#pragma once

#include "arguments.hpp"

namespace cnctl {

/// Prints "PID exited N" or "PID killed by signal N" for each pid as it
/// exits. Returns the status of the last pid listed: its exit status, 128+N
/// for signal N, 127 if it does not exist (with a message on stderr); 1 on a
/// runtime error, 130 when interrupted.
int run_wait(const wait_args& a);

} // namespace cnctl
