// cnasio::proc filters against the running kernel:
// - the kernel's own BPF engine gives the classic BPF program the verdicts the
//   unit suite's interpreter gives (crafted datagrams over an AF_UNIX pair);
// - on a NETLINK_CONNECTOR socket in group 1 the exit-only BPF filter lets a
//   child's exit and the LISTEN ack through and keeps its fork out, while an
//   unfiltered socket sees the fork;
// - the 6.6+ proc_input mask: LISTEN with mask ALL is acked to the sender,
//   LISTEN with another mask is not (cn_filter() drops what == 0), and the
//   mask keeps forks from that socket.
// Raw syscalls throughout: this checks the proc headers and the kernel, not
// the socket layer.
#include <cnasio/proc/event.hpp>
#include <cnasio/proc/filter.hpp>

#include <doctest/doctest.h>

#include "kernel_version.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <system_error>
#include <vector>

#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace proc = cnasio::proc;
using namespace std::chrono_literals;

namespace {

[[noreturn]] void fail(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

class fd_guard {
public:
    explicit fd_guard(int fd) : fd_{fd} {}
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    ~fd_guard() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const { return fd_; }

private:
    int fd_;
};

// A connector socket that joined group CN_IDX_PROC; sends IGNORE on
// destruction if it sent LISTEN (the kernel does not decrement its listener
// count when a socket closes).
class proc_socket {
public:
    proc_socket() : fd_{::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR)} {
        if (fd_.get() < 0) fail("socket");
        sockaddr_nl a{};
        a.nl_family = AF_NETLINK;
        if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fail("bind");
        int group = CN_IDX_PROC;
        if (::setsockopt(fd_.get(), SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) != 0)
            fail("NETLINK_ADD_MEMBERSHIP");
        // Room for the machine's background events while a test looks for its own.
        int bytes = 4 << 20;
        ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes);
    }
    proc_socket(const proc_socket&) = delete;
    proc_socket& operator=(const proc_socket&) = delete;
    ~proc_socket() {
        if (listening_) send(proc::op_payload(proc::mcast_op::ignore), 0);
    }

    int fd() const { return fd_.get(); }

    void send(std::span<const std::byte> payload, std::uint32_t ack) {
        std::vector<std::byte> d(NLMSG_HDRLEN + sizeof(cn_msg) + payload.size());
        nlmsghdr nlh{};
        nlh.nlmsg_len = static_cast<std::uint32_t>(d.size());
        nlh.nlmsg_type = NLMSG_DONE;
        nlh.nlmsg_pid = static_cast<std::uint32_t>(::getpid());
        cn_msg cn{};
        cn.id.idx = CN_IDX_PROC;
        cn.id.val = CN_VAL_PROC;
        cn.ack = ack;
        cn.len = static_cast<std::uint16_t>(payload.size());
        std::memcpy(d.data(), &nlh, sizeof nlh);
        std::memcpy(d.data() + NLMSG_HDRLEN, &cn, sizeof cn);
        std::memcpy(d.data() + NLMSG_HDRLEN + sizeof cn, payload.data(), payload.size());
        sockaddr_nl kernel{};
        kernel.nl_family = AF_NETLINK;
        if (::sendto(fd_.get(), d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) <
            0)
            fail("sendto");
    }
    void listen(std::span<const std::byte> payload, std::uint32_t ack) {
        send(payload, ack);
        listening_ = true;
    }
    // The kernel ignored the LISTEN (the 8-byte form before 6.6): an IGNORE
    // on close would lower the system-wide listener count, which older
    // kernels decrement unconditionally, and silence every other listener.
    void forget_listen() { listening_ = false; }

    // Calls `on_event` for each proc message the kernel sent until it returns
    // true or `limit` passes; returns whether it did.
    bool receive_until(const std::function<bool(const proc::event&)>& on_event,
                       std::chrono::milliseconds limit = 3000ms) {
        std::vector<std::byte> buf(8192);
        const auto deadline = std::chrono::steady_clock::now() + limit;
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() < 0) return false;
            pollfd p{fd_.get(), POLLIN, 0};
            int r = ::poll(&p, 1, static_cast<int>(left.count()));
            if (r < 0 && errno != EINTR) fail("poll");
            if (r <= 0) continue;
            sockaddr_nl from{};
            socklen_t from_len = sizeof from;
            ssize_t n = ::recvfrom(fd_.get(), buf.data(), buf.size(), MSG_DONTWAIT,
                                   reinterpret_cast<sockaddr*>(&from), &from_len);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) continue;
                if (errno == ENOBUFS) {
                    ++overruns;
                    continue;
                }
                fail("recvfrom");
            }
            if (from.nl_pid != 0) continue; // only the kernel's messages
            auto datagram = std::span<const std::byte>{buf.data(), static_cast<std::size_t>(n)};
            if (datagram.size() < NLMSG_HDRLEN + sizeof(cn_msg)) continue;
            cn_msg cn{};
            std::memcpy(&cn, datagram.data() + NLMSG_HDRLEN, sizeof cn);
            if (cn.id.idx != CN_IDX_PROC || cn.id.val != CN_VAL_PROC) continue;
            auto payload = datagram.subspan(NLMSG_HDRLEN + sizeof cn);
            if (payload.size() > cn.len) payload = payload.first(cn.len);
            cnasio::error_code ec;
            auto ev = proc::decode(payload, {cn.seq, cn.ack}, ec);
            REQUIRE_FALSE(ec);
            if (on_event(ev)) return true;
        }
    }

    int overruns = 0;

