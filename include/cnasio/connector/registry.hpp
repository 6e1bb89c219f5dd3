// cnasio/connector/registry.hpp - the connector ids the kernel has registered.
//
// Every kernel user of the connector (cn_proc, w1, a module such as
// examples/kernel/cnasio_echo) registers a callback for its {idx, val}; the
// kernel lists them in /proc/net/connector (drivers/connector/connector.c,
// cn_proc_show):
//
//     Name            ID
//     cn_proc         1:1
//     cnasio_echo     14:1
//
// i.e. the header line, then one `"%-15s %u:%u\n"` line per callback. The file
// exists in the initial network namespace only (the connector lives in
// init_net); from any other one open() fails with ENOENT.
//
// The kernel has no notification for an id coming or going (connector.rst's
// {-1, -1} notify request no longer works), so client::async_wait_registered
// and friends poll this file (see client.hpp).
//
// parse_registry is sans-IO and strict: a line that the kernel's format would
// not print exactly so is an error, never a guess. read_registry does the I/O.
#pragma once

#include <cnasio/connector/message.hpp>
#include <cnasio/error.hpp>
#include <cnasio/netlink/netns.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <optional>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

namespace cnasio::connector {

/// One registered callback: its name (at most 31 bytes, CN_CBQ_NAMELEN - 1) and id.
struct registered_id {
    std::string name;
    connector::id id;
    friend bool operator==(const registered_id&, const registered_id&) = default;
};

/// A change between two lists of registered ids.
struct id_change {
    registered_id which;
    bool registered = false; ///< true: it appeared; false: it went away
    friend bool operator==(const id_change&, const id_change&) = default;
};

/// Where the kernel lists its connector ids (of the reading thread's network namespace).
inline constexpr const char* registry_path = "/proc/thread-self/net/connector";
/// The kernel's header line (without its '\n').
inline constexpr std::string_view registry_header = "Name            ID";
/// Longest name the kernel keeps (CN_CBQ_NAMELEN 32, NUL included).
inline constexpr std::size_t max_registered_name = 31;

namespace detail {

inline bool parse_u32(std::string_view s, std::uint32_t& out) noexcept {
    if (s.empty()) return false;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 10);
    return ec == std::errc{} && end == s.data() + s.size();
}

} // namespace detail

/// Parses the text of /proc/net/connector. Returns the ids in the file's
/// order. On any deviation from the kernel's format, returns an empty list
/// with `ec` = error::registry_malformed and, if `bad_line` is given, the
/// 1-based number of the offending line there. Deviations: a missing or
/// different header line; a line not ending in '\n' (text cut short); a
/// line that "%-15s %u:%u" would not print byte for byte (missing padding,
/// leading zeros, signs, blanks at the end, a number above 2^32 - 1); an
/// empty or over-long name, or one holding a NUL byte; the same id twice
/// (the kernel refuses that).
/// A name may hold blanks inside it: the id is the last field.
inline std::vector<registered_id> parse_registry(std::string_view text, error_code& ec,
                                                 std::size_t* bad_line = nullptr) {
    ec.clear();
    std::vector<registered_id> out;
    std::size_t line_no = 0;
    auto fail = [&] {
        ec = error::registry_malformed;
        if (bad_line) *bad_line = line_no;
        out.clear();
        return std::vector<registered_id>{};
    };
    while (!text.empty()) {
        ++line_no;
        const auto nl = text.find('\n');
        if (nl == std::string_view::npos) return fail();
        const std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl + 1);
        if (line_no == 1) {
            if (line != registry_header) return fail();
            continue;
        }
        const auto blank = line.rfind(' ');
        if (blank == std::string_view::npos) return fail();
        const std::string_view id_text = line.substr(blank + 1);
        const auto colon = id_text.find(':');
        registered_id r;
        if (colon == std::string_view::npos || !detail::parse_u32(id_text.substr(0, colon), r.id.idx) ||
            !detail::parse_u32(id_text.substr(colon + 1), r.id.val))
            return fail();
        std::string_view name = line.substr(0, blank);
        while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
        // The kernel prints a C string: a NUL byte cannot be part of a name.
        if (name.empty() || name.size() > max_registered_name || name.find('\0') != std::string_view::npos)
            return fail();
        r.name.assign(name);
        // Strict: the kernel would have printed exactly this line.
        std::string expect = r.name;
        if (expect.size() < 15) expect.append(15 - expect.size(), ' ');
        expect += ' ' + std::to_string(r.id.idx) + ':' + std::to_string(r.id.val);
        if (expect != line) return fail();
        if (std::any_of(out.begin(), out.end(), [&](const registered_id& o) { return o.id == r.id; }))
            return fail();
        out.push_back(std::move(r));
    }
    if (line_no == 0) return fail(); // not even the header
    return out;
}

