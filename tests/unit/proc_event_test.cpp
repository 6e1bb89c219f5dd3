// cnasio::proc event decoding: layout agrees with the UAPI header, every type
// decodes from a misaligned buffer, short payloads are errors, unknown types
// are kept, names and filter lists parse.
#include <cnasio/proc/event.hpp>

#include <doctest/doctest.h>

#include <linux/cn_proc.h>

#include <cstddef>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <string>
#include <typeinfo>
#include <variant>
#include <vector>

namespace proc = cnasio::proc;

// The constants the 6.1 header has must agree with ours.
static_assert(static_cast<std::uint32_t>(proc::event_type::fork) == proc_event::PROC_EVENT_FORK);
static_assert(static_cast<std::uint32_t>(proc::event_type::exec) == proc_event::PROC_EVENT_EXEC);
static_assert(static_cast<std::uint32_t>(proc::event_type::uid) == proc_event::PROC_EVENT_UID);
static_assert(static_cast<std::uint32_t>(proc::event_type::gid) == proc_event::PROC_EVENT_GID);
static_assert(static_cast<std::uint32_t>(proc::event_type::sid) == proc_event::PROC_EVENT_SID);
static_assert(static_cast<std::uint32_t>(proc::event_type::ptrace) == proc_event::PROC_EVENT_PTRACE);
static_assert(static_cast<std::uint32_t>(proc::event_type::comm) == proc_event::PROC_EVENT_COMM);
static_assert(static_cast<std::uint32_t>(proc::event_type::coredump) == proc_event::PROC_EVENT_COREDUMP);
static_assert(static_cast<std::uint32_t>(proc::event_type::exit) == proc_event::PROC_EVENT_EXIT);
static_assert(sizeof(::proc_event) == proc::event_wire_size);
static_assert(offsetof(::proc_event, event_data) == proc::event_header_size);
static_assert(offsetof(::proc_event, event_data.exit.exit_code) == proc::event_header_size + 8);
static_assert(offsetof(::proc_event, event_data.comm.comm) == proc::event_header_size + 8);
// PROC_EVENT_ALL as the 6.6+ header defines it: the OR of every type bit.
static_assert(proc::event_type_all_bits == (0x1u | 0x2u | 0x4u | 0x40u | 0x80u | 0x100u | 0x200u |
                                            0x20000000u | 0x40000000u | 0x80000000u));

// The table's sizes are the UAPI union members' sizes (nonzero_exit has no
// member: it shares exit's).
static_assert(proc::find_event_type(0)->data_size == sizeof(::proc_event{}.event_data.ack));
static_assert(proc::find_event_type(0x1)->data_size == sizeof(::proc_event{}.event_data.fork));
static_assert(proc::find_event_type(0x2)->data_size == sizeof(::proc_event{}.event_data.exec));
static_assert(proc::find_event_type(0x4)->data_size == sizeof(::proc_event{}.event_data.id));
static_assert(proc::find_event_type(0x40)->data_size == sizeof(::proc_event{}.event_data.id));
static_assert(proc::find_event_type(0x80)->data_size == sizeof(::proc_event{}.event_data.sid));
static_assert(proc::find_event_type(0x100)->data_size == sizeof(::proc_event{}.event_data.ptrace));
static_assert(proc::find_event_type(0x200)->data_size == sizeof(::proc_event{}.event_data.comm));
static_assert(proc::find_event_type(0x40000000)->data_size == sizeof(::proc_event{}.event_data.coredump));
static_assert(proc::find_event_type(0x80000000)->data_size == sizeof(::proc_event{}.event_data.exit));
static_assert(proc::find_event_type(0x20000000)->data_size == sizeof(::proc_event{}.event_data.exit));
static_assert(proc::find_event_type(0x400) == nullptr);
static_assert(proc::min_payload_size(0x400) == proc::event_header_size);
static_assert(proc::event_types.size() == std::variant_size_v<proc::event_data> - 1);

