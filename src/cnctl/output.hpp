// Standard output with every write checked.
#pragma once

#include "exit_status.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include <unistd.h>

namespace cnctl {

/// Writes to stdout (fd 1) through its own buffer and remembers the first
/// failure. A command stops writing once write() or flush() returns false, and
/// ends with finish().
///
/// Not stdio: a signal handler (SIGINT/SIGTERM, which Asio's signal_set
/// installs without SA_RESTART) can interrupt a write() to a full pipe with
/// EINTR, and glibc's stdio then drops the unwritten part of its buffer. Here
/// an interrupted write() is retried and a short one continued.
class output {
public:
    /// False if this or an earlier write or flush failed.
    bool write(std::string_view s) {
        if (error_ != 0) return false;
        buffer_.append(s);
        if (buffer_.size() >= flush_at) return flush();
        return true;
    }
    /// Hands what is buffered to the kernel; false if this or an earlier write failed.
    bool flush() {
        std::size_t done = 0;
        while (error_ == 0 && done < buffer_.size()) {
            const auto n = ::write(STDOUT_FILENO, buffer_.data() + done, buffer_.size() - done);
            if (n >= 0)
                done += static_cast<std::size_t>(n);
            else if (errno != EINTR)
                error_ = errno != 0 ? errno : EIO;
        }
        buffer_.clear();
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
    static constexpr std::size_t flush_at = 64 * 1024;
    std::string buffer_;
    int error_ = 0;
};

} // namespace cnctl
