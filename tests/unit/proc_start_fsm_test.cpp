// cnasio::proc::start_fsm, driven with scripted events: every path of the
// listener's start (no filter, 6.6+ kernel mask, pre-6.6 BPF fallback,
// force_bpf), the kernel's refusals (ack err, no ack), failures of each
// action, close() before, during and after the start, and what IGNORE is
// owed at each point.
#include <cnasio/proc/start_fsm.hpp>

#if defined(BOOST_ASIO_VERSION)
#error "proc/start_fsm.hpp is sans-IO: it must not include Asio"
#endif

#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <span>
#include <system_error>

namespace proc = cnasio::proc;
using cnasio::error_code;
using K = proc::start_action::kind;
using E = proc::start_event;
using S = proc::start_fsm::state;
using namespace std::chrono_literals;

namespace {

proc::start_config config(proc::event_mask wanted, bool force_bpf = false) {
    proc::start_config c;
    c.wanted = wanted;
    c.force_bpf = force_bpf;
    c.probe_timeout = 300ms;
    c.listen_timeout = 1000ms;
    return c;
}

const proc::event_mask exit_only = proc::event_type::exit;

// The request payload as the kernel reads it: {op} or {op, mask}.
struct request_words {
    std::size_t size = 0;
    std::uint32_t op = 0, mask = 0;
};
request_words words(const proc::start_action& a) {
    request_words w;
    w.size = a.payload.size();
    if (w.size >= 4) std::memcpy(&w.op, a.payload.data(), 4);
    if (w.size >= 8) std::memcpy(&w.mask, a.payload.data() + 4, 4);
    return w;
}

void check_teardown(const proc::start_action& a, bool ignore, bool detach, bool leave) {
    REQUIRE(a.what == K::teardown);
    CHECK(a.ignore == ignore);
    CHECK(a.detach_bpf == detach);
    CHECK(a.leave == leave);
}

void check_done(const proc::start_action& a, error_code ec) {
    REQUIRE(a.what == K::done);
    CHECK(a.ec == ec);
}

// start -> join -> joined; returns the action after joined.
proc::start_action joined(proc::start_fsm& m) {
    REQUIRE(m.on(E::started()).what == K::join);
    CHECK(m.current() == S::joining);
    return m.on(E::joined());
}

// A machine on the 6.6+ path, running.
void run_kernel_mask(proc::start_fsm& m) {
    REQUIRE(joined(m).what == K::request);
    REQUIRE(m.on(E::ack(0)).what == K::send);
    check_done(m.on(E::sent()), {});
}

const error_code aborted{ECANCELED, boost::system::system_category()};

} // namespace

