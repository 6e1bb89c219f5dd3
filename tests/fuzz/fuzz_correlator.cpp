// Fuzz target: the pending-request table (detail::correlator) on its own,
// with a memory of ended requests small enough (0..8) that forgetting is
// exercised, which the client's 4096 never is in a short run.
//
// The first byte sets the memory (byte % 9) and the deadline-heap compaction
// threshold (the test seam `compact_after`): 8..35 records, so that a few
// dozen requests reach the rebuild, or (byte 255 alone) the production 1,024.
// Ops (byte % 6): add a request (mode: seq+ack, ack only, custom, seq only;
// ack, deadline, connector id), end one (replied or expired), classify a
// message (seq, absolute or counted back from the last one sent; ack; first
// payload byte; connector id), expire by time, add and end a burst of
// requests (large ones only at the production threshold), and ask for the
// next deadline. A model checks after each op that:
// - classify() gives the documented verdict: a pending request by ack + 1
//   (and seq unless ack_only), else a pending match::seq_only request by seq
//   and connector id, else a custom predicate in registration order, else an
//   ended request remembered by ack + 1 (seq too unless ack_only), else an
//   ended seq_only request remembered by seq (connector id too); a remembered
//   one is a duplicate if it had its reply, late otherwise; else unrelated;
// - an ended request is remembered exactly while its last memory is among the
//   `limit` most recent (a reused ack keeps its newest memory);
// - ack_free() ignores seq_only and custom requests (they expect no ack);
// - for_each_expired() hands out exactly the pending requests due, earliest
//   first, and each ticket stays valid until taken and never after;
// - next_deadline() is the earliest pending deadline; size() the pending count;
// - the deadline records stay within 3 per pending request + the threshold.
//
// Cost per input: every model structure an op touches is indexed (pending
// requests in a list with positions, the memory in a ring of the last 8 ends),
// so an op costs the same after a burst as before it; and only an input that
// asks for the production threshold pays for a burst of a thousand.
#include <cnasio/detail/correlator.hpp>

#include "fuzz_check.hpp"

#include <algorithm>
#include <array>
#include <vector>

using namespace cnasio;
using table = detail::correlator<int>;
using clock_type = table::clock;

namespace {

// The model's own code: its branches and loops say nothing about the table,
// and instrumenting them (edges, comparisons, counters) cost a third of each
// execution. Clang's attribute; the targets are built by clang only.
#define FUZZ_MODEL __attribute__((no_sanitize("coverage")))

connector::id id_of(std::uint8_t pick) { return {pick % 3u, 1}; }

match mode_of(std::uint8_t how) {
    switch (how % 4) {
    case 0: return match::seq_and_ack;
    case 1: return match::ack_only;
    case 2: return match::custom;
    default: return match::seq_only;
    }
}

struct req {
    table::ticket t;
    std::uint32_t seq, ack;
    match mode;
    std::uint8_t key;
    connector::id id;
    clock_type::time_point deadline;
    bool live = true;
    bool burst = false; // acks from 0x10000: never probed by add() nor classify()
    int value;
    std::size_t pos = 0; // in harness::live_idx while live
};

// One ended request as the table remembers it: by expected ack, or by seq for
// match::seq_only.
struct remembered {
    bool by_seq = false;
    std::uint32_t key = 0; // expected ack (ack + 1), or seq
    std::uint32_t seq = 0;
    match mode = match::seq_and_ack;
    connector::id id{};
    table::outcome how = table::outcome::replied;
};

struct harness {
    std::size_t limit;
    std::size_t compact_after;
    table c;
    std::vector<req> reqs;
    std::vector<std::size_t> live_idx;    // pending requests, any order
    std::vector<std::size_t> custom_live; // pending match::custom requests, in registration order
    std::array<remembered, 8> ring{};     // remember() call k stored in ring[k % 8]
    std::size_t calls = 0;                // remember() calls so far
    // Pending ack-keyed requests by ack, bursts aside (acks below 1,024: a
    // byte, moved past the pending ones): the index in reqs + 1, or 0.
    std::vector<std::uint32_t> ack_owner = std::vector<std::uint32_t>(1024);
    std::vector<std::uint64_t> listed, want; // check()'s, kept to spare allocations
    std::size_t live_count = 0;
    std::uint32_t last_seq = 0;
    std::size_t churn_first = 0, churn_n = 0; // the seqs of churn() (one per input)
    clock_type::time_point epoch{};

    harness(std::size_t l, std::size_t compact) : limit(l), compact_after(compact), c(l, compact) {
        reqs.reserve(64);
        live_idx.reserve(64);
    }


