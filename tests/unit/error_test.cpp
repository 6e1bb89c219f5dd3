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
             e <= static_cast<int>(cnasio::error::client_closed); ++e)
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
}
