// cnctl - the kernel connector from a shell: process events, raw group
// messages, requests and one-way messages.
//
//   cnctl proc [--filter fork,exec,exit,...] [--count N] [--json] [--netns PATH] [--force-bpf] [--rcvbuf BYTES]
//   cnctl listen --group G [--count N] [--json] [--netns PATH] [--admit PORT]... [--rcvbuf BYTES]
//   cnctl request IDX:VAL [--data TEXT | --hex HEX] [--timeout MS] [--ack-only] [--json] [--netns PATH]
//                         [--admit PORT]... [--to PORT]
//   cnctl send IDX:VAL [--data TEXT | --hex HEX] [--netns PATH] [--to PORT]
//   cnctl --version | --help | COMMAND --help
//
// Exit status: 0 done, 1 runtime error (the message names the cause),
// 2 usage error (one line on stderr), 3 timeout (request without a reply).
#include <cnasio/client.hpp>
#include <cnasio/proc/listener.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#ifndef CNCTL_VERSION
#define CNCTL_VERSION "unknown"
#endif

namespace asio = boost::asio;
namespace proc = cnasio::proc;
namespace cn = cnasio::connector;
using cnasio::error_code;

namespace {

constexpr int exit_ok = 0, exit_runtime = 1, exit_usage = 2, exit_timeout = 3;

// ---- usage ------------------------------------------------------------------

constexpr const char* main_help =
    "usage: cnctl COMMAND [OPTIONS]\n"
    "\n"
    "The Linux kernel connector (NETLINK_CONNECTOR) from a shell.\n"
    "\n"
    "commands:\n"
    "  proc      live process events (fork, exec, exit, ...)\n"
    "  listen    raw connector messages of a multicast group\n"
    "  request   send a message and print the correlated reply\n"
    "  send      send a message, expect no reply\n"
    "\n"
    "  cnctl COMMAND --help    options of a command\n"
    "  cnctl --version\n"
    "\n"
    "exit status: 0 ok, 1 runtime error, 2 usage error, 3 timeout\n";

constexpr const char* proc_help =
    "usage: cnctl proc [--filter TYPES] [--count N] [--json] [--netns PATH] [--force-bpf] [--rcvbuf BYTES]\n"
    "\n"
    "Prints the kernel's process events, one per line, until interrupted or N events.\n"
    "\n"
    "  --filter TYPES  comma-separated event types to show: fork, exec, uid, gid, sid, ptrace,\n"
    "                  comm, coredump, exit, nonzero_exit, or all (the default). The kernel\n"
    "                  filters (6.6+ proc_input mask, else a BPF socket filter).\n"
    "  --count N       exit after N events\n"
    "  --json          JSON Lines instead of text\n"
    "  --netns PATH    open the socket in this network namespace (the connector exists in the\n"
    "                  initial one only), e.g. /proc/1/ns/net\n"
    "  --force-bpf     filter with a BPF socket filter even where the kernel takes a mask\n"
    "  --rcvbuf BYTES  socket receive buffer to ask for (default 8 MiB)\n"
    "\n"
    "Lost events (receive buffer overruns) are reported on stderr with their count; with a\n"
    "filter the count is unknown (the kernel numbers the events it filters out too).\n"
    "Sends IGNORE to the kernel on exit, also on SIGINT/SIGTERM.\n";

constexpr const char* listen_help =
    "usage: cnctl listen --group G [--count N] [--json] [--netns PATH] [--admit PORT]... [--rcvbuf BYTES]\n"
    "\n"
    "Dumps the raw connector messages of multicast group G (1..26): id, seq, ack, length, flags,\n"
    "payload as hex and printable text.\n"
    "\n"
    "  --group G       the group (a connector idx)\n"
    "  --count N       exit after N messages\n"
    "  --json          JSON Lines instead of text\n"
    "  --netns PATH    open the socket in this network namespace\n"
    "  --admit PORT    also believe messages from this user-space port id (only the kernel,\n"
    "                  port 0, is believed otherwise); may be repeated\n"
    "  --rcvbuf BYTES  socket receive buffer to ask for (default 8 MiB)\n";

constexpr const char* request_help =
    "usage: cnctl request IDX:VAL [--data TEXT | --hex HEX] [--timeout MS] [--ack-only] [--json]\n"
    "                     [--netns PATH] [--admit PORT]... [--to PORT]\n"
    "\n"
    "Sends one message to connector id IDX:VAL and prints the reply (same seq, ack + 1).\n"
    "IDX and VAL are decimal or 0x-prefixed hex.\n"
    "\n"
    "  --data TEXT     payload: the bytes of TEXT\n"
    "  --hex HEX       payload: hex digits, two per byte (e.g. 01000000)\n"
    "  --timeout MS    give up after MS milliseconds (default 1000): exit status 3\n"
    "  --ack-only      match the reply on ack + 1 only (the proc connector does not echo seq)\n"
    "  --json          print the reply as JSON\n"
    "  --netns PATH    open the socket in this network namespace\n"
    "  --admit PORT    also believe replies from this user-space port id\n"
    "  --to PORT       send to this user-space port id instead of the kernel (admits it)\n";

constexpr const char* send_help =
    "usage: cnctl send IDX:VAL [--data TEXT | --hex HEX] [--netns PATH] [--to PORT]\n"
    "\n"
    "Sends one message to connector id IDX:VAL and expects no reply.\n"
    "\n"
    "  --data TEXT     payload: the bytes of TEXT\n"
    "  --hex HEX       payload: hex digits, two per byte\n"
    "  --netns PATH    open the socket in this network namespace\n"
    "  --to PORT       send to this user-space port id instead of the kernel\n";

struct usage_error {
    std::string message;
};

// ---- argument parsing ---------------------------------------------------------

std::optional<std::uint64_t> parse_number(std::string_view s, std::uint64_t max) {
    int base = 10;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s.remove_prefix(2);
    }
    if (s.empty()) return std::nullopt;
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
    if (ec != std::errc{} || end != s.data() + s.size() || v > max) return std::nullopt;
    return v;
}

