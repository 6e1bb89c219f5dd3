// Text and JSON lines for cnctl's output. JSON is built with Boost.JSON,
// compiled into this translation unit (Debian's Boost 1.81 ships no
// libboost_json; src.hpp must be included in exactly one TU of a program).
#include "format.hpp"

#include <boost/json/src.hpp>

#include <cstdio>
#include <fstream>
#include <string_view>
#include <type_traits>
#include <variant>

namespace cnctl {
namespace {

namespace cn = cnasio::connector;
namespace proc = cnasio::proc;
namespace json = boost::json;

constexpr char hex_digits[] = "0123456789abcdef";

std::string to_hex(std::span<const std::byte> bytes) {
    std::string h;
    h.reserve(bytes.size() * 2);
    for (auto b : bytes) {
        const auto c = static_cast<unsigned char>(b);
        h += hex_digits[c >> 4];
        h += hex_digits[c & 0xf];
    }
    return h;
}

// Each byte as the code point of the same value, UTF-8 encoded.
json::string latin1_to_utf8(std::string_view bytes, json::storage_ptr sp) {
    json::string out(std::move(sp));
    out.reserve(bytes.size());
    for (unsigned char c : bytes) {
        if (c < 0x80) {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back(static_cast<char>(0xc0 | (c >> 6)));
            out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
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

// Collects named fields as " key=value" text or as members of a JSON object,
// in the order they are added.
class fields {
public:
    explicit fields(bool json) : json_(json), object_(json::storage_ptr(&resource_)) {}

    void num(std::string_view k, std::int64_t v) {
        if (json_)
            object_[k] = v;
        else
            text_ += " " + std::string(k) + "=" + std::to_string(v);
    }
    void unum(std::string_view k, std::uint64_t v) {
        if (json_)
            object_[k] = v;
        else
            text_ += " " + std::string(k) + "=" + std::to_string(v);
    }
    // Foreign bytes (see format.hpp).
    void str(std::string_view k, std::string_view v) {
        if (json_)
            object_[k] = latin1_to_utf8(v, object_.storage());
        else
            text_ += " " + std::string(k) + "=" + escape_text(v);
    }
    // A name that may be unknown: "?" in text, null in JSON.
    void name(std::string_view k, const std::optional<std::string>& v) {
        if (v) return str(k, *v);
        if (json_)
            object_[k] = nullptr;
        else
            text_ += " " + std::string(k) + "=?";
    }
    // A member holding another object (JSON only).
    json::object& object(std::string_view k) { return object_[k].emplace_object(); }
    // Raw text appended as is (text only).
    void raw(std::string_view s) { text_ += s; }

    bool json() const { return json_; }

    // The line: the text fields without their leading blank, or the object.
    std::string line() const {
        if (json_) return json::serialize(object_) + "\n";
        return (text_.empty() ? text_ : text_.substr(1)) + "\n";
    }

private:
    bool json_;
    std::string text_;
    unsigned char buffer_[1024];
    json::monotonic_resource resource_{buffer_, sizeof buffer_};
    json::object object_;
};

void add_message_fields(fields& f, const cn::message& m) {
    const std::string_view bytes(reinterpret_cast<const char*>(m.payload.data()), m.payload.size());
    f.unum("idx", m.id().idx);
    f.unum("val", m.id().val);
    f.unum("seq", m.seq());
    f.unum("ack", m.ack());
    f.unum("len", m.payload.size());
    f.unum("flags", m.header.flags);
    if (f.json()) {
        f.str("hex", to_hex(m.payload));
        f.str("text", bytes); // the payload bytes themselves, not the dotted rendering
    } else {
        std::string text;
        text.reserve(bytes.size());
        for (unsigned char c : bytes) text += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
        f.raw(" hex=" + to_hex(m.payload) + " text=\"" + text + "\"");
    }
}

} // namespace

// Text form of foreign bytes: printable ASCII, others (and '\') as \xNN.
std::string hex_text(std::span<const std::byte> bytes) { return to_hex(bytes); }

std::string escape_text(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += hex_digits[c >> 4];
            out += hex_digits[c & 0xf];
        }
    }
    return out;
}


std::string format_event(const proc::event& ev, bool as_json) {
    const auto type = proc::to_string(ev.type());
    fields f(as_json);
    if (as_json) {
        f.str("type", type);
        f.unum("cpu", ev.cpu);
        f.unum("seq", ev.seq);
        f.unum("timestamp_ns", ev.timestamp_ns);
    } else {
        char ts[48];
        std::snprintf(ts, sizeof ts, " %llu.%06llu %-8.*s",
                      static_cast<unsigned long long>(ev.timestamp_ns / 1000000000),
                      static_cast<unsigned long long>(ev.timestamp_ns % 1000000000 / 1000),
                      static_cast<int>(type.size()), type.data());
        f.raw(ts);
    }
    std::visit(
        [&](const auto& d) {
            using T = std::decay_t<decltype(d)>;
            if constexpr (std::is_same_v<T, proc::ack_event>) {
                f.unum("err", d.err);
                f.unum("ack", ev.ack);
            } else if constexpr (std::is_same_v<T, proc::fork_event>) {
                f.num("parent_pid", d.parent_pid);
                f.num("parent_tgid", d.parent_tgid);
                f.num("child_pid", d.child_pid);
                f.num("child_tgid", d.child_tgid);
            } else if constexpr (std::is_same_v<T, proc::exec_event>) {
                f.num("pid", d.process_pid);
                f.num("tgid", d.process_tgid);
                f.name("comm", comm_of(d.process_pid));
            } else if constexpr (std::is_same_v<T, proc::uid_event>) {
                f.num("pid", d.process_pid);
                f.num("tgid", d.process_tgid);
                f.unum("ruid", d.ruid);
                f.unum("euid", d.euid);
            } else if constexpr (std::is_same_v<T, proc::gid_event>) {
                f.num("pid", d.process_pid);
                f.num("tgid", d.process_tgid);
                f.unum("rgid", d.rgid);
                f.unum("egid", d.egid);
            } else if constexpr (std::is_same_v<T, proc::sid_event>) {
                f.num("pid", d.process_pid);
                f.num("tgid", d.process_tgid);
            } else if constexpr (std::is_same_v<T, proc::ptrace_event>) {
                f.num("pid", d.process_pid);
                f.num("tgid", d.process_tgid);
                f.num("tracer_pid", d.tracer_pid);
                f.num("tracer_tgid", d.tracer_tgid);
            } else if constexpr (std::is_same_v<T, proc::comm_event>) {
                f.num("pid", d.process_pid);
                f.num("tgid", d.process_tgid);
                f.str("comm", d.name());
            } else if constexpr (std::is_same_v<T, proc::coredump_event>) {
                f.num("pid", d.process_pid);
                f.num("tgid", d.process_tgid);
                f.num("parent_pid", d.parent_pid);
                f.num("parent_tgid", d.parent_tgid);
            } else if constexpr (std::is_same_v<T, proc::exit_event> ||
                                 std::is_same_v<T, proc::nonzero_exit_event>) {
                f.num("pid", d.process_pid);
                f.num("tgid", d.process_tgid);
                f.unum("exit_code", d.exit_code);
                if (d.exited()) f.num("status", d.exit_status());
                if (d.signaled()) f.num("signal", d.term_signal());
                f.num("exit_signal", d.exit_signal);
                f.num("parent_pid", d.parent_pid);
                f.num("parent_tgid", d.parent_tgid);
            } else {
                f.unum("what", d.what);
                f.str("data", to_hex(d.bytes()));
            }
        },
        ev.data);
    return f.line();
}

namespace {

template <class T>
json::value sourced_json(const proc::sourced<T>& f, json::storage_ptr sp) {
    json::object o(sp);
    if (f.has_value()) {
        if constexpr (std::is_same_v<T, std::string>) {
            o["value"] = latin1_to_utf8(f.value, sp);
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
            json::array a(sp);
            for (const auto& s : f.value) a.push_back(latin1_to_utf8(s, sp));
            o["value"] = std::move(a);
        } else if constexpr (std::is_same_v<T, std::vector<proc::pid_type>>) {
            json::array a(sp);
            for (auto v : f.value) a.push_back(v);
            o["value"] = std::move(a);
        } else {
            o["value"] = f.value;
        }
    } else {
        o["value"] = nullptr;
    }
    o["from"] = proc::to_string(f.from);
    return o;
}

json::object process_object(const proc::process_info& p, json::storage_ptr sp) {
    json::object o(sp);
    o["pid"] = p.tgid;
    o["parent"] = sourced_json(p.parent, sp);
    o["live_parent"] = sourced_json(p.live_parent, sp);
    o["start_ticks"] = sourced_json(p.start_ticks, sp);
    if (p.fork_ns)
        o["fork_ns"] = *p.fork_ns;
    else
        o["fork_ns"] = nullptr;
    o["ruid"] = sourced_json(p.ruid, sp);
    o["euid"] = sourced_json(p.euid, sp);
    o["rgid"] = sourced_json(p.rgid, sp);
    o["egid"] = sourced_json(p.egid, sp);
    o["comm"] = sourced_json(p.comm, sp);
    o["exe"] = sourced_json(p.exe, sp);
    o["argv"] = sourced_json(p.argv, sp);
    o["cgroup"] = sourced_json(p.cgroup, sp);
    json::object c(sp);
    if (auto ct = p.container()) {
        json::object v(sp);
        v["runtime"] = latin1_to_utf8(ct->runtime, sp);
        v["id"] = latin1_to_utf8(ct->id, sp);
        v["pod"] = latin1_to_utf8(ct->pod, sp);
        c["value"] = std::move(v);
    } else {
        c["value"] = nullptr;
    }
    c["from"] = proc::to_string(p.cgroup.from);
    o["container"] = std::move(c);
    o["nspid"] = sourced_json(p.nspid, sp);
    o["threads"] = p.threads;
    o["execs"] = p.execs;
    o["exited"] = p.exited;
    o["wait_status"] = sourced_json(p.wait_status, sp);
    o["lifetime_ns"] = sourced_json(p.lifetime_ns, sp);
    return o;
}

} // namespace

std::string process_json(const proc::process_info& p) { return json::serialize(process_object(p, {})); }

std::string format_enriched_event(const proc::event& ev, const proc::process_info* p, const proc::process_info* parent) {
    json::value v = json::parse(format_event(ev, true));
    json::object& o = v.as_object();
    if (p)
        o["process"] = process_object(*p, o.storage());
    else
        o["process"] = nullptr;
    if (ev.get_if<proc::fork_event>()) {
        if (parent)
            o["parent_process"] = process_object(*parent, o.storage());
        else
            o["parent_process"] = nullptr;
    }
    return json::serialize(v) + "\n";
}

std::string format_tree_json(const proc::process_info& p, unsigned depth) {
    json::object o = process_object(p, {});
    o["depth"] = depth;
    return json::serialize(o) + "\n";
}

std::string format_proc_summary(const proc_summary& s, bool as_json) {
    if (as_json) {
        json::object o;
        json::object ev;
        for (const auto& [k, n] : s.events) ev[k] = n;
        o["events"] = std::move(ev);
        o["lost"] = s.lost;
        o["overruns"] = s.overruns;
        o["resyncs"] = s.resyncs;
        o["enrich_skipped"] = s.enrich_skipped;
        o["execs"] = s.execs;
        o["execs_with_cmdline"] = s.execs_with_cmdline;
        json::array f;
        for (const auto& x : s.forkers) {
            json::object e;
            e["pid"] = x.pid;
            e["forks"] = x.forks;
            e["cmdline"] = latin1_to_utf8(x.cmdline, e.storage());
            f.push_back(std::move(e));
        }
        o["forkers"] = std::move(f);
        json::array x;
        for (const auto& [prog, n] : s.execers) {
            json::object e;
            e["program"] = latin1_to_utf8(prog, e.storage());
            e["execs"] = n;
            x.push_back(std::move(e));
        }
        o["execers"] = std::move(x);
        json::object top;
        top["stats"] = std::move(o);
        return json::serialize(top) + "\n";
    }
    std::string out = "stats: events";
    std::uint64_t total = 0;
    for (const auto& [k, n] : s.events) total += n;
    out += " " + std::to_string(total);
    for (const auto& [k, n] : s.events) out += " " + k + "=" + std::to_string(n);
    out += "\nstats: lost " + std::to_string(s.lost) + " (overruns " + std::to_string(s.overruns) + ", /proc rescans " +
           std::to_string(s.resyncs) + ")\n";
    out += "stats: enrichment skipped " + std::to_string(s.enrich_skipped) + ", exec command lines " +
           std::to_string(s.execs_with_cmdline) + " of " + std::to_string(s.execs) + "\n";
    for (const auto& x : s.forkers)
        out += "stats: forker " + std::to_string(x.pid) + " forks=" + std::to_string(x.forks) + " " +
               escape_text(x.cmdline) + "\n";
    for (const auto& [prog, n] : s.execers)
        out += "stats: execer " + escape_text(prog) + " execs=" + std::to_string(n) + "\n";
    return out;
}

std::string format_message(const cn::message& m, bool as_json) {
    fields f(as_json);
    add_message_fields(f, m);
    return f.line();
}

std::string format_request_reply(const request_numbers& request, const cn::message& reply, bool as_json) {
    fields f(as_json);
    if (as_json) {
        json::object& r = f.object("request");
        r["seq"] = request.seq;
        r["ack"] = request.ack;
    } else {
        f.raw(" request seq=" + std::to_string(request.seq) + " ack=" + std::to_string(request.ack) + " -> reply");
    }
    add_message_fields(f, reply);
    return f.line();
}

std::string format_registered(const cn::registered_id& r, bool as_json) {
    fields f(as_json);
    f.str("name", r.name);
    if (as_json) {
        f.unum("idx", r.id.idx);
        f.unum("val", r.id.val);
    } else {
        f.raw(" id=" + std::to_string(r.id.idx) + ":" + std::to_string(r.id.val));
    }
    return f.line();
}

std::string format_wait_result(cn::id id, bool gone, std::uint64_t after_ms, bool as_json) {
    const char* event = gone ? "unregistered" : "registered";
    if (!as_json)
        return std::to_string(id.idx) + ":" + std::to_string(id.val) + " " + event + " after " +
               std::to_string(after_ms) + " ms\n";
    fields f(true);
    f.unum("idx", id.idx);
    f.unum("val", id.val);
    f.str("event", event);
    f.unum("after_ms", after_ms);
    return f.line();
}

} // namespace cnctl
