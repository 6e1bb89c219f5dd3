// Fuzz target: the pending-request table (detail::correlator) on its own,
// with a memory of ended requests small enough (0..8) that forgetting is
// exercised, which the client's 4096 never is in a short run.
//
// Ops (byte % 6): add a request (mode, ack, deadline), end one (replied or
// expired), classify a message (seq, ack, custom byte), expire by time, add
// and end a burst of requests (to reach the deadline-heap compaction), and
// ask for the next deadline. A model checks after each op that:
// - classify() gives the documented verdict: a pending request by ack + 1
//   (and seq unless ack_only), else a custom predicate in registration order,
//   else an ended request remembered by ack + 1 (duplicate if it had its reply,
//   late otherwise), else unrelated;
// - an ended request is remembered exactly while its last memory is among the
//   `limit` most recent (a reused ack keeps its newest memory);
// - for_each_expired() hands out exactly the pending requests due, earliest
//   first, and each ticket stays valid until taken and never after;
// - next_deadline() is the earliest pending deadline; size() the pending count;
// - the deadline records stay bounded whatever the mix of ends.
//
// Cost per input: every model structure an op touches is indexed (pending
// requests in a list with positions, the memory in a ring of the last 8 ends),
// so after a burst of a thousand requests an op costs what it costs before.
#include <cnasio/detail/correlator.hpp>

#include "fuzz_check.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <vector>

using namespace cnasio;
using table = detail::correlator<int>;
using clock_type = table::clock;

namespace {

struct req {
    table::ticket t;
    std::uint32_t seq, ack;
    match mode;
    std::uint8_t key;
    clock_type::time_point deadline;
    bool live = true;
    bool burst = false; // acks from 0x10000: never probed by add() nor classify()
    int value;
    std::size_t pos = 0; // in harness::live_idx while live
};

struct remembered {
    std::uint32_t expected_ack;
    std::uint32_t seq;
    match mode;
    table::outcome how;
};

struct harness {
    std::size_t limit;
    table c;
    std::vector<req> reqs;
    std::vector<std::size_t> live_idx;    // pending requests, any order
    std::vector<std::size_t> custom_live; // pending match::custom requests, in registration order
    std::array<remembered, 8> ring{};     // remember() call k stored in ring[k % 8]
    std::size_t calls = 0;                // remember() calls so far
    std::map<std::uint32_t, std::size_t> live_acks; // pending non-custom requests by ack, bursts aside
    std::size_t live_count = 0;
    clock_type::time_point epoch{};

    explicit harness(std::size_t l) : limit(l), c(l) {}

    std::size_t live() const {
        return static_cast<std::size_t>(std::count_if(reqs.begin(), reqs.end(), [](const req& r) { return r.live; }));
    }

    // The newest memory of `expected_ack` among the last `limit` (<= 8) ends.
    bool model_remembers(std::uint32_t expected_ack, remembered& out) const {
        for (std::size_t j = 0; j < limit && j < calls; ++j) {
            const remembered& m = ring[(calls - 1 - j) % ring.size()];
            if (m.expected_ack == expected_ack) {
                out = m;
                return true;
            }
        }
        return false;
    }

    void end(req& r, table::outcome how) {
        FUZZ_CHECK(r.live);
        auto v = c.take(r.t, how);
        FUZZ_CHECK(v && *v == r.value);
        FUZZ_CHECK(!c.take(r.t, how)); // a second take finds nothing
        FUZZ_CHECK(c.find(r.t) == nullptr);
        r.live = false;
        --live_count;
        const std::size_t last = live_idx.back(); // swap-remove from the pending list
        live_idx[r.pos] = last;
        reqs[last].pos = r.pos;
        live_idx.pop_back();
        if (r.mode == match::custom) {
            custom_live.erase(std::find(custom_live.begin(), custom_live.end(), static_cast<std::size_t>(r.value)));
        } else {
            if (!r.burst) live_acks.erase(r.ack);
            ring[calls % ring.size()] = remembered{r.ack + 1u, r.seq, r.mode, how};
            ++calls;
        }
    }

    void add(std::uint8_t how, std::uint8_t key, std::uint32_t ack, std::uint8_t when, bool burst = false) {
        const match mode = how % 3 == 0 ? match::seq_and_ack : how % 3 == 1 ? match::ack_only : match::custom;
        for (;;) {
            const bool model_free = burst || live_acks.count(ack) == 0;
            FUZZ_CHECK(c.ack_free(ack) == model_free);
            if (model_free) break;
            ++ack;
        }
        req r;
        r.seq = c.next_seq();
        r.ack = ack;
        r.mode = mode;
        r.key = key;
        r.burst = burst;
        r.deadline = epoch + std::chrono::seconds(when % 16);
        r.value = static_cast<int>(reqs.size());
        reply_matcher m;
        if (mode == match::custom)
            m = [key](const connector::message_view& v) {
                return !v.payload.empty() && static_cast<std::uint8_t>(v.payload[0]) == key;
            };
        r.t = c.add(mode, r.seq, r.ack, std::move(m), r.deadline, r.value);
        FUZZ_CHECK(c.find(r.t) && *c.find(r.t) == r.value);
        if (mode == match::custom)
            custom_live.push_back(reqs.size());
        else if (!burst)
            live_acks.emplace(ack, reqs.size());
        r.pos = live_idx.size();
        live_idx.push_back(reqs.size());
        reqs.push_back(r);
        ++live_count;
    }