namespace {

// Places the 40-byte struct at `offset` of a buffer (offset 36 is where it
// sits in a received datagram), returning the span over it.
struct placed {
    std::vector<std::byte> storage;
    std::span<const std::byte> payload;
};

placed place(const ::proc_event& ev, std::size_t offset = 36, std::size_t size = sizeof(::proc_event)) {
    placed p;
    p.storage.resize(offset + sizeof ev + 8);
    std::memcpy(p.storage.data() + offset, &ev, sizeof ev);
    p.payload = {p.storage.data() + offset, size};
    return p;
}

::proc_event header(std::uint32_t what) {
    ::proc_event ev{};
    ev.what = static_cast<decltype(ev.what)>(what);
    ev.cpu = 1;
    ev.timestamp_ns = 0x0123456789abcdefULL;
    return ev;
}

proc::event decode_ok(const ::proc_event& ev, std::size_t offset = 36) {
    auto p = place(ev, offset);
    cnasio::error_code ec;
    auto out = proc::decode(p.payload, {7, 0}, ec);
    REQUIRE_FALSE(ec);
    return out;
}

} // namespace

TEST_CASE("proc::decode: header fields, read from misaligned storage") {
    auto ev = header(proc_event::PROC_EVENT_EXEC);
    ev.event_data.exec.process_pid = 100;
    ev.event_data.exec.process_tgid = 99;
    for (std::size_t offset : {36u, 37u, 38u, 39u, 40u}) {
        CAPTURE(offset);
        auto out = decode_ok(ev, offset);
        CHECK(out.what == proc_event::PROC_EVENT_EXEC);
        CHECK(out.type() == proc::event_type::exec);
        CHECK(out.cpu == 1);
        CHECK(out.timestamp_ns == 0x0123456789abcdefULL);
        CHECK(out.seq == 7);
        CHECK(out.ack == 0);
        REQUIRE(out.get_if<proc::exec_event>() != nullptr);
        CHECK(*out.get_if<proc::exec_event>() == proc::exec_event{100, 99});
    }
}

