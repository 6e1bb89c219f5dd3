// Fuzz target: the client's protocol logic, detail::client_core, driven
// through its public interface only: no socket, no io_context, no Asio. Op
// ids are plain integers; time is a steady_clock time_point the script moves
// forward.
//
// The input: a prefix of settings (seed, default timeout, whether the byte
// budgets can bind), then a script of operations (op byte % 16, see
// LLVMFuzzerTestOneInput): start a request (any match mode, seq_only too; a
// part rule or none; parts gathered in a vector, or the last part the reply
// in the completion or into a message; a payload size that may be too large), fail
// its send, cancel one (also an ended one: a stale ticket), a read error,
// advance the clock and run the timer, subscribe (any group, id filter, queue
// and byte limits, policy), unsubscribe, start, cancel (by current or stale
// number) or try a receive (one message, into a message, or a batch), an
// overrun, a datagram - raw bytes, or messages built to answer a request -
// from a fuzzed sender port id through a fuzzed group, admit a port, a
// completion from the glue, and close().
//
// A model of the documented behaviour runs alongside, and after every
// operation every completion is popped and it is checked that:
// - nothing from a port id other than 0 and the admitted ones reaches a
//   request or a subscriber, whatever its headers claim; each of its messages
//   counts as rejected;
// - every message counts in exactly one of replies, unsolicited, late,
//   duplicate, rejected, malformed, and each count is the model's;
// - a request completes once, with the reply the model picked (seq/ack+1,
//   ack only, seq and connector id, or the custom predicate; duplicates and
//   late replies dropped, remembered by ack + 1 or, for seq_only, by seq and
//   id), or with its timeout / send error / read error / operation_aborted;
// - a multi-part answer: the part rule is offered every message the match
//   rules give the request, once each, with the headers the request was sent
//   with; a message it disowns is unrelated (to subscribers); the request
//   ends at the last part (the reply, or with the parts gathered: no message
//   in the completion), the timeout covering the whole answer; the gathered
//   vector holds exactly the parts, in order, also after a timeout or cancel;
//   parts after the last count as duplicates, after a timeout or cancel as late;
// - each subscriber gets the messages of its group and id, in order, its queue
//   bounded by its limit, drops counted by its policy, overruns signalled once;
//   a waiting batch receive completes once per datagram (the core's read),
//   at its end, or as soon as min(batch_max, limit) messages are queued.
//   When the byte limits can bind (a per-subscription byte_limit or the
//   client's subscription_bytes small enough), which messages a full queue
//   drops depends on the storage the queue's slots hold, so the model checks
//   less there: what a subscriber gets is a subsequence of what it was
//   offered, delivered = received + dropped + queued, a waiting receive gets
//   the first message offered, the per-queue and client byte bounds hold;
// - wants_read(), next_deadline(), pending_requests() agree with the model;
// - close() ends everything with operation_aborted (detail::aborted_error()),
//   later requests, subscriptions and receives fail with client_closed;
// - every op id started completes exactly once, at the event the model says.
#include <cnasio/detail/client_core.hpp>

#include "fuzz_check.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <vector>

using namespace cnasio;
using connector::message;
using connector::message_view;
using detail::client_core;
using detail::op_id;
using detail::subscription_ref;
using clock_type = client_core::clock;

