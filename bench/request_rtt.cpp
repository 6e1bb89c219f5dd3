// Request round trips: echo peer process, harness and raw C baseline.
// See request_rtt.hpp for the workload; prints RESULT lines (issue 6).
#include "request_rtt.hpp"

#include <array>

namespace bench::request {
namespace {

constexpr std::size_t max_window = 64;
constexpr std::size_t max_message = NLMSG_SPACE(sizeof(cn_msg) + payload_size);

// ---------------------------------------------------------------- echo peer process

// Receives in batches (recvmmsg: blocks for the first datagram, then takes what
// is queued) and answers with one sendmmsg, so the peer is never the slower side.
// Runs until the parent terminates it.
void echo_peer_main(int fd)
{
    const std::uint32_t own_port = port_id_of(fd);
    alignas(8) static unsigned char bufs[max_window][max_message];
    static sockaddr_nl from[max_window];
    static iovec iov[max_window];
    static mmsghdr in[max_window];
    static mmsghdr out[max_window];
    for (;;) {
        for (std::size_t i = 0; i < max_window; ++i) {
            iov[i] = {bufs[i], sizeof bufs[i]};
            in[i] = {};
            in[i].msg_hdr.msg_name = &from[i];
            in[i].msg_hdr.msg_namelen = sizeof from[i];
            in[i].msg_hdr.msg_iov = &iov[i];
            in[i].msg_hdr.msg_iovlen = 1;
        }
        const int got = ::recvmmsg(fd, in, max_window, MSG_WAITFORONE, nullptr);
        if (got < 0) {
            if (errno == EINTR || errno == ENOBUFS)
                continue;
            ::_exit(4);
        }
        unsigned int replies = 0;
        for (int i = 0; i < got; ++i) {
            unsigned char* m = bufs[i];
            const std::size_t len = in[i].msg_len;
            nlmsghdr nlh;
            cn_msg cn;
            if (len < NLMSG_HDRLEN + sizeof cn)
                continue;
            std::memcpy(&nlh, m, sizeof nlh);
            std::memcpy(&cn, m + NLMSG_HDRLEN, sizeof cn);
            if (nlh.nlmsg_len > len || nlh.nlmsg_len < NLMSG_HDRLEN + sizeof cn + cn.len ||
                cn.id.idx != echo_idx || cn.id.val != echo_val)
                continue;
            // The documented connector reply: same seq, ack + 1.
            nlh.nlmsg_pid = own_port;
            cn.ack += 1;
            std::memcpy(m, &nlh, sizeof nlh);
            std::memcpy(m + NLMSG_HDRLEN, &cn, sizeof cn);
            iov[i].iov_len = nlh.nlmsg_len;
            out[replies] = {};
            out[replies].msg_hdr.msg_name = &from[i];
            out[replies].msg_hdr.msg_namelen = sizeof from[i];
            out[replies].msg_hdr.msg_iov = &iov[i];
            out[replies].msg_hdr.msg_iovlen = 1;
            ++replies;
        }
        // A reply to a requester that went away fails (ECONNREFUSED): skip it.
        for (unsigned int done = 0; done < replies;) {
            const int sent = ::sendmmsg(fd, out + done, replies - done, 0);
            if (sent < 0) {
                if (errno == EINTR)
                    continue;
                ++done;
            } else {
                done += static_cast<unsigned int>(sent);
            }
        }
    }
}

// ---------------------------------------------------------------- raw C baseline

// Synchronous requests: sendto, then blocking recvfrom until the matching reply
// (right sender, same seq and ack + 1 for the echo peer; a PROC_EVENT_NONE from
// the kernel with ack + 1 for proc — the kernel does not echo seq there).
// The proc ack is already queued when sendto returns, so the recvfrom finds it
// without sleeping.
class baseline_requester final : public requester {
public:
    explicit baseline_requester(const target& t)
        : fd_(open_connector(t.kind == responder::proc_ack ? group_mask(CN_IDX_PROC) : 0, 8 << 20)), target_(t)
    {
    }

    ~baseline_requester() override
    {
        if (target_.kind == responder::proc_ack)
            send_proc_op(fd_, PROC_CN_MCAST_IGNORE, next_seq_++, 0);
        ::close(fd_);
    }

    void round_trips(std::size_t n, std::vector<double>& latencies_us, stats& s) override
    {
        for (std::size_t i = 0; i < n; ++i) {
            const std::uint32_t seq = next_seq_++;
            const std::uint32_t ack = seq * 2654435761u; // any value; the reply must carry ack + 1
            const std::uint64_t t0 = now_ns();
            send_request(seq, ack);
            while (!is_reply(receive(0), seq, ack)) {
            }
            latencies_us.push_back(static_cast<double>(now_ns() - t0) / 1e3);
            s.on_complete();
        }
    }

