// Fuzz target: the proc-event decoder and what sits next to it.
//
// Input byte 0 picks the mode:
//   bit 0 clear: the rest is one connector payload; seq and ack come first
//                (8 bytes), then the payload given to proc::decode.
//   bit 0 set:   the rest is a received datagram, walked by datagram_reader;
//                every good message for {CN_IDX_PROC, CN_VAL_PROC} is decoded
//                (the path a proc listener takes) and fed to a loss_counter.
// Checked for each decode:
// - it fails (EBADMSG) exactly when the payload is shorter than
//   min_payload_size(what), and then returns an empty event;
// - on success, encoding the decoded fields again gives back the payload's
//   bytes up to min_payload_size(what): nothing is read from the wrong offset;
// - an unknown `what` keeps its first 24 bytes and the true size;
// - the exit-status helpers agree with each other;
// - proc::event_view accepts exactly the same payloads and reads the same event.
// Then, with the remaining bytes as text: parse_event_mask and to_string(mask)
// round trip, and a failed parse names an element of the list. The loss
// counter must keep its counts consistent whatever numbers arrive.
#include <cnasio/connector/framing.hpp>
#include <cnasio/proc/event.hpp>
#include <cnasio/proc/loss.hpp>

#include "fuzz_check.hpp"

#include <string_view>
#include <vector>

using namespace cnasio;
namespace proc = cnasio::proc;

namespace {

template <class T>
void put(std::vector<std::byte>& out, std::size_t at, T v) {
    if (out.size() < at + sizeof v) out.resize(at + sizeof v);
    std::memcpy(out.data() + at, &v, sizeof v);
}

// The wire bytes of a decoded known event, as far as min_payload_size reaches.
std::vector<std::byte> encode(const proc::event& ev) {
    std::vector<std::byte> out;
    put(out, 0, ev.what);
    put(out, 4, ev.cpu);
    put(out, 8, ev.timestamp_ns);
    const std::size_t d = proc::event_header_size;
    auto four = [&](std::int32_t a, std::int32_t b, std::int32_t c, std::int32_t e) {
        put(out, d, a);
        put(out, d + 4, b);
        put(out, d + 8, c);
        put(out, d + 12, e);
    };
    auto exit_like = [&](const proc::exit_event& x) {
        four(x.process_pid, x.process_tgid, static_cast<std::int32_t>(x.exit_code), x.exit_signal);
        put(out, d + 16, x.parent_pid);
        put(out, d + 20, x.parent_tgid);
    };
    std::visit(
        [&](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, proc::ack_event>) {
                put(out, d, x.err);
            } else if constexpr (std::is_same_v<T, proc::fork_event>) {
                four(x.parent_pid, x.parent_tgid, x.child_pid, x.child_tgid);
            } else if constexpr (std::is_same_v<T, proc::exec_event> || std::is_same_v<T, proc::sid_event>) {
                put(out, d, x.process_pid);
                put(out, d + 4, x.process_tgid);
            } else if constexpr (std::is_same_v<T, proc::uid_event>) {
                four(x.process_pid, x.process_tgid, static_cast<std::int32_t>(x.ruid),
                     static_cast<std::int32_t>(x.euid));
            } else if constexpr (std::is_same_v<T, proc::gid_event>) {
                four(x.process_pid, x.process_tgid, static_cast<std::int32_t>(x.rgid),
                     static_cast<std::int32_t>(x.egid));
            } else if constexpr (std::is_same_v<T, proc::ptrace_event>) {
                four(x.process_pid, x.process_tgid, x.tracer_pid, x.tracer_tgid);
            } else if constexpr (std::is_same_v<T, proc::coredump_event>) {
                four(x.process_pid, x.process_tgid, x.parent_pid, x.parent_tgid);
            } else if constexpr (std::is_same_v<T, proc::comm_event>) {
                put(out, d, x.process_pid);
                put(out, d + 4, x.process_tgid);
                put(out, d + 8, x.comm);
            } else if constexpr (std::is_same_v<T, proc::exit_event> ||
                                 std::is_same_v<T, proc::nonzero_exit_event>) {
                exit_like(x);
            } else { // unknown_event: header only; its bytes are checked apart
            }
        },
        ev.data);
    return out;
}