private:
    fd_guard fd_;
    bool listening_ = false;
};

std::uint32_t next_ack() {
    static std::uint32_t counter = 0;
    return (static_cast<std::uint32_t>(::getpid()) << 12) + (++counter << 1);
}

pid_t spawn_exiting_child(int status) {
    pid_t pid = ::fork();
    if (pid < 0) fail("fork");
    if (pid == 0) ::_exit(status);
    int ws = 0;
    ::waitpid(pid, &ws, 0);
    return pid;
}

// What a socket saw of one child.
struct child_view {
    bool fork = false;
    bool exit = false;
    std::uint32_t exit_code = 0;
    bool other_type = false; // anything but ack and exit, from anybody
};

std::function<bool(const proc::event&)> watch(pid_t child, child_view& v) {
    return [child, &v](const proc::event& ev) {
        if (auto* f = ev.get_if<proc::fork_event>(); f && f->child_tgid == child) v.fork = true;
        if (auto* x = ev.get_if<proc::exit_event>(); x && x->process_tgid == child) {
            v.exit = true;
            v.exit_code = x->exit_code;
        }
        if (!ev.is_ack() && !ev.get_if<proc::exit_event>()) v.other_type = true;
        return v.exit;
    };
}

bool wait_for_ack(proc_socket& s, std::uint32_t request_ack, std::chrono::milliseconds limit,
                  std::uint32_t* err = nullptr) {
    return s.receive_until(
        [&](const proc::event& ev) {
            if (!ev.is_ack() || ev.ack != request_ack + 1) return false;
            if (err) *err = ev.get_if<proc::ack_event>()->err;
            return true;
        },
        limit);
}

} // namespace

TEST_CASE("kernel BPF engine agrees with the proc filter's intended verdicts") {
    // Crafted proc datagrams through an AF_UNIX pair with the filter on the
    // receiving end: the kernel runs the program, a dropped datagram just
    // never arrives.
    const std::uint32_t whats[] = {0x0,   0x1,   0x2,        0x4,        0x40, 0x80,
                                   0x100, 0x200, 0x40000000, 0x80000000, 0x400};
    const proc::event_mask masks[] = {
        proc::event_type::exit,
        proc::event_type::fork | proc::event_type::exec,
        proc::event_type::nonzero_exit,
        proc::event_type::nonzero_exit | proc::event_type::comm,
        proc::event_mask::from_bits(0xc00003c7u),
        proc::event_mask::all(),
    };
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0);
    fd_guard tx{sv[0]}, rx{sv[1]};
    std::vector<std::byte> buf(256);
    for (auto mask : masks) {
        cnasio::error_code ec;
        proc::attach_filter(rx.get(), mask, ec);
        REQUIRE_FALSE(ec);
        for (auto what : whats) {
            for (std::uint32_t exit_code : {0u, 0x300u}) {
                CAPTURE(mask.bits());
                CAPTURE(what);
                CAPTURE(exit_code);
                std::vector<std::byte> d(NLMSG_HDRLEN + sizeof(cn_msg) + proc::event_wire_size);
                cn_msg cn{};
                cn.id = {CN_IDX_PROC, CN_VAL_PROC};
                cn.len = proc::event_wire_size;
                std::memcpy(d.data() + NLMSG_HDRLEN, &cn, sizeof cn);
                std::memcpy(d.data() + 36, &what, 4);
                std::memcpy(d.data() + 60, &exit_code, 4);
                REQUIRE(::send(tx.get(), d.data(), d.size(), 0) == static_cast<ssize_t>(d.size()));
                ssize_t n = ::recv(rx.get(), buf.data(), buf.size(), MSG_DONTWAIT);
                bool arrived = n == static_cast<ssize_t>(d.size());
                if (!arrived) REQUIRE(errno == EAGAIN);
                CHECK(arrived == proc::bpf_filter_passes(mask, what, exit_code));
            }
        }
    }
    // A datagram for another connector id passes an exit-only filter.
    cnasio::error_code ec;
    proc::attach_filter(rx.get(), proc::event_type::exit, ec);
    std::vector<std::byte> other(76);
    cn_msg cn{};
    cn.id = {CN_IDX_PROC + 1, CN_VAL_PROC};
    std::memcpy(other.data() + NLMSG_HDRLEN, &cn, sizeof cn);
    std::uint32_t fork_what = 1;
    std::memcpy(other.data() + 36, &fork_what, 4);
    REQUIRE(::send(tx.get(), other.data(), other.size(), 0) == 76);
    CHECK(::recv(rx.get(), buf.data(), buf.size(), MSG_DONTWAIT) == 76);
    // Detach: everything passes again; a second detach reports ENOENT.
    proc::detach_filter(rx.get(), ec);
    CHECK_FALSE(ec);
    cn.id = {CN_IDX_PROC, CN_VAL_PROC};
    std::memcpy(other.data() + NLMSG_HDRLEN, &cn, sizeof cn);
    REQUIRE(::send(tx.get(), other.data(), other.size(), 0) == 76);
    CHECK(::recv(rx.get(), buf.data(), buf.size(), MSG_DONTWAIT) == 76);
    proc::detach_filter(rx.get(), ec);
    CHECK(ec == cnasio::errno_code(ENOENT));
}

