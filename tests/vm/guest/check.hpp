// Minimal assertions for the guest programs: they run alone in a booted VM,
// print one line per failure and exit non-zero if anything failed.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace guest {

inline int& failures()
{
    static int count = 0;
    return count;
}

inline bool check(bool ok, const char* expr, const char* file, int line)
{
    if (!ok) {
        ++failures();
        std::printf("CHECK FAILED %s:%d: %s\n", file, line, expr);
        std::fflush(stdout);
    }
    return ok;
}

// Exit status for the guest's /init: 0 pass, 1 fail.
inline int finish(const char* name)
{
    std::printf("%s: %s (%d failure%s)\n", name, failures() ? "FAIL" : "PASS", failures(),
                failures() == 1 ? "" : "s");
    std::fflush(stdout);
    return failures() ? 1 : 0;
}

} // namespace guest

#define CHECK(expr) ::guest::check(static_cast<bool>(expr), #expr, __FILE__, __LINE__)
// For checks whose failure makes the rest of the program meaningless.
#define REQUIRE(expr)                                                                            \
    do {                                                                                         \
        if (!CHECK(expr))                                                                        \
            std::exit(1);                                                                        \
    } while (0)