TEST_CASE("proc::decode: every kernel event type") {
    SUBCASE("ack") {
        auto ev = header(proc_event::PROC_EVENT_NONE);
        ev.event_data.ack.err = 22;
        auto p = place(ev);
        cnasio::error_code ec;
        auto out = proc::decode(p.payload, {5, 0x1235}, ec);
        REQUIRE_FALSE(ec);
        CHECK(out.is_ack());
        CHECK(out.ack == 0x1235);
        CHECK(out.get_if<proc::ack_event>()->err == 22);
    }
    SUBCASE("fork") {
        auto ev = header(proc_event::PROC_EVENT_FORK);
        ev.event_data.fork = {1, 2, 3, 4};
        CHECK(*decode_ok(ev).get_if<proc::fork_event>() == proc::fork_event{1, 2, 3, 4});
    }
    SUBCASE("uid") {
        auto ev = header(proc_event::PROC_EVENT_UID);
        ev.event_data.id.process_pid = 10;
        ev.event_data.id.process_tgid = 11;
        ev.event_data.id.r.ruid = 1000;
        ev.event_data.id.e.euid = 0;
        CHECK(*decode_ok(ev).get_if<proc::uid_event>() == proc::uid_event{10, 11, 1000, 0});
    }
    SUBCASE("gid") {
        auto ev = header(proc_event::PROC_EVENT_GID);
        ev.event_data.id.process_pid = 10;
        ev.event_data.id.process_tgid = 11;
        ev.event_data.id.r.rgid = 100;
        ev.event_data.id.e.egid = 4;
        CHECK(*decode_ok(ev).get_if<proc::gid_event>() == proc::gid_event{10, 11, 100, 4});
    }
    SUBCASE("sid") {
        auto ev = header(proc_event::PROC_EVENT_SID);
        ev.event_data.sid = {12, 12};
        CHECK(*decode_ok(ev).get_if<proc::sid_event>() == proc::sid_event{12, 12});
    }
    SUBCASE("ptrace attach and detach") {
        auto ev = header(proc_event::PROC_EVENT_PTRACE);
        ev.event_data.ptrace = {20, 20, 30, 31};
        auto attach = *decode_ok(ev).get_if<proc::ptrace_event>();
        CHECK(attach == proc::ptrace_event{20, 20, 30, 31});
        CHECK_FALSE(attach.is_detach());
        ev.event_data.ptrace = {20, 20, 0, 0};
        CHECK(decode_ok(ev).get_if<proc::ptrace_event>()->is_detach());
    }
    SUBCASE("comm, with and without a terminating NUL") {
        auto ev = header(proc_event::PROC_EVENT_COMM);
        ev.event_data.comm.process_pid = 40;
        ev.event_data.comm.process_tgid = 41;
        std::strcpy(ev.event_data.comm.comm, "bash");
        auto c = *decode_ok(ev).get_if<proc::comm_event>();
        CHECK(c.process_pid == 40);
        CHECK(c.process_tgid == 41);
        CHECK(c.name() == "bash");
        std::memcpy(ev.event_data.comm.comm, "0123456789abcdef", 16);
        CHECK(decode_ok(ev).get_if<proc::comm_event>()->name() == "0123456789abcdef");
    }
    SUBCASE("coredump, parent fields included") {
        auto ev = header(proc_event::PROC_EVENT_COREDUMP);
        ev.event_data.coredump = {50, 51, 52, 53};
        CHECK(*decode_ok(ev).get_if<proc::coredump_event>() == proc::coredump_event{50, 51, 52, 53});
    }
    SUBCASE("exit: wait status, thread exit_signal -1, parent") {
        auto ev = header(proc_event::PROC_EVENT_EXIT);
        ev.event_data.exit.process_pid = 60;
        ev.event_data.exit.process_tgid = 61;
        ev.event_data.exit.exit_code = 7 << 8;
        ev.event_data.exit.exit_signal = static_cast<__u32>(-1);
        ev.event_data.exit.parent_pid = 62;
        ev.event_data.exit.parent_tgid = 63;
        auto x = *decode_ok(ev).get_if<proc::exit_event>();
        CHECK(x == proc::exit_event{60, 61, 1792, -1, 62, 63});
        CHECK(x.exited());
        CHECK(x.exit_status() == 7);
        CHECK_FALSE(x.signaled());
    }
    SUBCASE("nonzero_exit (never sent by known kernels) decodes with the exit layout") {
        auto ev = header(0x20000000u);
        ev.event_data.exit.process_pid = 70;
        ev.event_data.exit.process_tgid = 70;
        ev.event_data.exit.exit_code = 256;
        ev.event_data.exit.exit_signal = 17;
        auto out = decode_ok(ev);
        REQUIRE(out.get_if<proc::nonzero_exit_event>() != nullptr);
        CHECK(out.get_if<proc::exit_event>() == nullptr);
        CHECK(out.get_if<proc::nonzero_exit_event>()->exit_status() == 1);
        CHECK(out.get_if<proc::nonzero_exit_event>()->exit_signal == 17);
    }
}

TEST_CASE("proc::decode: every row of the event table decodes as its own type, its fields as the wire has them") {
    // decode() dispatches with a switch of its own (decode.hpp): a case that
    // emplaces the wrong type, or a row the switch does not reach, fails here.
    for (const auto& t : proc::event_types) {
        CAPTURE(t.name);
        auto ev = header(t.what());
        for (std::size_t i = 0; i < 24; ++i) // distinct bytes in every field of the union
            reinterpret_cast<unsigned char*>(&ev.event_data)[i] = static_cast<unsigned char>(0x40 + i);
        for (std::size_t offset : {36u, 39u}) {
            const auto out = decode_ok(ev, offset);
            CHECK(out.what == t.what());
            CHECK(out.cpu == 1);
            CHECK(out.timestamp_ns == 0x0123456789abcdefULL);
            CHECK(out.seq == 7);
            const bool known = proc::visit_event_type(t.what(), [&]<class T>(std::type_identity<T>) {
                const T* typed = out.get_if<T>();
                REQUIRE(typed != nullptr);
                // Each field holds the bytes at its wire offset.
                std::size_t at = 0;
                proc::for_each_field(*typed, [&](std::string_view name, const auto& v) {
                    CAPTURE(name);
                    if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::string_view>) {
                        CHECK(static_cast<unsigned char>(v[0]) == 0x40 + at);
                        at += 16;
                    } else {
                        std::decay_t<decltype(v)> expected;
                        std::memcpy(&expected, reinterpret_cast<const unsigned char*>(&ev.event_data) + at,
                                    sizeof expected);
                        CHECK(v == expected);
                        at += sizeof v;
                    }
                });
                CHECK(at == t.data_size);
            });
            CHECK(known);
        }
    }
}

