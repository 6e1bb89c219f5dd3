// connector/registry.hpp without I/O: the strict parser of /proc/net/connector
// (texts the kernel prints, and ones it would not), the diff, and the
// registry watcher's waiters (detail::id_waiters).
#include <cnasio/connector/registry.hpp>

#include <doctest/doctest.h>

#include <algorithm>

#include <string>
#include <utility>
#include <vector>

using namespace cnasio;
using connector::parse_registry;
using connector::registered_id;

namespace {

// What the kernel printed on the 6.18 host and in Debian 6.1 with the example module loaded.
constexpr std::string_view host_6_18 = "Name            ID\ncn_proc         1:1\n";
constexpr std::string_view with_module = "Name            ID\ncn_proc         1:1\ncnasio_echo     14:1\n";

std::vector<registered_id> ok(std::string_view text) {
    error_code ec;
    auto ids = parse_registry(text, ec);
    CHECK_MESSAGE(!ec, text);
    return ids;
}

// The text must be refused at line `line`.
void refused(std::string_view text, std::size_t line) {
    error_code ec;
    std::size_t bad = 0;
    auto ids = parse_registry(text, ec, &bad);
    CHECK_MESSAGE(ec == error::registry_malformed, text);
    CHECK_MESSAGE(bad == line, text);
    CHECK(ids.empty());
}

} // namespace