namespace {

// The model's own code: its branches and loops say nothing about the core, and
// instrumenting them (edges, comparisons, counters, the features libFuzzer
// weighs after each run) costs a large share of each execution. Clang's
// attribute; the targets are built by clang only.
#define FUZZ_MODEL __attribute__((no_sanitize("coverage")))

constexpr std::uint32_t admitted_port = 4242;

FUZZ_MODEL bool same(const message& a, const message_view& b) {
    const auto& x = a.header;
    const auto& y = b.header;
    return x.id == y.id && x.seq == y.seq && x.ack == y.ack && x.flags == y.flags && x.nlmsg_type == y.nlmsg_type &&
           x.nlmsg_flags == y.nlmsg_flags && x.nlmsg_seq == y.nlmsg_seq && x.nlmsg_pid == y.nlmsg_pid &&
           fuzz::same_bytes(a.payload, b.payload);
}
bool same(const message& a, const message& b) { return same(a, b.view()); }

bool custom_accepts(std::uint8_t key, const message_view& m) {
    return !m.payload.empty() && static_cast<std::uint8_t>(m.payload[0]) == key;
}

// ---- operations and what they must complete with ----

enum class target_kind { value, into, batch };

struct op_record {
    bool expected = false; // the model says it has completed
    bool done = false;     // the core handed out its completion
    error_code ec;
    // A request's reply, or the messages of a receive the model knows exactly.
    std::vector<message> messages;
    // A receive whose messages the model cannot name (byte limits bind): this
    // many, each the next in the subscriber's offered sequence.
    int from_sub = -1;
    std::size_t count = 0;
    std::size_t count_max = 0; // count 0: any count from 1 to this (a batch served at the end of a read)
    target_kind kind = target_kind::value;
    std::unique_ptr<message> into;                   // target_kind::into
    std::unique_ptr<std::vector<message>> batch;     // target_kind::batch
};

// ---- requests ----

enum class req_state { pending, replied, expired };

// A request's part rule (request_options::parts), a pure function of what the
// model knows, so that the model can say what the rule answers:
// - by_flags: the message's cn_msg.flags % 4: 0 more, 1 last, 2 not_part, 3 last;
// - by_count: the n-th message offered is the last (no message is refused).
enum class rule_kind { none, by_flags, by_count };

part_verdict rule_verdict(rule_kind kind, std::size_t count_to, std::size_t call, const message_view& m) {
    if (kind == rule_kind::by_count) return call == count_to ? part_verdict::last : part_verdict::more;
    switch (m.header.flags % 4) {
    case 0: return part_verdict::more;
    case 2: return part_verdict::not_part;
    default: return part_verdict::last;
    }
}

// Where the parts of a multi-part answer go. The gathered form appends each
// to a vector the request was started with; without one the last part is
// the reply. (A streamed form, each part handed out as it comes, would be a
// third form here, with its own expectations in on_part / on_last.)
enum class answer_form { reply, gathered };

struct request_model {
    op_id op = 0;
    client_core::ticket ticket{};
    std::uint32_t seq = 0, ack = 0;
    connector::id id{};
    match mode = match::seq_and_ack;
    std::uint8_t key = 0; // match::custom: replies whose payload starts with this byte
    clock_type::time_point deadline{};
    req_state state = req_state::pending;
    rule_kind rule = rule_kind::none;
    std::size_t count_to = 1;     // rule_kind::by_count
    std::size_t rule_calls = 0;   // the model's count of messages the rule was offered
    std::size_t core_calls = 0;   // the rule's own count, kept by the rule
    bool rule_saw_other = false;  // the rule was given headers other than the request's
    answer_form form = answer_form::reply;
    std::unique_ptr<std::vector<message>> parts; // answer_form::gathered: the core's vector
    std::vector<message> want_parts;             // ...and what the model says it holds
};

// ---- subscribers ----

struct subscriber_model {
    subscription_ref ref{};
    unsigned group = 0;
    connector::id only{};
    std::size_t limit = 1;
    std::size_t byte_limit = 0;
    overflow_policy policy = overflow_policy::drop_oldest;
    bool exact = true;      // no byte limit can bind: the model knows the queue exactly
    bool active = true;
    bool waiting = false;
    op_id waiter = 0;
    std::size_t batch_max = 0; // of the waiting receive, 0: not a batch
    bool deferred = false;     // a batch receive left for the end of the read (harness::deferred)
    std::uint64_t receive_number = 0;
    bool overrun_pending = false;
    std::deque<message> queue;   // exact: the queue; else the messages offered and not yet known gone
    std::uint64_t handed = 0;    // messages handed out (not exact: delivered = handed + dropped + queued)
    subscription_stats stats;    // delivered, and (exact) dropped, overruns

    bool accepts(const message_view& m) const { return (only.idx == 0 && only.val == 0) || m.id() == only; }
};

struct harness {
    std::unique_ptr<client_core> core;
    clock_type::time_point now = clock_type::time_point(std::chrono::hours(1));
    std::chrono::milliseconds default_timeout{1000};
    std::size_t budget = 0;            // core_options::subscription_bytes
    bool tight = false;                // byte limits may bind
    std::vector<std::uint32_t> admitted{admitted_port};
    std::vector<op_record> ops;        // by op id
    std::size_t expected_open = 0;     // ops the model says completed, not yet popped
    std::deque<request_model> requests;
    std::deque<subscriber_model> subscribers;
    std::vector<std::size_t> deferred; // subscribers whose batch receive waits for the end of the read
    client_stats stats;                // what the model expects
    bool closed = false;
    std::size_t max_payload_seen = 0;  // no payload storage in a queue is larger
    std::uint32_t last_seq = 0;
    std::uint32_t port_id = 0;         // ours, written into nlmsg_pid
    // Ended requests by expected ack (ack + 1): the last one to end wins.
    struct memory {
        std::uint32_t seq;
        match mode;
        req_state how;
    };
    std::map<std::uint32_t, memory> recent;
    // Ended match::seq_only requests by seq (seqs are never reused).
    struct seq_memory {
        connector::id id;
        req_state how;
    };
    std::map<std::uint32_t, seq_memory> recent_seq;
    std::vector<std::byte> datagram_bytes; // datagram()'s, kept to spare allocations

    explicit harness(fuzz::input& in) {
        const auto seed = in.take<std::uint64_t>();
        default_timeout = std::chrono::milliseconds(1 + in.take<std::uint8_t>() * 8);
        const auto settings = in.take<std::uint8_t>();
        tight = (settings & 1u) != 0;
        port_id = settings >> 1u;
        budget = tight ? std::size_t{in.take<std::uint16_t>()} % 4096 : std::size_t{64} << 20;
        ops.reserve(32);
        core = std::make_unique<client_core>(
            detail::core_options{.default_timeout = default_timeout, .admitted_ports = admitted, .subscription_bytes = budget},
            seed, port_id);
    }

    // -- completions --

    op_id new_op(target_kind kind = target_kind::value) {
        op_record& r = ops.emplace_back();
        r.kind = kind;
        if (kind == target_kind::into) r.into = std::make_unique<message>();
        if (kind == target_kind::batch) r.batch = std::make_unique<std::vector<message>>();
        return static_cast<op_id>(ops.size() - 1);
    }

    op_record& expect(op_id op, error_code ec) {
        op_record& r = ops.at(op);
        FUZZ_CHECK(!r.expected); // the model never ends an operation twice
        r.expected = true;
        r.ec = ec;
        ++expected_open;
        return r;
    }

