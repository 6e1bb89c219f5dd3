#include <cnasio/error.hpp>

#include <doctest/doctest.h>

#include <system_error>

TEST_SUITE("error") {
    TEST_CASE("cnasio errors live in their own category with a message each") {
        const cnasio::error_code ec = cnasio::error::timeout;
        CHECK(ec.category().name() == std::string("cnasio"));
        CHECK(ec == cnasio::error::timeout);
        CHECK(ec != cnasio::error::overrun);
        for (int e = static_cast<int>(cnasio::error::datagram_truncated);
             e <= static_cast<int>(cnasio::error::send_queue_full); ++e)
            CHECK(cnasio::error_category().message(e) != "unknown cnasio error");
        CHECK(cnasio::error_category().message(999) == "unknown cnasio error");
    }

    TEST_CASE("kernel errnos compare equal to the standard conditions") {
        const auto ec = cnasio::errno_code(EINVAL);
        CHECK(ec == boost::system::errc::invalid_argument);
        CHECK(ec == std::errc::invalid_argument);
        CHECK(ec != cnasio::error::timeout);
    }

    TEST_CASE("missing CONFIG_CONNECTOR is named in the message") {
        const cnasio::error_code ec = cnasio::error::connector_unsupported;
        CHECK(ec.message().find("CONFIG_CONNECTOR") != std::string::npos);
    }

    TEST_CASE("no proc connector ack: the message names both causes, not only CONFIG_PROC_EVENTS") {
        // The kernel's silence has two causes cnasio cannot tell apart: a
        // kernel without CONFIG_PROC_EVENTS and a caller in a non-initial user
        // or pid namespace (tests/kernel/proc_listener_test.cpp meets the
        // second, tests/vm/guest/unsupported.cpp the first).
        const std::string m = cnasio::error_code(cnasio::error::proc_events_unsupported).message();
        CHECK(m.find("CONFIG_PROC_EVENTS") != std::string::npos);
        CHECK(m.find("pid namespace") != std::string::npos);
        CHECK(m.find("user") != std::string::npos);
    }
}
