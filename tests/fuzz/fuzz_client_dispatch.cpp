// Fuzz target: the client's receive dispatch, with requests pending and
// subscribers waiting.
//
// The input is a script of operations on the client's state object (the one
// `cnasio::client` keeps behind its socket): register a request (any match
// mode, reply or into-handler), cancel one, let timeouts fire, add, remove or
// cancel subscribers, start receives, signal an overrun, and hand it received
// datagrams - raw bytes, or messages built to answer a pending request - with a
// fuzzed sender port id and group mask. `client_state::dispatch` is the entry
// the receive loop calls for every datagram it reads, so nothing is skipped but
// the recvmsg() itself.
//
// A small model of the documented behaviour runs alongside, and after every
// operation (and after the posted completions have run) it is checked that:
// - nothing from a port id other than 0 and the admitted one reaches a request
//   or a subscriber, whatever its headers claim; each of its messages counts
//   as rejected;
// - every message counts in exactly one of replies, unsolicited, late,
//   duplicate, rejected, malformed, and each count is the model's;
// - a request completes once, with the reply the model picked (seq/ack+1,
//   ack only, or the custom predicate; duplicates and late replies dropped);
// - each subscriber gets the messages of its group and id, in order, its queue
//   bounded by its limit, drops counted by its policy, overruns signalled once;
// - close() ends everything with operation_aborted, and afterwards nothing
//   holds the state (no handler, no cycle: LeakSanitizer checks the rest).
#include <cnasio/client.hpp>

#include "fuzz_check.hpp"

#include <boost/asio/io_context.hpp>

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <vector>

using namespace cnasio;
using connector::message;
using connector::message_view;

namespace {

constexpr std::uint32_t admitted_port = 4242;

bool same(const message& a, const message_view& b) {
    const auto& x = a.header;
    const auto& y = b.header;
    return x.id == y.id && x.seq == y.seq && x.ack == y.ack && x.flags == y.flags && x.nlmsg_type == y.nlmsg_type &&
           x.nlmsg_flags == y.nlmsg_flags && x.nlmsg_seq == y.nlmsg_seq && x.nlmsg_pid == y.nlmsg_pid &&
           fuzz::same_bytes(a.payload, b.payload);
}

struct completion {
    error_code ec;
    std::optional<message> m; // set when a message is expected / was handed over
};

bool same(const completion& a, const completion& b) {
    if (a.ec != b.ec || a.m.has_value() != b.m.has_value()) return false;
    return !a.m || same(*a.m, b.m->view());
}

// ---- requests ----

enum class req_state { pending, replied, expired };

struct request_model {
    std::uint32_t seq = 0, ack = 0;
    match mode = match::seq_and_ack;
    std::uint8_t key = 0;       // match::custom: replies whose payload starts with this byte
    bool expires_now = false;   // deadline already passed: the next timer run ends it
    bool into = false;          // completes through the into-handler form
    req_state state = req_state::pending;
    detail::client_state::table::ticket ticket;
    std::unique_ptr<message> into_storage = std::make_unique<message>();
    std::optional<completion> expected;
    std::vector<completion> got;
};

bool custom_accepts(std::uint8_t key, const message_view& m) {
    return !m.payload.empty() && static_cast<std::uint8_t>(m.payload[0]) == key;
}

// ---- subscribers ----

struct subscriber_model {
    std::shared_ptr<detail::subscriber> sub;
    unsigned group = 0;
    connector::id only{};
    std::size_t limit = 1;
    overflow_policy policy = overflow_policy::drop_oldest;
    bool active = true;
    bool waiting = false;
    bool overrun_pending = false;
    std::deque<message> queue;
    subscription_stats stats;
    std::deque<completion> expected;
    std::vector<completion> got;

    bool accepts(const message_view& m) const { return (only.idx == 0 && only.val == 0) || m.id() == only; }
};

struct harness {
    boost::asio::io_context io;
    std::shared_ptr<detail::client_state> st;
    std::deque<request_model> requests;
    std::deque<subscriber_model> subscribers;
    client_stats stats; // what the model expects
    // Ended requests by expected ack (ack + 1): the last one to end wins.
    struct memory {
        std::uint32_t seq;
        match mode;
        req_state how;
    };
    std::map<std::uint32_t, memory> recent;

    harness() {
        client_options o;
        o.admitted_ports = {admitted_port};
        st = std::make_shared<detail::client_state>(io.get_executor(), std::move(o));
    }

    void run_completions() {
        io.restart();
        io.poll();
    }

    // -- model operations --