TEST_CASE("exit-only BPF filter on a proc socket: the child's exit and the ack arrive, its fork does not") {
    proc_socket filtered;
    proc_socket plain; // joined, never sends a request: receives whatever is generated
    cnasio::error_code ec;
    proc::attach_filter(filtered.fd(), proc::event_type::exit, ec);
    REQUIRE_FALSE(ec);

    const std::uint32_t ack = next_ack();
    filtered.listen(proc::op_payload(proc::mcast_op::listen), ack);
    std::uint32_t err = 99;
    REQUIRE_MESSAGE(wait_for_ack(filtered, ack, 2000ms, &err),
                    "no ack for LISTEN: kernel without CONFIG_PROC_EVENTS?");
    CHECK(err == 0);

    const pid_t child = spawn_exiting_child(7);
    child_view seen_filtered, seen_plain;
    REQUIRE(filtered.receive_until(watch(child, seen_filtered)));
    REQUIRE(plain.receive_until(watch(child, seen_plain)));
    CHECK(seen_filtered.exit_code == 7u << 8);
    CHECK_FALSE(seen_filtered.fork);
    CHECK_FALSE(seen_filtered.other_type);
    CHECK(seen_plain.fork);
}

TEST_CASE("6.6+ proc_input mask: per socket, acked only with mask ALL") {
    proc_socket observer; // LISTEN in the 4-byte form: mask ALL, sees every ack
    const std::uint32_t observer_ack = next_ack();
    observer.listen(proc::op_payload(proc::mcast_op::listen), observer_ack);
    REQUIRE(wait_for_ack(observer, observer_ack, 2000ms));

    proc_socket masked;
    // Step 1 of the listener's detection: 8-byte LISTEN with mask ALL.
    const std::uint32_t probe_ack = next_ack();
    masked.listen(proc::input_payload(proc::mcast_op::listen, proc::event_mask::all()), probe_ack);
    if (!wait_for_ack(masked, probe_ack, 500ms)) {
        masked.forget_listen();
        // 6.6+ kernels take the 8-byte form and ack it; only older ones drop it.
        REQUIRE_MESSAGE(!cnasio::test::kernel_at_least(6, 6),
                        "no ack to the 8-byte proc_input LISTEN on a 6.6+ kernel");
        MESSAGE("kernel ignores the 8-byte proc_input form (before 6.6): nothing more to check");
        return;
    }
    // Step 2: the real mask. Its ack is generated (the observer gets it) but
    // cn_filter() keeps it from the masked socket (what == 0 & mask == 0).
    const std::uint32_t mask_ack = next_ack();
    masked.listen(proc::input_payload(proc::mcast_op::listen, proc::event_type::exit), mask_ack);
    CHECK(wait_for_ack(observer, mask_ack, 2000ms));
    CHECK_FALSE(wait_for_ack(masked, mask_ack, 300ms));

    const pid_t child = spawn_exiting_child(3);
    child_view seen_masked, seen_observer;
    REQUIRE(masked.receive_until(watch(child, seen_masked)));
    REQUIRE(observer.receive_until(watch(child, seen_observer)));
    CHECK(seen_masked.exit_code == 3u << 8);
    CHECK_FALSE(seen_masked.fork);
    CHECK_FALSE(seen_masked.other_type);
    CHECK(seen_observer.fork);
}
