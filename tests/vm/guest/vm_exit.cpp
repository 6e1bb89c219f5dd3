// vm-exit pass|fail: ends the virtual machine with a status the host sees as
// qemu's exit status: 33 for pass, 35 for fail on every architecture. qemu
// exits 0 on an ordinary poweroff and on a kernel panic alike, so the harness
// needs a channel the guest must deliberately use, and values 0 and 1 (which
// qemu also uses for its own errors) are avoided.
//   x86-64:  isa-debug-exit at I/O port 0xf4; qemu exits (byte << 1) | 1,
//            so the guest writes 16 or 17.
//   aarch64: semihosting SYS_EXIT with ADP_Stopped_ApplicationExit and the
//            status itself (qemu needs -semihosting-config ...,userspace=on).
#include <cstdint>
#include <cstdio>
#include <cstring>

#if defined(__x86_64__)
#include <sys/io.h>
#endif

int main(int argc, char** argv)
{
    if (argc != 2 || (std::strcmp(argv[1], "pass") != 0 && std::strcmp(argv[1], "fail") != 0)) {
        std::fprintf(stderr, "usage: vm-exit pass|fail\n");
        return 2;
    }
    const bool pass = std::strcmp(argv[1], "pass") == 0;
    const std::uint8_t status = pass ? 33 : 35;
#if defined(__x86_64__)
    if (ioperm(0xf4, 4, 1) != 0) {
        std::perror("ioperm(0xf4)");
        return 1;
    }
    outb(static_cast<unsigned char>(status >> 1), 0xf4);
#elif defined(__aarch64__)
    // SYS_EXIT (0x18) takes a pointer to {reason, subcode} on AArch64.
    volatile std::uint64_t block[2] = {0x20026, status};
    register std::uint64_t x0 asm("x0") = 0x18;
    register volatile std::uint64_t* x1 asm("x1") = block;
    asm volatile("hlt #0xf000" : "+r"(x0) : "r"(x1) : "memory");
#else
#error "vm-exit: no exit channel for this architecture"
#endif
    std::fprintf(stderr, "vm-exit: the machine is still running\n");
    return 1;
}