cn::id parse_id(std::string_view s) {
    const auto colon = s.find(':');
    if (colon == std::string_view::npos)
        throw usage_error{"malformed connector id '" + std::string(s) + "': expected IDX:VAL"};
    auto idx = parse_number(s.substr(0, colon), UINT32_MAX);
    auto val = parse_number(s.substr(colon + 1), UINT32_MAX);
    if (!idx || !val)
        throw usage_error{"malformed connector id '" + std::string(s) +
                          "': expected IDX:VAL, two 32-bit numbers (decimal or 0x hex)"};
    return {static_cast<std::uint32_t>(*idx), static_cast<std::uint32_t>(*val)};
}

std::vector<std::byte> parse_hex(std::string_view s) {
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.remove_prefix(2);
    auto digit = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    if (s.size() % 2 != 0) throw usage_error{"bad hex payload: odd number of digits"};
    std::vector<std::byte> out;
    for (std::size_t i = 0; i < s.size(); i += 2) {
        int hi = digit(s[i]), lo = digit(s[i + 1]);
        if (hi < 0 || lo < 0)
            throw usage_error{"bad hex payload: '" + std::string(hi < 0 ? s.substr(i, 1) : s.substr(i + 1, 1)) +
                              "' is not a hex digit"};
        out.push_back(static_cast<std::byte>(hi * 16 + lo));
    }
    return out;
}

// Walks "--name value" / "--name=value" options after the command word.
class arg_reader {
public:
    arg_reader(int argc, char** argv, int first) : args_(argv + first, argv + argc) {}

    bool next() {
        if (pos_ >= args_.size()) return false;
        std::string_view a = args_[pos_++];
        inline_value_.reset();
        if (a.size() > 2 && a.substr(0, 2) == "--") {
            if (auto eq = a.find('='); eq != std::string_view::npos) {
                inline_value_ = std::string(a.substr(eq + 1));
                a = a.substr(0, eq);
            }
        }
        current_ = std::string(a);
        return true;
    }
    const std::string& current() const { return current_; }
    bool is_option() const { return current_.size() > 1 && current_[0] == '-'; }
    std::string value() {
        if (inline_value_) return *inline_value_;
        if (pos_ >= args_.size()) throw usage_error{"option " + current_ + " needs a value"};
        return args_[pos_++];
    }
    // A flag given as --flag=value.
    void no_value() const {
        if (inline_value_) throw usage_error{"option " + current_ + " takes no value"};
    }

private:
    std::vector<std::string> args_;
    std::size_t pos_ = 0;
    std::string current_;
    std::optional<std::string> inline_value_;
};

