// Fuzz target: the classic BPF socket filter that make_bpf_filter() builds for
// an event mask, run on fuzzed datagrams by a small interpreter with the
// kernel's semantics (net/core/filter.c: BPF_ABS loads are big-endian, a load
// outside the packet ends the program with 0 = drop), against the verdict
// filter.hpp documents for it:
//   shorter than 40 bytes -> pass; first cn_msg id not {1,1} -> pass;
//   what == 0 (ack) -> pass; else bpf_filter_passes(mask, what, exit_code),
//   except that an exit event cut before its exit_code is dropped when the
//   program has to read it.
// Also checks what the kernel's checker would: the program fits, every jump
// lands inside it, and it ends with a return.
//
// Input: 4 bytes of mask, then the datagram.
#include <cnasio/proc/filter.hpp>

#include "fuzz_check.hpp"

#include <optional>
#include <vector>

using namespace cnasio;
namespace proc = cnasio::proc;

namespace {

std::uint32_t load_be(std::span<const std::byte> d, std::uint32_t at) {
    return (std::to_integer<std::uint32_t>(d[at]) << 24) | (std::to_integer<std::uint32_t>(d[at + 1]) << 16) |
           (std::to_integer<std::uint32_t>(d[at + 2]) << 8) | std::to_integer<std::uint32_t>(d[at + 3]);
}

// Runs the subset of classic BPF the builder may emit; any other instruction
// is a failure of this test (the builder must not surprise the kernel).
std::uint32_t run(std::span<const sock_filter> prog, std::span<const std::byte> pkt) {
    std::uint32_t a = 0;
    for (std::size_t pc = 0; pc < prog.size(); ++pc) {
        const sock_filter& f = prog[pc];
        const auto jump = [&](bool cond) { pc += cond ? f.jt : f.jf; };
        switch (f.code) {
        case BPF_LD | BPF_W | BPF_LEN: a = static_cast<std::uint32_t>(pkt.size()); break;
        case BPF_LD | BPF_W | BPF_ABS:
            if (f.k > pkt.size() || pkt.size() - f.k < 4) return 0; // outside the packet: drop
            a = load_be(pkt, f.k);
            break;
        case BPF_JMP | BPF_JEQ | BPF_K: jump(a == f.k); break;
        case BPF_JMP | BPF_JGE | BPF_K: jump(a >= f.k); break;
        case BPF_JMP | BPF_JGT | BPF_K: jump(a > f.k); break;
        case BPF_JMP | BPF_JSET | BPF_K: jump((a & f.k) != 0); break;
        case BPF_RET | BPF_K: return f.k;
        default: FUZZ_CHECK(!"instruction outside the expected subset");
        }
    }
    FUZZ_CHECK(!"ran off the end of the program");
    return 0;
}

template <class T>
T host_at(std::span<const std::byte> d, std::size_t at) {
    T v;
    std::memcpy(&v, d.data() + at, sizeof v);
    return v;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::input in(data, size);
    const auto bits = in.take<std::uint32_t>();
    const auto mask = proc::event_mask::from_bits(bits);
    const auto bytes = in.rest();
    const std::vector<std::byte> pkt(bytes.begin(), bytes.end()); // exact size for ASan

    const proc::bpf_program prog = proc::make_bpf_filter(mask);
    const auto insns = prog.instructions();
    // What the kernel's checker insists on.
    FUZZ_CHECK(!insns.empty() && insns.size() <= proc::bpf_program::capacity);
    FUZZ_CHECK(insns.back().code == (BPF_RET | BPF_K));
    for (std::size_t i = 0; i < insns.size(); ++i)
        if (BPF_CLASS(insns[i].code) == BPF_JMP) {
            FUZZ_CHECK(i + 1 + insns[i].jt < insns.size());
            FUZZ_CHECK(i + 1 + insns[i].jf < insns.size());
        }

    const bool passed = run(insns, pkt) != 0;

    // The documented verdict.
    bool want;
    const std::uint32_t effective = mask.kernel_effective().bits();
    if (effective == proc::event_type_all_bits || pkt.size() < proc::bpf_offset_what + 4) {
        want = true;
    } else if (host_at<std::uint32_t>(pkt, proc::bpf_offset_cn_idx) != proc::connector_idx ||
               host_at<std::uint32_t>(pkt, proc::bpf_offset_cn_val) != proc::connector_val) {
        want = true;
    } else {
        const auto what = host_at<std::uint32_t>(pkt, proc::bpf_offset_what);
        const bool exit_checked = (effective & static_cast<std::uint32_t>(proc::event_type::nonzero_exit)) != 0 &&
                                  what == static_cast<std::uint32_t>(proc::event_type::exit);
        if (what == 0) {
            want = true;
        } else if (exit_checked && pkt.size() < proc::bpf_offset_exit_code + 4) {
            want = false; // the exit_code load falls outside the datagram
        } else {
            const std::uint32_t exit_code =
                pkt.size() >= proc::bpf_offset_exit_code + 4 ? host_at<std::uint32_t>(pkt, proc::bpf_offset_exit_code) : 0;
            want = proc::bpf_filter_passes(mask, what, exit_code);
        }
    }
    FUZZ_CHECK(passed == want);

    // The user-space check agrees with the kernel mask wherever both decide.
    if (pkt.size() >= proc::bpf_offset_exit_code + 4) {
        const auto what = host_at<std::uint32_t>(pkt, proc::bpf_offset_what);
        const auto code = host_at<std::uint32_t>(pkt, proc::bpf_offset_exit_code);
        FUZZ_CHECK(proc::bpf_filter_passes(mask, what, code) ==
                   (what == 0 || proc::kernel_mask_passes(mask, what, code)));
    }
    return 0;
}