    void pipelined(std::size_t n, std::size_t window, stats& s) override
    {
        struct slot {
            std::uint32_t seq;
            std::uint32_t ack;
            bool busy;
        };
        std::array<slot, max_window> slots{};
        window = std::min(window, max_window);
        std::size_t sent = 0;
        std::size_t done = 0;
        std::size_t outstanding = 0;
        while (done < n) {
            while (outstanding < window && sent < n) {
                const std::uint32_t seq = next_seq_++;
                const std::uint32_t ack = seq * 2654435761u;
                slots[seq % window] = {seq, ack, true};
                send_request(seq, ack);
                ++sent;
                ++outstanding;
            }
            // Wait for one reply, then take every reply already queued.
            for (int flags = 0;; flags = MSG_DONTWAIT) {
                const reply r = receive(flags);
                if (r.len < 0)
                    break;
                if (!r.valid)
                    continue;
                slot& sl = slots[r.seq % window];
                if (!sl.busy || sl.seq != r.seq || r.ack != sl.ack + 1)
                    continue;
                sl.busy = false;
                --outstanding;
                ++done;
                s.on_complete();
            }
        }
    }

private:
    struct reply {
        ssize_t len; // < 0: nothing queued (MSG_DONTWAIT)
        bool valid;  // from the expected sender, lengths consistent
        std::uint32_t seq;
        std::uint32_t ack;
        std::uint32_t what; // proc event type (proc_ack only)
    };

    void send_request(std::uint32_t seq, std::uint32_t ack)
    {
        std::size_t len;
        sockaddr_nl dst;
        if (target_.kind == responder::proc_ack) {
            const std::uint32_t op = PROC_CN_MCAST_LISTEN;
            len = build_message(out_, CN_IDX_PROC, CN_VAL_PROC, seq, ack, &op, sizeof op);
            dst = netlink_address(0);
        } else {
            std::memcpy(payload_, &seq, sizeof seq);
            len = build_message(out_, echo_idx, echo_val, seq, ack, payload_, payload_size);
            dst = netlink_address(target_.peer_port);
        }
        while (::sendto(fd_, out_, len, 0, reinterpret_cast<const sockaddr*>(&dst), sizeof dst) < 0) {
            if (errno != EINTR)
                die("sendto(request)");
        }
    }

    reply receive(int flags)
    {
        reply r{};
        sockaddr_nl from{};
        socklen_t from_len = sizeof from;
        r.len = ::recvfrom(fd_, in_, sizeof in_, flags, reinterpret_cast<sockaddr*>(&from), &from_len);
        if (r.len < 0) {
            if (errno == EAGAIN && flags != 0)
                return r;
            if (errno == EINTR || errno == ENOBUFS) {
                r.len = 0;
                return r;
            }
            die("recvfrom(reply)");
        }
        const std::uint32_t expected_port = target_.kind == responder::proc_ack ? 0 : target_.peer_port;
        nlmsghdr nlh;
        cn_msg cn;
        if (from.nl_pid != expected_port || static_cast<std::size_t>(r.len) < NLMSG_HDRLEN + sizeof cn)
            return r;
        std::memcpy(&nlh, in_, sizeof nlh);
        std::memcpy(&cn, in_ + NLMSG_HDRLEN, sizeof cn);
        if (nlh.nlmsg_len > static_cast<std::size_t>(r.len) || nlh.nlmsg_len < NLMSG_HDRLEN + sizeof cn + cn.len)
            return r;
        if (target_.kind == responder::proc_ack) {
            if (cn.id.idx != CN_IDX_PROC || cn.id.val != CN_VAL_PROC || cn.len < sizeof r.what)
                return r;
            std::memcpy(&r.what, in_ + NLMSG_HDRLEN + sizeof cn, sizeof r.what);
        } else if (cn.id.idx != echo_idx || cn.id.val != echo_val) {
            return r;
        }
        r.seq = cn.seq;
        r.ack = cn.ack;
        r.valid = true;
        return r;
    }

    bool is_reply(const reply& r, std::uint32_t seq, std::uint32_t ack) const
    {
        if (!r.valid || r.ack != ack + 1)
            return false;
        if (target_.kind == responder::proc_ack)
            return r.what == proc_event::PROC_EVENT_NONE;
        return r.seq == seq;
    }