std::uint64_t count_value(arg_reader& r) {
    auto v = r.value();
    auto n = parse_number(v, UINT64_MAX);
    if (!n || *n == 0) throw usage_error{"bad --count '" + v + "': expected a positive number"};
    return *n;
}

std::uint32_t port_value(arg_reader& r) {
    auto v = r.value();
    auto n = parse_number(v, UINT32_MAX);
    if (!n || *n == 0) throw usage_error{"bad port id '" + v + "' for " + r.current() + ": expected 1..4294967295"};
    return static_cast<std::uint32_t>(*n);
}

std::size_t rcvbuf_value(arg_reader& r) {
    auto v = r.value();
    auto n = parse_number(v, 1u << 30);
    if (!n || *n == 0) throw usage_error{"bad --rcvbuf '" + v + "': expected 1..1073741824 bytes"};
    return static_cast<std::size_t>(*n);
}

[[noreturn]] void unknown_option(const std::string& command, const std::string& opt) {
    throw usage_error{"unknown option '" + opt + "' for " + command};
}

struct common_options {
    bool json = false;
    std::string netns;
    std::vector<std::uint32_t> admitted;
    std::optional<std::size_t> rcvbuf;
};

struct proc_args : common_options {
    proc::event_mask filter = proc::event_mask::all();
    std::uint64_t count = 0;
    bool force_bpf = false;
};

struct listen_args : common_options {
    unsigned group = 0;
    std::uint64_t count = 0;
};

struct request_args : common_options {
    cn::id id;
    std::vector<std::byte> payload;
    std::chrono::milliseconds timeout{1000};
    bool ack_only = false;
    std::uint32_t to = 0;
};

// Options every command takes; true when `r.current()` was one.
bool common_option(arg_reader& r, common_options& o, bool json_allowed, bool admit_allowed) {
    const auto& opt = r.current();
    if (opt == "--netns") {
        o.netns = r.value();
        if (o.netns.empty()) throw usage_error{"--netns needs a path"};
        return true;
    }
    if (opt == "--json" && json_allowed) {
        r.no_value();
        o.json = true;
        return true;
    }
    if (opt == "--admit" && admit_allowed) {
        o.admitted.push_back(port_value(r));
        return true;
    }
    return false;
}

proc_args parse_proc(arg_reader& r) {
    proc_args a;
    while (r.next()) {
        const auto& opt = r.current();
        if (common_option(r, a, true, false)) continue;
        if (opt == "--filter") {
            auto v = r.value();
            error_code ec;
            std::string_view bad;
            a.filter = proc::parse_event_mask(v, ec, &bad);
            if (ec) {
                if (bad.empty() || v.find_first_not_of(" \t") == std::string::npos)
                    throw usage_error{"empty --filter list"};
                throw usage_error{"unknown event type '" + std::string(bad) +
                                  "' in --filter (known: fork, exec, uid, gid, sid, ptrace, comm, coredump, exit, "
                                  "nonzero_exit, all)"};
            }
        } else if (opt == "--count") {
            a.count = count_value(r);
        } else if (opt == "--force-bpf") {
            r.no_value();
            a.force_bpf = true;
        } else if (opt == "--rcvbuf") {
            a.rcvbuf = rcvbuf_value(r);
        } else if (r.is_option()) {
            unknown_option("proc", opt);
        } else {
            throw usage_error{"unexpected argument '" + opt + "' for proc"};
        }
    }
    return a;
}

