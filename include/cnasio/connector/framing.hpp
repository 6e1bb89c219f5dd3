// cnasio/connector/framing.hpp - parse and build `nlmsghdr + cn_msg + payload` datagrams.
//
// Parsing never copies and never allocates: `datagram_reader` walks the
// messages of a received datagram and hands out `message_view`s into it.
// Every length is checked before it is used; a bad one yields its own
// `cnasio::error`, never undefined behaviour. Fields are read with memcpy, as
// a received payload is not aligned for its types.
//
// Netlink message types, deliberately:
// - NLMSG_NOOP: skipped.
// - NLMSG_ERROR: its errno becomes the message's error_code (a generic_category
//   code); an error of 0 is an acknowledgement (NLM_F_ACK), which cnasio never
//   asks for, and is skipped.
// - NLMSG_OVERRUN: reported as error::netlink_overrun.
// - NLMSG_DONE and every other type: a connector message. The kernel's connector
//   sends NLMSG_DONE and ignores the type of what it receives, so user-space
//   peers use whatever they like.
//
// Bundles: the kernel's connector sends a cn_msg and the `len` bytes its
// caller gives after it (cn_netlink_send_mult). Every caller but one gives the
// cn_msg's own data (cn_netlink_send passes msg->len), so one cn_msg fills its
// netlink message; the w1 core, asked with W1_CN_BUNDLE, packs several cn_msg
// (each with its header and len, back to back, unpadded) into one. The reader
// yields every cn_msg of a netlink message, in order, each with the netlink
// header's fields: whoever set the flag gets every part, and nobody else sees
// a difference. Bytes after the last cn_msg: fewer than 4 are alignment
// padding (samples/connector/ucon.c sizes its messages with NLMSG_SPACE) and
// are skipped; 4 to 19 form no cn_msg and give error::bundle_trailing_bytes;
// a bundled cn_msg whose len runs past the netlink message gives
// error::connector_length_beyond_message and ends that netlink message.
#pragma once

#include <cnasio/connector/message.hpp>
#include <cnasio/error.hpp>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace cnasio::connector {

namespace detail {

// Wire offsets (host byte order, as netlink is).
inline constexpr std::size_t nlmsg_len_at = 0, nlmsg_type_at = 4, nlmsg_flags_at = 6, nlmsg_seq_at = 8,
                             nlmsg_pid_at = 12;
inline constexpr std::size_t cn_idx_at = 0, cn_val_at = 4, cn_seq_at = 8, cn_ack_at = 12, cn_len_at = 16,
                             cn_flags_at = 18;

template <class T>
inline T load(const std::byte* p) noexcept {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

template <class T>
inline void store(std::byte* p, T v) noexcept {
    std::memcpy(p, &v, sizeof v);
}

constexpr std::size_t align4(std::size_t n) noexcept { return (n + 3u) & ~std::size_t{3}; }

} // namespace detail

/// Walks the netlink messages of one received datagram.
///
///     datagram_reader r(bytes, truncated);
///     message_view m; error_code ec;
///     while (r.next(m, ec)) { if (ec) count_bad(ec); else use(m); }
///
/// `next()` returns false at the end. When it returns true, either `ec` is
/// clear and `m` is a connector message, or `ec` says why this message cannot
/// be used (header fields in `m` are filled where they could be read). A
/// broken netlink length ends the walk, since nothing after it can be found;
/// a bad connector length only loses its own message (and, in a bundle, the
/// cn_msg after it in the same netlink message).
class datagram_reader {
public:
    /// `truncated`: the kernel reported MSG_TRUNC (the buffer was too small).
    explicit datagram_reader(std::span<const std::byte> datagram, bool truncated = false) noexcept
        : pos_(datagram.data()), end_(datagram.data() + datagram.size()), truncated_(truncated) {}

    bool next(message_view& m, error_code& ec) noexcept {
        if (next_whole(m)) [[likely]] {
            ec.clear();
            return true;
        }
        return next_slow(m, ec);
    }

