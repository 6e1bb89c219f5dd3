// cnasio::w1 end to end through a client, against a user-space stand-in for
// the kernel's w1 core (tests/support/w1_peer.hpp): masters, search (also
// split over several replies), DS18B20 readings exactly as set, and every
// error the operations promise: CRC mismatch, power-on 85 °C, missing and
// unselectable slaves, a reset without presence, wrong family, timeout and
// cancellation. The VM suite runs the same operations against the real w1
// core and a virtual bus master.
#include "w1_peer.hpp"

#include <cnasio/client.hpp>
#include <cnasio/w1/client.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace cnasio;
using namespace std::chrono_literals;

namespace {

const w1::rom_id rom_a = w1::rom_id::make(0x28, 0x0000000a0001);
const w1::rom_id rom_b = w1::rom_id::make(0x28, 0x0000000a0002);
const w1::rom_id rom_c = w1::rom_id::make(0x28, 0x0000000a0003);

std::vector<test::w1_sensor> three_sensors() {
    test::w1_sensor a, b, c;
    a.rom = rom_a;
    a.raw = 0x0190; // 25.0 °C
    b.rom = rom_b;
    b.raw = static_cast<std::int16_t>(0xff58); // -10.5 °C
    c.rom = rom_c;
    c.config = 0x7f; // 12-bit: a 750 ms conversion
    c.raw = 0x0541;  // 84.0625 °C: near the power-on value, and only representable at 12 bits
    return {a, b, c};
}

struct fixture {
    explicit fixture(std::vector<test::w1_sensor> sensors = three_sensors()) : peer(std::move(sensors)) {
        client_options co;
        co.admitted_ports = {peer.port_id()};
        c.emplace(io.get_executor(), co);
        o.port_id = peer.port_id();
        o.timeout = 2s;
    }
    template <class Result>
    struct result {
        bool done = false;
        error_code ec;
        Result value{};
    };
    // Runs the io_context until `r.done` or 10 s.
    template <class R>
    void wait(const R& r) {
        io.restart();
        for (int i = 0; i < 1000 && !r.done; ++i) io.run_for(10ms);
    }
    asio::io_context io;
    test::w1_peer peer;
    std::optional<client> c;
    w1::options o;
};

} // namespace