    // Takes the next message of subscriber s's offered sequence that equals m.
    FUZZ_MODEL void take_offered(subscriber_model& s, const message& m) {
        FUZZ_CHECK(!s.exact);
        bool found = false; // else: a message it was not offered, or out of order
        while (!found && !s.queue.empty()) {
            found = same(s.queue.front(), m);
            s.queue.pop_front();
        }
        FUZZ_CHECK(found);
    }

    FUZZ_MODEL void pop_completions() {
        detail::completion c;
        while (core->pop_completion(c)) {
            FUZZ_CHECK(c.op < ops.size());
            op_record& r = ops[c.op];
            FUZZ_CHECK(!r.done);      // exactly once
            FUZZ_CHECK(r.expected);   // not before the model says
            r.done = true;
            --expected_open;
            FUZZ_CHECK(c.ec == r.ec);
            const std::vector<message>* got_batch = r.batch.get();
            if (r.from_sub >= 0) {
                subscriber_model& s = subscribers[static_cast<std::size_t>(r.from_sub)];
                if (r.kind == target_kind::batch) {
                    if (r.count == 0) { // served at the end of a read: byte limits decided how many
                        FUZZ_CHECK(c.count >= 1 && c.count <= r.count_max);
                        s.handed += c.count;
                    } else {
                        FUZZ_CHECK(c.count == r.count);
                    }
                    FUZZ_CHECK(got_batch->size() >= c.count);
                    for (std::size_t i = 0; i < c.count; ++i) take_offered(s, (*got_batch)[i]);
                } else {
                    FUZZ_CHECK(r.count == 1);
                    take_offered(s, r.kind == target_kind::into ? *r.into : c.message);
                }
                continue;
            }
            if (r.kind == target_kind::batch && !r.ec) {
                FUZZ_CHECK(c.count == r.messages.size() && got_batch->size() >= c.count);
                for (std::size_t i = 0; i < c.count; ++i) FUZZ_CHECK(same((*got_batch)[i], r.messages[i]));
            } else if (!r.messages.empty()) {
                FUZZ_CHECK(r.messages.size() == 1);
                FUZZ_CHECK(same(r.kind == target_kind::into ? *r.into : c.message, r.messages[0]));
                if (r.kind == target_kind::into) FUZZ_CHECK(c.message.payload.empty() && c.message.header.seq == 0);
            } else {
                FUZZ_CHECK(c.message.payload.empty() && c.count == 0);
                if (r.kind == target_kind::into) FUZZ_CHECK(r.into->payload.empty() && r.into->header.seq == 0);
            }
        }
        // Nothing the model ended is missing; with the checks above, every
        // operation has completed exactly when the model says.
        FUZZ_CHECK(expected_open == 0);
    }

    // -- requests --

    request_model* pick_request(std::size_t pick) {
        return requests.empty() ? nullptr : &requests[pick % requests.size()];
    }

    void end_request(request_model& r, req_state how, error_code ec, const message_view* reply = nullptr) {
        FUZZ_CHECK(r.state == req_state::pending);
        r.state = how;
        op_record& o = expect(r.op, ec);
        if (reply) o.messages.emplace_back(*reply);
        if (r.mode == match::seq_only)
            recent_seq.insert_or_assign(r.seq, seq_memory{r.id, how});
        else if (r.mode != match::custom)
            recent.insert_or_assign(r.ack + 1u, memory{r.seq, r.mode, how});
    }

    // A gathered answer holds exactly the parts the model says, in order:
    // what came before a timeout or cancellation stays, nothing comes after
    // the end. check() compares sizes after every op, and everything here at
    // the end of the input.
    FUZZ_MODEL void check_parts(const request_model& r) const {
        if (r.form != answer_form::gathered) return;
        FUZZ_CHECK(r.parts->size() == r.want_parts.size());
        for (std::size_t i = 0; i < r.want_parts.size(); ++i) FUZZ_CHECK(same((*r.parts)[i], r.want_parts[i]));
    }

    // A message the match rule gave request r: the part rule's verdict, and
    // where the part goes. False: not a part (it goes on as unrelated).
    FUZZ_MODEL bool model_part(request_model& r, const message_view& m) {
        const part_verdict v = r.rule == rule_kind::none ? part_verdict::last
                                                          : rule_verdict(r.rule, r.count_to, ++r.rule_calls, m);
        if (v == part_verdict::not_part) return false;
        ++stats.replies;
        switch (r.form) {
        case answer_form::gathered:
            r.want_parts.emplace_back(m);
            if (v == part_verdict::last) end_request(r, req_state::replied, {});
            break;
        case answer_form::reply:
            if (v == part_verdict::last) end_request(r, req_state::replied, {}, &m);
            break;
        }
        return true;
    }