    /// Calls `on_message(const message_view&)` for each good message and
    /// `on_error(error_code, const message_view&)` for each bad one, to the end.
    /// The fastest walk: the view handed to `on_message` is a local that
    /// nothing else can see, so the fields a caller does not read are never
    /// written.
    template <class OnMessage, class OnError>
    void for_each(OnMessage&& on_message, OnError&& on_error) {
        for (;;) {
            {
                message_view m; // never passed to next_slow(), so it need not live in memory
                if (next_whole(m)) [[likely]] {
                    on_message(static_cast<const message_view&>(m));
                    continue;
                }
            }
            message_view m;
            error_code ec;
            if (!next_slow(m, ec)) return;
            if (ec)
                on_error(ec, static_cast<const message_view&>(m));
            else
                on_message(static_cast<const message_view&>(m));
        }
    }

    /// Messages passed over on purpose (NLMSG_NOOP, NLMSG_ERROR acks).
    std::size_t skipped() const noexcept { return skipped_; }

private:
    // The common case, inlined into the caller's loop: a whole NLMSG_DONE connector message whose
    // netlink and connector lengths are both in range. Returns false, having changed nothing, for everything
    // else; next_slow() then re-reads the same message and says what is wrong with it.
    bool next_whole(message_view& m) noexcept {
        using namespace detail;
        const std::size_t rest = static_cast<std::size_t>(end_ - pos_);
        if (rest < header_size) return false;
        const std::byte* msg = pos_;
        const std::size_t len = load<std::uint32_t>(msg + nlmsg_len_at);
        const auto type = load<std::uint16_t>(msg + nlmsg_type_at);
        const std::byte* body = msg + netlink_header_size;
        const std::size_t data_len = load<std::uint16_t>(body + cn_len_at);
        // Three tests take every case: a padded message running past the
        // datagram (step > rest; the last message of a user-space datagram
        // may lack its padding: next_slow() takes it); another netlink type
        // than NLMSG_DONE, the one the kernel's connector sends and cnasio's
        // messages carry (control types, and connector messages of other
        // types, are next_slow()'s); and more than padding after the cn_msg's
        // data. That last unsigned difference also wraps, and so refuses, a
        // len below header_size and a cn_msg.len past the message; and it
        // refuses a bundle: while one is walked, pos_ stays on its netlink
        // message, so every call goes to next_slow() until the bundle ends.
        const std::size_t step = align4(len);
        if (step > rest || type != NLMSG_DONE || len - header_size - data_len > max_padding)
            return false;
        m.header.nlmsg_type = NLMSG_DONE;
        m.header.nlmsg_flags = load<std::uint16_t>(msg + nlmsg_flags_at);
        m.header.nlmsg_seq = load<std::uint32_t>(msg + nlmsg_seq_at);
        m.header.nlmsg_pid = load<std::uint32_t>(msg + nlmsg_pid_at);
        m.header.id.idx = load<std::uint32_t>(body + cn_idx_at);
        m.header.id.val = load<std::uint32_t>(body + cn_val_at);
        m.header.seq = load<std::uint32_t>(body + cn_seq_at);
        m.header.ack = load<std::uint32_t>(body + cn_ack_at);
        m.header.flags = load<std::uint16_t>(body + cn_flags_at);
        m.payload = {msg + header_size, data_len};
        pos_ += step;
        return true;
    }