TEST_CASE("proc::exit_event: the exit code is a wait status") {
    proc::exit_event x;
    x.exit_code = 9; // SIGKILL
    CHECK_FALSE(x.exited());
    CHECK(x.signaled());
    CHECK(x.term_signal() == 9);
    CHECK_FALSE(x.core_dumped());
    x.exit_code = 0x80 | 6; // SIGABRT with a core
    CHECK(x.signaled());
    CHECK(x.term_signal() == 6);
    CHECK(x.core_dumped());
    x.exit_code = 0;
    CHECK(x.exited());
    CHECK(x.exit_status() == 0);
    x.exit_code = 0xff00;
    CHECK(x.exit_status() == 255);
}

TEST_CASE("proc::decode: unknown types are delivered with their raw bytes") {
    auto ev = header(0x400);
    for (std::size_t i = 0; i < 24; ++i)
        reinterpret_cast<unsigned char*>(&ev.event_data)[i] = static_cast<unsigned char>(i + 1);
    auto p = place(ev);
    cnasio::error_code ec;
    auto out = proc::decode(p.payload, {}, ec);
    REQUIRE_FALSE(ec);
    auto* u = out.get_if<proc::unknown_event>();
    REQUIRE(u != nullptr);
    CHECK(u->what == 0x400);
    CHECK(u->size == 24);
    REQUIRE(u->bytes().size() == 24);
    CHECK(u->bytes()[0] == std::byte{1});
    CHECK(u->bytes()[23] == std::byte{24});
    CHECK(proc::to_string(out.type()) == "unknown");

    SUBCASE("header only") {
        cnasio::error_code ec2;
        auto h = proc::decode(p.payload.first(16), {}, ec2);
        REQUIRE_FALSE(ec2);
        CHECK(h.get_if<proc::unknown_event>()->size == 0);
    }
    SUBCASE("longer than today's union: size tells, 24 bytes kept") {
        std::vector<std::byte> big(16 + 40, std::byte{0x5a});
        std::memcpy(big.data(), &ev, 16);
        cnasio::error_code ec2;
        auto h = proc::decode(big, {}, ec2);
        REQUIRE_FALSE(ec2);
        CHECK(h.get_if<proc::unknown_event>()->size == 40);
        CHECK(h.get_if<proc::unknown_event>()->bytes().size() == 24);
    }
}

TEST_CASE("proc::decode: payloads too short are errors, never reads past the end") {
    const std::uint32_t types[] = {0x0,   0x1,   0x2,        0x4,        0x40,      0x80,
                                   0x100, 0x200, 0x20000000, 0x40000000, 0x80000000};
    for (auto what : types) {
        CAPTURE(what);
        auto need = proc::min_payload_size(what);
        CHECK(need > proc::event_header_size);
        CHECK(need <= proc::event_wire_size);
        auto ev = header(what);
        // Exactly as long as needed, in a buffer that ends right there (ASan
        // would flag a read past it).
        std::vector<std::byte> exact(need);
        std::memcpy(exact.data(), &ev, need);
        cnasio::error_code ec;
        auto out = proc::decode(exact, {}, ec);
        CHECK_FALSE(ec);
        CHECK(out.what == what);
        std::vector<std::byte> shorter(need - 1);
        std::memcpy(shorter.data(), &ev, need - 1);
        out = proc::decode(shorter, {}, ec);
        CHECK(ec == cnasio::errno_code(EBADMSG));
        CHECK(out.what == 0);
        CHECK(out.is_ack()); // the value-initialised event, not partial data
        CHECK(out.get_if<proc::ack_event>()->err == 0);
    }
    cnasio::error_code ec;
    for (std::size_t n = 0; n < proc::event_header_size; ++n) {
        std::vector<std::byte> tiny(n);
        (void)proc::decode(tiny, {}, ec);
        CHECK(ec == cnasio::errno_code(EBADMSG));
    }
    // The pointer overload.
    auto ev = header(proc_event::PROC_EVENT_FORK);
    (void)proc::decode(&ev, 20, {}, ec);
    CHECK(ec);
    (void)proc::decode(&ev, sizeof ev, {}, ec);
    CHECK_FALSE(ec);
}