    void start_request(fuzz::input& in) {
        if (requests.size() >= 64) return; // keeps the memory of ended requests far below its limit
        const auto how = in.take<std::uint8_t>();
        const auto key = in.take<std::uint8_t>();
        const auto timeout_pick = in.take<std::uint8_t>();
        // Bits 0-1: 3 for match::seq_only; 2-3: the part rule (1 by flags, 2 by
        // count, else none); 4-5: the count; 6: the parts gathered in a vector.
        const auto shape = in.take<std::uint8_t>();
        request_options ro;
        ro.match = (shape & 3u) == 3u ? match::seq_only
                   : how % 3 == 0     ? match::seq_and_ack
                   : how % 3 == 1     ? match::ack_only
                                      : match::custom;
        ro.timeout = std::chrono::milliseconds(timeout_pick % 4 == 0 ? 0 : timeout_pick * 4);
        ro.port_id = (how & 0x80u) ? admitted_port : 0;
        ro.flags = key;
        if (ro.match == match::custom) ro.matcher = [key](const message_view& m) { return custom_accepts(key, m); };
        const bool into = (how & 0x10u) != 0;
        const std::size_t payload = (how & 0x60u) == 0x60u ? connector::max_payload + (key & 1u) : key;
        const op_id op = new_op(into ? target_kind::into : target_kind::value);
        const connector::id id{how % 5u, 1};
        const rule_kind rule = (shape >> 2 & 3u) == 1u ? rule_kind::by_flags
                               : (shape >> 2 & 3u) == 2u ? rule_kind::by_count
                                                         : rule_kind::none;
        const std::size_t count_to = 1 + (shape >> 4 & 3u);
        const std::size_t index = requests.size(); // of its model, if it starts
        if (rule != rule_kind::none)
            ro.parts = [this, index, rule, count_to](const connector::header& sent, const message_view& m) {
                request_model& r = requests[index];
                r.rule_saw_other |= sent.seq != r.seq || sent.ack != r.ack || !(sent.id == r.id);
                return rule_verdict(rule, count_to, ++r.core_calls, m);
            };
        std::unique_ptr<std::vector<message>> parts;
        if (shape & 0x40u) parts = std::make_unique<std::vector<message>>(1); // the start clears it
        const auto r =
            core->start_request(op, id, payload, std::move(ro), now, into ? ops[op].into.get() : nullptr, parts.get());
        if (closed || payload > connector::max_payload) {
            FUZZ_CHECK(!r.send);
            expect(op, closed ? make_error_code(error::client_closed) : make_error_code(error::payload_too_large));
            return;
        }
        FUZZ_CHECK(r.send);
        FUZZ_CHECK(r.port_id == ro.port_id && r.header.id == id && r.header.flags == ro.flags);
        FUZZ_CHECK(r.header.nlmsg_pid == port_id);
        FUZZ_CHECK(r.header.nlmsg_seq == r.header.seq && r.header.seq == last_seq + 1);
        last_seq = r.header.seq;
        for (auto& o : requests) // no two pending requests expect one ack (custom and seq_only expect none)
            if (o.state == req_state::pending && (o.mode == match::seq_and_ack || o.mode == match::ack_only))
                FUZZ_CHECK(o.ack != r.header.ack);
        request_model& m = requests.emplace_back();
        FUZZ_CHECK(requests.size() == index + 1);
        m.id = id;
        m.rule = rule;
        m.count_to = count_to;
        if (parts) {
            FUZZ_CHECK(parts->empty());
            m.form = answer_form::gathered;
            m.parts = std::move(parts);
        }
        m.op = op;
        m.ticket = r.t;
        m.seq = r.header.seq;
        m.ack = r.header.ack;
        m.mode = (shape & 3u) == 3u ? match::seq_only
                 : how % 3 == 0     ? match::seq_and_ack
                 : how % 3 == 1     ? match::ack_only
                                    : match::custom;
        m.key = key;
        m.deadline = now + (ro.timeout.count() > 0 ? ro.timeout : default_timeout);
    }

    void send_failed(fuzz::input& in) {
        request_model* r = pick_request(in.take<std::uint8_t>());
        if (!r) return;
        const error_code ec = errno_code(EAGAIN);
        if (r->state == req_state::pending) end_request(*r, req_state::expired, ec);
        core->send_failed(r->ticket, ec);
    }

    void cancel_request(fuzz::input& in) {
        request_model* r = pick_request(in.take<std::uint8_t>()); // an ended one: a stale ticket
        if (!r) return;
        if (r->state == req_state::pending) end_request(*r, req_state::expired, detail::aborted_error());
        core->cancel_request(r->ticket);
    }

    void read_error() {
        if (closed) return; // nothing is read after close()
        const error_code ec = errno_code(EBADF);
        for (auto& r : requests)
            if (r.state == req_state::pending) end_request(r, req_state::expired, ec);
        core->on_read_error(ec);
    }

    void timer(fuzz::input& in) {
        const auto step = in.take<std::uint8_t>();
        now += std::chrono::milliseconds((step & 0x7fu) * 16);
        if (step & 0x80u) return; // time passes, no timer runs
        std::vector<request_model*> due;
        for (auto& r : requests)
            if (r.state == req_state::pending && r.deadline <= now) due.push_back(&r);
        for (auto* r : due) {
            ++stats.timeouts;
            end_request(*r, req_state::expired, make_error_code(error::timeout));
        }
        core->on_timer(now);
    }

    // -- subscribers --

    // The index of an active subscriber, or -1.
    FUZZ_MODEL int pick_index(std::size_t pick) {
        std::size_t n = 0;
        for (const auto& s : subscribers) n += s.active;
        if (n == 0) return -1;
        pick %= n;
        for (std::size_t i = 0;; ++i)
            if (subscribers[i].active && pick-- == 0) return static_cast<int>(i);
    }
    subscriber_model* pick_subscriber(std::size_t pick) {
        const int i = pick_index(pick);
        return i < 0 ? nullptr : &subscribers[static_cast<std::size_t>(i)];
    }