    int fd_;
    target target_;
    std::uint32_t next_seq_ = 1;
    alignas(8) unsigned char out_[max_message]{};
    alignas(8) unsigned char in_[8192]{};
    unsigned char payload_[payload_size]{};
};

// ---------------------------------------------------------------- harness

using factory = std::unique_ptr<requester> (*)(const target&);

std::unique_ptr<requester> make_baseline_requester(const target& t) { return std::make_unique<baseline_requester>(t); }

double allocs_per_request(const stats& s)
{
    return s.allocs.per_item();
}

struct latency_figures {
    double p50;
    double p99;
    double allocs_per_request;
};

latency_figures measure_latency(factory make, const target& t, const options& opt, const char* side)
{
    const std::unique_ptr<requester> r = make(t);
    std::vector<double> latencies;
    latencies.reserve(opt.requests);
    stats s;
    r->round_trips(opt.requests, latencies, s);
    // The first requests warm caches and the peer's scheduling; leave them out.
    const std::size_t skip = std::min<std::size_t>(1000, latencies.size() / 10);
    latencies.erase(latencies.begin(), latencies.begin() + static_cast<std::ptrdiff_t>(skip));
    const latency_figures f{percentile(latencies, 0.50), percentile(latencies, 0.99), allocs_per_request(s)};
    if (opt.verbose) {
        // Every 256th and every 1024th request against the rest: cnasio's bound on completions per
        // scheduler turn (client_options::completion_batch, 1024; 256 before it was split from
        // drain_batch) ends a turn with a posted continuation, a scheduler lap with a reactor poll, and
        // the request at that point pays for it.
        for (const std::size_t every : {std::size_t{256}, std::size_t{1024}}) {
            std::vector<double> at_turn, other;
            for (std::size_t i = 0; i < latencies.size(); ++i)
                ((i + skip) % every == 0 ? at_turn : other).push_back(latencies[i]);
            std::fprintf(stderr, "  %-8s every %zuth request: p50 %.2f us, p90 %.2f; the others: p50 %.2f\n", side,
                         every, percentile(at_turn, 0.5), percentile(at_turn, 0.9), percentile(other, 0.5));
        }
    }
    if (opt.verbose)
        std::fprintf(stderr, "  %-8s %s: p50 %.2f us, p90 %.2f, p95 %.2f, p99 %.2f, p99.9 %.2f, %.3f allocs/request\n",
                     side, t.kind == responder::proc_ack ? "proc ack" : "echo peer", f.p50,
                     percentile(latencies, 0.90), percentile(latencies, 0.95), f.p99, percentile(latencies, 0.999),
                     f.allocs_per_request);
    return f;
}

struct throughput_figures {
    double requests_per_s;
    double cpu_us_per_request;
    double allocs_per_request;
};

throughput_figures measure_pipelined(factory make, const target& t, std::size_t window, const options& opt,
                                     const char* side)
{
    const std::unique_ptr<requester> r = make(t);
    stats s;
    const std::size_t n = opt.requests * 5;
    const double c0 = thread_cpu_us();
    const std::uint64_t t0 = now_ns();
    r->pipelined(n, window, s);
    const double elapsed_s = static_cast<double>(now_ns() - t0) / 1e9;
    const double cpu_us = thread_cpu_us() - c0;
    const throughput_figures f{static_cast<double>(n) / elapsed_s, cpu_us / static_cast<double>(n),
                               allocs_per_request(s)};
    if (opt.verbose)
        std::fprintf(stderr, "  %-8s %zu in flight: %.0f requests/s, %.3f us CPU/request, %.3f allocs/request\n",
                     side, window, f.requests_per_s, f.cpu_us_per_request, f.allocs_per_request);
    return f;
}

} // namespace
} // namespace bench::request

int main(int argc, char** argv)
{
    using namespace bench;
    using namespace bench::request;
    require_root("bench_request");
    const options opt = parse_options(argc, argv);

    // The echo peer is forked before anything else runs, while the process has one thread.
    const int peer_fd = open_connector(0, 8 << 20);
    const target echo{responder::echo_peer, port_id_of(peer_fd)};
    child_process peer = fork_child([&](int, int) { echo_peer_main(peer_fd); });
    ::close(peer_fd);
    const target proc{responder::proc_ack, 0};

    figure echo_p50{"rtt_echo_p50", "us"};
    figure echo_p99{"rtt_echo_p99", "us"};
    figure proc_p50{"rtt_proc_ack_p50", "us"};
    figure proc_p99{"rtt_proc_ack_p99", "us"};
    figure echo_allocs{"request_echo_allocs_per_request", "allocs/request", true};
    figure rate{"echo_inflight64_requests_per_s", "requests/s"};
    figure cpu{"echo_inflight64_cpu_per_request", "us/request"};
    figure rate_allocs{"echo_inflight64_allocs_per_request", "allocs/request", true};

    const bool have_cnasio = make_cnasio_requester(echo) != nullptr;
    auto round = [&](std::vector<double> figure::*side, auto make, const char* name) {
        if (opt.measures("echo")) {
            const latency_figures e = measure_latency(make, echo, opt, name);
            (echo_p50.*side).push_back(e.p50);
            (echo_p99.*side).push_back(e.p99);
            (echo_allocs.*side).push_back(e.allocs_per_request);
        }
        if (opt.measures("proc")) {
            const latency_figures p = measure_latency(make, proc, opt, name);
            (proc_p50.*side).push_back(p.p50);
            (proc_p99.*side).push_back(p.p99);
        }
        if (opt.measures("inflight")) {
            const throughput_figures t = measure_pipelined(make, echo, 64, opt, name);
            (rate.*side).push_back(t.requests_per_s);
            (cpu.*side).push_back(t.cpu_us_per_request);
            (rate_allocs.*side).push_back(t.allocs_per_request);
        }
    };
    for (int i = 0; i < opt.rounds; ++i) {
        if (opt.runs("baseline"))
            round(&figure::baseline, make_baseline_requester, "baseline");
        if (have_cnasio && opt.runs("cnasio"))
            round(&figure::cnasio, make_cnasio_requester, "cnasio");
    }
    peer.terminate();
    for (const figure* f : {&echo_p50, &echo_p99, &proc_p50, &proc_p99, &echo_allocs, &rate, &cpu, &rate_allocs})
        f->print();
}
