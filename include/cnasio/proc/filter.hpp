// Event-type filtering for the process connector: the request payloads
// (4-byte op, 6.6+ 8-byte struct proc_input) and, for kernels without the
// proc_input mask, a classic BPF socket filter doing the same job.
//
// How the kernel handles these requests (drivers/connector/cn_proc.c and
// connector.c of 6.6 .. 6.18; read from 6.17's source, behaviour measured on
// 6.18 by tests/kernel/proc_filter_kernel_test.cpp):
//
// * cn_proc_mcast_ctl(): a request payload of 8 bytes is read as
//   struct proc_input {mcast_op, event_type}, one of 4 bytes as the op alone
//   with event_type = PROC_EVENT_ALL; any other length returns silently (no
//   ack). event_type is passed through valid_event() (`& PROC_EVENT_ALL`) and
//   0 becomes PROC_EVENT_ALL. The pair is stored in the *requesting* socket's
//   sk_user_data (nsp->sk), allocated on its first request: filtering state is
//   per socket, so the LISTEN must go out on the socket that receives.
//   Kernels before 6.6 accept only the 4-byte form (8 bytes: dropped, no ack).
//
// * Listener count (proc_event_num_listeners; no events at all while it is
//   0): LISTEN increments it only if the socket's previous op was not LISTEN
//   (`if (initial || prev_mc_op != PROC_CN_MCAST_LISTEN) atomic_inc`), so a
//   second LISTEN on the same socket - e.g. 8-byte LISTEN with mask ALL to
//   detect support from the ack, then LISTEN with the real mask - changes only
//   the mask and counts once. IGNORE decrements only if the socket had sent a
//   request before and its previous op was not IGNORE, and sets the mask to
//   NONE. Before 6.6 every LISTEN incremented and every IGNORE decremented
//   unconditionally: there, send exactly one LISTEN and one IGNORE per socket
//   (an IGNORE without LISTEN drives the count down for everybody).
//   cn_release() frees sk_user_data when a member of group 1 closes but does
//   not decrement the count: send IGNORE before closing.
//
// * cn_filter(dsk, skb, data), run per receiving socket by
//   netlink_broadcast_filtered() (non-zero = not delivered to that socket):
//     - no sk_user_data (joined group 1, never sent a request): delivered;
//     - last op IGNORE: dropped;
//     - mask == PROC_EVENT_ALL: delivered (acks included);
//     - mask has NONZERO_EXIT, what == EXIT and exit_code != 0: delivered;
//     - mask & what != 0: delivered; otherwise dropped.
//   An ack has what == PROC_EVENT_NONE (0), so `mask & what` is 0: a socket
//   whose mask is anything but exactly PROC_EVENT_ALL never sees acks - not
//   its own LISTEN's ack, nor anybody else's. The ack is generated after the
//   new mask is stored, so the ack of "LISTEN with mask ALL" does arrive.
//   kernel_mask_passes() below is this predicate.
//
// * Counter: a message dropped by cn_filter() or by a socket filter still took
//   its per-CPU sequence number (see loss.hpp): with any filter, sequence
//   holes are not losses. Neither drop counts as an overrun (no ENOBUFS).
//
// The BPF program built here differs from cn_filter() on purpose in one
// point: acks always pass, because the listener needs them to confirm its
// LISTEN on the kernels that use this fallback.
#pragma once

#include <cnasio/proc/event.hpp>

#include <array>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include <linux/filter.h>
#include <sys/socket.h>