    FUZZ_MODEL std::size_t members(unsigned group) const {
        std::size_t n = 0;
        for (auto& s : subscribers) n += s.active && s.group == group;
        return n;
    }

    void subscribe(fuzz::input& in) {
        if (subscribers.size() >= 16) return;
        const auto group_pick = in.take<std::uint8_t>();
        const unsigned group = (group_pick & 0x80u) ? group_pick & 0x7fu : group_pick % 4u; // few: they collide
        const auto id_pick = in.take<std::uint8_t>();
        subscription_options o;
        o.only_id = id_pick % 3 == 0 ? connector::id{} : connector::id{id_pick % 3u, 1};
        o.queue_limit = in.take<std::uint8_t>() % 6; // 0 means 1
        const auto flags = in.take<std::uint8_t>();
        o.policy = (flags & 1u) ? overflow_policy::drop_newest : overflow_policy::drop_oldest;
        const bool tight_bytes = (flags & 2u) != 0;
        if (tight_bytes) o.byte_limit = std::size_t{in.take<std::uint8_t>()} * 8;
        const auto r = core->subscribe(group, o);
        if (closed || group > detail::fanout<int>::max_group) {
            FUZZ_CHECK(r.ec == (closed ? make_error_code(error::client_closed) : make_error_code(error::invalid_group)));
            FUZZ_CHECK(!r.join);
            return;
        }
        FUZZ_CHECK(!r.ec);
        FUZZ_CHECK(r.join == (group != 0 && members(group) == 0));
        if (r.join && (flags & 4u)) { // the glue could not join the group
            core->subscribe_failed(r.sub);
            FUZZ_CHECK(core->subscription_statistics(r.sub).delivered == 0 && !core->is_waiting(r.sub));
            return;
        }
        subscriber_model& s = subscribers.emplace_back();
        s.ref = r.sub;
        s.group = group;
        s.only = o.only_id;
        s.limit = o.queue_limit == 0 ? 1 : o.queue_limit;
        s.byte_limit = o.byte_limit;
        s.policy = o.policy;
        s.exact = !tight && !tight_bytes;
    }

    void model_abort_wait(subscriber_model& s) {
        if (!s.waiting) return;
        s.waiting = false;
        ++s.receive_number;
        expect(s.waiter, detail::aborted_error());
    }

    void unsubscribe(fuzz::input& in) {
        const auto pick = in.take<std::uint8_t>();
        subscriber_model* s = nullptr;
        if (pick & 0x80u) { // a removed one: a stale reference
            for (auto& o : subscribers)
                if (!o.active) s = &o;
            if (s) FUZZ_CHECK(!core->unsubscribe(s->ref));
            return;
        }
        s = pick_subscriber(pick);
        if (!s) return;
        model_abort_wait(*s);
        s->active = false;
        const bool leave = core->unsubscribe(s->ref);
        FUZZ_CHECK(leave == (!closed && s->group != 0 && members(s->group) == 0));
    }

    // Hands s's queued messages to a receive that takes up to `max` of them.
    FUZZ_MODEL void model_take(subscriber_model& s, op_record& o, std::size_t max, std::size_t core_queued, int index) {
        if (s.exact) {
            FUZZ_CHECK(core_queued == s.queue.size());
            while (o.messages.size() < max && !s.queue.empty()) {
                o.messages.push_back(std::move(s.queue.front()));
                s.queue.pop_front();
            }
            s.handed += o.messages.size();
        } else {
            o.from_sub = index;
            o.count = std::min(max, core_queued);
            s.handed += o.count;
        }
    }

    // A receive of s is waiting; it completes if something is there.
    FUZZ_MODEL void model_serve(subscriber_model& s, std::size_t core_queued, int index) {
        if (!s.waiting) return;
        if (s.overrun_pending) {
            s.overrun_pending = false;
            s.waiting = false;
            ++s.receive_number;
            expect(s.waiter, make_error_code(error::overrun));
            return;
        }
        if (core_queued == 0) return;
        s.waiting = false;
        ++s.receive_number;
        model_take(s, expect(s.waiter, {}), s.batch_max == 0 ? 1 : s.batch_max, core_queued, index);
    }

    void receive(fuzz::input& in) {
        const int index = pick_index(in.take<std::uint8_t>());
        subscriber_model* sp = index < 0 ? nullptr : &subscribers[static_cast<std::size_t>(index)];
        const auto how = in.take<std::uint8_t>();
        const auto kind = how % 3 == 0 ? target_kind::value : how % 3 == 1 ? target_kind::into : target_kind::batch;
        const op_id op = new_op(kind);
        if (!sp) { // a removed subscription, or none ever
            for (auto& o : subscribers)
                if (!o.active) sp = &o;
            detail::receive_target t;
            core->start_receive(sp ? sp->ref : subscription_ref{99, 0}, op, t);
            expect(op, make_error_code(error::client_closed));
            return;
        }
        subscriber_model& s = *sp;
        detail::receive_target t;
        const std::size_t batch_max = (how >> 2) % 5; // 0 means 1
        if (kind == target_kind::into) t.into = ops[op].into.get();
        if (kind == target_kind::batch) {
            t.batch = ops[op].batch.get();
            t.batch_max = batch_max;
        }
        const std::size_t queued = core->queued(s.ref);
        core->start_receive(s.ref, op, t);
        if (closed) {
            expect(op, make_error_code(error::client_closed));
        } else if (s.waiting) {
            expect(op, detail::in_progress_error());
        } else {
            s.waiting = true;
            s.waiter = op;
            s.batch_max = kind == target_kind::batch ? (batch_max == 0 ? 1 : batch_max) : 0;
            model_serve(s, queued, index);
        }
        FUZZ_CHECK(core->receive_waits(s.ref, s.waiter) == s.waiting);
    }

