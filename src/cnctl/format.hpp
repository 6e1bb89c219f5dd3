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
#include <cnasio/proc/process_table.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

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

/// A process event with what the process table knows (JSON Lines, proc_view.cpp):
/// format_event's members, then "process": process_json(*p) of the event's
/// process, and for a fork also "parent_process". p may be null (a process the
/// table does not track): "process": null.
std::string format_enriched_event(const cnasio::proc::event& ev, const cnasio::proc::process_info* p,
                                  const cnasio::proc::process_info* parent);

/// Every field of a process table entry as a JSON object: each field is
/// {"value": V, "from": "event"|"proc"|"gone"|"none"} (its provenance;
/// value null when unknown); pid, threads, execs, exited and fork_ns are plain.
/// "container" ({runtime, id, pod}) comes from the cgroup, with its provenance.
std::string process_json(const cnasio::proc::process_info& p);

/// `cnctl tree --json`: one line per process: process_json's members plus "depth".
std::string format_tree_json(const cnasio::proc::process_info& p, unsigned depth);

/// `cnctl proc --stats`: what was shown, lost and missed (proc_view.cpp).
struct proc_summary {
    std::vector<std::pair<std::string, std::uint64_t>> events; ///< by event type, shown events
    std::uint64_t lost = 0;          ///< events the kernel dropped (counted from per-CPU sequence gaps)
    std::uint64_t overruns = 0;      ///< receive buffer overruns (ENOBUFS)
    std::uint64_t resyncs = 0;       ///< /proc rescans after an overrun
    std::uint64_t enrich_skipped = 0; ///< /proc reads skipped under backlog
    std::uint64_t execs = 0;         ///< exec events shown
    std::uint64_t execs_with_cmdline = 0; ///< ... of which the command line was read (verified)
    struct forker {
        cnasio::proc::pid_type pid;
        std::uint64_t forks;
        std::string cmdline; ///< raw bytes (escaped when printed)
    };
    std::vector<forker> forkers; ///< busiest first, at most 5
    std::vector<std::pair<std::string, std::uint64_t>> execers; ///< programs run most often (exe or comm), at most 5
};

/// Text: lines starting "stats: "; JSON: one line {"stats": {...}}.
std::string format_proc_summary(const proc_summary& s, bool json);

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