namespace cnasio::proc {

// enum proc_cn_mcast_op
enum class mcast_op : std::uint32_t { listen = 1, ignore = 2 };

// struct proc_input (6.6+), 8 bytes, host byte order.
struct proc_input {
    std::uint32_t mcast_op = 0;
    std::uint32_t event_type = 0;
};
static_assert(sizeof(proc_input) == 8);

// The 4-byte request payload: every kernel takes it; on 6.6+ it means mask ALL.
inline std::array<std::byte, 4> op_payload(mcast_op op) noexcept {
    std::array<std::byte, 4> out{};
    auto v = static_cast<std::uint32_t>(op);
    std::memcpy(out.data(), &v, sizeof v);
    return out;
}

// The 8-byte proc_input payload (6.6+; older kernels drop it without an ack).
// The mask is sent as given; the kernel applies kernel_effective() to it.
inline std::array<std::byte, 8> input_payload(mcast_op op, event_mask mask) noexcept {
    std::array<std::byte, 8> out{};
    proc_input in{static_cast<std::uint32_t>(op), mask.bits()};
    std::memcpy(out.data(), &in, sizeof in);
    return out;
}

// cn_filter()'s verdict for a socket that sent LISTEN with `mask`: true when
// a message with this `what` (and, for exits, wait status `exit_code`) is
// delivered to it.
constexpr bool kernel_mask_passes(event_mask mask, std::uint32_t what, std::uint32_t exit_code) noexcept {
    std::uint32_t val = mask.kernel_effective().bits();
    if (val == event_type_all_bits) return true;
    if ((val & static_cast<std::uint32_t>(event_type::nonzero_exit)) != 0 &&
        what == static_cast<std::uint32_t>(event_type::exit) && exit_code != 0)
        return true;
    return (val & what) != 0;
}

// The verdict of make_bpf_filter(mask) on a proc message: kernel_mask_passes()
// except that acks always pass.
constexpr bool bpf_filter_passes(event_mask mask, std::uint32_t what, std::uint32_t exit_code) noexcept {
    return what == static_cast<std::uint32_t>(event_type::none) || kernel_mask_passes(mask, what, exit_code);
}

// Datagram offsets the program reads (one kernel message per datagram).
inline constexpr std::uint32_t bpf_offset_cn_idx = 16;    // nlmsghdr(16) + cn_msg.id.idx
inline constexpr std::uint32_t bpf_offset_cn_val = 20;    // cn_msg.id.val
inline constexpr std::uint32_t bpf_offset_what = 36;      // + cn_msg(20): proc_event.what
inline constexpr std::uint32_t bpf_offset_exit_code = 60; // + 16 header + 8: exit.exit_code
inline constexpr std::uint32_t bpf_accept = 0xffffffffu;  // keep the whole datagram
inline constexpr std::uint32_t bpf_drop = 0;

// A classic BPF program in a fixed-size buffer (no allocation).
struct bpf_program {
    static constexpr std::size_t capacity = 16;
    std::array<sock_filter, capacity> insns{};
    std::uint16_t size = 0;