/// True when `id` is in `ids`.
inline bool contains(const std::vector<registered_id>& ids, connector::id id) noexcept {
    return std::any_of(ids.begin(), ids.end(), [&](const registered_id& r) { return r.id == id; });
}

/// What changed from `before` to `after`: first what went away (in
/// `before`'s order), then what appeared (in `after`'s order). An id whose
/// name changed counts as gone and appeared.
inline std::vector<id_change> diff_registry(const std::vector<registered_id>& before,
                                            const std::vector<registered_id>& after) {
    std::vector<id_change> out;
    for (const auto& b : before)
        if (std::find(after.begin(), after.end(), b) == after.end()) out.push_back({b, false});
    for (const auto& a : after)
        if (std::find(before.begin(), before.end(), a) == before.end()) out.push_back({a, true});
    return out;
}

/// Reads the registered ids of the network namespace named by `netns_path`
/// (a file such as /proc/1/ns/net; empty: the calling thread's own), entering
/// it like netlink::with_netns (needs CAP_SYS_ADMIN there) to open the file.
/// Errors: error::registry_unavailable when the file does not exist in a
/// network namespace other than the initial one; error::connector_unsupported
/// when it does not exist because the kernel has no CONFIG_CONNECTOR (a
/// NETLINK_CONNECTOR socket() then fails with EPROTONOSUPPORT);
/// error::registry_malformed; the errno of open/setns/read otherwise.
/// Cost: one open, two or three reads, one close (measured in docs/reference.md).
inline std::vector<registered_id> read_registry(const std::string& netns_path, error_code& ec) {
    int fd = -1;
    netlink::with_netns(
        netns_path,
        [&](error_code& oec) {
            fd = ::open(registry_path, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) return;
            if (errno != ENOENT) {
                oec = errno_code(errno);
                return;
            }
            // Absent: a namespace other than the initial one, or no connector
            // at all. Only the second makes socket() fail (EPROTONOSUPPORT):
            // name the right cause.
            const int probe = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
            if (probe >= 0) {
                ::close(probe);
                oec = make_error_code(error::registry_unavailable);
            } else {
                oec = errno == EPROTONOSUPPORT ? make_error_code(error::connector_unsupported)
                                               : make_error_code(error::registry_unavailable);
            }
        },
        ec);
    if (ec) {
        if (fd >= 0) ::close(fd);
        return {};
    }
    netlink::detail::fd_guard guard{fd};
    std::string text;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            ec = errno_code(errno);
            return {};
        }
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
    }
    return parse_registry(text, ec);
}

/// The same, for the calling thread's network namespace.
inline std::vector<registered_id> read_registry(error_code& ec) { return read_registry(std::string(), ec); }

} // namespace cnasio::connector