    // The newest memory with this key (of its kind) among the last `limit` (<= 8) ends.
    FUZZ_MODEL const remembered* model_remembers(bool by_seq, std::uint32_t key) const {
        for (std::size_t j = 0; j < limit && j < calls; ++j) {
            const remembered& m = ring[(calls - 1 - j) % ring.size()];
            if (m.by_seq == by_seq && m.key == key) return &m;
        }
        return nullptr;
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
            return; // not remembered
        }
        const bool by_seq = r.mode == match::seq_only;
        if (!by_seq && !r.burst)
            ack_owner[r.ack] = 0;
        remember(remembered{by_seq, by_seq ? r.seq : r.ack + 1u, r.seq, r.mode, r.id, how});
    }

    void remember(const remembered& m) { ring[calls++ % ring.size()] = m; }

    // The request sent with `seq`, or null: seqs count up from 1, one per
    // request in reqs, but the churn's, which have no entry there.
    FUZZ_MODEL const req* request_of_seq(std::uint32_t seq) const {
        std::size_t k = seq - 1u;
        if (k >= churn_first && k < churn_first + churn_n) return nullptr;
        if (k >= churn_first + churn_n) k -= churn_n;
        return k < reqs.size() ? &reqs[k] : nullptr;
    }

    // `n` requests added and answered one at a time while the others stay
    // pending: their deadline records pile up, stale, until the rebuild. At
    // the production threshold this reaches it at the cost of a thousand
    // adds, without a thousand slots (the table reuses one) or model entries.
    void churn(std::size_t n) {
        churn_first = reqs.size();
        churn_n = n;
        for (std::size_t i = 0; i < n; ++i) {
            const std::uint32_t seq = c.next_seq();
            FUZZ_CHECK(seq == last_seq + 1);
            last_seq = seq;
            const auto ack = static_cast<std::uint32_t>(0x20000u + i); // never probed by add() nor classify()
            FUZZ_CHECK(c.ack_free(ack));
            const auto t = c.add(match::ack_only, seq, ack, {}, epoch + std::chrono::seconds(15), -1, id_of(0));
            auto v = c.take(t, table::outcome::replied);
            FUZZ_CHECK(v && *v == -1 && c.find(t) == nullptr);
            remember(remembered{false, ack + 1u, seq, match::ack_only, id_of(0), table::outcome::replied});
            FUZZ_CHECK(c.size() == live_count);
            FUZZ_CHECK(c.deadline_records() <= 3 * live_count + compact_after + 1);
        }
    }

    void add(std::uint8_t how, std::uint8_t key, std::uint32_t ack, std::uint8_t when, bool burst = false) {
        const match mode = mode_of(how);
        for (;;) {
            const bool model_free = burst || ack_owner[ack] == 0;
            FUZZ_CHECK(c.ack_free(ack) == model_free);
            if (model_free) break;
            ++ack;
        }
        req r;
        r.seq = c.next_seq();
        FUZZ_CHECK(r.seq == last_seq + 1); // locally unique
        last_seq = r.seq;
        r.ack = ack;
        r.mode = mode;
        r.key = key;
        r.id = id_of(how >> 2);
        r.burst = burst;
        r.deadline = epoch + std::chrono::seconds(when % 16);
        r.value = static_cast<int>(reqs.size());
        reply_matcher m;
        if (mode == match::custom)
            m = [key](const connector::message_view& v) {
                return !v.payload.empty() && static_cast<std::uint8_t>(v.payload[0]) == key;
            };
        r.t = c.add(mode, r.seq, r.ack, std::move(m), r.deadline, r.value, r.id);
        FUZZ_CHECK(c.find(r.t) && *c.find(r.t) == r.value);
        if (mode == match::custom)
            custom_live.push_back(reqs.size());
        else if (mode != match::seq_only && !burst)
            ack_owner[ack] = static_cast<std::uint32_t>(reqs.size() + 1);
        r.pos = live_idx.size();
        live_idx.push_back(reqs.size());
        reqs.push_back(r);
        FUZZ_CHECK(request_of_seq(r.seq) == &reqs.back());
        ++live_count;
    }

    // The model's verdict for a message, and the request it answers.
    FUZZ_MODEL table::verdict model_classify(const connector::message_view& m, const req*& want_req) const {
        want_req = nullptr;
        if (const std::uint32_t ack = m.ack() - 1u; ack < ack_owner.size() && ack_owner[ack] != 0) {
            const req& r = reqs[ack_owner[ack] - 1];
            if (r.mode == match::ack_only || r.seq == m.seq()) want_req = &r;
        }
        if (const req* r = want_req ? nullptr : request_of_seq(m.seq()))
            if (r->live && r->mode == match::seq_only && r->id == m.id()) want_req = r;
        if (!want_req)
            for (std::size_t i : custom_live)
                if (!m.payload.empty() && reqs[i].key == static_cast<std::uint8_t>(m.payload[0])) {
                    want_req = &reqs[i];
                    break;
                }
        if (want_req) return table::verdict::reply;
        auto verdict_of = [](const remembered& mem) {
            return mem.how == table::outcome::replied ? table::verdict::duplicate : table::verdict::late;
        };
        if (const remembered* mem = model_remembers(false, m.ack());
            mem && (mem->mode == match::ack_only || mem->seq == m.seq()))
            return verdict_of(*mem);
        if (const remembered* mem = model_remembers(true, m.seq()); mem && mem->id == m.id()) return verdict_of(*mem);
        return table::verdict::unrelated;
    }