TEST_CASE("proc::to_string and event_type_from_string round-trip") {
    CHECK(proc::to_string(proc::event_type::none) == "ack");
    CHECK(proc::to_string(proc::event_type::fork) == "fork");
    CHECK(proc::to_string(proc::event_type::nonzero_exit) == "nonzero_exit");
    CHECK(proc::to_string(static_cast<proc::event_type>(0x12345)) == "unknown");
    int filterable = 0;
    for (const auto& n : proc::event_types) {
        CAPTURE(n.name);
        CHECK(proc::to_string(n.type) == n.name);
        if (!n.filterable()) continue;
        ++filterable;
        CHECK(proc::event_type_from_string(n.name) == n.type);
    }
    CHECK(filterable == 10);
    CHECK_FALSE(proc::event_type_from_string("ack").has_value());
    CHECK_FALSE(proc::event_type_from_string("Fork").has_value());
    CHECK_FALSE(proc::event_type_from_string("").has_value());
}

TEST_CASE("proc::parse_event_mask") {
    cnasio::error_code ec;
    std::string_view bad;
    auto m = proc::parse_event_mask("fork,exec,exit", ec, &bad);
    REQUIRE_FALSE(ec);
    CHECK(m.bits() == 0x80000003u);
    CHECK(m.contains(proc::event_type::fork));
    CHECK_FALSE(m.contains(proc::event_type::comm));
    CHECK_FALSE(m.contains(proc::event_type::none));
    CHECK(m == (proc::event_type::fork | proc::event_type::exec | proc::event_type::exit));

    CHECK(proc::parse_event_mask(" exit , fork ", ec) == (proc::event_type::fork | proc::event_type::exit));
    CHECK_FALSE(ec);
    CHECK(proc::parse_event_mask("all", ec).is_all());
    CHECK(proc::parse_event_mask("exit,nonzero_exit", ec).bits() == 0xa0000000u);
    CHECK(proc::parse_event_mask("exit,exit", ec).bits() == 0x80000000u);

    for (std::string_view input : {"fork,bogus", "bogus", "ack", "none", "Fork"}) {
        CAPTURE(input);
        bad = {};
        m = proc::parse_event_mask(input, ec, &bad);
        CHECK(ec == cnasio::errno_code(EINVAL));
        CHECK(m.empty());
        CHECK(input.ends_with(bad));
        CHECK_FALSE(bad.empty());
    }
    for (std::string_view input : {"", " ", "fork,", ",fork", "fork,,exit"}) {
        CAPTURE(input);
        m = proc::parse_event_mask(input, ec);
        CHECK(ec == cnasio::errno_code(EINVAL));
        CHECK(m.empty());
    }
}

TEST_CASE("proc::event_mask: names and the kernel's normalisation") {
    CHECK(proc::to_string(proc::event_mask{}) == "");
    CHECK(proc::to_string(proc::event_mask::all()) == "all");
    CHECK(proc::to_string(proc::event_type::exit | proc::event_type::fork) == "fork,exit");
    CHECK(proc::to_string(proc::event_mask::from_bits(0x401)) == "fork,0x400");
    // Round trip of every single type.
    for (const auto& n : proc::event_types) {
        if (!n.filterable()) continue;
        cnasio::error_code ec;
        CHECK(proc::parse_event_mask(proc::to_string(proc::event_mask{n.type}), ec) ==
              proc::event_mask{n.type});
    }
    // valid_event(): unknown bits dropped, nothing left = ALL.
    CHECK(proc::event_mask{}.kernel_effective().is_all());
    CHECK(proc::event_mask::from_bits(0x400).kernel_effective().is_all());
    CHECK(proc::event_mask::from_bits(0x401).kernel_effective() == proc::event_mask{proc::event_type::fork});
    CHECK(proc::event_mask::all().kernel_effective().is_all());
}

