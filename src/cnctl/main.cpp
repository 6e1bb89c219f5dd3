// cnctl - the kernel connector from a shell: process events, raw group
// messages, requests and one-way messages.
//
//   cnctl proc [--filter TYPES] [--count N] [--json] [--netns PATH] [--force-bpf] [--rcvbuf BYTES]
//   cnctl listen --group G [--count N] [--json] [--netns PATH] [--admit PORT]... [--rcvbuf BYTES]
//   cnctl request IDX:VAL [--data TEXT | --hex HEX] [--to PORT] [--timeout MS] [--ack-only] [--json]
//                         [--netns PATH] [--admit PORT]...
//   cnctl send IDX:VAL [--data TEXT | --hex HEX] [--to PORT] [--netns PATH]
//   cnctl --version | --help | COMMAND --help
//
// arguments.cpp declares the command line, commands.cpp runs the commands,
// format.cpp writes their output lines. Exit statuses: commands.hpp.
#include "arguments.hpp"
#include "commands.hpp"

#include <csignal>
#include <cstdio>
#include <exception>
#include <variant>

namespace {

struct dispatch {
    int operator()(const cnctl::print_and_exit& p) const {
        std::fputs(p.text.c_str(), stdout);
        return std::fflush(stdout) == 0 ? cnctl::exit_ok : cnctl::exit_runtime;
    }
    int operator()(const cnctl::proc_args& a) const { return cnctl::run_proc(a); }
    int operator()(const cnctl::listen_args& a) const { return cnctl::run_listen(a); }
    int operator()(const cnctl::request_args& a) const { return cnctl::run_request(a); }
    int operator()(const cnctl::send_args& a) const { return cnctl::run_send(a); }
};

} // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN); // a closed stdout is a write error, handled where it happens
    try {
        return std::visit(dispatch{}, cnctl::parse_command_line(argc, argv));
    } catch (const cnctl::usage_error& e) {
        std::fprintf(stderr, "cnctl: %s\n", e.message.c_str());
        return cnctl::exit_usage;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cnctl: %s\n", e.what());
        return cnctl::exit_runtime;
    }
}
