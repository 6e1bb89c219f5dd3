// cnasio::w1 against Debian's real w1 core (wire.ko) and the
// cnasio_w1_virtual bus master (examples/kernel): the masters listed, the
// emulated DS18B20s found with the ids the module documents, three
// temperatures read back exactly as set, an injected CRC error reported as
// error::w1_crc_mismatch, a conversion that never ran as
// error::w1_power_on_reset, a missing presence pulse as error::w1_no_presence
// and ENODEV, raw blocks (touch, write), alarm search, unknown ids.
//
// Runs after raw_w1 in the same boot (run-vm.sh --w1): it reloads
// cnasio_w1_virtual first, with the parameters it was loaded with, so that
// its devices start from their power-on state.
#include "check.hpp"
#include "module.hpp"

#include "cnasio_w1_virtual.h"

#include <cnasio/client.hpp>
#include <cnasio/w1/client.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <set>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace w1 = cnasio::w1;
using namespace std::chrono_literals;

namespace {

constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
const guest::module_params params{"cnasio_w1_virtual"};

// Exactly representable at 12 bits (see raw_w1.cpp).
constexpr int set_mc[] = {23125, -10250, 71500, 0, 125000, -55000, 1000, 42875};

void write_param(const char* name, const std::string& value) { params.write(name, value); }

unsigned param_uint(const char* name) { return params.read_uint(name); }

w1::rom_id rom(unsigned g)
{
    return w1::rom_id::make(CNASIO_W1V_FAMILY, CNASIO_W1V_SERIAL_BASE + g);
}

std::string names(const std::vector<w1::rom_id>& ids)
{
    std::string s;
    for (const auto& id : ids)
        s += " " + id.name();
    return s;
}

std::set<std::string> name_set(const std::vector<w1::rom_id>& ids)
{
    std::set<std::string> s;
    for (const auto& id : ids)
        s.insert(id.name());
    return s;
}

template <class F>
void run(const char* name, F test)
{
    std::printf("-- %s\n", name);
    std::fflush(stdout);
    asio::io_context io;
    bool finished = false;
    asio::co_spawn(io, test(io), [&](std::exception_ptr e) {
        finished = true;
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                std::printf("  exception: %s\n", ex.what());
            }
            ++guest::failures();
        }
    });
    io.run_for(60s);
    CHECK(finished);
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d)
{
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::use_awaitable);
}

unsigned masters_n = 0, devices_n = 0;
std::vector<std::uint32_t> master_ids;  // ascending: the k-th is the module's k-th master

asio::awaitable<void> masters_and_slaves(asio::io_context& io)
{
    cnasio::client c(io.get_executor());
    auto [ec, ids] = co_await w1::async_list_masters(c, tuple_awaitable);
    REQUIRE(!ec);
    std::sort(ids.begin(), ids.end());
    std::printf("  masters:");
    for (auto id : ids)
        std::printf(" %u", id);
    std::printf("\n");
    REQUIRE(ids.size() == masters_n);
    master_ids = ids;
    for (unsigned k = 0; k < masters_n; ++k) {
        std::set<std::string> expected;
        for (unsigned g = k * devices_n; g < (k + 1) * devices_n; ++g)
            expected.insert(rom(g).name());
        for (auto kind : {w1::search_kind::search, w1::search_kind::list}) {
            auto [sec, slaves] = co_await w1::async_search(c, ids[k], kind, tuple_awaitable);
            CHECK(!sec);
            std::printf("  master %u %s:%s\n", ids[k], kind == w1::search_kind::search ? "search" : "list",
                        names(slaves).c_str());
            CHECK(slaves.size() == devices_n);
            CHECK(name_set(slaves) == expected);
            for (const auto& s : slaves)
                CHECK(s.crc_ok());
        }
    }
    CHECK(c.stats().late_replies == 0u);
    CHECK(c.stats().duplicate_replies == 0u);
    CHECK(c.pending_requests() == 0u);
}

