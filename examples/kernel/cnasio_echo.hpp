// SPDX-License-Identifier: BSL-1.0
// cnasio_echo.hpp - the cnasio_echo module's protocol (cnasio_echo_proto.h)
// for C++ callers using cnasio: building requests, and reading replies with
// the module's errno as an error_code.
//
//     cnasio::client c(io.get_executor());
//     auto req = cnasio_echo::request(CNASIO_ECHO_CMD_ECHO, 0, cnasio::connector::as_payload("hi"));
//     auto msg = co_await c.async_request(cnasio_echo::default_id, req, asio::use_awaitable);
//     auto rep = cnasio_echo::parse_reply(msg.view());
//     if (rep.ec) ...   // e.g. rep.ec == std::errc::invalid_argument for an unknown command
#pragma once

#include <cnasio/connector/message.hpp>
#include <cnasio/error.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "cnasio_echo_proto.h"

namespace cnasio_echo {

/// The module's connector id with its default parameters (idx also names the multicast group).
inline constexpr cnasio::connector::id default_id{CNASIO_ECHO_DEFAULT_IDX, CNASIO_ECHO_DEFAULT_VAL};

/// A request payload: struct cnasio_echo_request, then `data`.
inline std::vector<std::byte> request(std::uint32_t cmd, std::uint32_t arg, std::span<const std::byte> data = {})
{
    std::vector<std::byte> out(sizeof(cnasio_echo_request) + data.size());
    const cnasio_echo_request head{cmd, arg};
    std::memcpy(out.data(), &head, sizeof head);
    if (!data.empty())
        std::memcpy(out.data() + sizeof head, data.data(), data.size());
    return out;
}

/// A decoded reply. `ec` is the module's errno (generic_category, so it
/// compares equal to std::errc values), or error::connector_header_truncated
/// when the payload is too short to be a reply at all.
struct reply {
    cnasio::error_code ec;
    std::uint32_t arg = 0;
    std::span<const std::byte> data; ///< points into the message parsed
};

inline reply parse_reply(const cnasio::connector::message_view& m)
{
    reply r;
    if (m.payload.size() < sizeof(cnasio_echo_reply)) {
        r.ec = cnasio::error::connector_header_truncated;
        return r;
    }
    cnasio_echo_reply head; // the payload is unaligned: copy, do not cast
    std::memcpy(&head, m.payload.data(), sizeof head);
    if (head.err != 0)
        r.ec = cnasio::errno_code(head.err);
    r.arg = head.arg;
    r.data = m.payload.subspan(sizeof head);
    return r;
}

/// A decoded multicast event; `valid` is false for a payload too short to be one.
struct event {
    bool valid = false;
    cnasio_echo_event head{};
    std::span<const std::byte> data;
};

inline event parse_event(const cnasio::connector::message_view& m)
{
    event e;
    if (m.payload.size() < sizeof(cnasio_echo_event))
        return e;
    std::memcpy(&e.head, m.payload.data(), sizeof e.head);
    e.valid = true;
    e.data = m.payload.subspan(sizeof e.head);
    return e;
}

} // namespace cnasio_echo
