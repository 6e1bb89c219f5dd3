// cnasio/netlink/netns.hpp - open a socket inside another network namespace.
//
// The kernel connector exists in the initial network namespace only: from a
// container's own namespace every send to it fails with ECONNREFUSED. A socket
// keeps the namespace it was created in, so the remedy is to enter the initial
// namespace on this thread just long enough to create the socket.
#pragma once

#include <cnasio/error.hpp>

#include <cerrno>
#include <string>
#include <utility>

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

namespace cnasio::netlink {

namespace detail {

/// Owns a file descriptor (-1: none) and closes it once: move-only, so no
/// two owners can close the same descriptor.
struct fd_guard {
    int fd = -1;

    fd_guard() = default;
    explicit fd_guard(int f) noexcept : fd(f) {}
    fd_guard(fd_guard&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
    fd_guard& operator=(fd_guard&& o) noexcept {
        if (this != &o) {
            reset();
            fd = std::exchange(o.fd, -1);
        }
        return *this;
    }
    ~fd_guard() { reset(); }

    bool owns() const noexcept { return fd >= 0; }
    /// Gives the descriptor up without closing it.
    int release() noexcept { return std::exchange(fd, -1); }
    void reset() noexcept {
        if (fd >= 0) ::close(std::exchange(fd, -1));
    }
};

} // namespace detail

/// Calls `open_socket(error_code&)` with the calling thread inside the network
/// namespace named by `netns_path` (e.g. "/proc/1/ns/net", or a file under
/// /run/netns), then returns the thread to its own namespace. An empty path
/// just calls `open_socket`. Needs CAP_SYS_ADMIN in the target's user
/// namespace; errors are the errno of open(2)/setns(2).
template <class OpenSocket>
void with_netns(const std::string& netns_path, OpenSocket&& open_socket, error_code& ec) {
    ec.clear();
    if (netns_path.empty()) {
        open_socket(ec);
        return;
    }
    detail::fd_guard target{::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (target.fd < 0) {
        ec = errno_code(errno);
        return;
    }
    detail::fd_guard home{::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)};
    if (home.fd < 0) {
        ec = errno_code(errno);
        return;
    }
    if (::setns(target.fd, CLONE_NEWNET) != 0) {
        ec = errno_code(errno);
        return;
    }
    open_socket(ec);
    // Going back cannot fail for a namespace we were in a moment ago, short of
    // the thread losing privileges in between; if it does, say so loudly.
    if (::setns(home.fd, CLONE_NEWNET) != 0 && !ec) ec = errno_code(errno);
}

} // namespace cnasio::netlink