    void cancel_receive(fuzz::input& in) {
        subscriber_model* s = pick_subscriber(in.take<std::uint8_t>());
        const auto how = in.take<std::uint8_t>();
        if (!s) return;
        const std::uint64_t number = s->receive_number;
        FUZZ_CHECK(core->receive_number(s->ref) == number);
        switch (how % 3) {
        case 0: // by the number of the receive in progress
            model_abort_wait(*s);
            core->cancel_receive(s->ref, number);
            break;
        case 1: // a stale number: nothing
            core->cancel_receive(s->ref, number - 1);
            break;
        default:
            model_abort_wait(*s);
            core->cancel_receive(s->ref);
            break;
        }
    }

    void try_receive(fuzz::input& in) {
        subscriber_model* s = pick_subscriber(in.take<std::uint8_t>());
        if (!s) return;
        const std::size_t queued = core->queued(s->ref);
        message out;
        error_code ec;
        const bool got = core->try_receive(s->ref, out, ec);
        if (s->waiting) {
            FUZZ_CHECK(!got);
            return;
        }
        if (s->overrun_pending) {
            s->overrun_pending = false;
            FUZZ_CHECK(got && ec == error::overrun);
            return;
        }
        FUZZ_CHECK(!ec && got == (queued > 0));
        if (!got) return;
        ++s->handed;
        if (s->exact) {
            FUZZ_CHECK(!s->queue.empty() && same(out, s->queue.front()));
            s->queue.pop_front();
        } else {
            take_offered(*s, out);
        }
    }

    void overrun() {
        if (closed) return; // nothing is read after close()
        ++stats.overruns;
        for (std::size_t i = 0; i < subscribers.size(); ++i) {
            subscriber_model& s = subscribers[i];
            if (!s.active) continue;
            s.overrun_pending = true;
            ++s.stats.overruns;
            model_serve(s, core->queued(s.ref), static_cast<int>(i));
        }
        core->on_overrun();
    }

    // -- what was read --

    // The model's verdict for one good message from a trusted sender.
    FUZZ_MODEL void model_deliver(const message_view& m, unsigned group) {
        // The request the match rules give the message: by ack + 1 (one
        // pending ack-keyed request per ack), by seq and connector id, by a
        // custom predicate in start order.
        request_model* to = nullptr;
        for (auto& r : requests) {
            if (r.state != req_state::pending || r.ack + 1u != m.ack()) continue;
            if (r.mode != match::seq_and_ack && r.mode != match::ack_only) continue;
            if (r.mode == match::ack_only || r.seq == m.seq()) to = &r;
            break;
        }
        if (!to)
            for (auto& r : requests)
                if (r.state == req_state::pending && r.mode == match::seq_only && r.seq == m.seq() && r.id == m.id()) {
                    to = &r;
                    break;
                }
        if (!to)
            for (auto& r : requests)
                if (r.state == req_state::pending && r.mode == match::custom && custom_accepts(r.key, m)) {
                    to = &r;
                    break;
                }
        if (to) {
            if (model_part(*to, m)) return;
            // Not a part: unrelated, whatever an ended request's memory says.
        } else if (auto it = recent.find(m.ack());
                   it != recent.end() && (it->second.mode == match::ack_only || it->second.seq == m.seq())) {
            ++(it->second.how == req_state::replied ? stats.duplicate_replies : stats.late_replies);
            return;
        } else if (auto is = recent_seq.find(m.seq()); is != recent_seq.end() && is->second.id == m.id()) {
            ++(is->second.how == req_state::replied ? stats.duplicate_replies : stats.late_replies);
            return;
        }
        ++stats.unsolicited;
        std::size_t n = 0;
        for (std::size_t i = 0; i < subscribers.size(); ++i) {
            subscriber_model& s = subscribers[i];
            if (!s.active || s.group != group || !s.accepts(m)) continue;
            ++n;
            ++s.stats.delivered;
            max_payload_seen = std::max(max_payload_seen, m.payload.size());
            if (!s.exact) {
                // A waiting receive means an empty queue when the wait began, and an empty queue takes any message.
                if (s.waiting && !s.deferred) s.queue.clear();
                s.queue.emplace_back(m);
                if (s.waiting) {
                    // A batch that can hold more waits for the end of the read (or
                    // until it is full: how many that is, byte limits decide).
                    if (s.batch_max > 1 && s.limit > 1)
                        defer(s, i);
                    else
                        model_serve(s, 1, static_cast<int>(i));
                }
                continue;
            }
            if (s.queue.size() == s.limit) {
                ++s.stats.dropped;
                if (s.policy == overflow_policy::drop_oldest) {
                    s.queue.pop_front();
                    s.queue.emplace_back(m);
                }
            } else {
                s.queue.emplace_back(m);
            }
            if (s.waiting && s.batch_max > 1 && s.queue.size() < std::min(s.batch_max, s.limit)) {
                defer(s, i); // not full yet: the end of the read serves it
                continue;
            }
            model_serve(s, s.queue.size(), static_cast<int>(i));
        }
        if (n == 0) ++stats.unclaimed;
    }

