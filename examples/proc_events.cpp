// proc_events - print a few live process events from the kernel, then exit.
//
//   proc_events [COUNT [SECONDS]]      defaults: 10 events, give up after 10 s
//
// The smallest complete use of the connector socket layer: join the
// process-events group, ask the kernel to LISTEN, wait for its ack, print
// fork/exec/exit events as they come, and send IGNORE before leaving (the
// kernel keeps a system-wide listener count that a closed socket does not
// decrement). Exit status: 0 after COUNT events, 1 on an error or timeout,
// 2 on a bad argument.
#include <cnasio/connector/socket.hpp>
#include <cnasio/proc/event.hpp>
#include <cnasio/proc/filter.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <fstream>
#include <string>
#include <string_view>

namespace asio = boost::asio;
namespace cn = cnasio::connector;
namespace proc = cnasio::proc;

namespace {

// The ack number of our LISTEN; the kernel answers with this + 1 (it does not
// echo seq for proc requests, so ack is the only way to find our answer).
constexpr std::uint32_t listen_ack = 0x6e6f7469;

// The name of a live process, or "?" once it is gone.
std::string comm_of(proc::pid_type pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    if (!std::getline(in, name)) return "?";
    return name;
}

// One line per event; returns false for events not worth a line (acks, ...).
bool print_event(const proc::event& ev) {
    if (const auto* f = ev.get_if<proc::fork_event>()) {
        std::printf("fork  parent %d -> child %d\n", f->parent_tgid, f->child_tgid);
    } else if (const auto* e = ev.get_if<proc::exec_event>()) {
        std::printf("exec  pid %d (%s)\n", e->process_tgid, comm_of(e->process_tgid).c_str());
    } else if (const auto* x = ev.get_if<proc::exit_event>()) {
        if (x->process_pid != x->process_tgid) return false; // a thread, not a process
        if (x->exited())
            std::printf("exit  pid %d status %d\n", x->process_tgid, x->exit_status());
        else
            std::printf("exit  pid %d signal %d\n", x->process_tgid, x->term_signal());
    } else {
        return false;
    }
    std::fflush(stdout);
    return true;
}

struct run_state {
    int wanted = 10;
    int printed = 0;
    bool listening = false;
    cnasio::error_code error;
};

asio::awaitable<void> listen_and_print(cn::socket& sock, run_state& st) {
    std::array<std::byte, cn::receive_buffer_size> buffer;
    const auto listen = proc::op_payload(proc::mcast_op::listen);
    co_await sock.async_send(cn::header{.id = cn::proc_id, .ack = listen_ack}, listen, asio::use_awaitable);

    while (st.printed < st.wanted) {
        auto datagram = co_await sock.async_receive(buffer, asio::use_awaitable);
        if (datagram.port_id() != 0) continue; // only the kernel sends process events
        cn::message_view m;
        cnasio::error_code ec;
        for (auto reader = datagram.reader(); reader.next(m, ec);) {
            if (ec || m.id() != cn::proc_id) continue;
            const proc::event ev = proc::decode(m.payload, {m.seq(), m.ack()}, ec);
            if (ec) continue;
            if (const auto* ack = ev.get_if<proc::ack_event>()) {
                if (ev.ack != listen_ack + 1) continue; // another listener's ack
                if (ack->err != 0) throw boost::system::system_error(cnasio::errno_code(int(ack->err)), "LISTEN");
                st.listening = true;
                std::printf("listening for process events (kernel acknowledged LISTEN)\n");
                std::fflush(stdout);
                continue;
            }
            if (st.listening && print_event(ev) && ++st.printed == st.wanted) break;
        }
    }
}

// A positive decimal integer, the whole of `text`; 0 for anything else.
int parse_positive(const char* text) {
    int v = 0;
    const std::string_view s(text);
    const auto [end, err] = std::from_chars(s.data(), s.data() + s.size(), v);
    return err == std::errc{} && end == s.data() + s.size() && v > 0 ? v : 0;
}

} // namespace

int main(int argc, char** argv) {
    run_state st;
    int seconds = 10;
    if (argc > 1) st.wanted = parse_positive(argv[1]);
    if (argc > 2) seconds = parse_positive(argv[2]);
    if (argc > 3 || st.wanted == 0 || seconds == 0) {
        std::fprintf(stderr, "usage: proc_events [COUNT [SECONDS]]   (positive integers; defaults 10 and 10)\n");
        return 2;
    }

    asio::io_context io;
    cn::socket sock(io.get_executor());
    cnasio::error_code ec;
    sock.open(ec);
    if (!ec) sock.join(CN_IDX_PROC, ec);
    if (ec) {
        std::fprintf(stderr, "proc_events: cannot listen to process events: %s\n", ec.message().c_str());
        return 1;
    }

    // Gives up after `seconds`, so the program always ends by itself.
    asio::steady_timer deadline(io, std::chrono::seconds(seconds));
    bool timed_out = false;
    deadline.async_wait([&](cnasio::error_code e) {
        if (e) return;
        timed_out = true;
        sock.cancel();
    });
    asio::co_spawn(io, listen_and_print(sock, st), [&](std::exception_ptr ep) {
        deadline.cancel();
        if (!ep) return;
        try {
            std::rethrow_exception(ep);
        } catch (const boost::system::system_error& e) {
            if (!timed_out) st.error = e.code();
        }
    });
    io.run();

    // Leave politely: the kernel counts listeners system-wide.
    const auto ignore = proc::op_payload(proc::mcast_op::ignore);
    sock.send(cn::header{.id = cn::proc_id, .ack = listen_ack + 2}, ignore, ec);

    if (st.error) {
        std::fprintf(stderr, "proc_events: %s\n", st.error.message().c_str());
        return 1;
    }
    if (st.printed < st.wanted) {
        std::fprintf(stderr, "proc_events: only %d of %d events in %d s%s\n", st.printed, st.wanted, seconds,
                     st.listening ? "" : " (the kernel never acknowledged LISTEN)");
        return 1;
    }
    return 0;
}