    void classify(std::uint32_t seq, std::uint32_t ack, std::uint8_t first) {
        const std::byte payload[1] = {static_cast<std::byte>(first)};
        connector::message_view m;
        m.header.seq = seq;
        m.header.ack = ack;
        m.payload = payload;

        table::ticket t{};
        const auto got = c.classify(m, t);
        // The model.
        auto want = table::verdict::unrelated;
        const req* want_req = nullptr;
        if (auto it = live_acks.find(ack - 1u); it != live_acks.end()) {
            const req& r = reqs[it->second];
            if (r.mode == match::ack_only || r.seq == seq) want_req = &r;
        }
        if (!want_req)
            for (std::size_t i : custom_live)
                if (reqs[i].key == first) {
                    want_req = &reqs[i];
                    break;
                }
        if (want_req) {
            want = table::verdict::reply;
        } else if (remembered mem; model_remembers(ack, mem) && (mem.mode == match::ack_only || mem.seq == seq)) {
            want = mem.how == table::outcome::replied ? table::verdict::duplicate : table::verdict::late;
        }
        FUZZ_CHECK(got == want);
        if (want_req) {
            FUZZ_CHECK(t == want_req->t);
            end(*const_cast<req*>(want_req), table::outcome::replied);
        }
    }

    void expire(std::uint8_t when) {
        const auto now = epoch + std::chrono::seconds(when % 16);
        std::size_t due = 0;
        for (std::size_t i : live_idx) due += reqs[i].deadline <= now;
        std::size_t seen = 0;
        clock_type::time_point last{};
        c.for_each_expired(now, [&](table::ticket t) {
            const int* v = c.find(t); // the value is the request's index
            FUZZ_CHECK(v && *v >= 0 && static_cast<std::size_t>(*v) < reqs.size());
            auto it = reqs.begin() + *v;
            FUZZ_CHECK(it->live && it->t == t);
            FUZZ_CHECK(it->deadline <= now && it->deadline >= last); // due, earliest first
            last = it->deadline;
            ++seen;
            end(*it, table::outcome::expired); // as the client does, from inside the walk
        });
        FUZZ_CHECK(seen == due);
    }

    // The full comparison is linear in every request ever made: after a burst
    // it runs on every 32nd op only, to keep the executions per second up.
    void check(std::size_t op) {
        FUZZ_CHECK(c.size() == live_count && c.empty() == (live_count == 0) && live_idx.size() == live_count);
        if (reqs.size() > 256 && op % 32 != 0) return;
        FUZZ_CHECK(live() == live_count);
        auto key = [](const table::ticket& t) { return (std::uint64_t{t.index} << 32) | t.generation; };
        std::vector<std::uint64_t> listed, want;
        for (const auto& t : c.pending()) listed.push_back(key(t));
        for (const auto& r : reqs) FUZZ_CHECK((c.find(r.t) != nullptr) == r.live);
        for (std::size_t i : live_idx) want.push_back(key(reqs[i].t));
        std::sort(listed.begin(), listed.end());
        std::sort(want.begin(), want.end());
        FUZZ_CHECK(listed == want);
        std::optional<clock_type::time_point> earliest;
        for (std::size_t i : live_idx)
            if (!earliest || reqs[i].deadline < *earliest) earliest = reqs[i].deadline;
        FUZZ_CHECK(c.next_deadline() == earliest);
        // Every pending request keeps its record; ended ones' records are
        // dropped in batches, so they never outnumber the bound.
        FUZZ_CHECK(c.deadline_records() >= live_count);
        FUZZ_CHECK(c.deadline_records() <= 3 * live_count + 1024 + 1);
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::input in(data, size);
    harness h(in.take<std::uint8_t>() % 9);
    int bursts = 0;
    for (std::size_t ops = 0; !in.empty() && ops < 400; ++ops) {
        switch (in.take<std::uint8_t>() % 6) {
        case 0: {
            const auto how = in.take<std::uint8_t>();
            const auto key = in.take<std::uint8_t>();
            h.add(how, key, in.take<std::uint8_t>(), in.take<std::uint8_t>());
            break;
        }
        case 1: { // end one, either way
            const auto pick = in.take<std::uint8_t>();
            if (!h.live_idx.empty())
                h.end(h.reqs[h.live_idx[pick % h.live_idx.size()]],
                      (pick & 0x80u) ? table::outcome::expired : table::outcome::replied);
            break;
        }
        case 2: {
            const auto seq = in.take<std::uint8_t>();
            const auto ack = in.take<std::uint8_t>();
            h.classify(seq, ack, in.take<std::uint8_t>());
            break;
        }
        case 3: h.expire(in.take<std::uint8_t>()); break;
        case 4: { // a burst: many requests come and go
            // One per input, and small unless the byte's top bits are set: a
            // large one (1,201..1,453 requests, 7 in 8 ended) is what reaches the
            // deadline-heap compaction (1,024 stale records), and costs a
            // millisecond the fuzzer would otherwise spend on every input.
            if (bursts++ > 0) break;
            const auto size = in.take<std::uint8_t>();
            const std::size_t n = 1 + (size & 0x3fu) * ((size & 0xc0u) == 0xc0u ? 4u : 1u) +
                                  ((size & 0xc0u) == 0xc0u ? 1200u : 0u);
            const std::size_t first = h.reqs.size();
            h.reqs.reserve(first + n);
            for (std::size_t i = 0; i < n; ++i) h.add(1, 0, static_cast<std::uint32_t>(0x10000u + i), 15, true);
            for (std::size_t i = first; i < h.reqs.size(); ++i)
                if (h.reqs[i].live && i % 8 != 0) h.end(h.reqs[i], table::outcome::replied);
            break;
        }
        default: (void)h.c.next_deadline(); break;
        }
        h.check(ops);
    }
    return 0;
}