    void defer(subscriber_model& s, std::size_t index) {
        if (s.deferred) return;
        s.deferred = true;
        deferred.push_back(index);
    }

    // The end of a read: the batch receives left waiting complete.
    FUZZ_MODEL void model_end_of_read() {
        for (const std::size_t i : deferred) {
            subscriber_model& s = subscribers[i];
            s.deferred = false;
            if (!s.waiting) continue;
            if (s.exact) {
                model_serve(s, s.queue.size(), static_cast<int>(i));
                continue;
            }
            s.waiting = false;
            ++s.receive_number;
            op_record& o = expect(s.waiter, {});
            o.from_sub = static_cast<int>(i);
            o.count = 0;
            o.count_max = s.batch_max;
        }
        deferred.clear();
    }

    void admit(fuzz::input& in) {
        const std::uint32_t port = 0x80000000u | in.take<std::uint8_t>();
        admitted.push_back(port);
        core->admit(port);
    }

    bool trusted(std::uint32_t port) const {
        return port == 0 || std::find(admitted.begin(), admitted.end(), port) != admitted.end();
    }

    // One datagram: raw bytes, or messages made to hit the requests.
    void datagram(fuzz::input& in, bool structured) {
        if (closed) return; // nothing is read after close()
        const auto port_pick = in.take<std::uint8_t>();
        const std::uint32_t port = port_pick % 4 == 0   ? 0u
                                   : port_pick % 4 == 1 ? admitted_port
                                   : port_pick % 4 == 2 ? 0x80000000u | port_pick // a forger's port id
                                                        : in.take<std::uint32_t>();
        const auto group_pick = in.take<std::uint8_t>();
        const unsigned group = (group_pick & 0x80u) ? group_pick & 0x7fu : group_pick % 4u;
        const bool truncated = (in.take<std::uint8_t>() & 0x7u) == 0;

        std::vector<std::byte>& bytes = datagram_bytes;
        bytes.clear();
        if (!structured) {
            const auto raw = in.take_bytes(in.take_upto(512));
            bytes.assign(raw.begin(), raw.end());
        } else {
            const std::size_t count = 1 + in.take<std::uint8_t>() % 4;
            for (std::size_t i = 0; i < count; ++i) {
                connector::header h;
                const auto how = in.take<std::uint8_t>();
                const auto pick = in.take<std::uint8_t>();
                const request_model* r = requests.empty() ? nullptr : &requests[pick % requests.size()];
                h.id = r && (how & 0x4u) ? r->id : connector::id{how % 3u, 1};
                if (r && (how & 0x8u) == 0) {
                    h.seq = (how & 0x10u) == 0 ? r->seq : in.take<std::uint8_t>();
                    h.ack = (how & 0x20u) == 0 ? r->ack + 1u : r->ack;
                } else {
                    h.seq = in.take<std::uint8_t>();
                    h.ack = in.take<std::uint8_t>();
                }
                // A forger claims to be the kernel.
                h.nlmsg_pid = (how & 0x40u) != 0 ? 0u : port;
                h.nlmsg_type = (how & 0x80u) != 0 ? in.take<std::uint8_t>() % 5 : NLMSG_DONE;
                const auto length = in.take<std::uint8_t>();
                h.flags = length >> 5; // for the part rule by flags
                const auto payload = in.take_bytes(length % 24);
                error_code ec;
                auto one = connector::build_datagram(h, payload, ec);
                FUZZ_CHECK(!ec);
                bytes.insert(bytes.end(), one.begin(), one.end());
                while (bytes.size() % 4 != 0) bytes.push_back(std::byte{0});
            }
        }

        // The model walks the same framing (fuzzed on its own in fuzz_framing).
        ++stats.datagrams;
        const bool believed = trusted(port);
        message_view m;
        error_code ec;
        for (connector::datagram_reader r(bytes, truncated); r.next(m, ec);) {
            if (!believed)
                ++stats.rejected;
            else if (ec)
                ++stats.malformed;
            else
                model_deliver(m, group);
        }
        model_end_of_read();
        // Exact size: ASan sees a read past the datagram.
        core->on_datagram(port, group, bytes, truncated);
    }

    void glue_completion(fuzz::input& in) {
        const op_id op = new_op();
        const error_code ec = (in.take<std::uint8_t>() & 1u) ? errno_code(ENOBUFS) : error_code{};
        expect(op, ec);
        core->complete(op, ec);
    }

    void close() {
        if (!closed)
            for (auto& r : requests)
                if (r.state == req_state::pending) end_request(r, req_state::expired, detail::aborted_error());
        for (auto& s : subscribers)
            if (s.active) model_abort_wait(s);
        closed = true;
        core->close();
    }

    // -- the checks, after each operation --