namespace {

// The view's get<T>() against the variant decode() fills: the same alternative
// present, the same fields, every other alternative absent.
template <class... T>
void check_view_matches_decode(const proc::event_view& v, const proc::event& decoded, std::variant<T...>*) {
    auto one = [&]<class U>(U*) {
        CAPTURE(typeid(U).name());
        const auto got = v.get<U>();
        const U* want = std::get_if<U>(&decoded.data);
        REQUIRE(got.has_value() == (want != nullptr));
        if (want) CHECK(*got == *want);
    };
    (one(static_cast<T*>(nullptr)), ...);
}

} // namespace

TEST_CASE("proc::event_view: reads what decode() reads, for every type and an unknown one") {
    const std::uint32_t types[] = {0x0,   0x1,   0x2,        0x4,        0x40,       0x80,      0x100,
                                   0x200, 0x400, 0x20000000, 0x40000000, 0x80000000, 0x12345678};
    for (auto what : types) {
        CAPTURE(what);
        auto ev = header(what);
        for (std::size_t i = 0; i < 24; ++i) // distinct bytes in every field of the union
            reinterpret_cast<unsigned char*>(&ev.event_data)[i] = static_cast<unsigned char>(0x30 + i);
        for (std::size_t offset : {36u, 37u}) {
            auto p = place(ev, offset);
            cnasio::error_code ec;
            const auto decoded = proc::decode(p.payload, {9, 3}, ec);
            REQUIRE_FALSE(ec);
            proc::event_view v;
            CHECK_FALSE(v);
            ec = cnasio::errno_code(EIO); // parse() clears it on success
            REQUIRE(proc::event_view::parse(p.payload, {9, 3}, v, ec));
            CHECK_FALSE(ec);
            CHECK(v);
            CHECK(v.what() == what);
            CHECK(v.type() == decoded.type());
            CHECK(v.cpu() == 1);
            CHECK(v.timestamp_ns() == 0x0123456789abcdefULL);
            CHECK(v.seq() == 9);
            CHECK(v.ack() == 3);
            CHECK(v.is_ack() == decoded.is_ack());
            CHECK(v.payload().data() == p.payload.data());
            CHECK(v.payload().size() == p.payload.size());
            check_view_matches_decode(v, decoded, static_cast<proc::event_data*>(nullptr));
            const auto again = v.to_event();
            CHECK(again.what == decoded.what);
            CHECK(again.cpu == decoded.cpu);
            CHECK(again.timestamp_ns == decoded.timestamp_ns);
            CHECK(again.seq == decoded.seq);
            CHECK(again.ack == decoded.ack);
            CHECK(again.data == decoded.data);
        }
    }
}

TEST_CASE("proc::event_view: parse() refuses exactly the payloads decode() refuses") {
    const std::uint32_t types[] = {0x0, 0x1, 0x2, 0x4, 0x40, 0x80, 0x100, 0x200, 0x400, 0x20000000, 0x40000000,
                                   0x80000000};
    for (auto what : types) {
        auto ev = header(what);
        for (std::size_t n = 0; n <= sizeof ev; ++n) {
            CAPTURE(what);
            CAPTURE(n);
            std::vector<std::byte> exact(n); // ends right there: ASan flags any read past it
            if (n != 0) std::memcpy(exact.data(), &ev, n); // an empty vector's data() may be null
            cnasio::error_code by_decode, by_view;
            (void)proc::decode(exact, {}, by_decode);
            proc::event_view v;
            const auto whole = place(ev);
            REQUIRE(proc::event_view::parse(whole.payload, {}, v, by_view)); // so that a failure must empty it
            const bool ok = proc::event_view::parse(exact, {}, v, by_view);
            CHECK(ok == !by_decode);
            CHECK(by_view == by_decode);
            CHECK(static_cast<bool>(v) == ok); // a failed parse leaves the view empty
            if (ok && what != 0x400) CHECK(v.get<proc::unknown_event>() == std::nullopt);
        }
    }
}