listen_args parse_listen(arg_reader& r) {
    listen_args a;
    bool have_group = false;
    while (r.next()) {
        const auto& opt = r.current();
        if (common_option(r, a, true, true)) continue;
        if (opt == "--group") {
            auto v = r.value();
            auto g = parse_number(v, UINT32_MAX);
            // The connector's kernel socket has CN_NETLINK_USERS + 0xf = 26 groups.
            if (!g || *g < 1 || *g > 26) throw usage_error{"bad --group '" + v + "': expected 1..26"};
            a.group = static_cast<unsigned>(*g);
            have_group = true;
        } else if (opt == "--count") {
            a.count = count_value(r);
        } else if (opt == "--rcvbuf") {
            a.rcvbuf = rcvbuf_value(r);
        } else if (r.is_option()) {
            unknown_option("listen", opt);
        } else {
            throw usage_error{"unexpected argument '" + opt + "' for listen"};
        }
    }
    if (!have_group) throw usage_error{"listen needs --group G"};
    return a;
}

request_args parse_request(arg_reader& r, const std::string& command) {
    request_args a;
    const bool is_request = command == "request";
    bool have_id = false, have_data = false, have_hex = false;
    while (r.next()) {
        const auto& opt = r.current();
        if (common_option(r, a, is_request, is_request)) continue;
        if (opt == "--data") {
            auto v = r.value();
            a.payload.resize(v.size());
            std::memcpy(a.payload.data(), v.data(), v.size());
            have_data = true;
        } else if (opt == "--hex") {
            a.payload = parse_hex(r.value());
            have_hex = true;
        } else if (opt == "--to") {
            a.to = port_value(r);
        } else if (is_request && opt == "--timeout") {
            auto v = r.value();
            auto ms = parse_number(v, 24u * 3600 * 1000);
            if (!ms || *ms == 0) throw usage_error{"bad --timeout '" + v + "': expected milliseconds, 1..86400000"};
            a.timeout = std::chrono::milliseconds(*ms);
        } else if (is_request && opt == "--ack-only") {
            r.no_value();
            a.ack_only = true;
        } else if (r.is_option()) {
            unknown_option(command, opt);
        } else if (!have_id) {
            a.id = parse_id(opt);
            have_id = true;
        } else {
            throw usage_error{"unexpected argument '" + opt + "' for " + command};
        }
    }
    if (!have_id) throw usage_error{command + " needs a connector id IDX:VAL"};
    if (have_data && have_hex) throw usage_error{"--data and --hex exclude each other"};
    if (a.payload.size() > cn::max_payload)
        throw usage_error{"payload of " + std::to_string(a.payload.size()) + " bytes is above the connector's " +
                          std::to_string(cn::max_payload)};
    if (a.to != 0) a.admitted.push_back(a.to);
    return a;
}

// ---- output ---------------------------------------------------------------------

void json_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            // Control characters, and bytes above ASCII: the text need not be
            // UTF-8 (a process name is any 15 bytes), so each byte is escaped
            // as the code point of the same value to keep the output valid JSON.
            if (c < 0x20 || c >= 0x7f) {
                out += "\\u00";
                out += hex[c >> 4];
                out += hex[c & 0xf];
            } else {
                out += static_cast<char>(c);
            }
        }
    }
    out += '"';
}

// Process name as the shell shows it: printable ASCII, others escaped as \xNN.
std::string printable(std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 0xf];
        }
    }
    return out;
}

std::optional<std::string> comm_of(proc::pid_type pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    if (!f || !std::getline(f, name)) return std::nullopt;
    return name;
}

class output {
public:
    // false on a write error (EPIPE: the reader went away).
    bool write(const std::string& line) {
        if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size()) return false;
        return true;
    }
    bool flush() { return std::fflush(stdout) == 0; }
};

struct field_writer {
    std::string& out;
    bool json;
    bool first = true;

    void key(std::string_view k) {
        if (json) {
            out += first ? "" : ",";
            json_string(out, k);
            out += ':';
        } else {
            out += ' ';
            out += k;
            out += '=';
        }
        first = false;
    }
    void num(std::string_view k, std::int64_t v) {
        key(k);
        out += std::to_string(v);
    }
    void unum(std::string_view k, std::uint64_t v) {
        key(k);
        out += std::to_string(v);
    }
    void str(std::string_view k, std::string_view v) {
        key(k);
        if (json)
            json_string(out, v);
        else
            out += printable(v);
    }
    void name(std::string_view k, const std::optional<std::string>& v) {
        if (v) return str(k, *v);
        key(k);
        out += json ? "null" : "?";
    }
};

