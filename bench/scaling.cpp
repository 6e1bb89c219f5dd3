// Scaling curves (issue 15): how the client's cost grows with the number of
// subscribers of one group and with the number of requests in flight, and what
// a pending request and a subscription cost in memory. Prints one line per
// point; bench/scaling.sh turns them into bench/scaling.md and scaling.png.
//
//   SCALE subscribers=<N> messages=<M> cpu_us_per_msg=<v> cpu_us_per_delivery=<v> msgs_per_wakeup=<v> overruns=<n>
//   SCALE inflight=<K> requests=<R> cpu_us_per_request=<v> requests_per_s=<v> replies_per_wakeup=<v> failed=<n>
//   SCALE memory pending_request_bytes=<v> subscription_bytes=<v> (heap, mallinfo2)
//
// Subscribers: a sender thread multicasts 64-message bursts (64-byte payloads)
// to one group and waits until every subscriber has taken the burst before it
// sends the next, so nothing is ever dropped and the wake-ups per message are
// the same for every N; N coroutines take their subscription's messages with
// async_receive_batch. CPU is the io_context thread's (RUSAGE_THREAD), per
// multicast message and per delivery (message × subscriber), after a first
// burst that is not counted (warm-up).
// Requests: K coroutines make requests one after the other to an echo peer
// (a forked process; recvmmsg/sendmmsg), R in all; CPU of the io_context thread
// per request. Needs root; exits 77 otherwise.
#include "common.hpp"

#include <cnasio/client.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <malloc.h>

#include <thread>

namespace asio = boost::asio;