TEST_SUITE("w1: the client against a stand-in w1 core") {
    TEST_CASE("masters are listed; a search finds every slave, also when split over several replies") {
        fixture f;
        fixture::result<std::vector<std::uint32_t>> masters;
        w1::async_list_masters(*f.c, f.o, [&](error_code ec, std::vector<std::uint32_t> v) {
            masters = {true, ec, std::move(v)};
        });
        f.wait(masters);
        REQUIRE(masters.done);
        CHECK_FALSE(masters.ec);
        CHECK(masters.value == std::vector<std::uint32_t>{test::w1_peer::master});

        f.peer.set_ids_per_reply(2);
        for (auto kind : {w1::search_kind::search, w1::search_kind::list}) {
            fixture::result<std::vector<w1::rom_id>> slaves;
            w1::async_search(*f.c, test::w1_peer::master, kind, f.o, [&](error_code ec, std::vector<w1::rom_id> v) {
                slaves = {true, ec, std::move(v)};
            });
            f.wait(slaves);
            REQUIRE(slaves.done);
            CHECK_FALSE(slaves.ec);
            CHECK(slaves.value == std::vector<w1::rom_id>{rom_a, rom_b, rom_c});
        }
        CHECK(f.c->stats().replies == 1 + 2 * 3); // masters; two data replies and a status, twice
        CHECK(f.c->stats().unsolicited == 0);
    }

    TEST_CASE("three DS18B20s read back exactly as set, at 9 and 12 bits") {
        fixture f;
        const std::pair<w1::rom_id, std::int32_t> expected[] = {{rom_a, 25000}, {rom_b, -10500}, {rom_c, 84062}};
        for (const auto& [rom, milli] : expected) {
            fixture::result<w1::ds18b20::reading> r;
            w1::async_read_temperature(*f.c, rom, f.o, [&](error_code ec, w1::ds18b20::reading v) {
                r = {true, ec, v};
            });
            f.wait(r);
            REQUIRE(r.done);
            CHECK_FALSE(r.ec);
            CHECK(r.value.millicelsius() == milli);
        }
    }

    TEST_CASE("a CRC error, a conversion that never ran, and a slave that does not answer are errors") {
        auto sensors = three_sensors();
        sensors[0].corrupt = true;
        sensors[1].never_converts = true;
        sensors[2].no_presence = true;
        fixture f(sensors);
        const std::pair<w1::rom_id, error_code> expected[] = {
            {rom_a, error::w1_crc_mismatch},
            {rom_b, error::w1_power_on_reset},
            {rom_c, errno_code(ENODEV)},
            {w1::rom_id::make(0x28, 0x99), errno_code(ENODEV)}, // not on the bus
            {w1::rom_id::make(0x10, 0x01), error::w1_wrong_family},
        };
        for (const auto& [rom, want] : expected) {
            fixture::result<w1::ds18b20::reading> r;
            w1::async_read_temperature(*f.c, rom, f.o, [&](error_code ec, w1::ds18b20::reading v) {
                r = {true, ec, v};
            });
            f.wait(r);
            REQUIRE(r.done);
            CHECK_MESSAGE(r.ec == want, std::string(rom.name() + ": " + r.ec.message()));
        }
        CHECK(f.c->pending_requests() == 0);
    }

    TEST_CASE("reset, read, write and touch on the master; a reset with no device is w1_no_presence") {
        fixture f;
        fixture::result<int> reset;
        w1::async_reset(*f.c, test::w1_peer::master, f.o, [&](error_code ec) { reset = {true, ec, 0}; });
        f.wait(reset);
        CHECK(reset.done);
        CHECK_FALSE(reset.ec);

        const std::vector<std::byte> out{std::byte{0xff}, std::byte{0x12}};
        fixture::result<std::vector<std::byte>> touched;
        w1::async_touch(*f.c, test::w1_peer::master, out, f.o, [&](error_code ec, std::vector<std::byte> v) {
            touched = {true, ec, std::move(v)};
        });
        f.wait(touched);
        CHECK_FALSE(touched.ec);
        CHECK(touched.value == out);

        fixture::result<std::vector<std::byte>> read;
        w1::async_read(*f.c, rom_a, 9, f.o, [&](error_code ec, std::vector<std::byte> v) {
            read = {true, ec, std::move(v)};
        });
        f.wait(read);
        CHECK_FALSE(read.ec);
        CHECK(read.value.size() == 9);

        fixture::result<int> wrote;
        w1::async_write(*f.c, rom_a, out, f.o, [&](error_code ec) { wrote = {true, ec, 0}; });
        f.wait(wrote);
        CHECK(wrote.done);
        CHECK_FALSE(wrote.ec);

        fixture::result<int> unknown;
        w1::async_reset(*f.c, 77, f.o, [&](error_code ec) { unknown = {true, ec, 0}; });
        f.wait(unknown);
        CHECK(unknown.ec == std::errc::no_such_device);

        fixture empty_bus(std::vector<test::w1_sensor>{});
        fixture::result<int> nobody;
        w1::async_reset(*empty_bus.c, test::w1_peer::master, empty_bus.o, [&](error_code ec) { nobody = {true, ec, 0}; });
        empty_bus.wait(nobody);
        CHECK(nobody.ec == error::w1_no_presence);
    }

    TEST_CASE("a silent w1 core is a timeout; a cancelled temperature read ends at once") {
        fixture f;
        f.peer.set_silent(true);
        f.o.timeout = 200ms;
        fixture::result<std::vector<std::uint32_t>> masters;
        const auto t0 = std::chrono::steady_clock::now();
        w1::async_list_masters(*f.c, f.o, [&](error_code ec, std::vector<std::uint32_t> v) {
            masters = {true, ec, std::move(v)};
        });
        f.wait(masters);
        CHECK(masters.ec == error::timeout);
        CHECK(std::chrono::steady_clock::now() - t0 >= 200ms);
        f.peer.set_silent(false);

        // Cancel while the 750 ms conversion of the 12-bit sensor is awaited.
        asio::cancellation_signal cancel;
        fixture::result<w1::ds18b20::reading> r;
        f.o.timeout = 2s;
        w1::async_read_temperature(*f.c, rom_c, f.o,
                                   asio::bind_cancellation_slot(cancel.slot(), [&](error_code ec, w1::ds18b20::reading v) {
                                       r = {true, ec, v};
                                   }));
        asio::steady_timer later(f.io, 300ms);
        later.async_wait([&](error_code) { cancel.emit(asio::cancellation_type::terminal); });
        const auto t1 = std::chrono::steady_clock::now();
        f.wait(r);
        REQUIRE(r.done);
        CHECK(r.ec == asio::error::operation_aborted);
        CHECK(std::chrono::steady_clock::now() - t1 < 700ms);
        CHECK(f.c->pending_requests() == 0);
    }
}

