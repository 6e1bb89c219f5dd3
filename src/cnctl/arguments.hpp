// cnctl's command line: the commands, their options, and the values they
// are read into. Parsing is done with CLI11 (arguments.cpp).
#pragma once

#include <cnasio/connector/message.hpp>
#include <cnasio/proc/event.hpp>
#include <cnasio/w1/protocol.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace cnctl {

/// Bad command-line input: one line, printed as "cnctl: MESSAGE", exit status 2.
struct usage_error {
    std::string message;
};

/// Options more than one command takes (each command accepts only its own).
struct common_options {
    bool json = false;
    std::string netns;                      ///< empty: the caller's network namespace
    std::vector<std::uint32_t> admitted;    ///< user-space port ids believed besides the kernel's 0
    std::size_t rcvbuf = 0;                 ///< 0: the client's default
    bool ready_line = false;                ///< announce on stderr when messages can arrive (proc, listen)
};

struct proc_args : common_options {
    cnasio::proc::event_mask filter = cnasio::proc::event_mask::all();
    std::uint64_t count = 0; ///< 0: until interrupted
    bool force_bpf = false;
    bool raw = false; ///< --raw: one line per kernel event, as before the process table (proc_view.cpp)
    // Selection (process table views only, not --raw): an event is shown when
    // its process matches every given selector.
    cnasio::proc::pid_type pid = 0; ///< --pid: only this process (0: any)
    bool descendants = false;       ///< --descendants: and its descendants, new children followed live
    std::string cgroup;             ///< --cgroup: only processes in this cgroup v2 path or below it
    std::string container;          ///< --container: only processes of this container id (or id prefix, pod uid)
    bool stats = false;             ///< --stats: a summary on exit (also after SIGINT/SIGTERM)
};

/// `cnctl tree [PID]`: the process tree from the process table (proc_view.cpp).
struct tree_args : common_options {
    cnasio::proc::pid_type pid = 0; ///< 0: every process
};

struct listen_args : common_options {
    unsigned group = 0; ///< 1..26
    std::uint64_t count = 0;
};

/// What `request` and `send` share: where to and what.
struct message_args : common_options {
    cnasio::connector::id id;
    std::vector<std::byte> payload; ///< at most connector::max_payload bytes
    std::uint32_t to = 0;           ///< destination port id; 0 is the kernel
    /// To the kernel: fail at once if nobody registered the id (/proc/net/connector);
    /// --no-registry-check turns it off. Never for --to PORT.
    bool check_registered = true;
};

struct request_args : message_args {
    std::chrono::milliseconds timeout{1000};
    bool ack_only = false;
};

struct send_args : message_args {};

/// `ids`: the registered connector ids.
struct ids_args : common_options {};

/// `wait-id`: until an id is registered (or, gone, unregistered).
struct wait_id_args : common_options {
    cnasio::connector::id id;
    bool gone = false;
    std::chrono::milliseconds timeout{0};  ///< 0: no limit
    std::chrono::milliseconds interval{100}; ///< client_options::registry_interval
};

/// `cnctl wait PID...` (wait.cpp).
struct wait_args : common_options {
    std::vector<cnasio::proc::pid_type> pids;
};

/// `cnctl w1 ...`: the 1-Wire bus through the kernel's w1 core (w1.cpp).
struct w1_args : common_options {
    enum class action { masters, search, temp, read, write, touch };
    action what = action::masters;
    std::optional<std::uint32_t> master;      ///< search: one master (none: all); read/write/touch: the target
    std::vector<cnasio::w1::rom_id> slaves;   ///< temp: these (none: every DS18B20 found); read/write/touch: the target
    bool alarm = false;                       ///< search --alarm
    std::size_t count = 0;                    ///< read: bytes
    std::vector<std::byte> data;              ///< write, touch
    std::chrono::milliseconds timeout{2000};  ///< per request
    std::uint32_t to = 0;                     ///< a user-space stand-in for the w1 core (tests)
};

/// Text to print on stdout and exit 0 (--help of any command, --version).
struct print_and_exit {
    std::string text;
};

using command_line = std::variant<print_and_exit, proc_args, listen_args, request_args, send_args, ids_args,
                                  wait_id_args, wait_args, tree_args, w1_args>;

/// Reads argv. Throws usage_error on bad input (unknown command or option,
/// missing or malformed value, values that exclude each other).
command_line parse_command_line(int argc, char** argv);

} // namespace cnctl