namespace {

constexpr std::uint32_t echo_idx = 21;
constexpr std::uint32_t echo_val = 1;
constexpr int group = 22;
constexpr std::size_t payload_size = 64;
constexpr int burst = 64;

long heap_bytes() {
    const auto i = ::mallinfo2();
    return static_cast<long>(i.uordblks + i.hblkhd);
}

// ---------------------------------------------------------------- subscribers

void measure_subscribers(int n) {
    const int messages = std::clamp(2'000'000 / n / burst * burst, 32 * burst, 100'000 / burst * burst);
    const int sender_fd = bench::open_connector();
    asio::io_context io(1);
    cnasio::client_options o;
    o.admitted_ports = {bench::port_id_of(sender_fd)};
    cnasio::client c(io.get_executor(), o);
    std::vector<cnasio::subscription> subs;
    for (int i = 0; i < n; ++i) {
        cnasio::error_code ec;
        subs.push_back(c.subscribe(group, {}, ec));
        if (ec)
            bench::die_msg(("subscribe: " + ec.message()).c_str());
    }
    std::atomic<long> deliveries{0};
    long counted = 0; // the io thread's own count
    for (auto& s : subs)
        asio::co_spawn(io, [&]() -> asio::awaitable<void> {
            std::vector<cnasio::connector::message> batch;
            for (;;) {
                auto [ec, got] = co_await s.async_receive_batch(batch, 256, asio::as_tuple(asio::use_awaitable));
                if (ec)
                    co_return;
                counted += static_cast<long>(got);
                deliveries.store(counted, std::memory_order_release);
            }
        }, asio::detached);
    io.poll(); // every receive waits
    const long total = static_cast<long>(messages) * n;
    std::thread sender([&] {
        alignas(8) unsigned char buf[256];
        unsigned char payload[payload_size] = {};
        const sockaddr_nl to = bench::netlink_address(0, bench::group_mask(group));
        for (int sent = 0; sent < messages;) {
            for (int i = 0; i < burst; ++i, ++sent) {
                const std::size_t len =
                    bench::build_message(buf, echo_idx, echo_val, static_cast<std::uint32_t>(sent), 0, payload, payload_size);
                while (::sendto(sender_fd, buf, len, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) < 0)
                    if (errno != EINTR && errno != EAGAIN)
                        bench::die("sendto");
            }
            while (deliveries.load(std::memory_order_acquire) < static_cast<long>(sent) * n)
                ::usleep(20);
        }
    });
    // The first burst warms up (queues and batches grow to their working size); it is not counted.
    while (counted < static_cast<long>(burst) * n)
        io.run_one_for(std::chrono::milliseconds(100));
    const double cpu0 = bench::thread_cpu_us();
    const long counted0 = counted;
    while (counted < total)
        io.run_one_for(std::chrono::milliseconds(100));
    const double cpu = bench::thread_cpu_us() - cpu0;
    const double measured = static_cast<double>(counted - counted0) / n; // messages after the warm-up
    sender.join();
    ::close(sender_fd);
    std::printf("SCALE subscribers=%d messages=%d cpu_us_per_msg=%.4g cpu_us_per_delivery=%.4g msgs_per_wakeup=%.3g "
                "overruns=%llu\n",
                n, messages, cpu / measured, cpu / (measured * n),
                static_cast<double>(c.stats().datagrams) / static_cast<double>(std::max<std::uint64_t>(1, c.stats().wakeups)),
                static_cast<unsigned long long>(c.stats().overruns));
    std::fflush(stdout);
}

// ---------------------------------------------------------------- requests in flight

// The echo peer: same seq, ack + 1, same payload, by unicast; recvmmsg/sendmmsg.
[[noreturn]] void echo_peer_main(int fd) {
    constexpr int slots = 256;
    const std::uint32_t own = bench::port_id_of(fd);
    alignas(8) static unsigned char bufs[slots][512];
    static sockaddr_nl from[slots];
    static iovec iov[slots];
    static mmsghdr msgs[slots];
    for (;;) {
        for (int i = 0; i < slots; ++i) {
            iov[i] = {bufs[i], sizeof bufs[i]};
            msgs[i] = {};
            msgs[i].msg_hdr.msg_name = &from[i];
            msgs[i].msg_hdr.msg_namelen = sizeof from[i];
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        const int got = ::recvmmsg(fd, msgs, slots, MSG_WAITFORONE, nullptr);
        if (got < 0) {
            if (errno == EINTR || errno == ENOBUFS)
                continue;
            ::_exit(4);
        }
        int replies = 0;
        for (int i = 0; i < got; ++i) {
            if (msgs[i].msg_len < NLMSG_HDRLEN + sizeof(cn_msg))
                continue;
            nlmsghdr nlh;
            cn_msg cn;
            std::memcpy(&nlh, bufs[i], sizeof nlh);
            std::memcpy(&cn, bufs[i] + NLMSG_HDRLEN, sizeof cn);
            nlh.nlmsg_pid = own;
            cn.ack += 1;
            std::memcpy(bufs[i], &nlh, sizeof nlh);
            std::memcpy(bufs[i] + NLMSG_HDRLEN, &cn, sizeof cn);
            iov[i].iov_len = msgs[i].msg_len;
            if (replies != i)
                std::swap(msgs[replies], msgs[i]);
            ++replies;
        }
        for (int done = 0; done < replies;) {
            const int sent = ::sendmmsg(fd, msgs + done, static_cast<unsigned>(replies - done), 0);
            if (sent < 0 && errno == EINTR)
                continue;
            done += sent < 0 ? 1 : sent; // a requester that went away: skip its reply
        }
    }
}

void measure_inflight(int k, std::uint32_t peer_port) {
    const int requests = std::max(50'000 / k * k, k * 5);
    asio::io_context io(1);
    cnasio::client_options o;
    o.admitted_ports = {peer_port};
    o.request_receive_buffer = 64u << 20; // room for every reply at once
    o.default_timeout = std::chrono::seconds(30);
    cnasio::client c(io.get_executor(), o);
    const cnasio::connector::id id{echo_idx, echo_val};
    long done = 0, failed = 0;
    const int each = requests / k;
    for (int i = 0; i < k; ++i)
        asio::co_spawn(io, [&]() -> asio::awaitable<void> {
            cnasio::request_options ro;
            ro.port_id = peer_port;
            unsigned char payload[payload_size] = {};
            cnasio::connector::message reply;
            for (int j = 0; j < each; ++j) {
                auto [ec] = co_await c.async_request(id, std::as_bytes(std::span(payload)), reply, ro,
                                                     asio::as_tuple(asio::use_awaitable));
                ++done;
                if (ec)
                    ++failed;
            }
        }, asio::detached);
    const double cpu0 = bench::thread_cpu_us();
    const std::uint64_t t0 = bench::now_ns();
    io.run();
    const double cpu = bench::thread_cpu_us() - cpu0;
    const double seconds = static_cast<double>(bench::now_ns() - t0) / 1e9;
    std::printf("SCALE inflight=%d requests=%ld cpu_us_per_request=%.4g requests_per_s=%.6g replies_per_wakeup=%.3g "
                "failed=%ld\n",
                k, done, cpu / static_cast<double>(done), static_cast<double>(done) / seconds,
                static_cast<double>(c.stats().datagrams) / static_cast<double>(std::max<std::uint64_t>(1, c.stats().wakeups)),
                failed);
    std::fflush(stdout);
}

// ---------------------------------------------------------------- memory

void measure_memory() {
    constexpr int count = 10'000;
    const int silent_fd = bench::open_connector(0, 64 << 20); // never reads: every request stays pending
    asio::io_context io(1);
    cnasio::client_options o;
    o.admitted_ports = {bench::port_id_of(silent_fd)};
    o.default_timeout = std::chrono::seconds(60);
    cnasio::client c(io.get_executor(), o);
    cnasio::request_options ro;
    ro.port_id = bench::port_id_of(silent_fd);
    const cnasio::connector::id id{echo_idx, echo_val};
    unsigned char payload[payload_size] = {};
    long ended = 0;
    // Warm-up: one request and one subscription, so the first-use buffers are not counted.
    c.async_request(id, std::as_bytes(std::span(payload)), ro, [&](cnasio::error_code, cnasio::connector::message) { ++ended; });
    cnasio::error_code ec;
    auto first = c.subscribe(group, {}, ec);
    io.poll();
    const long before = heap_bytes();
    for (int i = 0; i < count; ++i)
        c.async_request(id, std::as_bytes(std::span(payload)), ro,
                        [&](cnasio::error_code, cnasio::connector::message) { ++ended; });
    io.poll();
    const long with_requests = heap_bytes();
    std::vector<cnasio::subscription> subs;
    subs.reserve(count);
    const long before_subs = heap_bytes();
    for (int i = 0; i < count; ++i)
        subs.push_back(c.subscribe(group, {}, ec));
    const long with_subs = heap_bytes();
    std::printf("SCALE memory pending_request_bytes=%.1f subscription_bytes=%.1f pending=%zu\n",
                static_cast<double>(with_requests - before) / count,
                static_cast<double>(with_subs - before_subs - static_cast<long>(count * sizeof(cnasio::subscription))) /
                    count,
                c.pending_requests());
    std::fflush(stdout);
    c.close();
    io.run();
    ::close(silent_fd);
}

} // namespace

int main(int argc, char** argv) {
    bench::require_root("bench_scaling");
    std::vector<int> subscribers{1, 10, 100, 1000};
    std::vector<int> inflight{1, 64, 1000, 10000};
    if (argc > 1 && std::string_view(argv[1]) == "--quick") { // a smoke run
        subscribers = {1, 10};
        inflight = {1, 64};
    } else if (argc > 1) {
        std::fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
        return 2;
    }
    // The echo peer is forked first, while the process has one thread.
    const int peer_fd = bench::open_connector(0, 64 << 20);
    const std::uint32_t peer_port = bench::port_id_of(peer_fd);
    bench::child_process peer = bench::fork_child([&](int, int) { echo_peer_main(peer_fd); });
    ::close(peer_fd);
    std::printf("# %s\n", "SCALE lines: bench/scaling.cpp");
    for (int n : subscribers)
        measure_subscribers(n);
    for (int k : inflight)
        measure_inflight(k, peer_port);
    measure_memory();
    peer.terminate();
}