TEST_SUITE("registry") {
    TEST_CASE("the kernel's own texts parse to names and ids, in order") {
        CHECK(ok(host_6_18) == std::vector<registered_id>{{"cn_proc", {1, 1}}});
        CHECK(ok(with_module) ==
              std::vector<registered_id>{{"cn_proc", {1, 1}}, {"cnasio_echo", {14, 1}}});
        CHECK(ok("Name            ID\n").empty()); // CONFIG_PROC_EVENTS off and nothing loaded
        // A name of 15 bytes or more is followed by one blank; the full u32 range; w1's 3:1.
        CHECK(ok("Name            ID\nw1              3:1\n"
                 "a_name_of_exactly_31_characters 4294967295:4294967295\nexactly15_chars 0:0\n") ==
              std::vector<registered_id>{{"w1", {3, 1}},
                                         {"a_name_of_exactly_31_characters", {4294967295u, 4294967295u}},
                                         {"exactly15_chars", {0, 0}}});
        // Names may hold blanks: the id is the last field.
        CHECK(ok("Name            ID\nmy driver       20:7\n") == std::vector<registered_id>{{"my driver", {20, 7}}});
    }

    TEST_CASE("anything the kernel's format would not print is an error naming its line") {
        refused("", 0);
        refused("Name ID\ncn_proc         1:1\n", 1);
        refused("Name            ID", 1);                               // cut before the newline
        refused("Name            ID\ncn_proc         1:1", 2);          // last line cut
        refused("Name            ID\ncn_proc 1:1\n", 2);                // no padding to 15
        refused("Name            ID\ncn_proc          1:1\n", 2);       // one blank too many
        refused("Name            ID\ncn_proc         1:1 \n", 2);       // trailing blank
        refused("Name            ID\ncn_proc         01:1\n", 2);       // leading zero
        refused("Name            ID\ncn_proc         +1:1\n", 2);       // sign
        refused("Name            ID\ncn_proc         1:-1\n", 2);
        refused("Name            ID\ncn_proc         4294967296:1\n", 2); // above 2^32 - 1
        refused("Name            ID\ncn_proc         1\n", 2);          // no val
        refused("Name            ID\ncn_proc         1:\n", 2);
        refused("Name            ID\ncn_proc         0x1:1\n", 2);      // not decimal
        refused("Name            ID\n                1:1\n", 2);        // empty name
        refused("Name            ID\na_name_of_exactly_32_characters_ 1:1\n", 2); // over CN_CBQ_NAMELEN
        refused("Name            ID\ncn_proc         1:1\r\n", 2);     // CR
        refused("Name            ID\n\ncn_proc         1:1\n", 2);     // empty line
        refused("Name            ID\ncn_proc         1:1\nother           1:1\n", 3); // id twice
        refused("Name            ID\ncn_proc         1:1\ngarbage\n", 3);
        // A NUL inside a name (found by fuzz_registry): the kernel's %s stops at the first one.
        refused(std::string_view("Name            ID\ncn_\0\0\0\0\0\0\0'     1:1\n", 39), 2);
    }

    TEST_CASE("the diff lists what went away, then what appeared") {
        const std::vector<registered_id> a{{"cn_proc", {1, 1}}, {"old", {15, 1}}};
        const std::vector<registered_id> b{{"cn_proc", {1, 1}}, {"cnasio_echo", {14, 1}}};
        CHECK(connector::diff_registry(a, a).empty());
        CHECK(connector::diff_registry(a, b) ==
              std::vector<connector::id_change>{{{"old", {15, 1}}, false}, {{"cnasio_echo", {14, 1}}, true}});
        // Same id, other name: gone and back.
        CHECK(connector::diff_registry({{"x", {14, 1}}}, {{"y", {14, 1}}}).size() == 2);
        CHECK(connector::contains(b, {14, 1}));
        CHECK(!connector::contains(a, {14, 1}));
    }

    TEST_CASE("error messages of the registry errors say what to do") {
        CHECK(error_code(error::not_registered).message().find("not in /proc/net/connector") != std::string::npos);
        CHECK(error_code(error::registry_unavailable).message().find("initial network namespace") !=
              std::string::npos);
        CHECK(error_code(error::registry_malformed).message() != "unknown cnasio error");
    }

    TEST_CASE("id_waiters: waits end when a read shows the id come or go, or at their deadline") {
        using clock = std::chrono::steady_clock;
        detail::id_waiters w;
        std::vector<std::pair<std::uint32_t, error_code>> done;
        auto emit = [&](std::uint32_t op, error_code ec) { done.emplace_back(op, ec); };
        const auto t0 = clock::now();
        const std::vector<registered_id> none{{"cn_proc", {1, 1}}};
        const std::vector<registered_id> echo{{"cn_proc", {1, 1}}, {"cnasio_echo", {14, 1}}};

        w.add_wait(1, 11, {14, 1}, false, t0 + std::chrono::seconds(1)); // come
        w.add_wait(2, 12, {1, 1}, true, t0 + std::chrono::milliseconds(50)); // go: never
        w.add_wait(3, 13, {14, 1}, true, clock::time_point::max());     // go
        CHECK(w.next_deadline() == t0 + std::chrono::milliseconds(50));
        w.on_registry(t0, none, {}, emit);
        // 3 saw 14:1 absent already
        REQUIRE(done.size() == 1);
        CHECK(done[0] == std::pair<std::uint32_t, error_code>{3, {}});
        w.on_registry(t0 + std::chrono::milliseconds(49), none, {}, emit);
        CHECK(done.size() == 1);
        w.on_registry(t0 + std::chrono::milliseconds(50), echo, {}, emit);
        REQUIRE(done.size() == 3);
        CHECK(done[1] == std::pair<std::uint32_t, error_code>{1, {}});
        CHECK(done[2] == std::pair<std::uint32_t, error_code>{2, error::timeout});
        CHECK(w.empty());
        CHECK(!w.next_deadline());

        // Cancellation names the operation's number; a stale one does nothing.
        w.add_wait(4, 14, {99, 1}, false, clock::time_point::max());
        CHECK(w.waiting(14));
        w.cancel(13, error::client_closed, emit);
        CHECK(done.size() == 3);
        w.cancel(14, error::client_closed, emit);
        REQUIRE(done.size() == 4);
        CHECK(done[3] == std::pair<std::uint32_t, error_code>{4, error::client_closed});
        CHECK(!w.waiting(14));
    }

    TEST_CASE("id_waiters: a watch reports changes since the last list a watch saw, none lost in between") {
        detail::id_waiters w;
        std::vector<std::pair<std::uint32_t, error_code>> done;
        auto emit = [&](std::uint32_t op, error_code ec) { done.emplace_back(op, ec); };
        const auto now = std::chrono::steady_clock::now();
        const std::vector<registered_id> a{{"cn_proc", {1, 1}}};
        const std::vector<registered_id> b{{"cn_proc", {1, 1}}, {"cnasio_echo", {14, 1}}};
        std::vector<connector::id_change> c1, c2;

        w.add_watch(1, 1, &c1);
        w.on_registry(now, a, {}, emit); // baseline
        w.on_registry(now, a, {}, emit);
        CHECK(done.empty());
        w.on_registry(now, b, {}, emit);
        REQUIRE(done.size() == 1);
        CHECK(c1 == std::vector<connector::id_change>{{{"cnasio_echo", {14, 1}}, true}});
        // No watch outstanding: reads (for a wait) leave the baseline at b.
        w.add_wait(9, 9, {77, 1}, false, std::chrono::steady_clock::time_point::max());
        w.on_registry(now, a, {}, emit);
        w.add_watch(2, 2, &c2);
        w.on_registry(now, a, {}, emit);
        REQUIRE(done.size() == 2);
        CHECK(done[1].first == 2);
        CHECK(c2 == std::vector<connector::id_change>{{{"cnasio_echo", {14, 1}}, false}});

        // A failed read ends everything with its error.
        w.add_watch(3, 3, &c2);
        w.on_registry(now, {}, error::registry_unavailable, emit);
        REQUIRE(done.size() == 4);
        CHECK(done[2] == std::pair<std::uint32_t, error_code>{9, error::registry_unavailable});
        CHECK(done[3] == std::pair<std::uint32_t, error_code>{3, error::registry_unavailable});
        CHECK(w.empty());
    }

    TEST_CASE("a read of this machine's registry parses (or the file is absent here)") {
        error_code ec;
        auto ids = connector::read_registry(ec);
        CHECK((!ec || ec == error::registry_unavailable));
    }
}

