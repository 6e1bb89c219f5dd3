// Harness self-test: never finishes. Run with the per-program timeout off,
// the harness's hard timeout must end qemu and fail the run.
#include <cstdio>
#include <unistd.h>

int main()
{
    std::puts("selftest_hang: sleeping forever");
    std::fflush(stdout);
    for (;;)
        ::pause();
}