namespace {

// What for_each_field reports, as "name=value" strings.
struct field_log {
    std::vector<std::string> entries;
    template <class V>
    void operator()(std::string_view name, const V& value) {
        std::string text;
        if constexpr (std::is_same_v<V, std::string_view>) {
            text = std::string(value);
        } else if constexpr (std::is_same_v<V, std::span<const std::byte>>) {
            for (auto b : value) text += std::to_string(static_cast<unsigned>(b)) + ".";
        } else {
            static_assert(std::is_integral_v<V>);
            text = std::to_string(value);
        }
        entries.push_back(std::string(name) + "=" + text);
    }
};

} // namespace

TEST_CASE("proc::for_each_field: every field of the decoded type, in wire order, with the kernel's names") {
    SUBCASE("fork") {
        auto ev = header(proc_event::PROC_EVENT_FORK);
        ev.event_data.fork = {1, 2, 3, 4};
        field_log log;
        proc::for_each_field(decode_ok(ev), log);
        CHECK(log.entries ==
              std::vector<std::string>{"parent_pid=1", "parent_tgid=2", "child_pid=3", "child_tgid=4"});
    }
    SUBCASE("exit: signed exit_signal") {
        auto ev = header(proc_event::PROC_EVENT_EXIT);
        ev.event_data.exit = {60, 61, 1792, static_cast<__u32>(-1), 62, 63};
        field_log log;
        proc::for_each_field(decode_ok(ev), log);
        CHECK(log.entries == std::vector<std::string>{"process_pid=60", "process_tgid=61", "exit_code=1792",
                                                      "exit_signal=-1", "parent_pid=62", "parent_tgid=63"});
    }
    SUBCASE("comm: the name as text") {
        auto ev = header(proc_event::PROC_EVENT_COMM);
        ev.event_data.comm.process_pid = 40;
        ev.event_data.comm.process_tgid = 41;
        std::strcpy(ev.event_data.comm.comm, "bash");
        field_log log;
        proc::for_each_field(decode_ok(ev), log);
        CHECK(log.entries == std::vector<std::string>{"process_pid=40", "process_tgid=41", "comm=bash"});
    }
    SUBCASE("ack and uid") {
        field_log log;
        proc::for_each_field(proc::ack_event{22}, log);
        proc::for_each_field(proc::uid_event{10, 11, 1000, 0}, log);
        CHECK(log.entries == std::vector<std::string>{"err=22", "process_pid=10", "process_tgid=11", "ruid=1000",
                                                      "euid=0"});
    }
    SUBCASE("unknown: what and the bytes kept") {
        proc::unknown_event u;
        u.what = 0x400;
        u.size = 2;
        u.data[0] = std::byte{7};
        u.data[1] = std::byte{9};
        field_log log;
        proc::for_each_field(proc::event_data{u}, log);
        CHECK(log.entries == std::vector<std::string>{"what=1024", "data=7.9."});
    }
    SUBCASE("every type: one entry per wire field, all of its bytes") {
        for (const auto& t : proc::event_types) {
            CAPTURE(t.name);
            bool visited = proc::visit_event_type(t.what(), [&]<class T>(std::type_identity<T>) {
                CHECK(T::type == t.type);
                std::size_t n = 0;
                proc::for_each_field(T{}, [&](std::string_view, const auto&) { ++n; });
                CHECK(n == std::tuple_size_v<decltype(T::fields())>);
            });
            CHECK(visited);
        }
        CHECK_FALSE(proc::visit_event_type(0x400, [](auto) { FAIL("called for an unknown type"); }));
    }
}
