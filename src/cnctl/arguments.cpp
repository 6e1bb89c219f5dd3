// cnctl's commands and options, declared with CLI11. Values are checked by
// validators while parsing; a value that passed is converted afterwards by the
// same function, which then cannot fail. Every CLI11 error becomes one
// usage_error line; help goes to stdout (exit status 0).
#include "arguments.hpp"

#include <CLI/CLI.hpp>

#include <charconv>
#include <cstring>
#include <optional>
#include <sstream>
#include <string_view>

#ifndef CNCTL_VERSION
#define CNCTL_VERSION "unknown"
#endif

namespace cnctl {
namespace {

namespace cn = cnasio::connector;
namespace proc = cnasio::proc;

constexpr std::string_view command_names = "proc, listen, request, send, ids, wait-id, wait, tree, w1";

// A process id, 1..2147483647 (pid_max is at most 2^22 on Linux; any positive
// pid_t is accepted and looked up).
std::optional<cnasio::proc::pid_type> parse_pid(std::string_view text) {
    std::int64_t v = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || ptr != text.data() + text.size() || v < 1 || v > 0x7fffffff) return std::nullopt;
    return static_cast<cnasio::proc::pid_type>(v);
}

// ---- values -------------------------------------------------------------------

// Decimal, or hex with a 0x prefix; nothing else (no sign, no blanks, no octal).
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

// The connector id "IDX:VAL", or the reason it is not one.
std::variant<cn::id, std::string> parse_id(std::string_view s) {
    const auto colon = s.find(':');
    if (colon == std::string_view::npos)
        return "'" + std::string(s) + "' has no ':': expected IDX:VAL";
    auto idx = parse_number(s.substr(0, colon), UINT32_MAX);
    auto val = parse_number(s.substr(colon + 1), UINT32_MAX);
    if (!idx || !val)
        return "'" + std::string(s) + "' is not IDX:VAL, two 32-bit numbers (decimal or 0x hex)";
    return cn::id{static_cast<std::uint32_t>(*idx), static_cast<std::uint32_t>(*val)};
}

// Hex digits, two per byte, an optional 0x prefix; or the reason they are not.
std::variant<std::vector<std::byte>, std::string> parse_hex(std::string_view s) {
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.remove_prefix(2);
    auto digit = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    if (s.size() % 2 != 0) return std::string("bad hex payload: odd number of digits");
    std::vector<std::byte> out;
    out.reserve(s.size() / 2);
    for (std::size_t i = 0; i < s.size(); i += 2) {
        int hi = digit(s[i]), lo = digit(s[i + 1]);
        if (hi < 0 || lo < 0)
            return "bad hex payload: '" + std::string(hi < 0 ? s.substr(i, 1) : s.substr(i + 1, 1)) +
                   "' is not a hex digit";
        out.push_back(static_cast<std::byte>(hi * 16 + lo));
    }
    return out;
}

std::string payload_size_error(std::size_t bytes) {
    if (bytes <= cn::max_payload) return {};
    return "payload of " + std::to_string(bytes) + " bytes is above the connector's " +
           std::to_string(cn::max_payload);
}

// ---- validators -----------------------------------------------------------------
// CLI11 reports a validator's message as "OPTION: MESSAGE".

// A number in [min, max], rewritten in decimal for CLI11's conversion (which
// would read a leading 0 as octal).
CLI::Validator number_in(std::uint64_t min, std::uint64_t max, std::string what) {
    return CLI::Validator(
        [=](std::string& s) -> std::string {
            auto n = parse_number(s, max);
            if (!n || *n < min)
                return "'" + s + "' is not " + what + ": expected " + std::to_string(min) + ".." +
                       std::to_string(max);
            s = std::to_string(*n);
            return {};
        },
        "");
}

const CLI::Validator positive_count = number_in(1, UINT64_MAX, "a positive count");
const CLI::Validator port_id = number_in(1, UINT32_MAX, "a port id");
const CLI::Validator rcvbuf_bytes = number_in(1, 1u << 30, "a buffer size in bytes");
const CLI::Validator milliseconds = number_in(1, 24u * 3600 * 1000, "a number of milliseconds");
// The connector's kernel socket has CN_NETLINK_USERS + 0xf = 26 groups.
const CLI::Validator group_number = number_in(1, 26, "a group");

const CLI::Validator not_empty(
    [](std::string& s) -> std::string { return s.empty() ? "needs a value that is not empty" : ""; }, "");

const CLI::Validator event_types(
    [](std::string& s) -> std::string {
        cnasio::error_code ec;
        std::string_view bad;
        proc::parse_event_mask(s, ec, &bad);
        if (!ec) return {};
        if (s.find_first_not_of(" \t") == std::string::npos) return "empty list";
        if (bad.empty()) return "empty element in '" + s + "'";
        return "unknown event type '" + std::string(bad) +
               "' (known: fork, exec, uid, gid, sid, ptrace, comm, coredump, exit, nonzero_exit, all)";
    },
    "");

const CLI::Validator connector_id(
    [](std::string& s) -> std::string {
        auto id = parse_id(s);
        return std::holds_alternative<std::string>(id) ? std::get<std::string>(id) : std::string();
    },
    "");

const CLI::Validator hex_payload(
    [](std::string& s) -> std::string {
        auto bytes = parse_hex(s);
        if (auto* e = std::get_if<std::string>(&bytes)) return *e;
        return payload_size_error(std::get<std::vector<std::byte>>(bytes).size());
    },
    "");

const CLI::Validator text_payload([](std::string& s) -> std::string { return payload_size_error(s.size()); }, "");

// ---- help -----------------------------------------------------------------------

// Help that starts with a synopsis generated from the declared options
// ("usage: cnctl proc [--filter TYPES] [--count N] ..."), then the description,
// the options and the footer.
class formatter : public CLI::Formatter {
public:
    formatter() { column_width(24); }

