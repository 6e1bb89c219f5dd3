// cnctl's output lines: process events and connector messages, as text
// ("key=value" fields) or as one JSON object per line (JSON Lines). Each
// function returns one complete line, '\n' included.
//
// Bytes that come from outside (payloads, process names) need not be UTF-8:
// text output shows printable ASCII and escapes the rest; JSON strings map each
// byte to the code point of the same value (Latin-1), so a reader gets back
// exactly the bytes sent, and the output stays valid UTF-8.
#pragma once

#include <cnasio/connector/message.hpp>
#include <cnasio/connector/registry.hpp>
#include <cnasio/proc/event.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace cnctl {

/// One process event. Text: "SECONDS.MICROS TYPE key=value..."; JSON: type,
/// cpu, seq, timestamp_ns, then the fields of the event's type. An exec event's
/// process name is read from /proc, so it can be missing ("?" / null).
/// Text form of bytes a process chose (argv, comm, payloads): printable ASCII
/// as it is, every other byte and the backslash as \xNN, so that no escape sequence,
/// newline or invalid UTF-8 reaches the terminal or forges a line.
std::string escape_text(std::string_view s);

/// Bytes as lowercase hex digits, two per byte.
std::string hex_text(std::span<const std::byte> bytes);

std::string format_event(const cnasio::proc::event& ev, bool json);

/// One connector message: idx, val, seq, ack, len, flags, the payload as hex
/// and as text.
std::string format_message(const cnasio::connector::message& m, bool json);

/// The seq and ack a request was sent with (request_options::sent).
struct request_numbers {
    std::uint32_t seq = 0;
    std::uint32_t ack = 0;
};

/// A request beside its reply. Text: "request seq=S ack=A -> reply" and the
/// reply's format_message fields; JSON: the reply's fields and
/// "request": {"seq", "ack"}.
std::string format_request_reply(const request_numbers& request, const cnasio::connector::message& reply, bool json);

/// One registered connector id. Text: "name=NAME id=IDX:VAL"; JSON: name, idx, val.
std::string format_registered(const cnasio::connector::registered_id& r, bool json);

/// wait-id's outcome. Text: "IDX:VAL registered|unregistered after N ms";
/// JSON: idx, val, "event": "registered"|"unregistered", "after_ms".
std::string format_wait_result(cnasio::connector::id id, bool gone, std::uint64_t after_ms, bool json);

} // namespace cnctl