namespace cnasio::detail {

/// The waiters of one client's registry watcher, without any I/O: the glue
/// (client_state) reads /proc/net/connector at start and then every
/// client_options::registry_interval while anyone waits, and hands each
/// result to on_registry(); completions come out through `emit(op, ec)`.
/// Operations are named by the glue's op id and a number of its own that a
/// cancellation names (so a stale one does nothing).
/// - a wait for an id to be registered (or, `gone`, to be unregistered) ends
///   with success once a read shows it so, or error::timeout at its deadline;
/// - a watch ends with the changes since the last list a watch saw (its
///   baseline: the first read while a watch is outstanding), once there are
///   any. Reads while no watch is outstanding leave the baseline alone, so
///   changes between two watches are reported by the second one;
/// - a read that failed ends every waiter and watch with its error.
class id_waiters {
public:
    using clock = std::chrono::steady_clock;
    using op_id = std::uint32_t;

    void add_wait(op_id op, std::uint64_t number, connector::id id, bool gone, clock::time_point deadline) {
        waits_.push_back({op, number, id, gone, deadline});
    }
    void add_watch(op_id op, std::uint64_t number, std::vector<connector::id_change>* out) {
        watches_.push_back({op, number, out});
    }

    /// Removes operation `number` if it waits still, handing its op id to `emit` with operation_aborted.
    template <class Emit>
    void cancel(std::uint64_t number, error_code aborted, Emit&& emit) {
        for (auto i = waits_.begin(); i != waits_.end(); ++i)
            if (i->number == number) {
                const op_id op = i->op;
                waits_.erase(i);
                return emit(op, aborted);
            }
        for (auto i = watches_.begin(); i != watches_.end(); ++i)
            if (i->number == number) {
                const op_id op = i->op;
                watches_.erase(i);
                return emit(op, aborted);
            }
    }

    /// A read at `now` gave `ids` (or failed with `read_ec`).
    template <class Emit>
    void on_registry(clock::time_point now, const std::vector<connector::registered_id>& ids, error_code read_ec,
                     Emit&& emit) {
        if (read_ec) return end_all(read_ec, emit);
        std::erase_if(waits_, [&](const wait& w) {
            if (connector::contains(ids, w.id) != w.gone) emit(w.op, error_code{});
            else if (w.deadline <= now) emit(w.op, make_error_code(error::timeout));
            else return false;
            return true;
        });
        if (watches_.empty()) return;
        if (!baseline_) {
            baseline_ = ids;
            return;
        }
        auto changes = connector::diff_registry(*baseline_, ids);
        if (changes.empty()) return;
        baseline_ = ids;
        auto done = std::move(watches_);
        watches_.clear();
        for (auto& w : done) {
            *w.out = changes;
            emit(w.op, error_code{});
        }
    }

    /// Ends everything with `ec` (close: operation_aborted).
    template <class Emit>
    void end_all(error_code ec, Emit&& emit) {
        auto waits = std::move(waits_);
        auto watches = std::move(watches_);
        waits_.clear();
        watches_.clear();
        for (auto& w : waits) emit(w.op, ec);
        for (auto& w : watches) emit(w.op, ec);
    }

    bool empty() const noexcept { return waits_.empty() && watches_.empty(); }
    bool waiting(std::uint64_t number) const noexcept {
        return std::any_of(waits_.begin(), waits_.end(), [&](const wait& w) { return w.number == number; }) ||
               std::any_of(watches_.begin(), watches_.end(), [&](const watch& w) { return w.number == number; });
    }
    /// The earliest deadline of a wait.
    std::optional<clock::time_point> next_deadline() const noexcept {
        std::optional<clock::time_point> d;
        for (const auto& w : waits_)
            if (!d || w.deadline < *d) d = w.deadline;
        return d;
    }

private:
    struct wait {
        op_id op;
        std::uint64_t number;
        connector::id id;
        bool gone;
        clock::time_point deadline;
    };
    struct watch {
        op_id op;
        std::uint64_t number;
        std::vector<connector::id_change>* out;
    };
    std::vector<wait> waits_;
    std::vector<watch> watches_;
    std::optional<std::vector<connector::registered_id>> baseline_;
};

} // namespace cnasio::detail