TEST_SUITE("proc start_fsm") {
    TEST_CASE("no filter: join, then the 4-byte LISTEN as a request; the ack starts it") {
        proc::start_fsm m(config(proc::event_mask::all()));
        const auto listen = joined(m);
        REQUIRE(listen.what == K::request);
        CHECK(listen.timeout == 1000ms);
        const auto w = words(listen);
        CHECK(w.size == 4);
        CHECK(w.op == 1); // PROC_CN_MCAST_LISTEN
        CHECK_FALSE(m.listening());
        check_done(m.on(E::ack(0)), {});
        CHECK(m.running());
        CHECK(m.path() == proc::filter_path::none);
        CHECK(m.listening());
        // close(): IGNORE (owed), no BPF to detach, leave; then closed.
        check_teardown(m.on(E::close()), true, false, true);
        CHECK(m.on(E::torn_down()).what == K::none);
        CHECK(m.current() == S::closed);
        CHECK_FALSE(m.listening());
        CHECK(m.on(E::close()).what == K::none); // once only
    }

    TEST_CASE("an empty or unknown-bits filter is no filter (the kernel's reading)") {
        proc::start_fsm m(config(proc::event_mask::from_bits(0x400)));
        CHECK(m.wanted().is_all());
        CHECK(words(joined(m)).size == 4);
    }

    TEST_CASE("6.6+: the probe (8 bytes, mask ALL) is acked, then the real mask goes one-way") {
        proc::start_fsm m(config(proc::event_type::fork | proc::event_type::exit));
        const auto probe = joined(m);
        REQUIRE(probe.what == K::request);
        CHECK(probe.timeout == 300ms);
        auto w = words(probe);
        CHECK(w.size == 8);
        CHECK(w.op == 1);
        CHECK(w.mask == proc::event_type_all_bits);
        const auto mask = m.on(E::ack(0));
        REQUIRE(mask.what == K::send);
        w = words(mask);
        CHECK(w.size == 8);
        CHECK(w.op == 1);
        CHECK(w.mask == 0x80000001u);
        CHECK(m.listening()); // the probe was counted: IGNORE owed from here
        check_done(m.on(E::sent()), {});
        CHECK(m.path() == proc::filter_path::kernel_mask);
        CHECK_FALSE(m.bpf_attached());
        check_teardown(m.on(E::close()), true, false, true);
        CHECK(m.on(E::torn_down()).what == K::none);
        CHECK(m.closed());
    }

    TEST_CASE("before 6.6: no ack to the probe -> BPF filter, then the 4-byte LISTEN") {
        proc::start_fsm m(config(exit_only));
        REQUIRE(joined(m).what == K::request);
        REQUIRE(m.on(E::timeout()).what == K::attach_bpf);
        CHECK_FALSE(m.listening()); // the dropped 8-byte LISTEN was not counted: no IGNORE for it
        const auto listen = m.on(E::attached());
        REQUIRE(listen.what == K::request);
        CHECK(words(listen).size == 4);
        CHECK(listen.timeout == 1000ms);
        CHECK(m.bpf_attached());
        check_done(m.on(E::ack(0)), {});
        CHECK(m.path() == proc::filter_path::bpf);
        CHECK(m.listening());
        check_teardown(m.on(E::close()), true, true, true);
        CHECK(m.on(E::torn_down()).what == K::none);
        CHECK_FALSE(m.bpf_attached());
    }

    TEST_CASE("force_bpf: no probe, the BPF filter right after joining") {
        proc::start_fsm m(config(exit_only, true));
        REQUIRE(joined(m).what == K::attach_bpf);
        REQUIRE(words(m.on(E::attached())).size == 4);
        check_done(m.on(E::ack(0)), {});
        CHECK(m.path() == proc::filter_path::bpf);
    }

    TEST_CASE("an ack with err = EPERM fails the start with EPERM, owes no IGNORE, undoes the rest") {
        SUBCASE("the probe's ack") {
            proc::start_fsm m(config(exit_only));
            REQUIRE(joined(m).what == K::request);
            check_teardown(m.on(E::ack(EPERM)), false, false, true);
            const auto done = m.on(E::torn_down());
            check_done(done, cnasio::errno_code(EPERM));
            CHECK(done.ec == std::errc::operation_not_permitted);
            CHECK(m.current() == S::idle);
            CHECK(m.path() == proc::filter_path::none);
        }
        SUBCASE("the 4-byte LISTEN's ack, BPF attached") {
            proc::start_fsm m(config(exit_only, true));
            REQUIRE(joined(m).what == K::attach_bpf);
            REQUIRE(m.on(E::attached()).what == K::request);
            check_teardown(m.on(E::ack(EPERM)), false, true, true);
            check_done(m.on(E::torn_down()), cnasio::errno_code(EPERM));
            CHECK_FALSE(m.listening());
            CHECK_FALSE(m.bpf_attached());
            CHECK_FALSE(m.joined());
        }
    }

    TEST_CASE("no ack to the 4-byte LISTEN: proc_events_unsupported") {
        SUBCASE("after the pre-6.6 fallback") {
            proc::start_fsm m(config(exit_only));
            REQUIRE(joined(m).what == K::request);
            REQUIRE(m.on(E::timeout()).what == K::attach_bpf);
            REQUIRE(m.on(E::attached()).what == K::request);
            check_teardown(m.on(E::timeout()), false, true, true);
            check_done(m.on(E::torn_down()), make_error_code(cnasio::error::proc_events_unsupported));
        }
        SUBCASE("without a filter") {
            proc::start_fsm m(config(proc::event_mask::all()));
            REQUIRE(joined(m).what == K::request);
            check_teardown(m.on(E::timeout()), false, false, true);
            check_done(m.on(E::torn_down()), make_error_code(cnasio::error::proc_events_unsupported));
        }
    }

    TEST_CASE("failures of the actions") {
        const error_code enobufs = cnasio::errno_code(ENOBUFS);
        SUBCASE("join fails: done at once, nothing to undo") {
            proc::start_fsm m(config(exit_only));
            REQUIRE(m.on(E::started()).what == K::join);
            check_done(m.on(E::failure(enobufs)), enobufs);
            CHECK(m.current() == S::idle);
        }
        SUBCASE("attach fails: leave the group") {
            proc::start_fsm m(config(exit_only, true));
            REQUIRE(joined(m).what == K::attach_bpf);
            check_teardown(m.on(E::failure(enobufs)), false, false, true);
            check_done(m.on(E::torn_down()), enobufs);
        }
        SUBCASE("the masked LISTEN cannot be sent: IGNORE the acked probe") {
            proc::start_fsm m(config(exit_only));
            REQUIRE(joined(m).what == K::request);
            REQUIRE(m.on(E::ack(0)).what == K::send);
            check_teardown(m.on(E::failure(enobufs)), true, false, true);
            check_done(m.on(E::torn_down()), enobufs);
            CHECK_FALSE(m.listening());
        }
        SUBCASE("the request fails (client closed)") {
            proc::start_fsm m(config(proc::event_mask::all()));
            REQUIRE(joined(m).what == K::request);
            check_teardown(m.on(E::failure(aborted)), false, false, true);
            check_done(m.on(E::torn_down()), aborted);
        }
        SUBCASE("a failed start can be started again") {
            proc::start_fsm m(config(exit_only));
            REQUIRE(joined(m).what == K::request);
            REQUIRE(m.on(E::ack(EPERM)).what == K::teardown);
            REQUIRE(m.on(E::torn_down()).what == K::done);
            run_kernel_mask(m);
            CHECK(m.path() == proc::filter_path::kernel_mask);
        }
    }

    TEST_CASE("start while starting or running: in_progress, the machine unchanged; after close: client_closed") {
        const error_code in_progress{EINPROGRESS, boost::system::system_category()};
        proc::start_fsm m(config(exit_only));
        REQUIRE(joined(m).what == K::request);
        check_done(m.on(E::started()), in_progress);
        CHECK(m.current() == S::probing);
        REQUIRE(m.on(E::ack(0)).what == K::send);
        check_done(m.on(E::sent()), {});
        check_done(m.on(E::started()), in_progress);
        CHECK(m.running());
        REQUIRE(m.on(E::close()).what == K::teardown);
        CHECK(m.on(E::torn_down()).what == K::none);
        check_done(m.on(E::started()), make_error_code(cnasio::error::client_closed));
    }

    TEST_CASE("close() before any start: closed, nothing to undo") {
        proc::start_fsm m(config(exit_only));
        CHECK(m.on(E::close()).what == K::none);
        CHECK(m.closed());
        check_done(m.on(E::started()), make_error_code(cnasio::error::client_closed));
    }

    TEST_CASE("close() during the start") {
        SUBCASE("probe in flight, then acked: IGNORE sent for it, start aborted") {
            proc::start_fsm m(config(exit_only));
            REQUIRE(joined(m).what == K::request);
            check_teardown(m.on(E::close()), false, false, true); // nothing acked yet: no IGNORE
            CHECK(m.on(E::torn_down()).what == K::none);            // the probe is still in flight
            CHECK(m.current() == S::aborting);
            CHECK(m.closed());
            check_teardown(m.on(E::ack(0)), true, false, false); // counted by the kernel: IGNORE it
            check_done(m.on(E::torn_down()), aborted);
            CHECK(m.current() == S::closed);
            CHECK_FALSE(m.listening());
        }
        SUBCASE("probe in flight, then no ack: no IGNORE at all") {
            proc::start_fsm m(config(exit_only));
            REQUIRE(joined(m).what == K::request);
            check_teardown(m.on(E::close()), false, false, true);
            CHECK(m.on(E::torn_down()).what == K::none);
            check_done(m.on(E::timeout()), aborted); // not the BPF fallback
            CHECK(m.current() == S::closed);
        }
        SUBCASE("masked LISTEN being sent: IGNORE at once (the probe was acked)") {
            proc::start_fsm m(config(exit_only));
            REQUIRE(joined(m).what == K::request);
            REQUIRE(m.on(E::ack(0)).what == K::send);
            check_teardown(m.on(E::close()), true, false, true);
            CHECK(m.on(E::torn_down()).what == K::none);
            check_done(m.on(E::sent()), aborted);
            CHECK_FALSE(m.listening());
        }
        SUBCASE("4-byte LISTEN in flight with BPF attached, refused with EPERM") {
            proc::start_fsm m(config(exit_only, true));
            REQUIRE(joined(m).what == K::attach_bpf);
            REQUIRE(m.on(E::attached()).what == K::request);
            check_teardown(m.on(E::close()), false, true, true);
            CHECK(m.on(E::torn_down()).what == K::none);
            check_done(m.on(E::ack(EPERM)), aborted); // not counted: no IGNORE
            CHECK(m.current() == S::closed);
        }
        SUBCASE("a second close() while aborting changes nothing") {
            proc::start_fsm m(config(proc::event_mask::all()));
            REQUIRE(joined(m).what == K::request);
            REQUIRE(m.on(E::close()).what == K::teardown);
            CHECK(m.on(E::torn_down()).what == K::none);
            CHECK(m.on(E::close()).what == K::none);
            check_teardown(m.on(E::ack(0)), true, false, false);
            check_done(m.on(E::torn_down()), aborted);
        }
    }

    TEST_CASE("events a state does not expect are ignored") {
        proc::start_fsm m(config(exit_only));
        CHECK(m.on(E::ack(0)).what == K::none);
        CHECK(m.current() == S::idle);
        run_kernel_mask(m);
        CHECK(m.on(E::ack(0)).what == K::none);
        CHECK(m.on(E::timeout()).what == K::none);
        CHECK(m.running());
    }
}
