// The kernel-feature errors met for real, in the small kernels
// tests/vm/tiny-kernel.sh builds (Debian's own all have both features):
//   unsupported --expect no-connector     CONFIG_CONNECTOR off: socket() on
//       NETLINK_CONNECTOR gives EPROTONOSUPPORT; cnasio's socket open and the
//       client's constructor report error::connector_unsupported, whose
//       message names CONFIG_CONNECTOR; so does read_registry (no
//       /proc/net/connector here, but not because of a namespace).
//   unsupported --expect no-proc-events   CONFIG_CONNECTOR=y, CONFIG_PROC_EVENTS
//       off: the connector works (socket, /proc/net/connector) but nothing
//       serves {1,1}, so LISTEN gets no ack and proc::listener's start ends
//       in error::proc_events_unsupported, whose message names
//       CONFIG_PROC_EVENTS.
// Each also checks the kernel really is that kernel first (a precondition
// that fails loudly rather than letting the run pass on the wrong kernel).
#include "check.hpp"

#include <cnasio/client.hpp>
#include <cnasio/connector/registry.hpp>
#include <cnasio/connector/socket.hpp>
#include <cnasio/proc/listener.hpp>

#include <boost/asio/io_context.hpp>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>

#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

void no_connector()
{
    // Precondition: this kernel has no connector.
    const int fd = ::socket(AF_NETLINK, SOCK_DGRAM, NETLINK_CONNECTOR);
    const int err = errno;
    std::printf("  raw socket(NETLINK_CONNECTOR): %s\n", fd >= 0 ? "opened" : std::strerror(err));
    REQUIRE(fd < 0 && err == EPROTONOSUPPORT);
    // /proc/net/connector is absent too: the registry names the missing
    // connector, not a network namespace.
    cnasio::error_code rec;
    const auto ids = cnasio::connector::read_registry(rec);
    std::printf("  read_registry: %s\n", rec.message().c_str());
    CHECK(ids.empty());
    CHECK(rec == cnasio::error::connector_unsupported);

    asio::io_context io;
    cnasio::connector::socket sock(io.get_executor());
    cnasio::error_code ec;
    sock.open(ec);
    std::printf("  connector::socket::open: %s\n", ec.message().c_str());
    CHECK(ec == cnasio::error::connector_unsupported);
    CHECK(&ec.category() == &cnasio::error_category());
    CHECK(contains(ec.message(), "CONFIG_CONNECTOR"));

    bool threw = false;
    try {
        cnasio::client c(io.get_executor());
    } catch (const boost::system::system_error& e) {
        threw = true;
        std::printf("  client(): %s\n", e.what());
        CHECK(e.code() == cnasio::error::connector_unsupported);
        CHECK(contains(e.what(), "CONFIG_CONNECTOR"));
    }
    CHECK(threw);
}

void no_proc_events()
{
    // Preconditions: the connector is there, cn_proc is not registered.
    const int fd = ::socket(AF_NETLINK, SOCK_DGRAM, NETLINK_CONNECTOR);
    REQUIRE(fd >= 0);
    ::close(fd);
    cnasio::error_code rec;
    const auto ids = cnasio::connector::read_registry(rec);
    std::printf("  /proc/net/connector: %s, %zu id(s)\n", rec ? rec.message().c_str() : "read", ids.size());
    REQUIRE(!rec);
    REQUIRE(!cnasio::connector::contains(ids, cnasio::connector::id{1, 1}));

    asio::io_context io;
    cnasio::client c(io.get_executor());
    cnasio::proc::listener l(c);
    cnasio::error_code ec = asio::error::would_block;
    const auto start = std::chrono::steady_clock::now();
    l.async_start([&](cnasio::error_code e) { ec = e; });
    io.run_for(20s);
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    std::printf("  listener start: %s (after %lld ms)\n", ec.message().c_str(), static_cast<long long>(took.count()));
    CHECK(ec == cnasio::error::proc_events_unsupported);
    CHECK(contains(ec.message(), "CONFIG_PROC_EVENTS"));
    CHECK(!l.listening());
}

} // namespace

int main(int argc, char** argv)
{
    const std::string expect = argc == 3 && std::string_view(argv[1]) == "--expect" ? argv[2] : "";
    try {
        if (expect == "no-connector")
            no_connector();
        else if (expect == "no-proc-events")
            no_proc_events();
        else {
            std::printf("usage: unsupported --expect no-connector|no-proc-events\n");
            return 2;
        }
    } catch (const std::exception& e) {
        std::printf("exception: %s\n", e.what());
        ++guest::failures();
    }
    return guest::finish(("unsupported " + expect).c_str());
}