namespace {

// Takes every part of stream `s` with async_next until its end; returns the
// parts and the end's error.
struct stream_reader {
    std::vector<connector::message> parts;
    error_code end;
    bool done = false;
    void take(part_stream& s) {
        s.async_next([this, &s](error_code ec, connector::message m) {
            if (ec) {
                end = ec;
                done = true;
                return;
            }
            parts.push_back(std::move(m));
            take(s);
        });
    }
};

request_options stream_options(const fixture& f, std::size_t commands, std::uint16_t flags = 0) {
    request_options ro;
    ro.match = match::seq_only;
    ro.parts = w1::reply_rule(commands);
    ro.port_id = f.o.port_id;
    ro.timeout = 2s;
    ro.flags = flags;
    return ro;
}

} // namespace

TEST_SUITE("w1: streamed answers and W1_CN_BUNDLE through the socket") {
    TEST_CASE("streamed: a search split over three data replies comes part by part, then end_of_answer") {
        fixture f;
        f.peer.set_ids_per_reply(1);
        const w1::command_spec search[] = {{w1::command::search, {}}};
        connector::header sent;
        request_options ro = stream_options(f, 1);
        ro.sent = &sent;
        part_stream s = f.c->request_stream(w1::connector_id, w1::master_request(test::w1_peer::master, search),
                                            std::move(ro));
        stream_reader r;
        r.take(s);
        f.wait(r);
        REQUIRE(r.done);
        CHECK(r.end == error::end_of_answer);
        REQUIRE(r.parts.size() == 4); // three data replies, one status
        w1::answer a;
        REQUIRE_FALSE(w1::read_answer(sent, r.parts, 1, a));
        CHECK(a.slaves == std::vector<w1::rom_id>{rom_a, rom_b, rom_c});
        CHECK(s.ended());
        CHECK(s.parts() == 4);
        CHECK(f.c->stats().replies == 4);
        CHECK(f.c->pending_requests() == 0);
    }

    TEST_CASE("streamed: a silent peer ends the stream with a timeout; dropping a stream makes its parts late") {
        fixture f;
        f.peer.set_silent(true);
        const w1::command_spec reset[] = {{w1::command::reset, {}}};
        request_options ro = stream_options(f, 1);
        ro.timeout = 200ms;
        const auto t0 = std::chrono::steady_clock::now(); // before the request's timer starts
        part_stream s = f.c->request_stream(w1::connector_id, w1::master_request(test::w1_peer::master, reset),
                                            std::move(ro));
        stream_reader r;
        r.take(s);
        f.wait(r);
        REQUIRE(r.done);
        CHECK(r.end == error::timeout);
        CHECK(std::chrono::steady_clock::now() - t0 >= 200ms);
        CHECK(r.parts.empty());
        f.peer.set_silent(false);

        // A stream destroyed before its answer: the answer's parts all count as late.
        {
            const std::vector<std::byte> ones(9, std::byte{0xff});
            const w1::command_spec read[] = {{w1::command::read, ones}};
            part_stream gone = f.c->request_stream(w1::connector_id, w1::slave_request(rom_a, read),
                                                   stream_options(f, 1));
        }
        CHECK(f.c->pending_requests() == 0);
        // The client reads only while something waits on it: a request makes it read what came (the
        // peer answers in order, so the dropped read's parts come first).
        fixture::result<std::vector<std::uint32_t>> masters;
        w1::async_list_masters(*f.c, f.o, [&](error_code ec, std::vector<std::uint32_t> v) {
            masters = {true, ec, std::move(v)};
        });
        f.wait(masters);
        CHECK_FALSE(masters.ec);
        CHECK(f.c->stats().late_replies == 2); // the read's data and status
    }

    TEST_CASE("streamed: partial cancellation ends only the wait; the parts are still taken afterwards") {
        fixture f;
        f.peer.set_silent(true);
        const w1::command_spec reset[] = {{w1::command::reset, {}}};
        part_stream s = f.c->request_stream(w1::connector_id, w1::master_request(test::w1_peer::master, reset),
                                            stream_options(f, 1));
        asio::cancellation_signal cancel;
        fixture::result<int> first;
        s.async_next(asio::bind_cancellation_slot(cancel.slot(), [&](error_code ec, connector::message) {
            first = {true, ec, 0};
        }));
        cancel.emit(asio::cancellation_type::partial);
        f.wait(first);
        CHECK(first.ec == asio::error::operation_aborted);
        CHECK_FALSE(s.ended());
        CHECK(f.c->pending_requests() == 1);
        // A terminal cancellation ends the answer.
        fixture::result<int> second;
        s.async_next(asio::bind_cancellation_slot(cancel.slot(), [&](error_code ec, connector::message) {
            second = {true, ec, 0};
        }));
        cancel.emit(asio::cancellation_type::terminal);
        f.wait(second);
        CHECK(second.ec == asio::error::operation_aborted);
        CHECK(s.ended());
        CHECK(f.c->pending_requests() == 0);
    }

    TEST_CASE("W1_CN_BUNDLE: a bundled answer in one datagram gives every part, streamed and gathered") {
        fixture f;
        // Select, Read Scratchpad: the status of the write, the 9 bytes, the status of the read.
        const std::byte select_read[] = {std::byte{w1::ds18b20::read_scratchpad}};
        const std::vector<std::byte> ones(9, std::byte{0xff});
        const w1::command_spec cmds[] = {{w1::command::write, select_read}, {w1::command::read, ones}};
        const auto before = f.peer.datagrams();
        const auto datagrams_before = f.c->stats().datagrams;
        part_stream s = f.c->request_stream(w1::connector_id, w1::slave_request(rom_a, cmds),
                                            stream_options(f, 2, w1::cn_bundle));
        stream_reader r;
        r.take(s);
        f.wait(r);
        REQUIRE(r.done);
        CHECK(r.end == error::end_of_answer);
        CHECK(r.parts.size() == 3);
        CHECK(f.peer.datagrams() - before == 1);
        CHECK(f.c->stats().datagrams - datagrams_before == 1);
        for (const auto& p : r.parts) CHECK((p.header.flags & w1::cn_bundle) != 0);

        // The typed operations with the flag: the same readings, one datagram per request.
        f.o.flags = w1::cn_bundle;
        const auto peer_before = f.peer.datagrams();
        const auto requests_before = f.peer.requests();
        fixture::result<w1::ds18b20::reading> t;
        w1::async_read_temperature(*f.c, rom_b, f.o, [&](error_code ec, w1::ds18b20::reading v) { t = {true, ec, v}; });
        f.wait(t);
        REQUIRE(t.done);
        CHECK_FALSE(t.ec);
        CHECK(t.value.millicelsius() == -10500);
        CHECK(f.peer.datagrams() - peer_before == f.peer.requests() - requests_before);
        CHECK(f.c->stats().malformed == 0);
        CHECK(f.c->stats().unsolicited == 0);
    }
}
