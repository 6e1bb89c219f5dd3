// Harness self-test: a guest program that fails. The suite asserts that the
// harness reports this run as failed (the verdict cannot be faked by the
// other programs passing, nor by qemu's own exit status).
#include <cstdio>

int main()
{
    std::puts("selftest_exit_nonzero: failing on purpose");
    return 1;
}
