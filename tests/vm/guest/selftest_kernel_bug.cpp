// Harness self-test: exits 0 but leaves a "BUG:" line in the kernel log, as a
// module bug would. The harness must fail the run from its dmesg check alone.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

int main()
{
    int fd = ::open("/dev/kmsg", O_WRONLY);
    if (fd < 0) {
        std::perror("open /dev/kmsg");
        return 0;  // the harness then sees no failure, and the self-test fails
    }
    const char line[] = "<4>BUG: cnasio harness self-test, not a real kernel bug\n";
    if (::write(fd, line, std::strlen(line)) < 0)
        std::perror("write /dev/kmsg");
    ::close(fd);
    std::puts("selftest_kernel_bug: wrote a BUG line to the kernel log, exiting 0");
    return 0;
}
