// `cnctl w1 ...`: the library's w1 operations (cnasio/w1/client.hpp) from a
// shell. Text lines are key=value; --json gives one JSON object per line.
#include "w1.hpp"

#include "command_support.hpp"
#include "format.hpp"
#include "output.hpp"

#include <cnasio/w1/client.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace cnctl {
namespace {

namespace asio = boost::asio;
namespace w1 = cnasio::w1;
using cnasio::error_code;

// A reading in degrees Celsius, exactly: 1/16 °C steps need four decimals (0x0157 -> "21.4375").
std::string celsius_text(const w1::ds18b20::reading& r) {
    const std::int64_t t = std::int64_t{r.raw} * 625; // ten-thousandths
    const std::int64_t a = t < 0 ? -t : t;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%lld.%04lld", t < 0 ? "-" : "", static_cast<long long>(a / 10000),
                  static_cast<long long>(a % 10000));
    return buf;
}

std::string line(const boost::json::object& o) { return boost::json::serialize(o) + "\n"; }

struct w1_command {
    const w1_args& a;
    cnasio::client& c;
    output out;
    int rc = exit_ok;

    w1::options options() const {
        w1::options o;
        o.timeout = a.timeout;
        o.port_id = a.to;
        o.check_registered = a.to == 0;
        return o;
    }

    // Reports a failed operation on stderr; the exit status becomes 3 for a
    // timeout (unless a worse error came), 1 otherwise.
    void report(error_code ec, const std::string& doing) {
        if (!c.is_open()) return; // SIGINT/SIGTERM closed the client: not an error
        std::string why;
        if (ec == cnasio::error::timeout) {
            why = "no answer within " + std::to_string(a.timeout.count()) +
                  " ms (is the w1 core busy, or the bus master gone?)";
        } else if (ec == cnasio::error::not_registered) {
            why = "the kernel's w1 core is not registered (connector id 3:1 is not in /proc/net/connector): "
                  "load the wire module (modprobe wire) on a kernel with CONFIG_W1_CON";
        } else if (ec == std::errc::no_such_device) {
            why = "no such device: the kernel knows no such bus master or slave, or the slave did not answer "
                  "(cnctl w1 search lists what is on the bus)";
        }
        const std::string message = why.empty() ? describe_error(ec, "w1 " + doing) : "w1 " + doing + ": " + why;
        std::fprintf(stderr, "cnctl: %s\n", message.c_str());
        if (ec == cnasio::error::timeout) {
            if (rc == exit_ok) rc = exit_timeout;
        } else {
            rc = exit_runtime;
        }
    }

    asio::awaitable<std::vector<std::uint32_t>> masters() {
        auto [ec, m] = co_await w1::async_list_masters(c, options(), asio::as_tuple(asio::use_awaitable));
        if (ec) report(ec, "listing the bus masters");
        co_return m;
    }

    // Every slave found on `master` (or on every master), with its master.
    asio::awaitable<std::vector<std::pair<std::uint32_t, w1::rom_id>>> search(std::optional<std::uint32_t> master,
                                                                             bool alarm) {
        std::vector<std::pair<std::uint32_t, w1::rom_id>> found;
        std::vector<std::uint32_t> which;
        if (master)
            which.push_back(*master);
        else
            which = co_await masters();
        for (auto m : which) {
            auto [ec, slaves] = co_await w1::async_search(
                c, m, alarm ? w1::search_kind::alarm_search : w1::search_kind::search, options(),
                asio::as_tuple(asio::use_awaitable));
            if (ec) {
                report(ec, "searching bus master " + std::to_string(m));
                continue;
            }
            for (const auto& s : slaves) found.emplace_back(m, s);
        }
        co_return found;
    }

    asio::awaitable<void> run() {
        using action = w1_args::action;
        switch (a.what) {
        case action::masters:
            for (auto m : co_await masters())
                out.write(a.json ? line({{"master", m}}) : "master=" + std::to_string(m) + "\n");
            break;
        case action::search:
            for (const auto& [m, s] : co_await search(a.master, a.alarm)) {
                if (a.json)
                    out.write(line({{"master", m}, {"slave", s.name()}, {"family", s.family()}, {"crc_ok", s.crc_ok()}}));
                else
                    out.write("master=" + std::to_string(m) + " slave=" + s.name() +
                              (s.crc_ok() ? "" : " crc=bad") + "\n");
            }
            break;
        case action::temp: {
            std::vector<w1::rom_id> sensors = a.slaves;
            if (sensors.empty()) {
                for (const auto& [m, s] : co_await search(std::nullopt, false))
                    if (s.family() == w1::ds18b20::family) sensors.push_back(s);
                if (sensors.empty() && rc == exit_ok && c.is_open()) {
                    std::fprintf(stderr, "cnctl: w1 temp: no DS18B20 (family 28) found on any bus\n");
                    rc = exit_runtime;
                }
            }
            for (const auto& s : sensors) {
                auto [ec, r] = co_await w1::async_read_temperature(c, s, options(), asio::as_tuple(asio::use_awaitable));
                if (ec) {
                    report(ec, "temp " + s.name());
                    continue;
                }
                // The number as text in JSON too: serialize() would write 2.14375E1.
                if (a.json)
                    out.write("{\"slave\":\"" + s.name() + "\",\"celsius\":" + celsius_text(r) +
                              ",\"millicelsius\":" + std::to_string(r.millicelsius()) +
                              ",\"resolution\":" + std::to_string(r.resolution) + "}\n");
                else
                    out.write("slave=" + s.name() + " celsius=" + celsius_text(r) +
                              " resolution=" + std::to_string(r.resolution) + "\n");
            }
            break;
        }
        case action::read:
        case action::write:
        case action::touch: {
            const w1::target t = a.master ? w1::target(*a.master) : w1::target(a.slaves.at(0));
            const std::string where = a.master ? "bus master " + std::to_string(*a.master) : a.slaves.at(0).name();
            error_code ec;
            std::vector<std::byte> data;
            if (a.what == action::read)
                std::tie(ec, data) = co_await w1::async_read(c, t, a.count, options(), asio::as_tuple(asio::use_awaitable));
            else if (a.what == action::touch)
                std::tie(ec, data) = co_await w1::async_touch(c, t, a.data, options(), asio::as_tuple(asio::use_awaitable));
            else
                std::tie(ec) = co_await w1::async_write(c, t, a.data, options(), asio::as_tuple(asio::use_awaitable));
            if (ec) {
                report(ec, (a.what == action::read ? "read from " : a.what == action::write ? "write to " : "touch on ") + where);
                break;
            }
            if (a.what != action::write) out.write(a.json ? line({{"data", hex_text(data)}}) : "data=" + hex_text(data) + "\n");
            break;
        }
        }
    }
};

asio::awaitable<int> w1_main(const w1_args& a, cnasio::client& c) {
    stop_on_signals signals(c.get_executor(), [&c] { c.close(); });
    w1_command cmd{a, c, {}, exit_ok};
    co_await cmd.run();
    co_return cmd.out.finish(signals.stopping() ? exit_ok : cmd.rc);
}

} // namespace

int run_w1(const w1_args& a) { return run_task(with_client(a, [&a](cnasio::client& c) { return w1_main(a, c); })); }

} // namespace cnctl
