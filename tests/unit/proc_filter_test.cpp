// cnasio::proc filters: request payloads, the kernel's cn_filter() predicate,
// and the classic BPF program run by a small interpreter written here (the
// kernel suite runs the same program in the kernel).
#include <cnasio/proc/filter.hpp>

#include <doctest/doctest.h>

#include <linux/connector.h>
#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace proc = cnasio::proc;
using proc::event_mask;
using proc::event_type;

namespace {

// A classic-BPF interpreter for socket filters over a byte buffer: the subset
// of instructions a socket filter uses. Loads are big-endian, as in the kernel;
// a load outside the buffer ends the program with 0 (drop), as in the kernel.
// Anything it does not know, or a jump out of the program, throws: a test that
// hits it fails.
std::uint32_t run_bpf(std::span<const sock_filter> prog, std::span<const std::byte> pkt) {
    std::uint32_t a = 0, x = 0;
    std::uint32_t mem[BPF_MEMWORDS] = {};
    auto load = [&](std::uint32_t off, std::uint32_t size, bool& ok) -> std::uint32_t {
        if (off > pkt.size() || pkt.size() - off < size) {
            ok = false;
            return 0;
        }
        std::uint32_t v = 0;
        for (std::uint32_t i = 0; i < size; ++i) v = (v << 8) | std::to_integer<std::uint32_t>(pkt[off + i]);
        return v;
    };
    for (std::size_t pc = 0; pc < prog.size(); ++pc) {
        const sock_filter& f = prog[pc];
        const std::uint32_t k = f.k;
        switch (BPF_CLASS(f.code)) {
        case BPF_LD:
        case BPF_LDX: {
            std::uint32_t v = 0;
            std::uint32_t size = BPF_SIZE(f.code) == BPF_W ? 4 : BPF_SIZE(f.code) == BPF_H ? 2 : 1;
            bool ok = true;
            switch (BPF_MODE(f.code)) {
            case BPF_IMM: v = k; break;
            case BPF_LEN: v = static_cast<std::uint32_t>(pkt.size()); break;
            case BPF_ABS: v = load(k, size, ok); break;
            case BPF_IND: v = load(x + k, size, ok); break;
            case BPF_MEM:
                if (k >= BPF_MEMWORDS) throw std::runtime_error("bad scratch index");
                v = mem[k];
                break;
            default: throw std::runtime_error("unsupported load mode");
            }
            if (!ok) return 0;
            (BPF_CLASS(f.code) == BPF_LD ? a : x) = v;
            break;
        }
        case BPF_ST:
        case BPF_STX:
            if (k >= BPF_MEMWORDS) throw std::runtime_error("bad scratch index");
            mem[k] = BPF_CLASS(f.code) == BPF_ST ? a : x;
            break;
        case BPF_ALU: {
            std::uint32_t operand = BPF_SRC(f.code) == BPF_X ? x : k;
            switch (BPF_OP(f.code)) {
            case BPF_ADD: a += operand; break;
            case BPF_SUB: a -= operand; break;
            case BPF_AND: a &= operand; break;
            case BPF_OR: a |= operand; break;
            case BPF_XOR: a ^= operand; break;
            case BPF_LSH: a = operand < 32 ? a << operand : 0; break;
            case BPF_RSH: a = operand < 32 ? a >> operand : 0; break;
            case BPF_NEG: a = 0u - a; break;
            default: throw std::runtime_error("unsupported ALU op");
            }
            break;
        }
        case BPF_JMP: {
            std::uint32_t operand = BPF_SRC(f.code) == BPF_X ? x : k;
            std::size_t skip = 0;
            switch (BPF_OP(f.code)) {
            case BPF_JA: skip = k; break;
            case BPF_JEQ: skip = a == operand ? f.jt : f.jf; break;
            case BPF_JGT: skip = a > operand ? f.jt : f.jf; break;
            case BPF_JGE: skip = a >= operand ? f.jt : f.jf; break;
            case BPF_JSET: skip = (a & operand) != 0 ? f.jt : f.jf; break;
            default: throw std::runtime_error("unsupported jump");
            }
            if (pc + 1 + skip >= prog.size()) throw std::runtime_error("jump out of the program");
            pc += skip;
            break;
        }
        case BPF_RET: return BPF_RVAL(f.code) == BPF_A ? a : k;
        case BPF_MISC:
            if (BPF_MISCOP(f.code) == BPF_TAX)
                x = a;
            else
                a = x;
            break;
        }
    }
    throw std::runtime_error("program ran off its end");
}

// A datagram as the kernel sends a proc message: nlmsghdr + cn_msg + proc_event.
std::vector<std::byte> proc_datagram(std::uint32_t what, std::uint32_t exit_code = 0, std::uint32_t idx = 1,
                                     std::uint32_t val = 1) {
    std::vector<std::byte> d(NLMSG_HDRLEN + sizeof(cn_msg) + proc::event_wire_size);
    nlmsghdr nlh{};
    nlh.nlmsg_len = static_cast<std::uint32_t>(d.size());
    nlh.nlmsg_type = NLMSG_DONE;
    cn_msg cn{};
    cn.id.idx = idx;
    cn.id.val = val;
    cn.len = proc::event_wire_size;
    std::memcpy(d.data(), &nlh, sizeof nlh);
    std::memcpy(d.data() + NLMSG_HDRLEN, &cn, sizeof cn);
    std::byte* ev = d.data() + NLMSG_HDRLEN + sizeof cn;
    std::uint32_t cpu = 1;
    std::uint64_t ts = 123;
    std::memcpy(ev, &what, 4);
    std::memcpy(ev + 4, &cpu, 4);
    std::memcpy(ev + 8, &ts, 8);
    std::uint32_t pids[2] = {4242, 4242};
    std::memcpy(ev + 16, pids, 8);
    std::memcpy(ev + 24, &exit_code, 4);
    return d;
}

bool bpf_passes(event_mask mask, std::span<const std::byte> datagram) {
    auto prog = proc::make_bpf_filter(mask);
    return run_bpf(prog.instructions(), datagram) != 0;
}

const std::uint32_t all_whats[] = {0x0,   0x1,        0x2,        0x4,        0x40, 0x80, 0x100,
                                   0x200, 0x20000000, 0x40000000, 0x80000000, 0x8,  0x400};

const event_mask sample_masks[] = {
    event_type::fork,
    event_type::exec,
    event_type::uid,
    event_type::gid,
    event_type::sid,
    event_type::ptrace,
    event_type::comm,
    event_type::coredump,
    event_type::exit,
    event_type::nonzero_exit,
    event_type::fork | event_type::exit,
    event_type::nonzero_exit | event_type::exit,
    event_type::nonzero_exit | event_type::fork,
    event_mask::from_bits(0xc00003c7u), // everything but nonzero_exit
    event_mask::from_bits(0x400),       // unknown bit only: the kernel makes it ALL
    event_mask::from_bits(0x401),
    event_mask{},
    event_mask::all(),
};

} // namespace