asio::awaitable<void> power_on_value(asio::io_context& io)
{
    // Device 2 has not converted since the reload; with its conversions stuck
    // the scratchpad keeps the power-on 85 degC after the wait.
    cnasio::client c(io.get_executor());
    write_param("stuck", "4");
    auto [ec, r] = co_await w1::async_read_temperature(c, rom(2), tuple_awaitable);
    std::printf("  %s: %s (raw %d)\n", rom(2).name().c_str(), ec.message().c_str(), r.raw);
    CHECK(ec == cnasio::error::w1_power_on_reset);
    write_param("stuck", "0");
}

asio::awaitable<void> temperatures(asio::io_context& io)
{
    cnasio::client c(io.get_executor());
    write_param("temp_mc", "23125,-10250,71500");
    for (unsigned g = 0; g < 3; ++g) {
        auto t0 = std::chrono::steady_clock::now();
        auto [ec, r] = co_await w1::async_read_temperature(c, rom(g), tuple_awaitable);
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
        std::printf("  %s: %s, raw %d = %d mC at %u bits, %lld ms (set %d mC)\n", rom(g).name().c_str(),
                    ec ? ec.message().c_str() : "ok", r.raw, r.millicelsius(), r.resolution,
                    static_cast<long long>(ms.count()), set_mc[g]);
        CHECK(!ec);
        CHECK(r.resolution == 12u);
        CHECK(r.raw * 1000 == set_mc[g] * 16);
        CHECK(r.millicelsius() == set_mc[g]);
        CHECK(ms >= 750ms);  // it waited the 12-bit conversion time
    }
}

// Takes every part of a streamed answer; returns the error that ended it.
asio::awaitable<cnasio::error_code> take_all(cnasio::part_stream& s, std::vector<cnasio::connector::message>& parts)
{
    for (;;) {
        auto [ec, part] = co_await s.async_next(tuple_awaitable);
        if (ec)
            co_return ec;
        parts.push_back(std::move(part));
    }
}

cnasio::request_options w1_request(std::size_t commands, std::uint16_t flags, cnasio::connector::header* sent)
{
    cnasio::request_options o;
    o.match = cnasio::match::seq_only;
    o.parts = w1::reply_rule(commands);
    o.flags = flags;
    o.sent = sent;
    o.timeout = 5s;
    return o;
}

asio::awaitable<void> streamed_and_bundled(asio::io_context& io)
{
    cnasio::client c(io.get_executor());
    // A search streamed part by part: the ids, then the status; then end_of_answer.
    cnasio::connector::header sent;
    const w1::command_spec search[] = {{w1::command::search, {}}};
    auto s = c.request_stream(w1::connector_id, w1::master_request(master_ids.at(0), search),
                              w1_request(1, 0, &sent));
    std::vector<cnasio::connector::message> parts;
    auto end = co_await take_all(s, parts);
    w1::answer a;
    const auto aec = w1::read_answer(sent, parts, 1, a);
    std::printf("  search streamed: %zu parts, %zu slaves, end: %s\n", parts.size(), a.slaves.size(),
                end.message().c_str());
    CHECK(end == cnasio::error::end_of_answer);
    CHECK(!aec);
    CHECK(a.slaves.size() == devices_n);

    // Read Scratchpad with W1_CN_BUNDLE: status, data and status in one datagram, every part through cnasio.
    const auto datagrams = c.stats().datagrams;
    const std::byte read_scratchpad[] = {std::byte{w1::ds18b20::read_scratchpad}};
    const std::vector<std::byte> ones(9, std::byte{0xff});
    const w1::command_spec cmds[] = {{w1::command::write, read_scratchpad}, {w1::command::read, ones}};
    auto b = c.request_stream(w1::connector_id, w1::slave_request(rom(1), cmds), w1_request(2, w1::cn_bundle, &sent));
    parts.clear();
    end = co_await take_all(b, parts);
    a = {};
    const auto bec = w1::read_answer(sent, parts, 2, a);
    std::printf("  W1_CN_BUNDLE: %zu parts in %llu datagram(s), %zu data bytes, end: %s\n", parts.size(),
                static_cast<unsigned long long>(c.stats().datagrams - datagrams), a.data.size(),
                end.message().c_str());
    CHECK(end == cnasio::error::end_of_answer);
    CHECK(!bec);
    CHECK(parts.size() == 3u);
    CHECK(a.statuses == 2u);
    CHECK(a.data.size() == 9u);
    CHECK(c.stats().datagrams - datagrams == 1u);
    for (const auto& p : parts)
        CHECK((p.header.flags & w1::cn_bundle) != 0);

    // The typed read with the flag set: the temperature set before, exactly.
    w1::options o;
    o.flags = w1::cn_bundle;
    auto [tec, r] = co_await w1::async_read_temperature(c, rom(1), o, tuple_awaitable);
    std::printf("  bundled temperature: %s, %d mC (set %d mC)\n", tec ? tec.message().c_str() : "ok",
                r.millicelsius(), set_mc[1]);
    CHECK(!tec);
    CHECK(r.millicelsius() == set_mc[1]);
    CHECK(c.stats().malformed == 0u);
    CHECK(c.stats().late_replies == 0u);
    CHECK(c.stats().duplicate_replies == 0u);
}