    std::string make_help(const CLI::App* app, std::string name, CLI::AppFormatMode mode) const override {
        if (mode == CLI::AppFormatMode::Sub) return make_expanded(app);
        std::string out = make_usage(app, name);
        if (!app->get_description().empty()) out += "\n" + app->get_description() + "\n";
        out += make_positionals(app);
        out += make_groups(app, mode);
        out += make_subcommands(app, mode);
        if (!app->get_footer().empty()) out += "\n" + app->get_footer() + "\n";
        return out;
    }

    std::string make_usage(const CLI::App* app, std::string name) const override {
        std::vector<std::string> words;
        for (const CLI::Option* o : app->get_options()) {
            if (o == app->get_help_ptr()) continue;
            std::string w = o->get_positional() ? o->get_type_name() : o->get_name();
            if (o->nonpositional() && !o->get_type_name().empty()) w += " " + o->get_type_name();
            if (o->get_multi_option_policy() == CLI::MultiOptionPolicy::TakeAll) w += "...";
            if (!o->get_required()) w = "[" + w + "]";
            words.push_back(w);
        }
        if (!app->get_subcommands({}).empty()) words.push_back("COMMAND [OPTIONS]");
        // Wrapped at 100 columns, continuation lines under the first word.
        std::string out = "usage: " + name;
        const std::size_t indent = out.size() + 1;
        std::size_t column = out.size();
        for (const auto& w : words) {
            if (column + 1 + w.size() > 100 && column > indent) {
                out += "\n" + std::string(indent - 1, ' ');
                column = indent - 1;
            }
            out += " " + w;
            column += 1 + w.size();
        }
        return out + "\n";
    }

    // The value's name only ("--count N"), no "REQUIRED" or "Excludes:" notes:
    // the synopsis shows both.
    std::string make_option_opts(const CLI::Option* o) const override {
        return o->get_type_name().empty() ? std::string() : " " + o->get_type_name();
    }

