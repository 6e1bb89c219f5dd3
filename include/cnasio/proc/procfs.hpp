// Reading one process's facts from /proc, for the process table (sans-IO with
// respect to Asio: plain blocking reads of procfs files, no sockets).
//
// A /proc read races the process's exit and the reuse of its pid. So a read
// returns a proc_record that says which process it saw: the start time
// (/proc/PID/stat field 22, clock ticks since boot), read before and after the
// other files. If the two differ, or the first stat cannot be read, the record
// is `gone` and carries no data: it cannot be attributed. If only the second
// cannot be read, the process ended during the read and the values are its own
// (another process at the pid in between needs a pid-space wrap in the read). The table
// (process_table.hpp) then compares the start time with the process it
// knows and keeps the values only when they match.
//
// The record also carries when the read began (CLOCK_MONOTONIC, the clock of
// proc events' timestamp_ns) and the difference CLOCK_BOOTTIME -
// CLOCK_MONOTONIC (start times count boot time, events do not; the two differ
// by the time spent suspended), so that the table can place it among events.
//
// The parse_* functions take a file's text and are pure (unit-tested).
#pragma once

#include <cnasio/proc/event_types.hpp>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

namespace cnasio::proc {

/// What read_process() saw of one pid. Fields it could not read are nullopt.
/// A /proc start time (stat field 22: clock ticks since boot, CLOCK_BOOTTIME)
/// as CLOCK_MONOTONIC ns, floored to a tick; negative when the process started
/// before the monotonic clock's zero. `boot_offset_ns` is CLOCK_BOOTTIME -
/// CLOCK_MONOTONIC; `hz` 0 is taken as 100 (USER_HZ).
constexpr std::int64_t start_monotonic_ns(std::uint64_t ticks, std::uint64_t hz,
                                          std::int64_t boot_offset_ns) noexcept {
    return static_cast<std::int64_t>(ticks * (1'000'000'000ull / (hz ? hz : 100))) - boot_offset_ns;
}

struct proc_record {
    pid_type pid = 0;
    /// stat unreadable (the process ended, or never was), or its start time
    /// changed during the read (the pid was reused): nothing below is valid.
    bool gone = false;
    std::uint64_t read_start_ns = 0; ///< CLOCK_MONOTONIC before the first read
    std::int64_t boot_offset_ns = 0; ///< CLOCK_BOOTTIME - CLOCK_MONOTONIC at read time
    std::uint64_t ticks_per_second = 100;
    std::uint64_t start_ticks = 0; ///< stat field 22
    pid_type ppid = 0;             ///< stat field 4: the live parent at read time
    char state = '?';              ///< stat field 3 ('Z': zombie)
    std::optional<pid_type> tgid;  ///< status Tgid: (a thread id reads as its process's)
    std::optional<std::string> comm;
    std::optional<std::vector<std::string>> argv; ///< empty for kernel threads and zombies
    std::optional<std::string> exe;
    std::optional<std::string> cgroup; ///< the cgroup v2 path (line "0::")
    std::optional<std::vector<pid_type>> nspid;
    std::optional<std::uint32_t> ruid, euid, rgid, egid;
    std::optional<std::uint32_t> threads; ///< status Threads: (the leader included)

    /// The start time in ns of CLOCK_MONOTONIC (may be before boot: negative).
    std::int64_t start_monotonic_ns() const noexcept {
        return cnasio::proc::start_monotonic_ns(start_ticks, ticks_per_second, boot_offset_ns);
    }
};

// ---- parsers ---------------------------------------------------------------------------

struct stat_fields {
    std::string comm;
    char state = '?';
    pid_type ppid = 0;
    std::uint64_t start_ticks = 0;
};

namespace detail {
template <class T>
bool parse_number(std::string_view s, T& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && p == s.data() + s.size();
}
} // namespace detail

/// /proc/PID/stat: "pid (comm) state ppid ... starttime(22) ...". The comm may
/// hold blanks and parentheses: it ends at the last ')'.
inline std::optional<stat_fields> parse_stat(std::string_view text) {
    const auto open = text.find('(');
    const auto close = text.rfind(')');
    if (open == std::string_view::npos || close == std::string_view::npos || close < open) return std::nullopt;
    stat_fields f;
    f.comm = std::string(text.substr(open + 1, close - open - 1));
    std::string_view rest = text.substr(close + 1);
    // Field n (1-based) is word n-3 after the ')'.
    std::vector<std::string_view> words;
    while (!rest.empty() && words.size() < 20) {
        while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\n')) rest.remove_prefix(1);
        auto end = rest.find_first_of(" \n");
        if (rest.empty()) break;
        words.push_back(rest.substr(0, end));
        rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
    }
    if (words.size() < 20 || words[0].size() != 1) return std::nullopt;
    f.state = words[0][0];
    if (!detail::parse_number(words[1], f.ppid) || !detail::parse_number(words[19], f.start_ticks))
        return std::nullopt;
    return f;
}

/// /proc/PID/cmdline: NUL-separated arguments, the last NUL-terminated (a
/// process that rewrote its command line may leave no terminator, or write
/// one string with blanks: kept as it is).
inline std::vector<std::string> parse_cmdline(std::string_view bytes) {
    std::vector<std::string> argv;
    if (!bytes.empty() && bytes.back() == '\0') bytes.remove_suffix(1);
    if (bytes.empty()) return argv;
    std::size_t start = 0;
    for (;;) {
        auto nul = bytes.find('\0', start);
        argv.emplace_back(bytes.substr(start, nul == std::string_view::npos ? std::string_view::npos : nul - start));
        if (nul == std::string_view::npos) break;
        start = nul + 1;
    }
    return argv;
}

/// /proc/PID/cgroup: the path of the "0::" line (cgroup v2), or nullopt.
inline std::optional<std::string> parse_cgroup(std::string_view text) {
    while (!text.empty()) {
        auto nl = text.find('\n');
        auto line = text.substr(0, nl);
        if (line.starts_with("0::")) return std::string(line.substr(3));
        if (nl == std::string_view::npos) break;
        text.remove_prefix(nl + 1);
    }
    return std::nullopt;
}

struct status_fields {
    std::optional<pid_type> tgid;
    std::optional<std::uint32_t> ruid, euid, rgid, egid, threads;
    std::optional<std::vector<pid_type>> nspid;
};

/// /proc/PID/status: Tgid, Uid and Gid (real, effective), Threads, NSpid.
inline status_fields parse_status(std::string_view text) {
    status_fields s;
    auto numbers = [](std::string_view v) {
        std::vector<std::int64_t> out;
        while (!v.empty()) {
            while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
            auto end = v.find_first_of(" \t");
            auto w = v.substr(0, end);
            std::int64_t n = 0;
            if (!w.empty() && detail::parse_number(w, n)) out.push_back(n);
            if (end == std::string_view::npos) break;
            v.remove_prefix(end);
        }
        return out;
    };
    while (!text.empty()) {
        auto nl = text.find('\n');
        auto line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        auto colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        auto key = line.substr(0, colon);
        auto v = numbers(line.substr(colon + 1));
        if (key == "Tgid" && v.size() == 1) s.tgid = static_cast<pid_type>(v[0]);
        if (key == "Threads" && v.size() == 1) s.threads = static_cast<std::uint32_t>(v[0]);
        if (key == "Uid" && v.size() >= 2) {
            s.ruid = static_cast<std::uint32_t>(v[0]);
            s.euid = static_cast<std::uint32_t>(v[1]);
        }
        if (key == "Gid" && v.size() >= 2) {
            s.rgid = static_cast<std::uint32_t>(v[0]);
            s.egid = static_cast<std::uint32_t>(v[1]);
        }
        if (key == "NSpid" && !v.empty()) {
            std::vector<pid_type> ns;
            for (auto n : v) ns.push_back(static_cast<pid_type>(n));
            s.nspid = std::move(ns);
        }
    }
    return s;
}

// ---- reading ----------------------------------------------------------------------------

namespace detail {

inline std::uint64_t clock_ns(clockid_t id) noexcept {
    timespec ts{};
    ::clock_gettime(id, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

/// The whole file, or nullopt (ENOENT, ESRCH, EACCES...). procfs files report
/// size 0: read until EOF, at most `limit` bytes.
inline std::optional<std::string> read_file(const std::string& path, std::size_t limit = 1 << 20) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    std::string out;
    char buf[4096];
    for (;;) {
        auto n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            ::close(fd);
            return std::nullopt;
        }
        if (n == 0) break;
        out.append(buf, static_cast<std::size_t>(n));
        if (out.size() >= limit) break;
    }
    ::close(fd);
    return out;
}

} // namespace detail

/// Reads /proc/PID/{stat,status,cmdline,exe,cgroup} and stat again (see the
/// header comment). Never throws on a vanished process: it returns `gone`.
/// `root`: the procfs mount (tests may point it elsewhere).
inline proc_record read_process(pid_type pid, const std::string& root = "/proc") {
    proc_record r;
    r.pid = pid;
    static const long tck = ::sysconf(_SC_CLK_TCK);
    r.ticks_per_second = tck > 0 ? static_cast<std::uint64_t>(tck) : 100;
    r.read_start_ns = detail::clock_ns(CLOCK_MONOTONIC);
    r.boot_offset_ns = static_cast<std::int64_t>(detail::clock_ns(CLOCK_BOOTTIME)) -
                       static_cast<std::int64_t>(detail::clock_ns(CLOCK_MONOTONIC));
    const std::string dir = root + "/" + std::to_string(pid) + "/";
    auto stat_text = detail::read_file(dir + "stat");
    auto st = stat_text ? parse_stat(*stat_text) : std::nullopt;
    if (!st) {
        r.gone = true;
        return r;
    }
    r.start_ticks = st->start_ticks;
    r.ppid = st->ppid;
    r.state = st->state;
    r.comm = st->comm;
    // The command line first: a short-lived process is most often still
    // running (not yet a zombie, whose cmdline reads empty) right after stat.
    if (auto t = detail::read_file(dir + "cmdline", 256 * 1024)) r.argv = parse_cmdline(*t);
    if (auto t = detail::read_file(dir + "status")) {
        auto s = parse_status(*t);
        r.tgid = s.tgid;
        r.ruid = s.ruid;
        r.euid = s.euid;
        r.rgid = s.rgid;
        r.egid = s.egid;
        r.threads = s.threads;
        r.nspid = std::move(s.nspid);
    }
    char target[4096];
    auto n = ::readlink((dir + "exe").c_str(), target, sizeof target);
    if (n >= 0) r.exe = std::string(target, static_cast<std::size_t>(n));
    if (auto t = detail::read_file(dir + "cgroup")) r.cgroup = parse_cgroup(*t);
    // The same process still? A reused pid shows another start time. A pid
    // that is free now (stat unreadable) means the process ended during the
    // read: what was read is its own, for another process to have held the
    // pid in between, the pid space would have to wrap within this read (a
    // short-lived exec'd process often ends within the read: measured with
    // bench/forkstat-compare.sh, requiring the second stat lost ~15% of
    // /bin/true command lines on a loaded machine).
    auto again = detail::read_file(dir + "stat");
    auto st2 = again ? parse_stat(*again) : std::nullopt;
    if (again && (!st2 || st2->start_ticks != st->start_ticks)) {
        proc_record g;
        g.pid = pid;
        g.gone = true;
        g.read_start_ns = r.read_start_ns;
        g.boot_offset_ns = r.boot_offset_ns;
        g.ticks_per_second = r.ticks_per_second;
        return g;
    }
    return r;
}

/// The pids in /proc (processes only: /proc lists thread groups, not threads).
inline std::vector<pid_type> list_pids(const std::string& root = "/proc") {
    std::vector<pid_type> pids;
    DIR* d = ::opendir(root.c_str());
    if (!d) return pids;
    while (auto* e = ::readdir(d)) {
        pid_type p = 0;
        std::string_view name(e->d_name);
        if (detail::parse_number(name, p) && p > 0) pids.push_back(p);
    }
    ::closedir(d);
    return pids;
}

} // namespace cnasio::proc