asio::awaitable<void> crc_error(asio::io_context& io)
{
    cnasio::client c(io.get_executor());
    write_param("crc_error", "2");  // device 1
    auto [ec, r] = co_await w1::async_read_temperature(c, rom(1), tuple_awaitable);
    std::printf("  %s with crc_error: %s\n", rom(1).name().c_str(), ec.message().c_str());
    CHECK(ec == cnasio::error::w1_crc_mismatch);
    write_param("crc_error", "0");
    auto [ec2, r2] = co_await w1::async_read_temperature(c, rom(1), tuple_awaitable);
    CHECK(!ec2);
    CHECK(r2.millicelsius() == -10250);
}

asio::awaitable<void> no_presence(asio::io_context& io)
{
    cnasio::client c(io.get_executor());
    const auto master = master_ids.at(0);
    write_param("no_presence", "1");
    auto [ec] = co_await w1::async_reset(c, master, w1::options{}, tuple_awaitable);
    std::printf("  reset: %s\n", ec.message().c_str());
    CHECK(ec == cnasio::error::w1_no_presence);
    auto [tec, r] = co_await w1::async_read_temperature(c, rom(0), tuple_awaitable);
    std::printf("  temperature: %s\n", tec.message().c_str());
    CHECK(tec == std::errc::no_such_device);
    auto [sec, slaves] = co_await w1::async_search(c, master, w1::search_kind::search, tuple_awaitable);
    CHECK(!sec);
    CHECK(slaves.empty());
    write_param("no_presence", "0");
    auto [ec2] = co_await w1::async_reset(c, master, w1::options{}, tuple_awaitable);
    CHECK(!ec2);
    // The kernel's empty cn_msg before a lone RESET's status (raw_w1.cpp)
    // must not disturb the client.
    CHECK(c.stats().late_replies == 0u);
    CHECK(c.stats().duplicate_replies == 0u);
    CHECK(c.stats().malformed == 0u);
    std::printf("  unsolicited messages: %llu\n", static_cast<unsigned long long>(c.stats().unsolicited));
}

