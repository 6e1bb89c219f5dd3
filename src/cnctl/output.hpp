// Standard output with every write checked.
#pragma once

#include "exit_status.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

namespace cnctl {

/// Writes to stdout through stdio's buffer and remembers the first failure.
/// A command stops writing once write() or flush() returns false, and ends
/// with finish().
class output {
public:
    /// False if this or an earlier write or flush failed.
    bool write(std::string_view s) {
        if (error_ == 0 && std::fwrite(s.data(), 1, s.size(), stdout) != s.size()) record();
        return error_ == 0;
    }
    /// Hands what is buffered to the kernel; false if this or an earlier write failed.
    bool flush() {
        if (error_ == 0 && std::fflush(stdout) != 0) record();
        return error_ == 0;
    }
    /// Flushes and returns the command's exit status: `rc` if everything was
    /// written or the reader went away (EPIPE: a closed pipe ends cnctl quietly);
    /// otherwise exit_runtime, with "cnctl: writing to standard output: REASON"
    /// on stderr.
    int finish(int rc) {
        flush();
        if (error_ == 0 || error_ == EPIPE) return rc;
        std::fprintf(stderr, "cnctl: writing to standard output: %s\n", std::strerror(error_));
        return exit_runtime;
    }

private:
    void record() { error_ = errno != 0 ? errno : EIO; }
    int error_ = 0;
};

} // namespace cnctl