    // Descriptions wrapped at 100 columns (CLI11 indents after each '\n').
    std::string make_option_desc(const CLI::Option* o) const override {
        const std::size_t width = 100 - get_column_width();
        std::string out, line;
        std::istringstream words(o->get_description());
        for (std::string w; words >> w;) {
            if (!line.empty() && line.size() + 1 + w.size() > width) {
                out += line + "\n";
                line.clear();
            }
            line += (line.empty() ? "" : " ") + w;
        }
        return out + line;
    }
};

// ---- declarations -----------------------------------------------------------------

CLI::App* add_command(CLI::App& app, const std::string& name, const std::string& summary) {
    CLI::App* sub = app.add_subcommand(name, summary);
    sub->group("Commands");
    return sub;
}

CLI::Option* add_switch(CLI::App& app, const std::string& name, bool& value, const std::string& help) {
    // --switch=value is an error, not a way to set it.
    return app.add_flag(name, value, help)->disable_flag_override();
}

void add_netns(CLI::App& app, common_options& o) {
    app.add_option("--netns", o.netns,
                   "open the socket in this network namespace (the connector exists in the initial one only), "
                   "e.g. /proc/1/ns/net")
        ->type_name("PATH")
        ->check(not_empty);
}

void add_json(CLI::App& app, common_options& o, const std::string& help) { add_switch(app, "--json", o.json, help); }

void add_admit(CLI::App& app, common_options& o, const std::string& help) {
    app.add_option("--admit", o.admitted, help)
        ->type_name("PORT")
        ->expected(1)
        ->allow_extra_args(false) // one port per --admit: what follows is another argument
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
        ->transform(port_id);
}

void add_rcvbuf(CLI::App& app, common_options& o) {
    app.add_option("--rcvbuf", o.rcvbuf, "socket receive buffer to ask for (default 8 MiB)")
        ->type_name("BYTES")
        ->transform(rcvbuf_bytes);
}

void add_ready_line(CLI::App& app, common_options& o) {
    add_switch(app, "--ready-line", o.ready_line,
               "print 'cnctl: listening on group G' on stderr once subscribed: what is sent to the group "
               "from then on reaches cnctl, and SIGINT/SIGTERM end it cleanly (for scripts and tests)");
}

void add_count(CLI::App& app, std::uint64_t& count, const std::string& what) {
    app.add_option("--count", count, "exit after N " + what)->type_name("N")->transform(positive_count);
}

// Destination and payload of request and send; the texts are converted after parsing.
struct message_text {
    std::string id, data, hex;
};

void add_message(CLI::App& app, message_args& a, message_text& t) {
    app.add_option("id", t.id, "connector id: IDX:VAL, each decimal or 0x-prefixed hex")
        ->type_name("IDX:VAL")
        ->required()
        ->check(connector_id);
    auto* data = app.add_option("--data", t.data, "payload: the bytes of TEXT")->type_name("TEXT")->check(text_payload);
    auto* hex = app.add_option("--hex", t.hex, "payload: hex digits, two per byte (e.g. 01000000)")
                    ->type_name("HEX")
                    ->check(hex_payload);
    data->excludes(hex);
    hex->excludes(data);
    app.add_option("--to", a.to, "send to this user-space port id instead of the kernel")
        ->type_name("PORT")
        ->transform(port_id);
    app.add_flag_callback("--no-registry-check", [&a] { a.check_registered = false; },
                          "send even if /proc/net/connector lists nobody for IDX:VAL (by default cnctl then fails "
                          "at once: the kernel would drop the message silently)")
        ->disable_flag_override();
}

void finish_message(message_args& a, const message_text& t, bool admit_destination) {
    a.id = std::get<cn::id>(parse_id(t.id));
    if (!t.hex.empty()) {
        a.payload = std::get<std::vector<std::byte>>(parse_hex(t.hex));
    } else {
        a.payload.resize(t.data.size());
        std::memcpy(a.payload.data(), t.data.data(), t.data.size());
    }
    if (admit_destination && a.to != 0) a.admitted.push_back(a.to);
}

// The app (or selected subcommand) that holds arguments nobody took.
const CLI::App* with_leftovers(const CLI::App& app) {
    for (const CLI::App* sub : app.get_subcommands())
        if (sub->remaining_size() > 0) return sub;
    return &app;
}

// The positionals of `cnctl w1 ...`, checked by hand: the messages say which is wrong.
void finish_w1(w1_args& a, const std::vector<std::string>& words) {
    using action = w1_args::action;
    const char* name = a.what == action::masters  ? "masters"
                       : a.what == action::search ? "search"
                       : a.what == action::temp   ? "temp"
                       : a.what == action::read   ? "read"
                       : a.what == action::write  ? "write"
                                                  : "touch";
    const std::string cmd = std::string("w1 ") + name;
    auto master = [&](const std::string& s) {
        const auto v = parse_number(s, UINT32_MAX);
        if (!v) throw usage_error{cmd + ": '" + s + "' is not a bus master id (a 32-bit number; cnctl w1 masters)"};
        return static_cast<std::uint32_t>(*v);
    };
    auto slave = [&](const std::string& s) {
        const auto r = cnasio::w1::rom_id::parse(s);
        if (!r) throw usage_error{cmd + ": '" + s + "' is not a slave ROM id like 28-00000a1b2c3d (family, '-', 12 hex digits)"};
        return *r;
    };
    switch (a.what) {
    case action::masters: return;
    case action::search:
        if (words.size() > 1) throw usage_error{cmd + ": one MASTER at most"};
        if (!words.empty()) a.master = master(words[0]);
        return;
    case action::temp:
        for (const auto& w : words) {
            a.slaves.push_back(slave(w));
            if (a.slaves.back().family() != 0x28)
                throw usage_error{cmd + ": " + w + " is not a DS18B20 (family 28)"};
        }
        return;
    case action::read:
    case action::write:
    case action::touch: {
        if (words.size() != 2)
            throw usage_error{cmd + " needs " + (a.what == action::read ? "TARGET COUNT" : "TARGET HEX")};
        if (words[0].find('-') != std::string::npos)
            a.slaves.push_back(slave(words[0]));
        else
            a.master = master(words[0]);
        if (a.what == action::read) {
            const auto n = parse_number(words[1], cnasio::w1::max_request_data);
            if (!n || *n == 0)
                throw usage_error{cmd + ": COUNT '" + words[1] + "' is not a byte count from 1 to " +
                                  std::to_string(cnasio::w1::max_request_data)};
            a.count = static_cast<std::size_t>(*n);
            return;
        }
        auto bytes = parse_hex(words[1]);
        if (auto* e = std::get_if<std::string>(&bytes)) throw usage_error{cmd + ": " + *e};
        a.data = std::move(std::get<std::vector<std::byte>>(bytes));
        if (a.data.empty() || a.data.size() > cnasio::w1::max_request_data)
            throw usage_error{cmd + ": HEX must give 1 to " + std::to_string(cnasio::w1::max_request_data) + " bytes"};
        return;
    }
    }
}

// One line for a CLI11 parse error.
std::string describe(const CLI::ParseError& e, const CLI::App& app) {
    if (dynamic_cast<const CLI::ExtrasError*>(&e)) {
        const CLI::App* where = with_leftovers(app);
        const auto left = where->remaining();
        if (!left.empty()) {
            const std::string& first = left.front();
            if (where == &app) {
                if (app.count("--version") > 0) return "--version takes no arguments";
                if (first.size() > 1 && first[0] == '-')
                    return "unknown option '" + first + "' (see cnctl --help)";
                return "unknown command '" + first + "' (" + std::string(command_names) + ")";
            }
            if (first.size() > 1 && first[0] == '-')
                return "unknown option '" + first + "' for " + where->get_name();
            return "unexpected argument '" + first + "' for " + where->get_name();
        }
    }
    if (dynamic_cast<const CLI::RequiredError*>(&e)) {
        const auto subs = app.get_subcommands();
        if (!subs.empty()) {
            for (const CLI::Option* o : subs.front()->get_options()) {
                if (!o->get_required() || o->count() > 0) continue;
                const std::string what =
                    o->get_positional() ? o->get_type_name() : o->get_name() + " " + o->get_type_name();
                return subs.front()->get_name() + " needs " + what;
            }
        }
    }
    // CLI11 2.1 says "--count: 1 required N missing" and "json was given a
    // disallowed flag override"; say what to do instead.
    const std::string_view text = e.what();
    if (text == "A subcommand is required") // only w1 has subcommands of its own
        return "w1 needs a command: masters, search, temp, read, write or touch (see cnctl w1 --help)";
    if (dynamic_cast<const CLI::ArgumentMismatch*>(&e)) {
        constexpr std::string_view override_suffix = " was given a disallowed flag override";
        if (text.ends_with(override_suffix))
            return "option --" + std::string(text.substr(0, text.size() - override_suffix.size())) +
                   " takes no value";
        if (text.ends_with(" missing") && text.find(": ") != std::string_view::npos)
            return "option " + std::string(text.substr(0, text.find(": "))) + " needs a value";
    }
    return std::string(text);
}

} // namespace

