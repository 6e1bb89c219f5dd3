// Parse cost: buffer builder, raw C walk, and a driver that runs one parser
// many times (for callgrind, see parse-cost.sh) or checks both agree.
//
//   bench_parse check          both parsers agree on the checksum; prints ns/msg
//   bench_parse MODE N         runs parser MODE (baseline|cnasio|cnasio_decode|none) N times
#include "parse_cost.hpp"

#include "common.hpp"

#include <cstddef>

namespace {

constexpr std::size_t buffer_size = 64 * 1024;
constexpr std::size_t event_message_size = NLMSG_HDRLEN + sizeof(cn_msg) + sizeof(proc_event); // 76

std::uint32_t load_u32(const unsigned char* p)
{
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// Fills `buf` with as many whole proc event messages as fit, alternating FORK
// and EXIT as a vfork storm does; returns the bytes used.
std::size_t build_events(unsigned char* buf, std::size_t size)
{
    std::size_t used = 0;
    std::uint32_t n = 0;
    while (used + event_message_size <= size) {
        proc_event ev{};
        ev.cpu = n % 2;
        ev.timestamp_ns = 1'000'000'000ull + n;
        const auto pid = static_cast<__kernel_pid_t>(1000 + n / 2);
        if (n % 2 == 0) {
            ev.what = proc_event::PROC_EVENT_FORK;
            ev.event_data.fork = {999, 999, pid, pid};
        } else {
            ev.what = proc_event::PROC_EVENT_EXIT;
            ev.event_data.exit.process_pid = pid;
            ev.event_data.exit.process_tgid = pid;
            ev.event_data.exit.exit_signal = SIGCHLD;
            ev.event_data.exit.parent_pid = 999;
            ev.event_data.exit.parent_tgid = 999;
        }
        const std::size_t len = bench::build_message(buf + used, CN_IDX_PROC, CN_VAL_PROC, n, 0, &ev, sizeof ev);
        used += NLMSG_ALIGN(len);
        ++n;
    }
    return used;
}

} // namespace

// The raw C walk: NLMSG_OK/NLMSG_NEXT, the cn_msg length checked against the
// netlink length, the event's length against what is read, fields by memcpy.
extern "C" __attribute__((noinline)) std::uint64_t parse_baseline(const unsigned char* buf, std::size_t size)
{
    std::uint64_t sum = 0;
    auto len = static_cast<unsigned int>(size);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf); NLMSG_OK(nlh, len); nlh = NLMSG_NEXT(nlh, len)) {
        const std::size_t payload_len = nlh->nlmsg_len - NLMSG_HDRLEN;
        const auto* data = static_cast<const unsigned char*>(NLMSG_DATA(nlh));
        cn_msg cn;
        if (payload_len < sizeof cn)
            break;
        std::memcpy(&cn, data, sizeof cn);
        if (cn.len > payload_len - sizeof cn)
            continue;
        if (cn.id.idx != CN_IDX_PROC || cn.id.val != CN_VAL_PROC || cn.len < sizeof(proc_event))
            continue;
        const unsigned char* ev = data + sizeof cn;
        const std::uint32_t what = load_u32(ev + offsetof(proc_event, what));
        std::uint32_t pid = 0;
        if (what == proc_event::PROC_EVENT_FORK)
            pid = load_u32(ev + offsetof(proc_event, event_data.fork.child_pid));
        else if (what == proc_event::PROC_EVENT_EXIT)
            pid = load_u32(ev + offsetof(proc_event, event_data.exit.process_pid));
        sum += what + pid;
    }
    return sum;
}

int main(int argc, char** argv)
{
    alignas(8) static unsigned char buf[buffer_size];
    const std::size_t used = build_events(buf, sizeof buf);
    const std::size_t messages = used / event_message_size;
    const std::string_view mode = argc > 1 ? argv[1] : "check";

    if (mode == "check") {
        const std::uint64_t expected = parse_baseline(buf, used);
        const std::uint64_t got = parse_cnasio(buf, used);
        const std::uint64_t got_decode = parse_cnasio_decode(buf, used);
        std::printf("messages=%zu bytes=%zu checksum=%llu\n", messages, used, static_cast<unsigned long long>(expected));
        // Native timing, for orientation only (callgrind's instruction counts are the figure).
        for (auto [name, fn] : {std::pair{"baseline", &parse_baseline}, std::pair{"cnasio", &parse_cnasio},
                                std::pair{"cnasio_decode", &parse_cnasio_decode}}) {
            if (fn(buf, used) == UINT64_MAX)
                continue;
            constexpr int reps = 2000;
            volatile std::uint64_t sink = 0;
            const std::uint64_t t0 = bench::now_ns();
            for (int i = 0; i < reps; ++i)
                sink = sink + fn(buf, used);
            const double ns = static_cast<double>(bench::now_ns() - t0) / (reps * static_cast<double>(messages));
            std::printf("%s: %.2f ns/msg\n", name, ns);
        }
        for (auto [name, sum] : {std::pair{"cnasio", got}, std::pair{"cnasio_decode", got_decode}}) {
            if (sum != expected) {
                std::fprintf(stderr, "bench_parse: %s checksum %llu != baseline %llu\n", name,
                             static_cast<unsigned long long>(sum), static_cast<unsigned long long>(expected));
                return 1;
            }
        }
        return 0;
    }
    if (argc != 3)
        bench::die_msg("usage: bench_parse check | bench_parse baseline|cnasio|cnasio_decode|none ITERATIONS");
    const long iterations = std::atol(argv[2]);
    volatile std::uint64_t sink = 0;
    for (long i = 0; i < iterations; ++i) {
        if (mode == "baseline")
            sink = sink + parse_baseline(buf, used);
        else if (mode == "cnasio")
            sink = sink + parse_cnasio(buf, used);
        else if (mode == "cnasio_decode")
            sink = sink + parse_cnasio_decode(buf, used);
        else if (mode != "none")
            bench::die_msg("unknown mode");
    }
    std::printf("messages=%zu iterations=%ld\n", messages, iterations);
    return 0;
}