    request_model* pending_request(std::size_t pick) {
        std::vector<request_model*> live;
        for (auto& r : requests)
            if (r.state == req_state::pending) live.push_back(&r);
        return live.empty() ? nullptr : live[pick % live.size()];
    }

    void end_request(request_model& r, req_state how, completion c) {
        FUZZ_CHECK(r.state == req_state::pending);
        r.state = how;
        r.expected = std::move(c);
        if (r.mode != match::custom) recent.insert_or_assign(r.ack + 1u, memory{r.seq, r.mode, how});
    }

    // The model's verdict for one good message from a trusted sender.
    void model_deliver(const message_view& m, unsigned group) {
        for (auto& r : requests) {
            if (r.state != req_state::pending || r.mode == match::custom || r.ack + 1u != m.ack()) continue;
            if (r.mode == match::ack_only || r.seq == m.seq()) {
                ++stats.replies;
                end_request(r, req_state::replied, {{}, message(m)});
                return;
            }
            break; // one pending request per expected ack
        }
        for (auto& r : requests) {
            if (r.state == req_state::pending && r.mode == match::custom && custom_accepts(r.key, m)) {
                ++stats.replies;
                end_request(r, req_state::replied, {{}, message(m)});
                return;
            }
        }
        if (auto it = recent.find(m.ack()); it != recent.end()) {
            const memory& mem = it->second;
            if (mem.mode == match::ack_only || mem.seq == m.seq()) {
                if (mem.how == req_state::replied)
                    ++stats.duplicate_replies;
                else
                    ++stats.late_replies;
                return;
            }
        }
        ++stats.unsolicited;
        std::size_t n = 0;
        for (auto& s : subscribers) {
            if (!s.active || s.group != group || !s.accepts(m)) continue;
            ++n;
            ++s.stats.delivered;
            if (s.queue.size() == s.limit) {
                ++s.stats.dropped;
                if (s.policy == overflow_policy::drop_oldest) {
                    s.queue.pop_front();
                    s.queue.emplace_back(m);
                }
            } else {
                s.queue.emplace_back(m);
            }
            model_serve(s);
        }
        if (n == 0) ++stats.unclaimed;
    }

    void model_serve(subscriber_model& s) {
        if (!s.waiting) return;
        if (s.overrun_pending) {
            s.overrun_pending = false;
            s.waiting = false;
            s.expected.push_back({make_error_code(error::overrun), std::nullopt});
            return;
        }
        if (s.queue.empty()) return;
        s.waiting = false;
        s.expected.push_back({{}, std::move(s.queue.front())});
        s.queue.pop_front();
    }

    void model_abort_wait(subscriber_model& s) {
        if (!s.waiting) return;
        s.waiting = false;
        s.expected.push_back({boost::asio::error::operation_aborted, std::nullopt});
    }

    // -- the checks --

    void check() {
        run_completions();
        const client_stats& a = st->stats;
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
        for (auto& r : requests) {
            if (r.state == req_state::pending) {
                ++live;
                FUZZ_CHECK(r.got.empty());
                FUZZ_CHECK(st->requests.find(r.ticket) != nullptr);
                continue;
            }
            FUZZ_CHECK(st->requests.find(r.ticket) == nullptr);
            FUZZ_CHECK(r.got.size() == 1); // exactly once
            FUZZ_CHECK(r.expected && same(r.got[0], *r.expected));
        }
        FUZZ_CHECK(st->requests.size() == live);

        for (auto& s : subscribers) {
            FUZZ_CHECK(s.got.size() == s.expected.size());
            for (std::size_t i = 0; i < s.got.size(); ++i) FUZZ_CHECK(same(s.got[i], s.expected[i]));
            s.got.clear();
            s.expected.clear();
            const subscription_stats& q = s.sub->queue.stats();
            FUZZ_CHECK(q.delivered == s.stats.delivered && q.dropped == s.stats.dropped &&
                       q.overruns == s.stats.overruns);
            FUZZ_CHECK(s.sub->queue.size() == s.queue.size() && s.sub->queue.size() <= s.limit);
            FUZZ_CHECK(s.sub->waiting() == s.waiting);
            FUZZ_CHECK(s.sub->queue.overrun_pending() == s.overrun_pending);
        }
        for (unsigned g = 0; g <= detail::fanout<detail::subscriber>::max_group; ++g) {
            std::size_t n = 0;
            for (auto& s : subscribers) n += s.active && s.group == g;
            FUZZ_CHECK(st->subscribers.subscribers(g) == n);
        }
    }

    // -- operations --