// The alternative decode must pick for `what`.
std::size_t expected_index(std::uint32_t what) {
    switch (static_cast<proc::event_type>(what)) {
    case proc::event_type::none: return 0;
    case proc::event_type::fork: return 1;
    case proc::event_type::exec: return 2;
    case proc::event_type::uid: return 3;
    case proc::event_type::gid: return 4;
    case proc::event_type::sid: return 5;
    case proc::event_type::ptrace: return 6;
    case proc::event_type::comm: return 7;
    case proc::event_type::coredump: return 8;
    case proc::event_type::exit: return 9;
    case proc::event_type::nonzero_exit: return 10;
    }
    return 11;
}

void check_decode(std::span<const std::byte> payload, proc::message_numbers numbers) {
    error_code ec;
    const proc::event ev = proc::decode(payload, numbers, ec);
    std::uint32_t what = 0;
    if (payload.size() >= 4) std::memcpy(&what, payload.data(), sizeof what);
    const bool too_short =
        payload.size() < proc::event_header_size || payload.size() < proc::min_payload_size(what);
    // The lazy view takes exactly the payloads decode() takes and reads the same event from them.
    proc::event_view view;
    error_code view_ec;
    FUZZ_CHECK(proc::event_view::parse(payload, numbers, view, view_ec) == !too_short);
    FUZZ_CHECK(view_ec == ec && static_cast<bool>(view) == !too_short);
    if (view) {
        const proc::event lazy = view.to_event();
        FUZZ_CHECK(lazy.what == ev.what && lazy.cpu == ev.cpu && lazy.timestamp_ns == ev.timestamp_ns);
        FUZZ_CHECK(lazy.seq == ev.seq && lazy.ack == ev.ack && lazy.data == ev.data);
        FUZZ_CHECK(view.get<proc::unknown_event>().has_value() == (ev.get_if<proc::unknown_event>() != nullptr));
        if (const auto* x = ev.get_if<proc::exit_event>()) FUZZ_CHECK(view.get<proc::exit_event>() == *x);
        if (const auto* f = ev.get_if<proc::fork_event>()) FUZZ_CHECK(view.get<proc::fork_event>() == *f);
        if (const auto* c = ev.get_if<proc::comm_event>()) FUZZ_CHECK(view.get<proc::comm_event>() == *c);
    }
    if (too_short) {
        FUZZ_CHECK(ec == std::errc::bad_message);
        FUZZ_CHECK(ev.what == 0 && ev.cpu == 0 && ev.timestamp_ns == 0 && ev.seq == 0 && ev.ack == 0);
        return;
    }
    FUZZ_CHECK(!ec);
    FUZZ_CHECK(ev.what == what && ev.seq == numbers.seq && ev.ack == numbers.ack);
    FUZZ_CHECK(ev.data.index() == expected_index(what));
    FUZZ_CHECK(ev.is_ack() == (what == 0));
    FUZZ_CHECK(!proc::to_string(ev.type()).empty());

    const std::vector<std::byte> again = encode(ev);
    FUZZ_CHECK(again.size() == proc::min_payload_size(what));
    FUZZ_CHECK(fuzz::same_bytes(again, payload.first(again.size())));

    if (const auto* u = ev.get_if<proc::unknown_event>()) {
        const std::size_t body = payload.size() - proc::event_header_size;
        FUZZ_CHECK(u->what == what && u->size == body);
        const std::size_t kept = body < u->data.size() ? body : u->data.size();
        FUZZ_CHECK(fuzz::same_bytes(u->bytes(), payload.subspan(proc::event_header_size, kept)));
    }
    if (const auto* c = ev.get_if<proc::comm_event>()) FUZZ_CHECK(c->name().size() <= c->comm.size());
    if (const auto* x = ev.get_if<proc::exit_event>()) {
        FUZZ_CHECK(!(x->exited() && x->signaled()));
        if (x->core_dumped()) FUZZ_CHECK(x->signaled());
        if (x->exited()) FUZZ_CHECK(x->term_signal() == 0);
        FUZZ_CHECK(x->exit_status() >= 0 && x->exit_status() <= 255);
    }
}

// The counts of a loss_counter in exact mode: every hole is a loss, and the
// per-CPU numbers add up to the total.
struct loss_check {
    proc::loss_counter counter{proc::loss_mode::exact, 64};
    std::uint64_t fed = 0, out_of_range = 0, taken = 0, highest_lost = 0;

