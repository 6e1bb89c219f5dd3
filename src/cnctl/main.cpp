// cnctl - the kernel connector from a shell: process events, raw group
// messages, requests and one-way messages.
//
//   cnctl proc [--filter TYPES] [--count N] [--raw] [--json] [--netns PATH] [--force-bpf] [--rcvbuf BYTES]
//              [--ready-line] [--pid PID [--descendants]] [--cgroup PATH] [--container ID] [--stats]
//   cnctl listen --group G [--count N] [--json] [--netns PATH] [--admit PORT]... [--rcvbuf BYTES]
//                [--ready-line]
//   cnctl request IDX:VAL [--data TEXT | --hex HEX] [--to PORT] [--timeout MS] [--ack-only] [--json]
//                         [--no-registry-check] [--netns PATH] [--admit PORT]...
//   cnctl send IDX:VAL [--data TEXT | --hex HEX] [--to PORT] [--no-registry-check] [--netns PATH]
//   cnctl ids [--json] [--netns PATH]
//   cnctl wait-id IDX:VAL [--gone] [--timeout MS] [--interval MS] [--json] [--netns PATH]
//   cnctl wait PID... [--netns PATH]                                    (wait.cpp)
//   cnctl tree [PID] [--json] [--netns PATH]                            (proc_view.cpp)
//   cnctl --version | --help | COMMAND --help
//
// arguments.cpp declares the command line, commands.cpp runs the commands,
// format.cpp makes their output lines, output.hpp writes them. Exit statuses:
// exit_status.hpp.
#include "arguments.hpp"
#include "commands.hpp"
#include "output.hpp"
#include "w1.hpp"
#include "wait.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <exception>
#include <variant>

#include <fcntl.h>

namespace {

// Fills a closed fd 0, 1 or 2 with /dev/null opened in the wrong direction, so
// that the sockets cnctl opens cannot become its stdout (output lines would be
// sent to the kernel) and writes to a closed stdout fail (EBADF) and are reported.
void occupy_closed_standard_fds() {
    for (int fd = 0; fd <= 2; ++fd) {
        if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
        // open() takes the lowest free fd: `fd`, as those below it are open.
        if (::open("/dev/null", fd == 0 ? O_WRONLY : O_RDONLY) != fd) std::_Exit(cnctl::exit_runtime);
    }
}

struct dispatch {
    int operator()(const cnctl::print_and_exit& p) const {
        cnctl::output out;
        out.write(p.text);
        return out.finish(cnctl::exit_ok);
    }
    int operator()(const cnctl::proc_args& a) const { return cnctl::run_proc(a); }
    int operator()(const cnctl::listen_args& a) const { return cnctl::run_listen(a); }
    int operator()(const cnctl::request_args& a) const { return cnctl::run_request(a); }
    int operator()(const cnctl::send_args& a) const { return cnctl::run_send(a); }
    int operator()(const cnctl::ids_args& a) const { return cnctl::run_ids(a); }
    int operator()(const cnctl::wait_id_args& a) const { return cnctl::run_wait_id(a); }
    int operator()(const cnctl::wait_args& a) const { return cnctl::run_wait(a); }
    int operator()(const cnctl::w1_args& a) const { return cnctl::run_w1(a); }
    int operator()(const cnctl::tree_args& a) const { return cnctl::run_tree(a); }
};

} // namespace

int main(int argc, char** argv) {
    occupy_closed_standard_fds();
    std::signal(SIGPIPE, SIG_IGN); // a closed pipe on stdout is a write error (EPIPE), handled by output
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