    std::span<const sock_filter> instructions() const noexcept { return {insns.data(), size}; }
    // For SO_ATTACH_FILTER (the kernel copies the program during setsockopt).
    sock_fprog fprog() noexcept { return sock_fprog{size, insns.data()}; }
};

namespace detail {

// BPF_LD|BPF_ABS loads in network (big-endian) byte order; the netlink and
// connector fields are in host order. Comparing against the constant as it
// reads when loaded big-endian keeps the program free of byte swapping.
constexpr std::uint32_t as_loaded(std::uint32_t host_value) noexcept {
    if constexpr (std::endian::native == std::endian::little) {
        return ((host_value & 0x000000ffu) << 24) | ((host_value & 0x0000ff00u) << 8) |
               ((host_value & 0x00ff0000u) >> 8) | ((host_value & 0xff000000u) >> 24);
    } else {
        return host_value;
    }
}

enum class bpf_label : std::uint8_t { next, accept, drop, mask_test };

struct bpf_insn {
    std::uint16_t code;
    bpf_label jt;
    bpf_label jf;
    std::uint32_t k;
};

} // namespace detail

// Builds the socket filter for `mask` (normalised like the kernel does: unknown
// bits dropped, empty = ALL). A datagram passes when
//   - it is shorter than 40 bytes (too short to be a proc event: not ours to judge), or
//   - its first message's cn_msg id is not {CN_IDX_PROC, CN_VAL_PROC}, or
//   - proc_event.what is PROC_EVENT_NONE (an ack), or
//   - bpf_filter_passes(mask, what, exit_code).
// For mask ALL the program accepts everything. Only the first message of a
// datagram is looked at (the kernel sends one per datagram). An exit event cut
// short before its exit_code makes the load fail, which drops the datagram.
inline bpf_program make_bpf_filter(event_mask mask) noexcept {
    using detail::bpf_insn;
    using L = detail::bpf_label;
    const std::uint32_t bits = mask.kernel_effective().bits();
    bpf_program prog;
    if (bits == event_type_all_bits) {
        prog.insns[0] = sock_filter{BPF_RET | BPF_K, 0, 0, bpf_accept};
        prog.size = 1;
        return prog;
    }

    std::array<bpf_insn, bpf_program::capacity> code{};
    std::size_t n = 0;
    auto emit = [&](std::uint16_t c, std::uint32_t k, L jt = L::next, L jf = L::next) {
        code[n++] = bpf_insn{c, jt, jf, k};
    };
    const std::uint32_t proc_id = detail::as_loaded(connector_idx); // idx == val == 1
    const std::uint32_t exit_bit = static_cast<std::uint32_t>(event_type::exit);
    const std::uint32_t nonzero_bit = static_cast<std::uint32_t>(event_type::nonzero_exit);

    emit(BPF_LD | BPF_W | BPF_LEN, 0);
    emit(BPF_JMP | BPF_JGE | BPF_K, bpf_offset_what + 4, L::next, L::accept);
    emit(BPF_LD | BPF_W | BPF_ABS, bpf_offset_cn_idx);
    emit(BPF_JMP | BPF_JEQ | BPF_K, proc_id, L::next, L::accept);
    emit(BPF_LD | BPF_W | BPF_ABS, bpf_offset_cn_val);
    emit(BPF_JMP | BPF_JEQ | BPF_K, detail::as_loaded(connector_val), L::next, L::accept);
    emit(BPF_LD | BPF_W | BPF_ABS, bpf_offset_what);
    emit(BPF_JMP | BPF_JEQ | BPF_K, 0, L::accept, L::next);
    if ((bits & nonzero_bit) != 0) {
        // cn_filter(): an exit with a non-zero status passes a NONZERO_EXIT mask.
        emit(BPF_JMP | BPF_JEQ | BPF_K, detail::as_loaded(exit_bit), L::next, L::mask_test);
        emit(BPF_LD | BPF_W | BPF_ABS, bpf_offset_exit_code);
        emit(BPF_JMP | BPF_JEQ | BPF_K, 0, L::next, L::accept);
        emit(BPF_LD | BPF_W | BPF_ABS, bpf_offset_what); // A held exit_code: reload what
    }
    const std::size_t mask_test = n;
    // Byte-swapping both sides of an AND preserves "any common bit".
    emit(BPF_JMP | BPF_JSET | BPF_K, detail::as_loaded(bits), L::accept, L::drop);
    const std::size_t drop = n;
    emit(BPF_RET | BPF_K, bpf_drop);
    const std::size_t accept = n;
    emit(BPF_RET | BPF_K, bpf_accept);

    auto offset = [&](std::size_t at, L label) -> std::uint8_t {
        std::size_t target = at + 1;
        switch (label) {
        case L::next: break;
        case L::accept: target = accept; break;
        case L::drop: target = drop; break;
        case L::mask_test: target = mask_test; break;
        }
        return static_cast<std::uint8_t>(target - (at + 1));
    };
    for (std::size_t i = 0; i < n; ++i) {
        prog.insns[i] = sock_filter{code[i].code, offset(i, code[i].jt), offset(i, code[i].jf), code[i].k};
    }
    prog.size = static_cast<std::uint16_t>(n);
    return prog;
}

// Attaches make_bpf_filter(mask) to a socket (SO_ATTACH_FILTER), replacing any
// filter attached before. ec: the setsockopt errno.
inline void attach_filter(int native_fd, event_mask mask, error_code& ec) noexcept {
    ec.clear();
    bpf_program prog = make_bpf_filter(mask);
    sock_fprog fp = prog.fprog();
    if (::setsockopt(native_fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp) != 0) ec = errno_code(errno);
}

// Removes the socket filter (SO_DETACH_FILTER). ec: the setsockopt errno
// (ENOENT when no filter was attached).
inline void detach_filter(int native_fd, error_code& ec) noexcept {
    ec.clear();
    int unused = 0;
    if (::setsockopt(native_fd, SOL_SOCKET, SO_DETACH_FILTER, &unused, sizeof unused) != 0)
        ec = errno_code(errno);
}

} // namespace cnasio::proc