    // Everything the fast path in next() does not take: the end, short or lying lengths, special
    // netlink types. Kept out of line so that next() stays small enough to inline.
    __attribute__((noinline)) bool next_slow(message_view& m, error_code& ec) noexcept {
        using namespace detail;
        ec.clear();
        if (bundle_pos_) return next_bundled(m, ec);
        for (;;) {
            const std::size_t rest = static_cast<std::size_t>(end_ - pos_);
            if (rest == 0) {
                if (truncated_) { // cut on a message boundary: still data lost
                    truncated_ = false;
                    m = {};
                    ec = error::datagram_truncated;
                    return true;
                }
                return false;
            }
            // Every field of `m` is written below before it is handed out
            // (no blanket reset: this loop runs once per received message).
            m.payload = {};
            if (rest < netlink_header_size) {
                m.header = {};
                return fail(m, ec, truncated_ ? error::datagram_truncated : error::header_truncated);
            }
            const std::byte* msg = pos_;
            const auto len = load<std::uint32_t>(msg + nlmsg_len_at);
            m.header.nlmsg_type = load<std::uint16_t>(msg + nlmsg_type_at);
            m.header.nlmsg_flags = load<std::uint16_t>(msg + nlmsg_flags_at);
            m.header.nlmsg_seq = load<std::uint32_t>(msg + nlmsg_seq_at);
            m.header.nlmsg_pid = load<std::uint32_t>(msg + nlmsg_pid_at);
            if (len < netlink_header_size) return fail(m, ec, error::length_below_header);
            if (len > rest)
                return fail(m, ec, truncated_ ? error::datagram_truncated : error::length_beyond_datagram);
            // The last message of a user-space datagram may lack its alignment padding.
            const std::size_t step = align4(len) < rest ? align4(len) : rest;
            pos_ += step;

            const std::byte* body = msg + netlink_header_size;
            const std::size_t body_len = len - netlink_header_size;
            switch (m.header.nlmsg_type) {
            case NLMSG_NOOP:
                ++skipped_;
                continue;
            case NLMSG_OVERRUN:
                clear_connector_fields(m);
                ec = error::netlink_overrun;
                return true;
            case NLMSG_ERROR: {
                clear_connector_fields(m);
                if (body_len < sizeof(std::int32_t)) {
                    ec = error::error_message_truncated;
                    return true;
                }
                const auto err = load<std::int32_t>(body);
                if (err == 0) { // an acknowledgement, see above
                    ++skipped_;
                    continue;
                }
                // The echoed request header says which message failed.
                if (body_len >= sizeof(std::int32_t) + netlink_header_size)
                    m.header.nlmsg_seq = load<std::uint32_t>(body + sizeof(std::int32_t) + nlmsg_seq_at);
                const int positive = err < 0 ? (err == INT32_MIN ? EINVAL : -err) : err;
                ec = errno_code(positive);
                return true;
            }
            default:
                break;
            }
            if (body_len < connector_header_size) {
                clear_connector_fields(m);
                ec = error::connector_header_truncated;
                return true;
            }
            m.header.id.idx = load<std::uint32_t>(body + cn_idx_at);
            m.header.id.val = load<std::uint32_t>(body + cn_val_at);
            m.header.seq = load<std::uint32_t>(body + cn_seq_at);
            m.header.ack = load<std::uint32_t>(body + cn_ack_at);
            m.header.flags = load<std::uint16_t>(body + cn_flags_at);
            const auto data_len = load<std::uint16_t>(body + cn_len_at);
            if (data_len > body_len - connector_header_size) {
                ec = error::connector_length_beyond_message;
                return true;
            }
            m.payload = {body + connector_header_size, data_len};
            if (body_len - connector_header_size - data_len > max_padding) { // more cn_msg follow: a bundle
                bundle_pos_ = body + connector_header_size + data_len;
                bundle_end_ = msg + len;
                bundle_header_ = m.header;
                bundle_next_ = pos_;
                pos_ = msg; // see next_whole(): it refuses this message until end_bundle()
            }
            return true;
        }
    }

    // The next cn_msg of a bundle, or what is wrong with the bytes left in it.
    bool next_bundled(message_view& m, error_code& ec) noexcept {
        using namespace detail;
        const std::byte* cn = bundle_pos_;
        const std::size_t rest = static_cast<std::size_t>(bundle_end_ - cn);
        m.header = bundle_header_;
        m.payload = {};
        if (rest < connector_header_size) {
            end_bundle();
            clear_connector_fields(m);
            if (rest <= max_padding) return next_slow(m, ec); // only padding was left
            ec = error::bundle_trailing_bytes;
            return true;
        }
        m.header.id.idx = load<std::uint32_t>(cn + cn_idx_at);
        m.header.id.val = load<std::uint32_t>(cn + cn_val_at);
        m.header.seq = load<std::uint32_t>(cn + cn_seq_at);
        m.header.ack = load<std::uint32_t>(cn + cn_ack_at);
        m.header.flags = load<std::uint16_t>(cn + cn_flags_at);
        const std::size_t data_len = load<std::uint16_t>(cn + cn_len_at);
        if (data_len > rest - connector_header_size) {
            end_bundle(); // nothing after it in this netlink message can be found
            ec = error::connector_length_beyond_message;
            return true;
        }
        m.payload = {cn + connector_header_size, data_len};
        if (rest - connector_header_size - data_len > max_padding)
            bundle_pos_ = cn + connector_header_size + data_len;
        else
            end_bundle();
        return true;
    }