    void feed(std::uint32_t cpu, std::uint32_t seq) {
        const proc::loss_observation o = counter.feed(cpu, seq);
        ++fed;
        if (cpu >= counter.max_cpus()) ++out_of_range;
        FUZZ_CHECK(o.out_of_range == (cpu >= counter.max_cpus()));
        // At most one verdict per message, and skipped only on a forward step.
        const int verdicts = o.first + o.late + o.duplicate + o.stale + o.out_of_range;
        FUZZ_CHECK(verdicts <= 1);
        if (verdicts == 1) FUZZ_CHECK(o.skipped == 0);
        FUZZ_CHECK(counter.lost().has_value() && *counter.lost() == counter.skipped());
        FUZZ_CHECK(counter.received() + counter.out_of_range() == fed);
        FUZZ_CHECK(counter.out_of_range() == out_of_range);
        FUZZ_CHECK(counter.tracked_cpus() <= counter.max_cpus());
        std::uint64_t per_cpu = 0;
        for (std::uint32_t c = 0; c < counter.tracked_cpus(); ++c) per_cpu += counter.skipped_on_cpu(c);
        FUZZ_CHECK(per_cpu == counter.skipped());
        // take_lost() hands out each increase once: the sum is the highest count
        // seen when asked (a late arrival in between lowers the count unreported).
        if ((seq & 0x3u) == 0) {
            if (*counter.lost() > highest_lost) highest_lost = *counter.lost();
            taken += *counter.take_lost();
            FUZZ_CHECK(taken == highest_lost);
        }
    }
};

void check_mask_text(std::string_view text) {
    error_code ec;
    std::string_view bad;
    const proc::event_mask m = proc::parse_event_mask(text, ec, &bad);
    if (ec) {
        FUZZ_CHECK(ec == std::errc::invalid_argument && m.empty());
        // bad points into the list (or is the whole blank list).
        FUZZ_CHECK(bad.data() >= text.data() && bad.data() + bad.size() <= text.data() + text.size());
        return;
    }
    FUZZ_CHECK(!m.empty());
    const std::string printed = proc::to_string(m);
    error_code ec2;
    FUZZ_CHECK(proc::parse_event_mask(printed, ec2) == m && !ec2);
}

void check_mask_bits(std::uint32_t bits) {
    const auto m = proc::event_mask::from_bits(bits);
    const std::string printed = proc::to_string(m);
    error_code ec;
    const auto back = proc::parse_event_mask(printed, ec);
    const bool known_only = (bits & ~proc::event_type_all_bits) == 0;
    if (bits == 0) {
        FUZZ_CHECK(printed.empty() && ec);
    } else if (known_only) {
        FUZZ_CHECK(!ec && back == m);
    } else {
        FUZZ_CHECK(ec && printed.find("0x") != std::string::npos); // unknown bits are shown, not parsed
    }
    const auto eff = m.kernel_effective();
    FUZZ_CHECK(!eff.empty() && (eff.bits() & ~proc::event_type_all_bits) == 0);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::input in(data, size);
    const auto mode = in.take<std::uint8_t>();
    loss_check loss;
    if ((mode & 1u) == 0) {
        proc::message_numbers numbers;
        numbers.seq = in.take<std::uint32_t>();
        numbers.ack = in.take<std::uint32_t>();
        const auto payload = in.rest();
        // An exact-size copy: ASan sees a read past the payload's end.
        const std::vector<std::byte> exact(payload.begin(), payload.end());
        check_decode(exact, numbers);
        check_decode(std::span<const std::byte>(exact).first(exact.size() / 2), numbers);
        check_mask_text({reinterpret_cast<const char*>(payload.data()), payload.size()});
        std::uint32_t bits = 0;
        std::memcpy(&bits, payload.data(), payload.size() < 4 ? payload.size() : 4);
        check_mask_bits(bits);
        return 0;
    }
    const auto datagram = in.rest();
    connector::for_each_message(
        datagram, (mode & 2u) != 0,
        [&](const connector::message_view& m) {
            if (m.id() != connector::proc_id) return;
            check_decode(m.payload, {m.seq(), m.ack()});
            error_code ec;
            const proc::event ev = proc::decode(m.payload, {m.seq(), m.ack()}, ec);
            if (!ec) loss.feed(ev.cpu, ev.seq);
        },
        [](const error_code&, const connector::message_view&) {});
    // Numbers straight from the input too: the counter sees every kind of jump.
    fuzz::input again(data, size);
    while (again.left() >= 5) loss.feed(again.take<std::uint8_t>() % 80, again.take<std::uint32_t>());
    return 0;
}
