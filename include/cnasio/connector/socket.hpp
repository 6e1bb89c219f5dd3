// cnasio/connector/socket.hpp - a NETLINK_CONNECTOR socket that sends and receives connector messages.
//
// A thin layer over `netlink::socket`: it frames outgoing messages, receives
// whole datagrams with recvmsg(2) (so MSG_TRUNC and the sender's address are
// seen), and maps the errnos that mean something specific for the connector
// onto cnasio errors:
// - socket(): EPROTONOSUPPORT -> error::connector_unsupported (no CONFIG_CONNECTOR)
// - send to the kernel: ECONNREFUSED -> error::connector_unreachable (wrong network namespace)
// - receive: ENOBUFS -> error::overrun (the socket stays usable; messages were lost)
//
// Asynchronous operations take any completion token and honour per-operation
// cancellation (terminal, partial and total: they only ever wait in the
// reactor). One send and one receive may be outstanding at a time.
#pragma once

#include <cnasio/connector/framing.hpp>
#include <cnasio/connector/message.hpp>
#include <cnasio/error.hpp>
#include <cnasio/netlink/netns.hpp>
#include <cnasio/netlink/options.hpp>
#include <cnasio/netlink/protocol.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <sys/socket.h>
#include <unistd.h>

namespace cnasio::connector {

/// One received datagram: where it came from and its bytes (inside the
/// caller's buffer, valid until the next receive into it).
struct received_datagram {
    netlink::endpoint sender;          ///< port id 0 = the kernel; groups != 0 = a multicast
    std::span<const std::byte> bytes;
    bool truncated = false;            ///< MSG_TRUNC: the buffer was too small