std::string format_event(const proc::event& ev, bool json) {
    std::string out;
    const auto type = proc::to_string(ev.type());
    if (json) {
        out += '{';
        field_writer w{out, true};
        w.str("type", type);
        w.unum("cpu", ev.cpu);
        w.unum("seq", ev.seq);
        w.unum("timestamp_ns", ev.timestamp_ns);
    } else {
        char ts[48];
        std::snprintf(ts, sizeof ts, "%llu.%06llu %-8.*s", static_cast<unsigned long long>(ev.timestamp_ns / 1000000000),
                      static_cast<unsigned long long>(ev.timestamp_ns % 1000000000 / 1000),
                      static_cast<int>(type.size()), type.data());
        out += ts;
    }
    field_writer w{out, json, !json};
    std::visit(
        [&](const auto& d) {
            using T = std::decay_t<decltype(d)>;
            if constexpr (std::is_same_v<T, proc::ack_event>) {
                w.unum("err", d.err);
                w.unum("ack", ev.ack);
            } else if constexpr (std::is_same_v<T, proc::fork_event>) {
                w.num("parent_pid", d.parent_pid);
                w.num("parent_tgid", d.parent_tgid);
                w.num("child_pid", d.child_pid);
                w.num("child_tgid", d.child_tgid);
            } else if constexpr (std::is_same_v<T, proc::exec_event>) {
                w.num("pid", d.process_pid);
                w.num("tgid", d.process_tgid);
                w.name("comm", comm_of(d.process_pid));
            } else if constexpr (std::is_same_v<T, proc::uid_event>) {
                w.num("pid", d.process_pid);
                w.num("tgid", d.process_tgid);
                w.unum("ruid", d.ruid);
                w.unum("euid", d.euid);
            } else if constexpr (std::is_same_v<T, proc::gid_event>) {
                w.num("pid", d.process_pid);
                w.num("tgid", d.process_tgid);
                w.unum("rgid", d.rgid);
                w.unum("egid", d.egid);
            } else if constexpr (std::is_same_v<T, proc::sid_event>) {
                w.num("pid", d.process_pid);
                w.num("tgid", d.process_tgid);
            } else if constexpr (std::is_same_v<T, proc::ptrace_event>) {
                w.num("pid", d.process_pid);
                w.num("tgid", d.process_tgid);
                w.num("tracer_pid", d.tracer_pid);
                w.num("tracer_tgid", d.tracer_tgid);
            } else if constexpr (std::is_same_v<T, proc::comm_event>) {
                w.num("pid", d.process_pid);
                w.num("tgid", d.process_tgid);
                w.str("comm", d.name());
            } else if constexpr (std::is_same_v<T, proc::coredump_event>) {
                w.num("pid", d.process_pid);
                w.num("tgid", d.process_tgid);
                w.num("parent_pid", d.parent_pid);
                w.num("parent_tgid", d.parent_tgid);
            } else if constexpr (std::is_same_v<T, proc::exit_event> || std::is_same_v<T, proc::nonzero_exit_event>) {
                w.num("pid", d.process_pid);
                w.num("tgid", d.process_tgid);
                w.unum("exit_code", d.exit_code);
                if (d.exited()) w.num("status", d.exit_status());
                if (d.signaled()) w.num("signal", d.term_signal());
                w.num("exit_signal", d.exit_signal);
                w.num("parent_pid", d.parent_pid);
                w.num("parent_tgid", d.parent_tgid);
            } else {
                static constexpr char hex[] = "0123456789abcdef";
                std::string h;
                for (auto b : d.bytes()) {
                    h += hex[static_cast<unsigned>(b) >> 4];
                    h += hex[static_cast<unsigned>(b) & 0xf];
                }
                w.unum("what", d.what);
                w.str("data", h);
            }
        },
        ev.data);
    out += json ? "}\n" : "\n";
    return out;
}

