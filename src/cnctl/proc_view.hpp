// `cnctl proc` default output (without --raw or --json): forkstat-like lines
// from a proc::tracker (proc_view.cpp).
#pragma once

#include "arguments.hpp"

#include <cnasio/client.hpp>

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <string>

namespace cnctl {

/// "HH:MM:SS.mmm EVENT PID PPID UID COMMAND-LINE" per event of the test's
/// filter; exit lines add "status=N" (or "signal=N") and "lifetime=S.mmms".
/// Untrusted text (argv, comm) is escaped: bytes outside printable ASCII and
/// '\' become \xNN, so no argv can forge or hide a line. `describe` words
/// errors as the other commands do. Returns the exit status.
/// --json: one JSON object per event (format_enriched_event). --pid,
/// --descendants, --cgroup, --container select processes; --stats adds a
/// summary (format_proc_summary) after the last event.
boost::asio::awaitable<int> proc_view(const proc_args& a, cnasio::client& c,
                                      std::function<std::string(cnasio::error_code, const std::string&)> describe);

/// `cnctl tree [PID]`: LISTEN, scan /proc, print the live processes as a tree
/// ("  " per level, PID, command line) or JSON Lines (format_tree_json).
boost::asio::awaitable<int> tree_view(const tree_args& a, cnasio::client& c,
                                      std::function<std::string(cnasio::error_code, const std::string&)> describe);

} // namespace cnctl
