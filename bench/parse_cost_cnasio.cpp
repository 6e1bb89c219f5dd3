// cnasio side of the parse cost benchmark, in two forms:
// - parse_cnasio: the fast path. for_each_message walks the messages (its
//   view never leaves registers), proc::event_view checks each payload once
//   and reads only the fields asked for. This is the figure against the raw
//   walk, which also reads only `what` and one pid.
// - parse_cnasio_decode: the same walk (the one the client runs on every
//   datagram, datagram_reader::for_each) and the typed proc::decode into one
//   reused event (every field, into the variant), as proc::listener decodes
//   what the client hands it. Reported as a second figure.
#include "parse_cost.hpp"

#include <cnasio/connector/framing.hpp>
#include <cnasio/proc/event.hpp>

namespace cn = cnasio::connector;
namespace proc = cnasio::proc;

extern "C" __attribute__((noinline)) std::uint64_t parse_cnasio(const unsigned char* buf, std::size_t len)
{
    std::uint64_t sum = 0;
    cn::for_each_message(
        {reinterpret_cast<const std::byte*>(buf), len}, false,
        [&](const cn::message_view& m) {
            if (m.id() != cn::proc_id)
                return;
            proc::event_view ev;
            cnasio::error_code ec;
            if (!proc::event_view::parse(m.payload, {m.seq(), m.ack()}, ev, ec))
                return;
            std::uint32_t pid = 0;
            if (const auto f = ev.get<proc::fork_event>())
                pid = static_cast<std::uint32_t>(f->child_pid);
            else if (const auto x = ev.get<proc::exit_event>())
                pid = static_cast<std::uint32_t>(x->process_pid);
            sum += ev.what() + pid;
        },
        [](cnasio::error_code, const cn::message_view&) {});
    return sum;
}

extern "C" __attribute__((noinline)) std::uint64_t parse_cnasio_decode(const unsigned char* buf, std::size_t len)
{
    std::uint64_t sum = 0;
    proc::event ev;
    cn::for_each_message(
        {reinterpret_cast<const std::byte*>(buf), len}, false,
        [&](const cn::message_view& m) {
            if (m.id() != cn::proc_id)
                return;
            cnasio::error_code ec;
            if (!proc::decode(m.payload, {m.seq(), m.ack()}, ev, ec))
                return;
            std::uint32_t pid = 0;
            if (const auto* f = ev.get_if<proc::fork_event>())
                pid = static_cast<std::uint32_t>(f->child_pid);
            else if (const auto* x = ev.get_if<proc::exit_event>())
                pid = static_cast<std::uint32_t>(x->process_pid);
            sum += ev.what + pid;
        },
        [](cnasio::error_code, const cn::message_view&) {});
    return sum;
}