std::string format_message(const cn::message& m, bool json) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string h, text;
    for (auto b : m.payload) {
        const auto c = static_cast<unsigned char>(b);
        h += hex[c >> 4];
        h += hex[c & 0xf];
        text += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
    }
    std::string out;
    if (json) out += '{';
    field_writer w{out, json};
    w.unum("idx", m.id().idx);
    w.unum("val", m.id().val);
    w.unum("seq", m.seq());
    w.unum("ack", m.ack());
    w.unum("len", m.payload.size());
    w.unum("flags", m.header.flags);
    if (json) {
        w.str("hex", h);
        // The payload bytes themselves (escaped), not the dotted rendering.
        w.key("text");
        json_string(out, std::string_view(reinterpret_cast<const char*>(m.payload.data()), m.payload.size()));
        out += "}\n";
    } else {
        out += " hex=" + h + " text=\"" + text + "\"\n";
        out.erase(0, 1); // the leading blank of the first field
    }
    return out;
}

// ---- errors -----------------------------------------------------------------------

std::string describe(error_code ec, const std::string& doing) {
    if (ec == boost::system::errc::operation_not_permitted || ec == boost::system::errc::permission_denied)
        return doing + ": not permitted (" + ec.message() +
               "): this needs CAP_NET_ADMIN on this kernel (run as root)";
    if (ec == cnasio::error::connector_unreachable)
        return doing +
               ": the kernel connector is not reachable from this network namespace (ECONNREFUSED): it exists in "
               "the initial network namespace only; open the socket there with --netns /proc/1/ns/net (or the "
               "namespace file of a process outside the container, e.g. /proc/PID/ns/net)";
    if (ec == cnasio::error::proc_events_unsupported)
        return doing +
               ": the kernel did not acknowledge LISTEN: it lacks CONFIG_PROC_EVENTS, or this process is in a user "
               "or pid namespace, where the proc connector ignores requests";
    if (ec == cnasio::error::connector_unsupported)
        return doing + ": the kernel has no netlink connector (EPROTONOSUPPORT): it needs CONFIG_CONNECTOR";
    return doing + ": " + ec.message();
}

int fail(const std::string& message) {
    std::fprintf(stderr, "cnctl: %s\n", message.c_str());
    return exit_runtime;
}

std::optional<cnasio::client> open_client(asio::io_context& io, const common_options& o, int& rc) {
    cnasio::client_options co;
    co.netns = o.netns;
    co.admitted_ports = o.admitted;
    if (o.rcvbuf) co.subscription_receive_buffer = *o.rcvbuf;
    error_code ec;
    cnasio::client c(io.get_executor(), std::move(co), ec);
    if (ec) {
        if (!o.netns.empty() && (ec == boost::system::errc::operation_not_permitted ||
                                 ec == boost::system::errc::permission_denied))
            rc = fail("entering network namespace " + o.netns + ": not permitted (" + ec.message() +
                      "): opening the namespace file and setns() need root (CAP_SYS_ADMIN)");
        else
            rc = fail(describe(ec, o.netns.empty() ? std::string("opening the connector socket")
                                                   : "opening the connector socket in network namespace " + o.netns));
        return std::nullopt;
    }
    return std::optional<cnasio::client>(std::move(c));
}

// Stops a command on SIGINT/SIGTERM through `stop`.
template <class Stop>
void on_signals(asio::signal_set& signals, bool& stopping, Stop stop) {
    signals.async_wait([&stopping, stop](error_code ec, int) {
        if (ec) return;
        stopping = true;
        stop();
    });
}

// ---- commands ------------------------------------------------------------------------