asio::awaitable<void> raw_blocks(asio::io_context& io)
{
    cnasio::client c(io.get_executor());
    const auto master = master_ids.at(0);
    // All devices convert at once: reset, SKIP ROM + CONVERT T on the master.
    auto [rec] = co_await w1::async_reset(c, master, w1::options{}, tuple_awaitable);
    CHECK(!rec);
    const std::byte skip_convert[] = {std::byte{CNASIO_W1V_SKIP_ROM}, std::byte{CNASIO_W1V_CONVERT_T}};
    auto [wec] = co_await w1::async_write(c, w1::target{master}, skip_convert, w1::options{}, tuple_awaitable);
    CHECK(!wec);
    co_await sleep_for(800ms);
    // READ SCRATCHPAD through a touch on the slave: the command byte comes
    // back as written, then the nine bytes the device drives.
    std::vector<std::byte> touch(10, std::byte{0xff});
    touch[0] = std::byte{CNASIO_W1V_READ_SCRATCHPAD};
    auto [tec, got] = co_await w1::async_touch(c, w1::target{rom(2)}, touch, w1::options{}, tuple_awaitable);
    CHECK(!tec);
    if (CHECK(got.size() == 10)) {
        CHECK(got[0] == std::byte{CNASIO_W1V_READ_SCRATCHPAD});
        w1::ds18b20::reading r;
        auto dec = w1::ds18b20::decode(std::span(got).subspan(1), true, r);
        CHECK(!dec);
        CHECK(r.millicelsius() == 71500);
    }
    // Alarm search: TH 75, TL 70 (power-on) on every device.
    std::set<std::string> alarming;
    for (unsigned g = 0; g < devices_n; ++g) {
        int mc = g < 3 ? set_mc[g] : 25000;  // only the first three were set here
        int whole = (mc * 16 / 1000) >> 4;
        if (whole >= 75 || whole <= 70)
            alarming.insert(rom(g).name());
    }
    auto [aec, alarms] = co_await w1::async_search(c, master, w1::search_kind::alarm_search, tuple_awaitable);
    CHECK(!aec);
    std::printf("  alarm search:%s\n", names(alarms).c_str());
    CHECK(name_set(alarms) == alarming);
    // A block read from the master with nobody selected: the line stays high.
    auto [mrec] = co_await w1::async_reset(c, master, w1::options{}, tuple_awaitable);
    CHECK(!mrec);
    auto [rdec, bytes] = co_await w1::async_read(c, w1::target{master}, 4, w1::options{}, tuple_awaitable);
    CHECK(!rdec);
    CHECK(bytes == std::vector<std::byte>(4, std::byte{0xff}));
}

asio::awaitable<void> unknown_ids(asio::io_context& io)
{
    cnasio::client c(io.get_executor());
    auto [ec, r] = co_await w1::async_read_temperature(c, rom(CNASIO_W1V_MAX_TOTAL - 1), tuple_awaitable);
    std::printf("  unknown slave: %s\n", ec.message().c_str());
    CHECK(ec == std::errc::no_such_device);
    auto [sec, slaves] = co_await w1::async_search(c, 4000, w1::search_kind::search, tuple_awaitable);
    std::printf("  unknown master: %s\n", sec.message().c_str());
    CHECK(sec == std::errc::no_such_device);
    // Not a DS18B20: refused before anything is sent.
    auto [fec, fr] = co_await w1::async_read_temperature(c, w1::rom_id::make(0x10, 1), tuple_awaitable);
    CHECK(fec == cnasio::error::w1_wrong_family);
}

// A fresh module: every device back at power-on (85 degC, not converted).
void reload_module()
{
    std::string args = "nr_masters=" + std::to_string(masters_n) + " devices=" + std::to_string(devices_n);
    std::string cmd = "rmmod cnasio_w1_virtual && insmod /lib/modules/cnasio_w1_virtual.ko " + args;
    std::printf("-- reload: %s\n", cmd.c_str());
    std::fflush(stdout);
    REQUIRE(guest::shell(cmd));
}

} // namespace

int main()
{
    masters_n = param_uint("nr_masters");
    devices_n = param_uint("devices");
    std::printf("cnasio_w1_virtual: %u master(s), %u device(s) each\n", masters_n, devices_n);
    REQUIRE(devices_n >= 3);
    reload_module();
    run("masters and slaves", masters_and_slaves);
    REQUIRE(!master_ids.empty());
    run("power-on value", power_on_value);
    run("temperatures", temperatures);
    run("streamed parts, W1_CN_BUNDLE", streamed_and_bundled);
    run("CRC error", crc_error);
    run("missing presence pulse", no_presence);
    run("raw blocks, alarm search", raw_blocks);
    run("unknown ids", unknown_ids);
    return guest::finish("client_w1");
}
