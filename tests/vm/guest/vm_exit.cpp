// vm-exit STATUS: ends the virtual machine with a status the host sees as
// qemu's exit status. qemu exits 0 on an ordinary poweroff and on a kernel
// panic alike, so the harness needs a channel the guest must deliberately use.
//   x86-64:  isa-debug-exit at I/O port 0xf4; qemu exits (STATUS << 1) | 1.
//   aarch64: semihosting SYS_EXIT with ADP_Stopped_ApplicationExit; qemu exits STATUS.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#if defined(__x86_64__)
#include <sys/io.h>
#endif

int main(int argc, char** argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: vm-exit STATUS\n");
        return 2;
    }
    auto status = static_cast<std::uint8_t>(std::strtoul(argv[1], nullptr, 0));
#if defined(__x86_64__)
    if (ioperm(0xf4, 4, 1) != 0) {
        std::perror("ioperm(0xf4)");
        return 1;
    }
    outb(status, 0xf4);
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