asio::awaitable<int> run_proc(proc_args a) {
    auto ex = co_await asio::this_coro::executor;
    auto& io = static_cast<asio::io_context&>(ex.context());
    int rc = exit_ok;
    auto c = open_client(io, a, rc);
    if (!c) co_return rc;

    proc::listener_options lo;
    lo.filter = a.filter;
    lo.force_bpf = a.force_bpf;
    proc::listener l(*c, lo);
    auto [sec] = co_await l.async_start(asio::as_tuple(asio::use_awaitable));
    if (sec) co_return fail(describe(sec, "starting process events"));

    asio::signal_set signals(ex, SIGINT, SIGTERM);
    bool stopping = false;
    on_signals(signals, stopping, [&l] { l.cancel(); });

    output out;
    proc::event ev;
    std::uint64_t seen = 0;
    std::uint64_t lost_reported = 0;
    bool overrun_count_pending = false;
    const bool filtered = !a.filter.kernel_effective().is_all();
    auto report_loss = [&](bool final) {
        const auto st = l.stats();
        if (filtered || !st.lost) {
            if (final && st.overruns > 0)
                std::fprintf(stderr, "cnctl: %llu receive buffer overrun(s); events lost: count unknown (filtered)\n",
                             static_cast<unsigned long long>(st.overruns));
            return;
        }
        if (*st.lost > lost_reported) {
            std::fprintf(stderr, "cnctl: %llu events lost (total %llu, %llu overrun(s))\n",
                         static_cast<unsigned long long>(*st.lost - lost_reported),
                         static_cast<unsigned long long>(*st.lost), static_cast<unsigned long long>(st.overruns));
            lost_reported = *st.lost;
        }
    };
    while (!stopping) {
        auto [ec] = co_await l.async_receive(ev, asio::as_tuple(asio::use_awaitable));
        if (ec == cnasio::error::overrun) {
            if (filtered)
                std::fprintf(stderr, "cnctl: receive buffer overrun: events lost (count unknown: a filter is "
                                     "active, and the kernel numbers filtered events too)\n");
            else
                std::fprintf(stderr, "cnctl: receive buffer overrun: events lost (counting...)\n");
            overrun_count_pending = true;
            continue;
        }
        if (ec) {
            if (stopping) break;
            rc = fail(describe(ec, "receiving process events"));
            break;
        }
        // The count behind an overrun shows as each CPU's next event arrives.
        if (overrun_count_pending || l.queued() == 0) report_loss(false);
        if (!out.write(format_event(ev, a.json))) break; // stdout closed: stop quietly
        ++seen;
        if (a.count != 0 && seen >= a.count) break;
        if (l.queued() == 0 && !out.flush()) break; // a burst is flushed once, at its end
    }
    signals.cancel();
    out.flush();
    l.close(); // IGNORE
    report_loss(true);
    co_return rc;
}

asio::awaitable<int> run_listen(listen_args a) {
    auto ex = co_await asio::this_coro::executor;
    auto& io = static_cast<asio::io_context&>(ex.context());
    int rc = exit_ok;
    auto c = open_client(io, a, rc);
    if (!c) co_return rc;
    cnasio::subscription_options so;
    so.queue_limit = 65536;
    error_code ec;
    auto sub = c->subscribe(a.group, so, ec);
    if (ec) co_return fail(describe(ec, "joining group " + std::to_string(a.group)));

    asio::signal_set signals(ex, SIGINT, SIGTERM);
    bool stopping = false;
    on_signals(signals, stopping, [&sub] { sub.cancel(); });
    output out;
    cn::message m;
    std::uint64_t seen = 0, overruns = 0;
    while (!stopping) {
        auto [rec] = co_await sub.async_receive(m, asio::as_tuple(asio::use_awaitable));
        if (rec == cnasio::error::overrun) {
            ++overruns;
            std::fprintf(stderr, "cnctl: receive buffer overrun: messages lost (%llu overrun(s) so far)\n",
                         static_cast<unsigned long long>(overruns));
            continue;
        }
        if (rec) {
            if (stopping) break;
            rc = fail(describe(rec, "receiving from group " + std::to_string(a.group)));
            break;
        }
        if (!out.write(format_message(m, a.json))) break;
        ++seen;
        if (a.count != 0 && seen >= a.count) break;
        if (sub.queued() == 0 && !out.flush()) break;
    }
    const auto dropped = sub.stats().dropped;
    if (dropped > 0)
        std::fprintf(stderr, "cnctl: %llu messages dropped by a full queue\n", static_cast<unsigned long long>(dropped));
    signals.cancel();
    out.flush();
    co_return rc;
}