#include <cnasio/detail/client_core.hpp>

TEST_SUITE("registry") {
    TEST_CASE("client_core: an expired check_registered request asks whether its id is registered; others never ask") {
        using clock = detail::client_core::clock;
        detail::client_core core(detail::core_options{}, 42);
        const auto t0 = clock::now();
        request_options checked;
        checked.check_registered = true;
        checked.timeout = std::chrono::milliseconds(100);
        request_options plain;
        plain.timeout = std::chrono::milliseconds(100);
        request_options to_peer = checked; // a user-space peer: no kernel registry to ask
        to_peer.port_id = 4711;
        REQUIRE(core.start_request(1, {14, 1}, 0, checked, t0).send);
        REQUIRE(core.start_request(2, {15, 1}, 0, checked, t0).send);
        REQUIRE(core.start_request(3, {14, 1}, 0, plain, t0).send);
        REQUIRE(core.start_request(4, {14, 1}, 0, to_peer, t0).send);
        std::vector<connector::id> asked;
        core.on_timer(t0 + std::chrono::milliseconds(100), [&](connector::id id) {
            asked.push_back(id);
            return id == connector::id{15, 1}; // 14:1 is gone, 15:1 is there
        });
        CHECK(asked == std::vector<connector::id>{{14, 1}, {15, 1}});
        std::vector<std::pair<detail::op_id, error_code>> got;
        for (detail::completion c; core.pop_completion(c);) got.emplace_back(c.op, c.ec);
        std::sort(got.begin(), got.end());
        CHECK(got == std::vector<std::pair<detail::op_id, error_code>>{
                         {1, error::not_registered}, {2, error::timeout}, {3, error::timeout}, {4, error::timeout}});
        CHECK(core.stats().timeouts == 3);
    }
}