TEST_CASE("proc request payloads") {
    auto op = proc::op_payload(proc::mcast_op::listen);
    std::uint32_t v = 0;
    std::memcpy(&v, op.data(), 4);
    CHECK(v == 1);
    std::memcpy(&v, proc::op_payload(proc::mcast_op::ignore).data(), 4);
    CHECK(v == 2);
    auto in = proc::input_payload(proc::mcast_op::listen, event_type::exit | event_type::fork);
    std::uint32_t fields[2] = {};
    std::memcpy(fields, in.data(), 8);
    CHECK(fields[0] == 1);
    CHECK(fields[1] == 0x80000001u);
}

TEST_CASE("kernel_mask_passes follows cn_filter()") {
    using proc::kernel_mask_passes;
    const event_mask exit_only = event_type::exit;
    CHECK(kernel_mask_passes(exit_only, 0x80000000u, 0));
    CHECK_FALSE(kernel_mask_passes(exit_only, 0x1, 0));
    CHECK_FALSE(kernel_mask_passes(exit_only, 0x0, 0)); // acks too: a filtered socket misses its ack
    CHECK(kernel_mask_passes(event_mask::all(), 0x0, 0));
    CHECK(kernel_mask_passes(event_mask::all(), 0x400, 0)); // ALL passes anything
    CHECK(kernel_mask_passes(event_mask{}, 0x0, 0));        // 0 means ALL
    CHECK_FALSE(kernel_mask_passes(event_mask::from_bits(0xc00003c7u), 0x0, 0));
    const event_mask nonzero = event_type::nonzero_exit;
    CHECK(kernel_mask_passes(nonzero, 0x80000000u, 256));
    CHECK_FALSE(kernel_mask_passes(nonzero, 0x80000000u, 0));
    CHECK_FALSE(kernel_mask_passes(nonzero, 0x1, 256));
    CHECK(kernel_mask_passes(nonzero | event_type::exit, 0x80000000u, 0));
    CHECK(proc::bpf_filter_passes(exit_only, 0x0, 0));
    CHECK_FALSE(proc::bpf_filter_passes(exit_only, 0x1, 0));
}

