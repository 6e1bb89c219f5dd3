// cnasio side of the parse cost benchmark: connector::datagram_reader walks the
// messages, proc::decode turns each payload into a typed event (the in-place
// form, into one reused event, as a receive loop does).
#include "parse_cost.hpp"

#include <cnasio/connector/framing.hpp>
#include <cnasio/proc/event.hpp>

extern "C" __attribute__((noinline)) std::uint64_t parse_cnasio(const unsigned char* buf, std::size_t len)
{
    namespace cn = cnasio::connector;
    namespace proc = cnasio::proc;
    std::uint64_t sum = 0;
    cn::datagram_reader reader({reinterpret_cast<const std::byte*>(buf), len});
    cn::message_view m;
    cnasio::error_code ec;
    proc::event ev;
    while (reader.next(m, ec)) {
        if (ec || m.id() != cn::proc_id)
            continue;
        if (!proc::decode(m.payload, {m.seq(), m.ack()}, ev, ec))
            continue;
        std::uint32_t pid = 0;
        if (const auto* f = ev.get_if<proc::fork_event>())
            pid = static_cast<std::uint32_t>(f->child_pid);
        else if (const auto* x = ev.get_if<proc::exit_event>())
            pid = static_cast<std::uint32_t>(x->process_pid);
        sum += ev.what + pid;
    }
    return sum;
}