std::string id_text(cn::id id) { return std::to_string(id.idx) + ":" + std::to_string(id.val); }

asio::awaitable<int> run_request(request_args a) {
    auto ex = co_await asio::this_coro::executor;
    auto& io = static_cast<asio::io_context&>(ex.context());
    int rc = exit_ok;
    auto c = open_client(io, a, rc);
    if (!c) co_return rc;
    cnasio::request_options ro;
    ro.match = a.ack_only ? cnasio::match::ack_only : cnasio::match::seq_and_ack;
    ro.timeout = a.timeout;
    ro.port_id = a.to;

    asio::signal_set signals(ex, SIGINT, SIGTERM);
    bool stopping = false;
    on_signals(signals, stopping, [&c] { c->close(); });
    auto [ec, reply] = co_await c->async_request(a.id, a.payload, ro, asio::as_tuple(asio::use_awaitable));
    signals.cancel();
    if (stopping) co_return exit_ok;
    if (ec == cnasio::error::timeout) {
        std::fprintf(stderr, "cnctl: no reply from %s within %lld ms\n", id_text(a.id).c_str(),
                     static_cast<long long>(a.timeout.count()));
        co_return exit_timeout;
    }
    if (ec) co_return fail(describe(ec, "request to " + id_text(a.id)));
    output out;
    out.write(format_message(reply, a.json));
    out.flush();
    co_return exit_ok;
}

asio::awaitable<int> run_send(request_args a) {
    auto ex = co_await asio::this_coro::executor;
    auto& io = static_cast<asio::io_context&>(ex.context());
    int rc = exit_ok;
    auto c = open_client(io, a, rc);
    if (!c) co_return rc;
    cnasio::request_options ro;
    ro.port_id = a.to;
    auto [ec] = co_await c->async_send(a.id, a.payload, ro, asio::as_tuple(asio::use_awaitable));
    if (ec == boost::system::errc::connection_refused)
        co_return fail("send to " + id_text(a.id) + ": no socket has port id " + std::to_string(a.to));
    if (ec) co_return fail(describe(ec, "send to " + id_text(a.id)));
    co_return exit_ok;
}

int run(asio::awaitable<int> task) {
    asio::io_context io(1);
    int rc = exit_runtime;
    asio::co_spawn(io, std::move(task), [&rc](std::exception_ptr e, int r) {
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                std::fprintf(stderr, "cnctl: %s\n", x.what());
            }
            rc = exit_runtime;
        } else {
            rc = r;
        }
    });
    io.run();
    return rc;
}

int dispatch(int argc, char** argv) {
    if (argc < 2) throw usage_error{"missing command (proc, listen, request, send; see cnctl --help)"};
    const std::string command = argv[1];
    if (command == "--version") {
        if (argc > 2) throw usage_error{"--version takes no arguments"};
        std::printf("cnctl %s (cnasio)\n", CNCTL_VERSION);
        return exit_ok;
    }
    if (command == "--help" || command == "-h" || command == "help") {
        std::fputs(main_help, stdout);
        return exit_ok;
    }
    const char* help = command == "proc"      ? proc_help
                       : command == "listen"  ? listen_help
                       : command == "request" ? request_help
                       : command == "send"    ? send_help
                                              : nullptr;
    if (!help) throw usage_error{"unknown command '" + command + "' (proc, listen, request, send)"};
    for (int i = 2; i < argc; ++i) {
        std::string_view s = argv[i];
        if (s == "--help" || s == "-h") {
            std::fputs(help, stdout);
            return exit_ok;
        }
    }
    arg_reader r(argc, argv, 2);
    if (command == "proc") return run(run_proc(parse_proc(r)));
    if (command == "listen") return run(run_listen(parse_listen(r)));
    if (command == "request") return run(run_request(parse_request(r, command)));
    return run(run_send(parse_request(r, command)));
}

} // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN); // a closed stdout is a write error, handled where it happens
    try {
        return dispatch(argc, argv);
    } catch (const usage_error& e) {
        std::fprintf(stderr, "cnctl: %s\n", e.message.c_str());
        return exit_usage;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cnctl: %s\n", e.what());
        return exit_runtime;
    }
}
