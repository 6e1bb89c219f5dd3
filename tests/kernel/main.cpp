// Kernel-suite main: skip (exit 77, Meson's "skipped") with the reason when not
// root, since joining connector groups and forging peers need CAP_NET_ADMIN.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <unistd.h>

int main(int argc, char** argv) {
    if (::geteuid() != 0) {
        std::fprintf(stderr, "SKIP: the kernel suite needs root (CAP_NET_ADMIN) to join connector groups "
                             "and to run user-space peers; run it as root\n");
        return 77;
    }
    doctest::Context ctx(argc, argv);
    return ctx.run();
}
