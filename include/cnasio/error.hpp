// cnasio/error.hpp - the library's error codes and their category.
//
// Every failure cnasio detects itself has an enumerator here. Errors the kernel
// reports (an errno from a syscall, the negative errno of an NLMSG_ERROR, the
// positive errno in a proc-connector ack) are `generic_category()` codes, so
// they compare equal to `std::errc` / `boost::system::errc` values.
#pragma once

#include <boost/system/error_code.hpp>

#include <string>
#include <type_traits>

namespace cnasio {

using error_code = boost::system::error_code;

enum class error {
    // framing: a received datagram that cannot be trusted
    datagram_truncated = 1,          ///< the datagram was longer than the receive buffer (MSG_TRUNC)
    header_truncated,                ///< fewer bytes left than one nlmsghdr
    length_below_header,             ///< nlmsg_len smaller than an nlmsghdr
    length_beyond_datagram,          ///< nlmsg_len runs past the end of the datagram
    connector_header_truncated,      ///< the netlink payload is shorter than a cn_msg
    connector_length_beyond_message, ///< cn_msg.len runs past the end of its netlink message
    error_message_truncated,         ///< an NLMSG_ERROR too short to hold its errno
    netlink_overrun,                 ///< the sender marked the message NLMSG_OVERRUN (data lost)

    // building
    payload_too_large,               ///< payload above CONNECTOR_MAX_MSG_SIZE (16384)
    buffer_too_small,                ///< the caller's buffer cannot hold the datagram

    // transport
    connector_unsupported,           ///< socket() gave EPROTONOSUPPORT: kernel lacks CONFIG_CONNECTOR
    connector_unreachable,           ///< sending to the kernel gave ECONNREFUSED: no connector in this network namespace
    overrun,                         ///< the socket's receive buffer overflowed (ENOBUFS): messages were lost

    // requests and subscriptions
    timeout,                         ///< no reply within the request's timeout
    rejected_sender,                 ///< a message came from a port id that is not admitted
    invalid_group,                   ///< group number outside 1..32 for a connector socket
    proc_events_unsupported,         ///< no ack to LISTEN: no CONFIG_PROC_EVENTS, or a non-initial user/pid namespace
    client_closed,                   ///< the client was closed before the operation started

    // the registry of connector ids (connector/registry.hpp)
    not_registered,                  ///< no kernel callback is registered for the id (/proc/net/connector)
    registry_malformed,              ///< /proc/net/connector holds a line the kernel's format does not give
    registry_unavailable,            ///< /proc/net/connector does not exist in this network namespace
    // 1-Wire (w1/): a status reply's errno is a generic_category code like any other kernel errno
    w1_reply_malformed,              ///< a w1 reply whose lengths or types do not add up
    w1_no_presence,                  ///< a bus reset saw no presence pulse: no device on the bus
    w1_crc_mismatch,                 ///< data read from a device failed its CRC8
    w1_power_on_reset,               ///< a DS18B20 returned its power-on value 85 °C: no conversion ran
    w1_wrong_family,                 ///< the device is not of the family the operation is for

    // streamed multi-part answers (part_stream.hpp) and bundled connector messages (framing.hpp)
    end_of_answer,                   ///< a streamed answer's last part was handed out: no more parts
    parts_overflow,                  ///< a streamed answer's part came while its queue was full: the answer ends
    bundle_trailing_bytes,           ///< bytes after a netlink message's last cn_msg that form no whole cn_msg
    // sending
    send_queue_full,                 ///< messages waiting for room at full peers already hold client_options::send_queue_bytes
};

namespace detail {

class error_category_impl final : public boost::system::error_category {
public:
    // A fixed id lets codes from different translation units compare equal
    // even where the category object is duplicated (header-only, shared libraries).
    constexpr error_category_impl() noexcept : boost::system::error_category(0x636e6173696f0001ULL) {}

    const char* name() const noexcept override { return "cnasio"; }

    std::string message(int ev) const override { return describe(ev); }

