// Helpers for tests that drive cnasio::detail::client_core with scripted
// datagrams (no socket, no Asio): tests/unit/client_core_test.cpp and
// tests/unit/alloc_test.cpp.
#pragma once

#include <cnasio/detail/client_core.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <string_view>
#include <vector>

namespace cnasio::test {

// The id the scripted messages carry (any id in the users' range would do).
constexpr connector::id module_id{14, 1};

// One framed connector datagram: header `h`, payload `text`.
inline std::vector<std::byte> datagram(const connector::header& h, std::string_view text) {
    error_code ec;
    auto d = connector::build_datagram(h, connector::as_payload(text), ec);
    REQUIRE_FALSE(ec);
    return d;
}

// Takes every message queued for subscription `s` into `m`, one over the
// other (each receive swaps `m`'s storage into the slot it empties).
inline void discard_queued(detail::client_core& core, detail::subscription_ref s, connector::message& m) {
    error_code ec;
    while (core.try_receive(s, m, ec)) {
    }
}

} // namespace cnasio::test