    void classify(std::uint8_t seq_pick, std::uint32_t ack, std::uint8_t first, std::uint8_t id_pick) {
        const std::byte payload[1] = {static_cast<std::byte>(first)};
        connector::message_view m;
        // Seqs of this table's requests grow past a byte after a burst: count back from the last.
        m.header.seq = (seq_pick & 0x80u) ? last_seq - (seq_pick & 0x7fu) : seq_pick;
        m.header.ack = ack;
        m.header.id = id_of(id_pick);
        m.payload = payload;

        table::ticket t{};
        const auto got = c.classify(m, t);
        const req* want_req = nullptr;
        FUZZ_CHECK(got == model_classify(m, want_req));
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

    // After each op, the checks that cost what an op costs; every 16th op and
    // at the end, the full comparison (linear in every request made): a
    // pending request the table lost, or an ended one it kept, stays so until
    // the next full check sees it.
    FUZZ_MODEL void check(std::size_t op, bool full = false) {
        FUZZ_CHECK(c.size() == live_count && c.empty() == (live_count == 0) && live_idx.size() == live_count);
        // Every pending request keeps its record; ended ones' records are
        // dropped in batches, so they never outnumber the bound.
        FUZZ_CHECK(c.deadline_records() >= live_count);
        FUZZ_CHECK(c.deadline_records() <= 3 * live_count + compact_after + 1);
        if (live_count <= 16 || op % 16 == 0) {
            std::optional<clock_type::time_point> earliest;
            for (std::size_t i : live_idx)
                if (!earliest || reqs[i].deadline < *earliest) earliest = reqs[i].deadline;
            FUZZ_CHECK(c.next_deadline() == earliest);
        }
        if (!full && op % 16 != 0) return;
        auto key = [](const table::ticket& t) { return (std::uint64_t{t.index} << 32) | t.generation; };
        listed.clear();
        want.clear();
        for (const auto& t : c.pending()) listed.push_back(key(t));
        std::size_t live = 0;
        for (const auto& r : reqs) {
            FUZZ_CHECK((c.find(r.t) != nullptr) == r.live);
            live += r.live;
        }
        FUZZ_CHECK(live == live_count);
        for (std::size_t i : live_idx) want.push_back(key(reqs[i].t));
        std::sort(listed.begin(), listed.end());
        std::sort(want.begin(), want.end());
        FUZZ_CHECK(listed == want);
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::input in(data, size);
    const auto settings = in.take<std::uint8_t>();
    // Byte 255 (limit 3) alone takes the production threshold: the large
    // burst that reaches it costs as much as a few dozen other inputs.
    const bool production = settings == 255;
    harness h(settings % 9u, production ? table::default_compact_after : 8 + settings / 9u);
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
            const auto first = in.take<std::uint8_t>();
            h.classify(seq, ack, first, in.take<std::uint8_t>());
            break;
        }
        case 3: h.expire(in.take<std::uint8_t>()); break;
        case 4: { // a burst: many requests come and go
            // Up to 32 requests, 7 in 8 ended, which reach a small threshold.
            // At the production threshold, once per input, when the byte's top
            // bits are set: a churn of 1,025..1,277 (1,024 stale records).
            const auto size = in.take<std::uint8_t>();
            if (production && (size & 0xc0u) == 0xc0u) {
                if (bursts++ == 0) h.churn(1025 + (size & 0x3fu) * 4u);
                break;
            }
            const std::size_t n = 1 + (size & 0x1fu);
            const std::size_t first = h.reqs.size();
            if (first + n > 256) break;
            for (std::size_t i = 0; i < n; ++i)
                h.add(1, 0, static_cast<std::uint32_t>(0x10000u + first + i), 15, true); // acks unique per input
            for (std::size_t i = first; i < h.reqs.size(); ++i)
                if (h.reqs[i].live && i % 8 != 0) h.end(h.reqs[i], table::outcome::replied);
            break;
        }
        default: (void)h.c.next_deadline(); break;
        }
        h.check(ops);
    }
    h.check(0, true);
    return 0;
}