    void add_request(fuzz::input& in) {
        if (requests.size() >= 64) return; // keeps the memory of ended requests far below its limit
        request_model& r = requests.emplace_back();
        const auto how = in.take<std::uint8_t>();
        r.mode = how % 3 == 0 ? match::seq_and_ack : how % 3 == 1 ? match::ack_only : match::custom;
        r.into = (how & 0x10u) != 0;
        r.expires_now = (how & 0x20u) != 0;
        r.key = in.take<std::uint8_t>();
        // Small acks: the fuzzer finds collisions with ended requests' acks.
        std::uint32_t ack = in.take<std::uint8_t>();
        if ((how & 0x40u) != 0) ack = 0xffffff00u + ack; // near the wrap of ack + 1
        bool model_free;
        for (;;) {
            model_free = true;
            for (auto& o : requests)
                if (&o != &r && o.state == req_state::pending && o.mode != match::custom && o.ack == ack)
                    model_free = false;
            FUZZ_CHECK(st->requests.ack_free(ack) == model_free);
            if (model_free) break;
            ++ack;
        }
        r.ack = ack;
        r.seq = st->requests.next_seq();

        // What start_request() does once the message is sent.
        reply_matcher matcher;
        if (r.mode == match::custom) matcher = [key = r.key](const message_view& m) { return custom_accepts(key, m); };
        const auto deadline = r.expires_now ? detail::client_state::clock::now() - std::chrono::seconds(1)
                                            : detail::client_state::clock::now() + std::chrono::hours(1);
        // Built in place: Boost 1.81's any_completion_handler move assignment
        // recurses without end (it wraps `other` as a new handler), so a
        // handler must never be assigned, only constructed.
        request_model* self = &r;
        auto make_pending = [&]() -> detail::client_state::pending {
            if (r.into)
                return {detail::client_state::into_handler([self](error_code ec) {
                            self->got.push_back({ec, ec ? std::nullopt : std::optional(*self->into_storage)});
                        }),
                        r.into_storage.get()};
            return {detail::client_state::reply_handler([self](error_code ec, message m) {
                        self->got.push_back({ec, ec ? std::nullopt : std::optional(std::move(m))});
                    }),
                    nullptr};
        };
        r.ticket = st->requests.add(r.mode, r.seq, r.ack, std::move(matcher), deadline, make_pending());
    }

    void cancel_request(fuzz::input& in) {
        request_model* r = pending_request(in.take<std::uint8_t>());
        if (!r) return;
        // What a cancellation slot's handler does (client_state::cancel_request).
        end_request(*r, req_state::expired, {boost::asio::error::operation_aborted, std::nullopt});
        st->finish(r->ticket, boost::asio::error::operation_aborted, nullptr,
                   detail::client_state::table::outcome::expired);
    }

    void run_timer() {
        for (auto& r : requests)
            if (r.state == req_state::pending && r.expires_now) {
                ++stats.timeouts;
                end_request(r, req_state::expired, {make_error_code(error::timeout), std::nullopt});
            }
        st->on_timer();
    }

    void add_subscriber(fuzz::input& in) {
        if (subscribers.size() >= 16) return;
        subscriber_model& s = subscribers.emplace_back();
        s.group = in.take<std::uint8_t>() % 4; // few groups: they collide with the datagrams' groups
        const auto id_pick = in.take<std::uint8_t>();
        s.only = id_pick % 3 == 0 ? connector::id{} : connector::id{id_pick % 3u, 1};
        subscription_options o;
        o.queue_limit = in.take<std::uint8_t>() % 6; // 0 means 1
        o.policy = in.take_bool() ? overflow_policy::drop_newest : overflow_policy::drop_oldest;
        o.only_id = s.only;
        s.limit = o.queue_limit == 0 ? 1 : o.queue_limit;
        s.policy = o.policy;
        s.sub = std::make_shared<detail::subscriber>(s.group, o);
        st->subscribers.add(s.group, s.sub.get());
    }

    subscriber_model* active_subscriber(std::size_t pick) {
        std::vector<subscriber_model*> live;
        for (auto& s : subscribers)
            if (s.active) live.push_back(&s);
        return live.empty() ? nullptr : live[pick % live.size()];
    }

    void remove_subscriber(fuzz::input& in) {
        subscriber_model* s = active_subscriber(in.take<std::uint8_t>());
        if (!s) return;
        // What subscription::reset() does.
        model_abort_wait(*s);
        s->active = false;
        s->sub->complete(*st, boost::asio::error::operation_aborted);
        st->subscribers.remove(s->group, s->sub.get());
    }