    std::uint32_t port_id() const noexcept { return sender.port_id(); }
    /// The multicast group it came through, 0 for a unicast.
    unsigned group() const noexcept { return sender.group(); }
    datagram_reader reader() const noexcept { return datagram_reader(bytes, truncated); }
};

/// Recommended receive buffer: the largest conforming datagram, rounded up.
inline constexpr std::size_t receive_buffer_size = 20 * 1024;

/// Maps errno after a failed socket() call on a netlink family.
inline error_code socket_open_error(int err) noexcept {
    return err == EPROTONOSUPPORT ? make_error_code(error::connector_unsupported) : errno_code(err);
}

namespace detail {

// Calls `f` (a system call returning -1 and errno on failure) again while it
// fails with EINTR.
template <class F>
auto retry_eintr(F&& f) noexcept {
    for (;;) {
        const auto r = f();
        if (r >= 0 || errno != EINTR) return r;
    }
}

// The error_code of a failed receive's errno: none for EAGAIN (nothing queued),
// error::overrun for ENOBUFS (messages were lost; the socket stays usable).
inline error_code receive_error(int err) noexcept {
    if (err == EAGAIN || err == EWOULDBLOCK) return {};
    return err == ENOBUFS ? make_error_code(error::overrun) : errno_code(err);
}

} // namespace detail

/// Receives one datagram without blocking. Returns false (and no error) when
/// nothing is queued. ENOBUFS (an overrun) is reported as error::overrun.
inline bool try_receive(int fd, std::span<std::byte> buffer, received_datagram& out, error_code& ec) noexcept {
    ec.clear();
    ::sockaddr_nl from{};
    ::iovec iov{buffer.data(), buffer.size()};
    ::msghdr mh{};
    mh.msg_name = &from;
    mh.msg_namelen = sizeof from;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    const ssize_t n = detail::retry_eintr([&] { return ::recvmsg(fd, &mh, MSG_DONTWAIT); });
    if (n < 0) {
        ec = detail::receive_error(errno);
        return static_cast<bool>(ec);
    }
    out.sender = netlink::endpoint(from.nl_pid, from.nl_groups);
    const auto len = static_cast<std::size_t>(n) < buffer.size() ? static_cast<std::size_t>(n) : buffer.size();
    out.bytes = {buffer.data(), len};
    out.truncated = (mh.msg_flags & MSG_TRUNC) != 0;
    return true;
}

namespace detail {

// What recvmmsg() wrote for one datagram, as a received_datagram over `slot`.
inline received_datagram to_received(const ::mmsghdr& m, const ::sockaddr_nl& from, std::byte* slot,
                                     std::size_t slot_size) noexcept {
    received_datagram d;
    d.sender = netlink::endpoint(from.nl_pid, from.nl_groups);
    d.bytes = {slot, m.msg_len < slot_size ? m.msg_len : slot_size};
    d.truncated = (m.msg_hdr.msg_flags & MSG_TRUNC) != 0;
    return d;
}

// recvmmsg(MSG_DONTWAIT): how many were read, 0 with `ec` clear when none is
// queued, 0 and error::overrun for a pending ENOBUFS.
inline std::size_t receive_mmsg(int fd, ::mmsghdr* msgs, std::size_t n, error_code& ec) noexcept {
    ec.clear();
    const int got = retry_eintr([&] { return ::recvmmsg(fd, msgs, static_cast<unsigned>(n), MSG_DONTWAIT, nullptr); });
    if (got >= 0) return static_cast<std::size_t>(got);
    ec = receive_error(errno);
    return 0;
}

} // namespace detail

/// Receives up to `out.size()` queued datagrams with one recvmmsg() call,
/// without waiting. Datagram i lands in `buffer[i * slot_size, (i + 1) *
/// slot_size)` (use receive_buffer_size slots). Returns how many were read: 0
/// with `ec` clear when none is queued. ENOBUFS before the first datagram gives
/// 0 and error::overrun; after some, the kernel reports it on the next call.
/// One system call for a burst instead of one per datagram.
inline std::size_t try_receive_many(int fd, std::span<std::byte> buffer, std::size_t slot_size,
                                    std::span<received_datagram> out, error_code& ec) noexcept {
    ec.clear();
    constexpr std::size_t max_batch = 64;
    std::size_t want = out.size() < max_batch ? out.size() : max_batch;
    if (slot_size != 0 && want > buffer.size() / slot_size) want = buffer.size() / slot_size;
    if (want == 0) return 0;
    ::mmsghdr msgs[max_batch];
    ::iovec iov[max_batch];
    ::sockaddr_nl from[max_batch];
    for (std::size_t i = 0; i < want; ++i) {
        iov[i] = {buffer.data() + i * slot_size, slot_size};
        from[i] = {};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_name = &from[i];
        msgs[i].msg_hdr.msg_namelen = sizeof from[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    const std::size_t n = detail::receive_mmsg(fd, msgs, want, ec);
    for (std::size_t i = 0; i < n; ++i)
        out[i] = detail::to_received(msgs[i], from[i], buffer.data() + i * slot_size, slot_size);
    return n;
}

/// try_receive_many() with its state kept between calls, for a receive loop:
/// `Slots` buffers of receive_buffer_size bytes and their recvmmsg() headers
/// are set up once, and a call resets only the headers the previous call used,
/// so a wake-up that finds three datagrams costs three headers, not `Slots`.
/// The slots are one allocation that the kernel maps in lazily: a 100-byte
/// datagram touches one page of its 20 KiB slot. Neither copyable nor movable
/// (the headers point into it).
template <std::size_t Slots>
class receive_batch {
public:
    static constexpr std::size_t capacity = Slots;

    receive_batch() : slots_(new std::byte[Slots * receive_buffer_size]) {
        for (std::size_t i = 0; i < Slots; ++i) {
            iov_[i] = {slots_.get() + i * receive_buffer_size, receive_buffer_size};
            msgs_[i] = {};
            msgs_[i].msg_hdr.msg_name = &from_[i];
            msgs_[i].msg_hdr.msg_namelen = sizeof(::sockaddr_nl);
            msgs_[i].msg_hdr.msg_iov = &iov_[i];
            msgs_[i].msg_hdr.msg_iovlen = 1;
        }
    }
    receive_batch(const receive_batch&) = delete;
    receive_batch& operator=(const receive_batch&) = delete;

    /// Reads up to `max` (at most Slots) queued datagrams with one recvmmsg(),
    /// without waiting; results as try_receive_many(). They stay valid until
    /// the next call.
    std::size_t receive_many(int fd, std::size_t max, error_code& ec) noexcept {
        if (max > Slots) max = Slots;
        // Of the inputs, the kernel rewrites only msg_namelen, and only for what it filled.
        for (std::size_t i = 0; i < used_; ++i) msgs_[i].msg_hdr.msg_namelen = sizeof(::sockaddr_nl);
        used_ = 0;
        const std::size_t n = detail::receive_mmsg(fd, msgs_.data(), max, ec);
        for (std::size_t i = 0; i < n; ++i)
            out_[i] = detail::to_received(msgs_[i], from_[i], slots_.get() + i * receive_buffer_size,
                                          receive_buffer_size);
        used_ = n;
        return n;
    }

    /// Reads one queued datagram into slot 0 with recvfrom(), the kernel's
    /// lightest receive (no msghdr or iovec to copy in): for a read right
    /// after a request's sendto(). MSG_TRUNC makes it return the datagram's
    /// real length, so truncation is still seen. Returns 0 or 1, as receive_many.
    std::size_t receive_one(int fd, error_code& ec) noexcept {
        ec.clear();
        socklen_t len = sizeof(::sockaddr_nl);
        const ssize_t n = detail::retry_eintr([&] {
            return ::recvfrom(fd, slots_.get(), receive_buffer_size, MSG_DONTWAIT | MSG_TRUNC,
                              reinterpret_cast<::sockaddr*>(&from_[0]), &len);
        });
        if (n < 0) {
            ec = detail::receive_error(errno);
            return 0;
        }
        const auto got = static_cast<std::size_t>(n);
        out_[0].sender = netlink::endpoint(from_[0].nl_pid, from_[0].nl_groups);
        out_[0].bytes = {slots_.get(), got < receive_buffer_size ? got : receive_buffer_size};
        out_[0].truncated = got > receive_buffer_size;
        return 1;
    }

    /// Datagram i of the last receive.
    const received_datagram& operator[](std::size_t i) const noexcept { return out_[i]; }
    /// The first `n` datagrams of the last receive (n: what it returned).
    std::span<const received_datagram> first(std::size_t n) const noexcept { return {out_.data(), n}; }

private:
    std::unique_ptr<std::byte[]> slots_;
    std::array<::mmsghdr, Slots> msgs_{};
    std::array<::iovec, Slots> iov_{};
    std::array<::sockaddr_nl, Slots> from_{};
    std::array<received_datagram, Slots> out_{};
    std::size_t used_ = 0;
};

/// Sends one datagram without blocking. Returns false (and no error) when the
/// destination's queue is full (EAGAIN).
inline bool try_send(int fd, std::span<const std::byte> datagram, const netlink::endpoint& to,
                     error_code& ec) noexcept {
    ec.clear();
    const ssize_t n = detail::retry_eintr([&] {
        return ::sendto(fd, datagram.data(), datagram.size(), MSG_DONTWAIT, to.data(), static_cast<socklen_t>(to.size()));
    });
    if (n >= 0) return true;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
    ec = (errno == ECONNREFUSED && to.port_id() == 0 && to.groups() == 0) ? make_error_code(error::connector_unreachable)
                                                                           : errno_code(errno);
    return true;
}

/// A connector socket: NETLINK_CONNECTOR (or another family with connector
/// framing) bound to a port id and optionally multicast groups.
class socket {
public:
    using executor_type = boost::asio::any_io_executor;

    explicit socket(const executor_type& ex) : sock_(ex) {}

    // Moves hand over both the Asio socket and, after leave_reactor(), the
    // descriptor (fd_ is move-only and closes it once).
    socket(socket&&) noexcept = default;
    socket& operator=(socket&&) noexcept = default;
    ~socket() = default;

    executor_type get_executor() noexcept { return sock_.get_executor(); }
    /// The Asio socket; closed once leave_reactor() took the descriptor.
    netlink::socket& next_layer() noexcept { return sock_; }
    int native_handle() noexcept { return fd_.owns() ? fd_.fd : sock_.native_handle(); }
    bool is_open() const noexcept { return fd_.owns() || sock_.is_open(); }

    /// Takes the open socket out of its executor's reactor (EPOLL_CTL_DEL) and
    /// keeps the descriptor here. Why: Asio's reactor keeps a socket in its
    /// epoll set for the socket's whole life, and while a socket is in any
    /// epoll set, every datagram queued to it runs the epoll wake-up callback
    /// inside the sender's system call (sock_def_readable), whether or not
    /// anyone waits. Out of every set, a queued datagram costs the sender only
    /// the queueing. The owner then waits for readiness itself, in an epoll
    /// set of its own that holds the socket only while it waits (the client
    /// does: client_state::arm_read). Afterwards the calls that do not wait
    /// work as before (send, try_send, the receives without async_, join,
    /// leave, set_option, get_option, native_handle, close); async_send and
    /// async_receive complete with bad_descriptor.
    void leave_reactor(error_code& ec) {
        ec.clear();
        if (fd_.owns()) return;
        const int fd = sock_.release(ec);
        if (!ec) fd_ = netlink::detail::fd_guard(fd);
    }

    /// Sets or reads a socket option (the Asio option types of
    /// netlink/options.hpp and boost::asio::socket_base), also after leave_reactor().
    template <class Option>
    void set_option(const Option& o, error_code& ec) {
        if (!fd_.owns()) return void(sock_.set_option(o, ec));
        ec.clear();
        if (::setsockopt(fd_.fd, o.level(protocol_), o.name(protocol_), o.data(protocol_),
                         static_cast<socklen_t>(o.size(protocol_))) != 0)
            ec = errno_code(errno);
    }
    template <class Option>
    void get_option(Option& o, error_code& ec) {
        if (!fd_.owns()) return void(sock_.get_option(o, ec));
        ec.clear();
        auto len = static_cast<socklen_t>(o.size(protocol_));
        if (::getsockopt(fd_.fd, o.level(protocol_), o.name(protocol_), o.data(protocol_), &len) != 0)
            ec = errno_code(errno);
        else
            o.resize(protocol_, len);
    }

    /// Opens the socket, inside the network namespace `netns_path` if given
    /// (see netlink/netns.hpp), and binds it: port id 0 lets the kernel pick
    /// one; `groups` is a bit mask of groups 1..32 to join at once.
    void open(error_code& ec, std::uint32_t groups = 0, const std::string& netns_path = {},
              netlink::protocol p = netlink::protocol::connector()) {
        netlink::with_netns(
            netns_path,
            [&](error_code& e) {
                sock_.open(p, e);
                if (e == boost::system::errc::protocol_not_supported)
                    e = socket_open_error(EPROTONOSUPPORT);
            },
            ec);
        if (ec) return;
        sock_.non_blocking(true, ec);
        if (!ec) sock_.bind(netlink::endpoint(p, 0, groups), ec);
        if (!ec) port_id_ = sock_.local_endpoint(ec).port_id();
        if (!ec) protocol_ = p;
        if (ec) {
            error_code ignored;
            sock_.close(ignored);
        }
    }
    void open(std::uint32_t groups = 0) {
        error_code ec;
        open(ec, groups);
        if (ec) throw boost::system::system_error(ec, "cnasio: opening the connector socket");
    }

    /// The port id the kernel gave this socket (its address for unicasts).
    std::uint32_t port_id() const noexcept { return port_id_; }

    /// Joins a multicast group by number (NETLINK_ADD_MEMBERSHIP).
    void join(unsigned group, error_code& ec) { set_option(netlink::add_membership(static_cast<int>(group)), ec); }
    /// Leaves a multicast group (NETLINK_DROP_MEMBERSHIP).
    void leave(unsigned group, error_code& ec) { set_option(netlink::drop_membership(static_cast<int>(group)), ec); }

    void close(error_code& ec) {
        ec.clear();
        if (fd_.owns() && ::close(fd_.release()) != 0 && errno != EINTR) ec = errno_code(errno);
        if (sock_.is_open()) sock_.close(ec);
    }
    void close() {
        error_code ec;
        close(ec);
    }
    /// Cancels outstanding asynchronous operations (they complete with operation_aborted).
    void cancel() {
        error_code ec;
        sock_.cancel(ec);
    }

    // ---- sending ----

    /// Sends one message, now, without blocking. `to` is the kernel by default.
    void send(const header& h, std::span<const std::byte> payload, error_code& ec,
              const netlink::endpoint& to = netlink::endpoint::kernel()) {
        const std::size_t n = build_datagram(send_buffer(payload.size()), h, payload, ec);
        if (ec) return;
        if (!connector::try_send(native_handle(), {send_buf_.data(), n}, to, ec) && !ec)
            ec = boost::asio::error::would_block;
    }

    /// Sends one framed datagram, now, without blocking: false (and no error)
    /// when the destination's queue is full.
    bool try_send(std::span<const std::byte> datagram, const netlink::endpoint& to, error_code& ec) noexcept {
        return connector::try_send(native_handle(), datagram, to, ec);
    }

    /// Sends one message, waiting for room if the destination's queue is full.
    /// Completion signature: void(error_code). The message is framed into the
    /// socket's own buffer before this returns, so `payload` need not outlive it.
    template <class CompletionToken>
    auto async_send(const header& h, std::span<const std::byte> payload, const netlink::endpoint& to,
                    CompletionToken&& token) {
        error_code ec;
        const std::size_t n = build_datagram(send_buffer(payload.size()), h, payload, ec);
        return boost::asio::async_compose<CompletionToken, void(error_code)>(
            send_op{this, ec, n, to, false}, token, sock_);
    }
    template <class CompletionToken>
    auto async_send(const header& h, std::span<const std::byte> payload, CompletionToken&& token) {
        return async_send(h, payload, netlink::endpoint::kernel(), std::forward<CompletionToken>(token));
    }

    // ---- receiving ----

    /// Receives one datagram without blocking; false when none is queued.
    bool try_receive(std::span<std::byte> buffer, received_datagram& out, error_code& ec) noexcept {
        return connector::try_receive(native_handle(), buffer, out, ec);
    }

    /// Reads up to `max` queued datagrams into `batch` with one recvmmsg(),
    /// without waiting (see receive_batch::receive_many).
    template <std::size_t Slots>
    std::size_t receive_many(receive_batch<Slots>& batch, std::size_t max, error_code& ec) noexcept {
        return batch.receive_many(native_handle(), max, ec);
    }
    /// Reads one queued datagram into `batch`'s first slot with recvfrom(),
    /// without waiting (see receive_batch::receive_one).
    template <std::size_t Slots>
    std::size_t receive_one(receive_batch<Slots>& batch, error_code& ec) noexcept {
        return batch.receive_one(native_handle(), ec);
    }

    /// Receives one datagram into `buffer` (use receive_buffer_size bytes).
    /// Completion signature: void(error_code, received_datagram). Walk the
    /// result with `reader()`; check `port_id()` before trusting it (only
    /// port id 0 is the kernel). ENOBUFS completes with error::overrun.
    template <class CompletionToken>
    auto async_receive(std::span<std::byte> buffer, CompletionToken&& token) {
        return boost::asio::async_compose<CompletionToken, void(error_code, received_datagram)>(
            receive_op{this, buffer, false}, token, sock_);
    }

private:
    std::span<std::byte> send_buffer(std::size_t payload_size) {
        const std::size_t need = datagram_size(payload_size > max_payload ? 0 : payload_size);
        if (send_buf_.size() < need) send_buf_.resize(need);
        return send_buf_;
    }

    struct send_op {
        socket* self_;
        error_code ec_;
        std::size_t size_;
        netlink::endpoint to_;
        bool done_;
        bool started_ = false;

        template <class Self>
        void operator()(Self& self, error_code wait_ec = {}) {
            if (done_) return self.complete(ec_);
            if (wait_ec) return self.complete(wait_ec);
            const bool first = !started_;
            started_ = true;
            if (ec_ || connector::try_send(self_->native_handle(), {self_->send_buf_.data(), size_}, to_, ec_) || ec_) {
                done_ = true;
                // Never complete inside the initiating function.
                if (first) return boost::asio::post(self_->sock_.get_executor(), std::move(self));
                return self.complete(ec_);
            }
            self_->sock_.async_wait(netlink::socket::wait_write, std::move(self));
        }
    };

    // Asio's own receive operation, not async_wait + recvmsg: it reads
    // speculatively and so cannot miss an edge-triggered readiness that
    // another thread's reactor run consumed. MSG_TRUNC makes recvfrom return a
    // datagram's full length, which tells a truncated one.
    struct receive_op {
        socket* self_;
        std::span<std::byte> buffer_;
        bool started_;

        template <class Self>
        void operator()(Self& self, error_code ec = {}, std::size_t n = 0) {
            if (!started_) {
                started_ = true;
                self_->sock_.async_receive_from(boost::asio::buffer(buffer_.data(), buffer_.size()), self_->from_,
                                                MSG_TRUNC, std::move(self));
                return;
            }
            received_datagram r;
            if (ec && ec.category() == boost::system::system_category()) {
                if (const auto mapped = detail::receive_error(ec.value()); mapped == error::overrun) ec = mapped;
            }
            if (!ec) {
                r.sender = self_->from_;
                r.bytes = buffer_.first(n < buffer_.size() ? n : buffer_.size());
                r.truncated = n > buffer_.size();
            }
            self.complete(ec, r);
        }
    };

    netlink::socket sock_;
    std::vector<std::byte> send_buf_;
    netlink::endpoint from_;
    std::uint32_t port_id_ = 0;
    netlink::protocol protocol_ = netlink::protocol::connector();
    netlink::detail::fd_guard fd_; // the descriptor after leave_reactor(); none while sock_ holds it
};

} // namespace cnasio::connector