TEST_CASE("BPF program: well formed") {
    for (auto mask : sample_masks) {
        CAPTURE(mask.bits());
        auto prog = proc::make_bpf_filter(mask);
        REQUIRE(prog.size > 0);
        REQUIRE(prog.size <= proc::bpf_program::capacity);
        auto insns = prog.instructions();
        CHECK(BPF_CLASS(insns.back().code) == BPF_RET);
        for (std::size_t i = 0; i < insns.size(); ++i) {
            if (BPF_CLASS(insns[i].code) == BPF_JMP && BPF_OP(insns[i].code) != BPF_JA) {
                CHECK(i + 1 + insns[i].jt < insns.size());
                CHECK(i + 1 + insns[i].jf < insns.size());
            }
        }
        auto fp = prog.fprog();
        CHECK(fp.len == prog.size);
        CHECK(fp.filter == prog.insns.data());
    }
    // ALL, and what the kernel turns into ALL, is a single "accept".
    CHECK(proc::make_bpf_filter(event_mask::all()).size == 1);
    CHECK(proc::make_bpf_filter(event_mask{}).size == 1);
    CHECK(proc::make_bpf_filter(event_mask::from_bits(0x400)).size == 1);
}

TEST_CASE("BPF program: verdicts on proc messages match bpf_filter_passes") {
    for (auto mask : sample_masks) {
        for (auto what : all_whats) {
            for (std::uint32_t exit_code : {0u, 256u, 9u}) {
                CAPTURE(mask.bits());
                CAPTURE(what);
                CAPTURE(exit_code);
                auto d = proc_datagram(what, exit_code);
                CHECK(bpf_passes(mask, d) == proc::bpf_filter_passes(mask, what, exit_code));
            }
        }
    }
    // The headline case: exit-only lets exits and acks through, not forks.
    const event_mask exit_only = event_type::exit;
    CHECK(bpf_passes(exit_only, proc_datagram(0x80000000u)));
    CHECK(bpf_passes(exit_only, proc_datagram(0x0)));
    CHECK_FALSE(bpf_passes(exit_only, proc_datagram(0x1)));
    CHECK_FALSE(bpf_passes(exit_only, proc_datagram(0x2)));
}

TEST_CASE("BPF program: other connector ids pass whatever they carry") {
    const event_mask exit_only = event_type::exit;
    for (auto [idx, val] : {std::pair{2u, 1u}, {1u, 2u}, {0u, 0u}, {11u, 1u}, {0x01000000u, 0x01000000u}}) {
        CAPTURE(idx);
        CAPTURE(val);
        // `what` 1 (fork) would be dropped if the id were taken for {1,1}; the
        // last pair catches a program that forgot the byte order.
        CHECK(bpf_passes(exit_only, proc_datagram(0x1, 0, idx, val)));
    }
}

TEST_CASE("BPF program: short datagrams") {
    const event_mask exit_only = event_type::exit;
    auto d = proc_datagram(0x1);
    // Too short to hold `what`: not judged, passed on (user space sees a bad message).
    for (std::size_t n = 0; n < 40; ++n) {
        CAPTURE(n);
        CHECK(bpf_passes(exit_only, std::span{d}.first(n)));
    }
    // Holds `what`: judged.
    CHECK_FALSE(bpf_passes(exit_only, std::span{d}.first(40)));
    // An exit cut before its exit_code under a NONZERO_EXIT mask: the load
    // fails, the datagram is dropped (documented).
    auto x = proc_datagram(0x80000000u, 256);
    CHECK_FALSE(bpf_passes(event_type::nonzero_exit, std::span{x}.first(63)));
    CHECK(bpf_passes(event_type::nonzero_exit, std::span{x}.first(64)));
    CHECK(bpf_passes(event_type::exit, std::span{x}.first(40)));
}

TEST_CASE("BPF interpreter self-check") {
    // A wrong interpreter would make the tests above meaningless: check loads
    // are big-endian and out-of-range loads drop.
    const sock_filter prog[] = {
        {BPF_LD | BPF_W | BPF_ABS, 0, 0, 0},
        {BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0x01020304},
        {BPF_RET | BPF_K, 0, 0, 7},
        {BPF_RET | BPF_K, 0, 0, 9},
    };
    const std::byte be[] = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
    const std::byte le[] = {std::byte{4}, std::byte{3}, std::byte{2}, std::byte{1}};
    CHECK(run_bpf(prog, be) == 7);
    CHECK(run_bpf(prog, le) == 9);
    CHECK(run_bpf(prog, std::span{be}.first(3)) == 0);
    const sock_filter bad_jump[] = {{BPF_JMP | BPF_JA, 0, 0, 5}, {BPF_RET | BPF_K, 0, 0, 1}};
    CHECK_THROWS(run_bpf(bad_jump, be));
}