command_line parse_command_line(int argc, char** argv) {
    CLI::App app{"The Linux kernel connector (NETLINK_CONNECTOR) from a shell.", "cnctl"};
    app.formatter(std::make_shared<formatter>()); // inherited by the subcommands made below
    app.require_subcommand(0, 1);
    bool version = false;
    add_switch(app, "--version", version, "print the version and exit");
    const std::string exit_statuses = "exit status: 0 ok, 1 runtime error, 2 usage error, 3 timeout";
    app.footer("cnctl COMMAND --help shows the options of a command.\n\n" + exit_statuses);

    proc_args p;
    std::string filter;
    auto* proc_cmd = add_command(app, "proc", "live process events (fork, exec, exit, ...)");

    std::string type_names; // the library's table of event types
    for (const auto& t : proc::event_types)
        if (t.filterable()) type_names += std::string(t.name) + ", ";
    proc_cmd->add_option("--filter", filter,
                         "comma-separated event types to show: " + type_names +
                             "or all (the default). The kernel filters (6.6+ proc_input mask, else "
                             "a BPF socket filter).")
        ->type_name("TYPES")
        ->check(event_types);
    add_count(*proc_cmd, p.count, "events");
    add_json(*proc_cmd, p,
             "JSON Lines instead of text: the event's fields and \"process\", every field the process table "
             "knows with its provenance (event, proc, gone, none); with --raw, the event's fields only");
    add_netns(*proc_cmd, p);
    add_switch(*proc_cmd, "--force-bpf", p.force_bpf,
               "filter with a BPF socket filter even where the kernel takes a mask");
    add_rcvbuf(*proc_cmd, p);
    add_ready_line(*proc_cmd, p);
    add_switch(*proc_cmd, "--raw", p.raw,
               "the kernel's events as they are (key=value), without the process table's command lines");
    std::string proc_pid;
    proc_cmd->add_option("--pid", proc_pid, "only the events of process PID")->type_name("PID");
    add_switch(*proc_cmd, "--descendants", p.descendants,
               "with --pid: also its descendants, following new children as they are born");
    proc_cmd->add_option("--cgroup", p.cgroup,
                         "only processes in this cgroup v2 path (as in /proc/PID/cgroup's 0:: line) or below it")
        ->type_name("PATH");
    proc_cmd->add_option("--container", p.container,
                         "only processes of this container (docker, containerd, cri-o, podman id or a prefix of it, "
                         "nspawn machine name, Kubernetes pod uid)")
        ->type_name("ID");
    add_switch(*proc_cmd, "--stats", p.stats,
               "on exit (also SIGINT/SIGTERM) print counts by event type, the busiest forkers and execers, lost "
               "events and enrichment misses");
    proc_cmd->footer("Prints the kernel's process events, one per line, until interrupted or N events.\n"
                     "Lost events (receive buffer overruns) are reported on stderr with their count; with a\n"
                     "filter the count is unknown (the kernel numbers the events it filters out too).\n"
                     "Sends IGNORE to the kernel on exit, also on SIGINT/SIGTERM.\n\n" +
                     exit_statuses);

    listen_args l;
    auto* listen_cmd = add_command(app, "listen", "raw connector messages of a multicast group");
    listen_cmd->footer("Dumps the raw connector messages of multicast group G (1..26): id, seq, ack, length,\n"
                       "flags, payload as hex and printable text.\n\n" +
                       exit_statuses);
    listen_cmd->add_option("--group", l.group, "the group (a connector idx), 1..26")
        ->type_name("G")
        ->required()
        ->transform(group_number);
    add_count(*listen_cmd, l.count, "messages");
    add_json(*listen_cmd, l, "JSON Lines instead of text");
    add_netns(*listen_cmd, l);
    add_admit(*listen_cmd, l,
              "also believe messages from this user-space port id (only the kernel, port 0, is believed "
              "otherwise); may be repeated");
    add_rcvbuf(*listen_cmd, l);
    add_ready_line(*listen_cmd, l);

    request_args r;
    message_text rt;
    std::uint64_t timeout_ms = 1000;
    auto* request_cmd = add_command(app, "request", "send a message and print the correlated reply");
    request_cmd->footer("Sends one message to connector id IDX:VAL and prints the reply (same seq, ack + 1) beside\n"
                        "the seq and ack the request was sent with. To the kernel, an id that /proc/net/connector\n"
                        "does not list fails at once (exit 1, \"not registered\"), and so does a timeout when the id\n"
                        "was unregistered meanwhile; a timeout with the id still registered exits 3.\n\n" +
                        exit_statuses);
    add_message(*request_cmd, r, rt);
    request_cmd->add_option("--timeout", timeout_ms, "give up after MS milliseconds (default 1000): exit status 3")
        ->type_name("MS")
        ->transform(milliseconds);
    add_switch(*request_cmd, "--ack-only", r.ack_only,
               "match the reply on ack + 1 only (the proc connector does not echo seq)");
    add_json(*request_cmd, r, "print the request and its reply as JSON");
    add_netns(*request_cmd, r);
    add_admit(*request_cmd, r, "also believe replies from this user-space port id; may be repeated");

    send_args s;
    message_text st;
    auto* send_cmd = add_command(app, "send", "send a message, expect no reply");
    send_cmd->footer("Sends one message to connector id IDX:VAL and expects no reply. To the kernel, an id that\n"
                     "/proc/net/connector does not list fails (exit 1, \"not registered\").\n\n" +
                     exit_statuses);
    add_message(*send_cmd, s, st);
    add_netns(*send_cmd, s);

    ids_args ia;
    auto* ids_cmd = add_command(app, "ids", "list the connector ids the kernel has registered");
    ids_cmd->footer("Prints /proc/net/connector, parsed: one line per registered callback (name=NAME id=IDX:VAL),\n"
                    "or JSON Lines with --json. The file exists in the initial network namespace only.\n\n" +
                    exit_statuses);
    add_json(*ids_cmd, ia, "JSON Lines: {\"name\", \"idx\", \"val\"}");
    add_netns(*ids_cmd, ia);

    wait_id_args w;
    std::string wait_id_text;
    std::uint64_t wait_timeout_ms = 0, interval_ms = 100;
    auto* wait_cmd = add_command(app, "wait-id", "wait until a connector id is registered (or gone)");
    wait_cmd->footer("Waits until /proc/net/connector lists IDX:VAL (with --gone: no longer lists it), e.g. until\n"
                     "a module has loaded, then prints how long it waited. The kernel does not announce ids: the\n"
                     "file is read every --interval MS, so an event is seen within that long.\n\n" +
                     exit_statuses);
    wait_cmd->add_option("id", wait_id_text, "connector id: IDX:VAL, each decimal or 0x-prefixed hex")
        ->type_name("IDX:VAL")
        ->required()
        ->check(connector_id);
    add_switch(*wait_cmd, "--gone", w.gone, "wait until the id is no longer registered");
    wait_cmd->add_option("--timeout", wait_timeout_ms, "give up after MS milliseconds: exit status 3 (default: no limit)")
        ->type_name("MS")
        ->transform(milliseconds);
    wait_cmd->add_option("--interval", interval_ms, "read /proc/net/connector every MS milliseconds (default 100)")
        ->type_name("MS")
        ->transform(milliseconds);
    add_json(*wait_cmd, w, "print the outcome as JSON");
    add_netns(*wait_cmd, w);

    wait_args wp;
    std::vector<std::string> wait_pids;
    auto* wait_pid_cmd = add_command(app, "wait", "wait until processes exit (any process, not only children)");
    wait_pid_cmd->footer("Waits until each PID has exited and prints its status. With one PID the exit status is the\n"
                     "process's (128+N for signal N), like the shell's wait; 127 for a pid that does not exist.\n"
                     "With several, the status of the last one listed.");
    wait_pid_cmd->add_option("pids", wait_pids, "process ids")->type_name("PID")->required();
    add_netns(*wait_pid_cmd, wp);

    // w1: its own subcommands, each with the same options.
    w1_args w1a;
    std::vector<std::string> w1_words;
    std::uint64_t w1_timeout_ms = 2000;
    auto* w1_cmd = add_command(app, "w1", "1-Wire buses through the kernel's w1 core (DS18B20 thermometers)");
    w1_cmd->require_subcommand(1);
    // Short paragraphs: cnctl.1 renders each on one line (man-help compares them).
    w1_cmd->footer("Talks to the kernel's w1 core over the connector (id 3:1; the wire module, CONFIG_W1_CON).\n"
                   "The w1 core checks no capability: root is not needed.\n\n"
                   "A MASTER is a bus master id (cnctl w1 masters), a SLAVE a ROM id as sysfs names it\n"
                   "(28-00000a1b2c3d), a TARGET either.\n\n" +
                   exit_statuses);
    struct w1_sub {
        const char* name;
        const char* summary;
        const char* words; // positionals, as the synopsis shows them
        const char* words_help;
        w1_args::action what;
    };
    const w1_sub w1_subs[] = {
        {"masters", "list the bus masters", nullptr, nullptr, w1_args::action::masters},
        {"search", "search a bus (all buses) for slaves", "MASTER", "the bus master (default: every one)",
         w1_args::action::search},
        {"temp", "read DS18B20 temperatures (all DS18B20s found)", "SLAVE...",
         "the DS18B20s, by ROM id (default: every one a search finds)", w1_args::action::temp},
        {"read", "read COUNT bytes from a master's bus or a slave", "TARGET COUNT",
         "a bus master id or a slave's ROM id, then the number of bytes", w1_args::action::read},
        {"write", "write bytes (hex) to a master's bus or a slave", "TARGET HEX",
         "a bus master id or a slave's ROM id, then the bytes as hex digits", w1_args::action::write},
        {"touch", "write bytes (hex) bit by bit and print what was read back", "TARGET HEX",
         "a bus master id or a slave's ROM id, then the bytes as hex digits (ff reads a byte)",
         w1_args::action::touch},
    };
    std::vector<std::pair<CLI::App*, w1_args::action>> w1_parsed;
    for (const auto& s : w1_subs) {
        auto* sub = w1_cmd->add_subcommand(s.name, s.summary);
        if (s.words) sub->add_option("args", w1_words, s.words_help)->type_name(s.words);
        if (s.what == w1_args::action::search)
            add_switch(*sub, "--alarm", w1a.alarm, "only slaves in an alarm condition (ALARM SEARCH)");
        add_json(*sub, w1a, "JSON Lines instead of text");
        sub->add_option("--timeout", w1_timeout_ms, "give up on a request after MS milliseconds (default 2000)")
            ->type_name("MS")
            ->transform(milliseconds);
        sub->add_option("--to", w1a.to, "send to this user-space port id (a stand-in for the w1 core) instead of "
                                        "the kernel")
            ->type_name("PORT")
            ->transform(port_id);
        add_netns(*sub, w1a);
        w1_parsed.emplace_back(sub, s.what);
    }

    tree_args ta;
    std::string tree_pid;
    auto* tree_cmd = add_command(app, "tree", "the current process tree, from the process table");
    tree_cmd->footer("Prints the live processes as a tree (recorded parents: the parent a process was born to,\n"
                     "also after that parent exited), one per line: PID, indented under its parent, and its command\n"
                     "line; with PID, only that process and its descendants.\n\n" +
                     exit_statuses);
    tree_cmd->add_option("pid", tree_pid, "the root of the tree shown (default: every process)")->type_name("PID");
    add_json(*tree_cmd, ta, "JSON Lines: one object per process, with each field's provenance");
    add_netns(*tree_cmd, ta);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        return print_and_exit{app.help()}; // the selected command's help
    } catch (const CLI::CallForAllHelp&) {
        return print_and_exit{app.help("", CLI::AppFormatMode::All)};
    } catch (const CLI::ParseError& e) {
        throw usage_error{describe(e, app)};
    }

    if (version) {
        if (!app.get_subcommands().empty()) throw usage_error{"--version takes no arguments"};
        return print_and_exit{"cnctl " CNCTL_VERSION " (cnasio)\n"};
    }
    if (proc_cmd->parsed()) {
        if (!filter.empty()) {
            cnasio::error_code ec;
            p.filter = proc::parse_event_mask(filter, ec);
        }
        if (!proc_pid.empty()) {
            auto pid = parse_pid(proc_pid);
            if (!pid) throw usage_error{"proc: --pid: invalid process id '" + proc_pid + "' (a number from 1 to 2147483647)"};
            p.pid = *pid;
        }
        if (p.descendants && p.pid == 0) throw usage_error{"proc: --descendants needs --pid PID"};
        if (proc_cmd->count("--cgroup") && (p.cgroup.empty() || p.cgroup[0] != '/'))
            throw usage_error{"proc: --cgroup: '" + p.cgroup + "' is not a cgroup path (it starts with '/', e.g. /system.slice)"};
        if (proc_cmd->count("--container") && p.container.empty())
            throw usage_error{"proc: --container needs an id that is not empty"};
        const bool selects = p.pid != 0 || !p.cgroup.empty() || !p.container.empty() || p.stats;
        if (selects && (p.raw || p.force_bpf))
            throw usage_error{std::string("proc: --pid, --cgroup, --container and --stats need the process table: not "
                                          "with ") + (p.raw ? "--raw" : "--force-bpf")};
        return p;
    }
    if (listen_cmd->parsed()) return l;
    if (request_cmd->parsed()) {
        finish_message(r, rt, true);
        r.timeout = std::chrono::milliseconds(timeout_ms);
        return r;
    }
    if (send_cmd->parsed()) {
        finish_message(s, st, false);
        return s;
    }
    if (ids_cmd->parsed()) return ia;
    if (wait_cmd->parsed()) {
        w.id = std::get<cn::id>(parse_id(wait_id_text));
        w.timeout = std::chrono::milliseconds(wait_timeout_ms);
        w.interval = std::chrono::milliseconds(interval_ms);
        return w;
    }
    if (w1_cmd->parsed()) {
        for (const auto& [sub, what] : w1_parsed)
            if (sub->parsed()) w1a.what = what;
        finish_w1(w1a, w1_words);
        w1a.timeout = std::chrono::milliseconds(w1_timeout_ms);
        if (w1a.to != 0) w1a.admitted.push_back(w1a.to);
        return w1a;
    }
    if (wait_pid_cmd->parsed()) {
        for (const auto& text : wait_pids) {
            std::int64_t v = 0;
            auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
            if (ec != std::errc{} || ptr != text.data() + text.size() || v < 1 || v > 0x7fffffff)
                throw usage_error{"wait: invalid process id '" + text + "' (a number from 1 to 2147483647)"};
            wp.pids.push_back(static_cast<proc::pid_type>(v));
        }
        return wp;
    }
    if (tree_cmd->parsed()) {
        if (!tree_pid.empty()) {
            auto pid = parse_pid(tree_pid);
            if (!pid) throw usage_error{"tree: invalid process id '" + tree_pid + "' (a number from 1 to 2147483647)"};
            ta.pid = *pid;
        }
        return ta;
    }
    throw usage_error{"missing command (" + std::string(command_names) + "; see cnctl --help)"};
}

} // namespace cnctl
