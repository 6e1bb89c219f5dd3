// The running kernel's version, for tests whose expectations changed with it
// (the proc connector's per-socket filter arrived in 6.6).
#pragma once

#include <cstdio>

#include <sys/utsname.h>

namespace cnasio::test {

inline bool kernel_at_least(int major, int minor) {
    utsname u{};
    ::uname(&u);
    int ma = 0, mi = 0;
    std::sscanf(u.release, "%d.%d", &ma, &mi);
    return ma > major || (ma == major && mi >= minor);
}

} // namespace cnasio::test