    void receive(fuzz::input& in) {
        subscriber_model* s = active_subscriber(in.take<std::uint8_t>());
        if (!s) return;
        if (in.take_bool()) { // cancel the receive in progress
            model_abort_wait(*s);
            s->sub->complete(*st, boost::asio::error::operation_aborted);
            return;
        }
        if (s->waiting) return; // one at a time (subscription::start refuses a second)
        s->waiting = true;
        model_serve(*s);
        subscriber_model* self = s;
        s->sub->waiter.emplace<detail::subscriber::value_handler>([self](error_code ec, message m) {
            self->got.push_back({ec, ec ? std::nullopt : std::optional(std::move(m))});
        });
        s->sub->serve(*st);
    }

    void overrun() {
        ++stats.overruns;
        for (auto& s : subscribers) {
            if (!s.active) continue;
            s.overrun_pending = true;
            ++s.stats.overruns;
            model_serve(s);
        }
        st->on_overrun();
    }

    // One datagram: raw bytes, or messages made to hit the pending requests.
    void datagram(fuzz::input& in, bool structured) {
        const auto port_pick = in.take<std::uint8_t>();
        std::uint32_t port = port_pick % 4 == 0 ? 0u
                             : port_pick % 4 == 1 ? admitted_port
                             : port_pick % 4 == 2 ? 0x80000000u | port_pick // a forger's port id
                                                  : in.take<std::uint32_t>();
        const auto group_pick = in.take<std::uint8_t>() % 6;
        const std::uint32_t groups = group_pick == 0 ? 0u : group_pick < 4 ? (1u << (group_pick - 1)) : in.take<std::uint32_t>();
        const bool truncated = (in.take<std::uint8_t>() & 0x7u) == 0;

        std::vector<std::byte> bytes;
        if (!structured) {
            const auto raw = in.take_bytes(in.take_upto(512));
            bytes.assign(raw.begin(), raw.end());
        } else {
            const std::size_t count = 1 + in.take<std::uint8_t>() % 4;
            for (std::size_t i = 0; i < count; ++i) {
                connector::header h;
                const auto how = in.take<std::uint8_t>();
                const request_model* r = requests.empty() ? nullptr : &requests[in.take<std::uint8_t>() % requests.size()];
                h.id = {how % 3u, 1};
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
                const auto payload = in.take_bytes(in.take<std::uint8_t>() % 24);
                error_code ec;
                auto one = connector::build_datagram(h, payload, ec);
                FUZZ_CHECK(!ec);
                bytes.insert(bytes.end(), one.begin(), one.end());
                while (bytes.size() % 4 != 0) bytes.push_back(std::byte{0});
            }
        }
        // Exact-size buffer: ASan sees a read past the datagram.
        std::vector<std::byte> exact(bytes);
        connector::received_datagram d;
        d.sender = netlink::endpoint(port, groups);
        d.bytes = exact;
        d.truncated = truncated;

        // The model walks the same framing (fuzzed on its own in fuzz_framing).
        ++stats.datagrams;
        const bool trusted = port == 0 || port == admitted_port;
        message_view m;
        error_code ec;
        for (auto r = d.reader(); r.next(m, ec);) {
            if (!trusted)
                ++stats.rejected;
            else if (ec)
                ++stats.malformed;
            else
                model_deliver(m, d.group());
        }
        st->dispatch(d);
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::input in(data, size);
    std::weak_ptr<detail::client_state> weak;
    {
        harness h;
        weak = h.st;
        for (std::size_t ops = 0; !in.empty() && ops < 200; ++ops) {
            switch (in.take<std::uint8_t>() % 10) {
            case 0: h.add_request(in); break;
            case 1: h.cancel_request(in); break;
            case 2: h.run_timer(); break;
            case 3: h.add_subscriber(in); break;
            case 4: h.remove_subscriber(in); break;
            case 5: h.receive(in); break;
            case 6: h.overrun(); break;
            case 7: h.datagram(in, false); break;
            default: h.datagram(in, true); break;
            }
            h.check();
        }
        // close(): everything still pending ends with operation_aborted.
        for (auto& r : h.requests)
            if (r.state == req_state::pending)
                h.end_request(r, req_state::expired, {boost::asio::error::operation_aborted, std::nullopt});
        for (auto& s : h.subscribers)
            if (s.active) h.model_abort_wait(s);
        h.st->close();
        h.check();
        FUZZ_CHECK(h.st->requests.empty());
        for (auto& s : h.subscribers)
            if (s.active) h.st->subscribers.remove(s.group, s.sub.get());
        FUZZ_CHECK(h.st->subscribers.empty());
        // Only the harness holds the state now: no handler or timer kept it.
        h.run_completions();
        FUZZ_CHECK(h.st.use_count() == 1);
    }
    FUZZ_CHECK(weak.expired());
    return 0;
}