    void end_bundle() noexcept {
        bundle_pos_ = nullptr;
        pos_ = bundle_next_;
    }

    static void clear_connector_fields(message_view& m) noexcept {
        m.header.id = {};
        m.header.seq = m.header.ack = 0;
        m.header.flags = 0;
    }

    bool fail(message_view& m, error_code& ec, error e) noexcept {
        clear_connector_fields(m);
        pos_ = end_;
        truncated_ = false; // reported now
        ec = e;
        return true;
    }

    // Bytes after a netlink message's last cn_msg that are taken for alignment padding.
    static constexpr std::size_t max_padding = 3;

    const std::byte* pos_;
    const std::byte* end_;
    const std::byte* bundle_pos_ = nullptr; // the next cn_msg of a bundle (null: none)
    const std::byte* bundle_end_ = nullptr; // the end of the bundle's netlink message
    const std::byte* bundle_next_ = nullptr; // the netlink message after the bundle's
    header bundle_header_{};                // the bundle's netlink fields
    bool truncated_;
    std::size_t skipped_ = 0;
};

/// Calls `on_message(const message_view&)` for each good message and
/// `on_error(error_code, const message_view&)` for each bad one.
template <class OnMessage, class OnError>
void for_each_message(std::span<const std::byte> datagram, bool truncated, OnMessage&& on_message,
                      OnError&& on_error) {
    datagram_reader(datagram, truncated).for_each(on_message, on_error);
}

/// Parses a datagram expected to hold exactly one connector message.
inline error_code parse_message(std::span<const std::byte> datagram, message_view& m) noexcept {
    datagram_reader r(datagram);
    error_code ec;
    if (!r.next(m, ec)) return error::header_truncated; // empty, or only skipped messages
    return ec;
}

/// Size of the datagram holding one message with `payload_size` bytes of data.
constexpr std::size_t datagram_size(std::size_t payload_size) noexcept { return header_size + payload_size; }

/// Writes `nlmsghdr + cn_msg + payload` at the start of `out` and returns the
/// bytes written (`nlmsg_len`, not rounded up, as user-space senders do).
/// Fails with payload_too_large above CONNECTOR_MAX_MSG_SIZE and buffer_too_small
/// when `out` cannot hold it; writes nothing then.
inline std::size_t build_datagram(std::span<std::byte> out, const header& h, std::span<const std::byte> payload,
                                  error_code& ec) noexcept {
    using namespace detail;
    ec.clear();
    if (payload.size() > max_payload) {
        ec = error::payload_too_large;
        return 0;
    }
    const std::size_t total = datagram_size(payload.size());
    if (out.size() < total) {
        ec = error::buffer_too_small;
        return 0;
    }
    std::byte* p = out.data();
    store(p + nlmsg_len_at, static_cast<std::uint32_t>(total));
    store(p + nlmsg_type_at, h.nlmsg_type);
    store(p + nlmsg_flags_at, h.nlmsg_flags);
    store(p + nlmsg_seq_at, h.nlmsg_seq);
    store(p + nlmsg_pid_at, h.nlmsg_pid);
    std::byte* cn = p + netlink_header_size;
    store(cn + cn_idx_at, h.id.idx);
    store(cn + cn_val_at, h.id.val);
    store(cn + cn_seq_at, h.seq);
    store(cn + cn_ack_at, h.ack);
    store(cn + cn_len_at, static_cast<std::uint16_t>(payload.size()));
    store(cn + cn_flags_at, h.flags);
    if (!payload.empty()) std::memcpy(cn + connector_header_size, payload.data(), payload.size());
    return total;
}

/// The same into a new vector (for callers that want an owning datagram).
inline std::vector<std::byte> build_datagram(const header& h, std::span<const std::byte> payload, error_code& ec) {
    std::vector<std::byte> out(payload.size() > max_payload ? 0 : datagram_size(payload.size()));
    const std::size_t n = build_datagram(out, h, payload, ec);
    out.resize(n);
    return out;
}

} // namespace cnasio::connector