    static const char* describe(int ev) noexcept {
        switch (static_cast<error>(ev)) {
        case error::datagram_truncated: return "datagram truncated: it was longer than the receive buffer";
        case error::header_truncated: return "datagram ends inside a netlink header";
        case error::length_below_header: return "nlmsg_len is smaller than the netlink header";
        case error::length_beyond_datagram: return "nlmsg_len runs past the end of the datagram";
        case error::connector_header_truncated: return "netlink payload too short for a cn_msg header";
        case error::connector_length_beyond_message: return "cn_msg.len runs past the end of its netlink message";
        case error::error_message_truncated: return "NLMSG_ERROR message too short to hold its error";
        case error::netlink_overrun: return "NLMSG_OVERRUN: the sender reports lost data";
        case error::payload_too_large: return "payload larger than CONNECTOR_MAX_MSG_SIZE (16384 bytes)";
        case error::buffer_too_small: return "buffer too small for the datagram";
        case error::connector_unsupported:
            return "the kernel has no netlink connector (EPROTONOSUPPORT): it needs CONFIG_CONNECTOR";
        case error::connector_unreachable:
            return "the kernel connector refused the message (ECONNREFUSED): the connector lives in the "
                   "initial network namespace only; open the socket there (cnctl --netns)";
        case error::overrun: return "receive buffer overrun (ENOBUFS): messages were lost";
        case error::timeout: return "no reply before the timeout";
        case error::rejected_sender: return "message from a port id that is not admitted";
        case error::invalid_group: return "multicast group out of range";
        case error::proc_events_unsupported:
            // Not only "no CONFIG_PROC_EVENTS": the kernel also ignores proc
            // connector requests from a user or pid namespace other than the
            // initial one, and both look the same here (no ack).
            return "the kernel did not acknowledge the proc connector request: it lacks CONFIG_PROC_EVENTS, "
                   "or this process is in a user or pid namespace other than the initial one, whose "
                   "requests the proc connector ignores";
        case error::client_closed: return "the client is closed";
        case error::not_registered:
            return "no kernel callback is registered for this connector id (not in /proc/net/connector): "
                   "its module is not loaded, or the id is wrong";
        case error::registry_malformed: return "/proc/net/connector holds a line in an unexpected format";
        case error::registry_unavailable:
            return "/proc/net/connector does not exist here: it is listed in the initial network namespace "
                   "only; read it from there (client_options::netns, cnctl --netns /proc/1/ns/net)";
        case error::w1_reply_malformed: return "malformed 1-Wire reply: its lengths or types do not add up";
        case error::w1_no_presence: return "1-Wire bus reset: no presence pulse, no device answered";
        case error::w1_crc_mismatch: return "1-Wire data failed its CRC8 check (noise on the bus, or a bad contact)";
        case error::w1_power_on_reset:
            return "the DS18B20 returned its power-on value 85 °C: the conversion did not run (check its power)";
        case error::w1_wrong_family: return "the 1-Wire device is not of the family this operation is for";
        case error::end_of_answer: return "end of the answer: its last part was handed out";
        case error::parts_overflow:
            return "a part of a streamed answer came while its queue was full: the answer was ended";
        case error::bundle_trailing_bytes:
            return "netlink message ends with bytes that form no whole cn_msg after its last one";
        case error::send_queue_full:
            return "send queue full: messages waiting for peers that do not read hold client_options::send_queue_bytes";
        }
        return "unknown cnasio error";
    }
};

} // namespace detail

inline const boost::system::error_category& error_category() noexcept {
    static constexpr detail::error_category_impl instance;
    return instance;
}

inline error_code make_error_code(error e) noexcept {
    return error_code(static_cast<int>(e), error_category());
}

/// An errno reported by the kernel (positive value) as an error_code comparable with std::errc.
inline error_code errno_code(int positive_errno) noexcept {
    return error_code(positive_errno, boost::system::generic_category());
}

} // namespace cnasio

template <>
struct boost::system::is_error_code_enum<cnasio::error> : std::true_type {};