    FUZZ_MODEL void check() {
        pop_completions();
        const client_stats& a = core->stats();
        FUZZ_CHECK(a.datagrams == stats.datagrams);
        FUZZ_CHECK(a.replies == stats.replies);
        FUZZ_CHECK(a.unsolicited == stats.unsolicited);
        FUZZ_CHECK(a.unclaimed == stats.unclaimed);
        FUZZ_CHECK(a.late_replies == stats.late_replies);
        FUZZ_CHECK(a.duplicate_replies == stats.duplicate_replies);
        FUZZ_CHECK(a.rejected == stats.rejected);
        FUZZ_CHECK(a.malformed == stats.malformed);
        FUZZ_CHECK(a.overruns == stats.overruns);
        FUZZ_CHECK(a.timeouts == stats.timeouts);
        FUZZ_CHECK(a.unclaimed <= a.unsolicited);

        std::size_t live = 0;
        std::optional<clock_type::time_point> earliest;
        for (auto& r : requests) {
            const bool pending = r.state == req_state::pending;
            FUZZ_CHECK(core->request_pending(r.ticket) == pending);
            FUZZ_CHECK(ops[r.op].expected == !pending);
            // The rule is offered each message the match rules give the request, once, with its headers.
            FUZZ_CHECK(r.core_calls == r.rule_calls && !r.rule_saw_other);
            if (r.form == answer_form::gathered) {
                FUZZ_CHECK(r.parts->size() == r.want_parts.size());
                if (!r.want_parts.empty()) FUZZ_CHECK(same(r.parts->back(), r.want_parts.back()));
            }
            if (!pending) continue;
            ++live;
            if (!earliest || r.deadline < *earliest) earliest = r.deadline;
        }
        FUZZ_CHECK(core->pending_requests() == live);
        FUZZ_CHECK(core->next_deadline() == (closed ? std::nullopt : earliest));

        std::size_t active = 0, total_bytes = 0, nonempty = 0;
        const std::size_t max_cost = detail::subscriber_queue::cost(max_payload_seen);
        for (auto& s : subscribers) {
            if (!s.active) continue;
            ++active;
            const subscription_stats& q = core->subscription_statistics(s.ref);
            const std::size_t queued = core->queued(s.ref);
            FUZZ_CHECK(q.delivered == s.stats.delivered && q.overruns == s.stats.overruns);
            FUZZ_CHECK(queued <= s.limit);
            FUZZ_CHECK(q.delivered == s.handed + q.dropped + queued);
            if (s.exact) {
                FUZZ_CHECK(q.dropped == s.stats.dropped);
                FUZZ_CHECK(queued == s.queue.size());
            } else {
                FUZZ_CHECK(queued <= s.queue.size());
                // A queue holds byte_limit, plus the slack of one message's storage; a
                // message alone in its queue is always taken.
                FUZZ_CHECK(q.queued_bytes <= std::max(s.byte_limit + max_payload_seen, max_cost));
            }
            FUZZ_CHECK(q.queued_bytes <= queued * max_cost);
            FUZZ_CHECK(core->is_waiting(s.ref) == s.waiting);
            FUZZ_CHECK(!s.waiting || queued == 0);
            FUZZ_CHECK(core->receive_number(s.ref) == s.receive_number);
            total_bytes += q.queued_bytes;
            nonempty += queued > 0;
        }
        // What the client holds: the queued messages plus the storage free slots
        // keep for reuse (at most spare_limit per queue).
        const std::size_t spare = active * detail::subscriber_queue::spare_limit;
        FUZZ_CHECK(core->held_bytes() >= total_bytes);
        FUZZ_CHECK(core->held_bytes() <= total_bytes + spare);
        // The client's budget: a queue takes a message when it fits in what is
        // left, and an empty queue takes one whatever is left; storage freed by
        // consumers is kept (within spare_limit) without asking the budget.
        FUZZ_CHECK(core->held_bytes() <= budget + nonempty * max_cost + spare);
        FUZZ_CHECK(core->has_subscribers() == (active > 0));
        FUZZ_CHECK(core->wants_read() == (!closed && (live > 0 || active > 0)));
        FUZZ_CHECK(core->closed() == closed);
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::input in(data, size);
    harness h(in);
    for (std::size_t n = 0; !in.empty() && n < 200; ++n) {
        switch (in.take<std::uint8_t>() % 16) {
        case 0: h.start_request(in); break;
        case 1: h.cancel_request(in); break;
        case 2: h.timer(in); break;
        case 3: h.subscribe(in); break;
        case 4: h.unsubscribe(in); break;
        case 5: h.receive(in); break;
        case 6: h.overrun(); break;
        case 7: h.datagram(in, false); break;
        case 8: h.datagram(in, true); break;
        case 9: h.send_failed(in); break;
        case 10: h.read_error(); break;
        case 11: h.cancel_receive(in); break;
        case 12: h.try_receive(in); break;
        case 13: h.admit(in); break;
        case 14: h.glue_completion(in); break;
        default:
            if (in.take<std::uint8_t>() % 4 == 0) h.close(); // not too often: it ends the interesting part
            else h.datagram(in, true);
            break;
        }
        h.check();
    }
    // close(): everything still pending ends with operation_aborted; later
    // operations fail with client_closed.
    h.close();
    h.check();
    FUZZ_CHECK(h.core->pending_requests() == 0 && !h.core->wants_read() && !h.core->next_deadline());
    h.close(); // a second close changes nothing
    h.check();
    for (const auto& r : h.requests) h.check_parts(r);
    return 0;
}
