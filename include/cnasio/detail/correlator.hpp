// cnasio/detail/correlator.hpp - the pending-request table, without any I/O.
//
// connector.rst: a reply carries the request's `seq` and the request's
// `ack + 1`. The table is keyed by that expected ack (each pending request
// gets a random ack whose successor no other pending request expects), so a
// lookup is one hash probe whatever the matching rule:
// - match::seq_and_ack: the documented protocol (seq and ack + 1 must agree);
// - match::ack_only: for the proc connector, which overwrites seq with its
//   per-CPU event counter;
// - match::custom: a caller's predicate, tried in order for messages no
//   ack lookup claimed (linear; meant for a handful of requests).
// Requests that ended (answered, timed out, cancelled) are remembered for a
// while, so a second reply is told apart as a duplicate and a reply after a
// timeout as late, instead of passing for a new, unsolicited message.
#pragma once

#include <cnasio/connector/message.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

namespace cnasio {

/// How a reply is recognised.
enum class match {
    seq_and_ack, ///< same seq and ack + 1, as connector.rst says (the default)
    ack_only,    ///< ack + 1 only: the proc connector does not echo seq
    custom,      ///< a caller-supplied predicate decides
};

/// A caller's reply predicate for match::custom.
using reply_matcher = std::function<bool(const connector::message_view&)>;

namespace detail {

template <class T>
class correlator {
public:
    using clock = std::chrono::steady_clock;

    /// Names one pending request; stale once the request has ended.
    struct ticket {
        std::uint32_t index = 0;
        std::uint32_t generation = 0;
        friend bool operator==(const ticket&, const ticket&) = default;
    };

    /// What a received message is to the table.
    enum class verdict {
        reply,     ///< answers a pending request (see the ticket)
        duplicate, ///< answers a request that already had its reply
        late,      ///< answers a request that timed out or was cancelled
        unrelated, ///< not a reply to anything we asked
    };

    /// How a request ended, remembered to classify what comes after.
    enum class outcome { replied, expired };

    explicit correlator(std::size_t remembered = 4096) : recent_limit_(remembered) {}

    /// The next seq to send: locally unique, incremented per message.
    std::uint32_t next_seq() noexcept { return ++seq_; }

    /// True when no pending request already expects `ack + 1`.
    bool ack_free(std::uint32_t ack) const { return by_ack_.find(ack + 1u) == by_ack_.end(); }

    /// Registers a request sent with (`seq`, `ack`); `ack_free(ack)` must hold.
    ticket add(match mode, std::uint32_t seq, std::uint32_t ack, reply_matcher custom, clock::time_point deadline,
               T value) {
        std::uint32_t index;
        if (!free_.empty()) {
            index = free_.back();
            free_.pop_back();
        } else {
            index = static_cast<std::uint32_t>(slots_.size());
            slots_.emplace_back();
        }
        slot& s = slots_[index];
        s.live = true;
        s.mode = mode;
        s.seq = seq;
        s.expected_ack = ack + 1u;
        s.custom = std::move(custom);
        s.deadline = deadline;
        s.value.emplace(std::move(value));
        if (mode == match::custom)
            custom_.push_back(index);
        else
            by_ack_.emplace(s.expected_ack, index);
        deadlines_.push_back({deadline, {index, s.generation}});
        std::push_heap(deadlines_.begin(), deadlines_.end(), later);
        ++live_;
        return {index, s.generation};
    }

    /// The value of a pending request, or null if it has ended.
    T* find(ticket t) noexcept {
        if (t.index >= slots_.size()) return nullptr;
        slot& s = slots_[t.index];
        return s.live && s.generation == t.generation ? &*s.value : nullptr;
    }

    /// What `m` is to the table; for a reply, `t` names the request.
    verdict classify(const connector::message_view& m, ticket& t) const {
        if (auto it = by_ack_.find(m.ack()); it != by_ack_.end()) {
            const slot& s = slots_[it->second];
            if (s.mode == match::ack_only || s.seq == m.seq()) {
                t = {it->second, s.generation};
                return verdict::reply;
            }
        }
        for (std::uint32_t index : custom_) {
            const slot& s = slots_[index];
            if (s.custom && s.custom(m)) {
                t = {index, s.generation};
                return verdict::reply;
            }
        }
        if (auto it = recent_.find(m.ack()); it != recent_.end()) {
            const memory& r = it->second;
            if (r.mode == match::ack_only || r.seq == m.seq())
                return r.how == outcome::replied ? verdict::duplicate : verdict::late;
        }
        return verdict::unrelated;
    }

    /// Ends a request and hands back its value; nullopt if it had ended already.
    std::optional<T> take(ticket t, outcome how) {
        if (!find(t)) return std::nullopt;
        slot& s = slots_[t.index];
        std::optional<T> v(std::move(s.value));
        s.value.reset();
        if (s.mode == match::custom)
            custom_.erase(std::find(custom_.begin(), custom_.end(), t.index));
        else {
            by_ack_.erase(s.expected_ack);
            remember(s.expected_ack, {s.seq, s.mode, how, 0});
        }
        s.custom = nullptr;
        s.live = false;
        ++s.generation;
        free_.push_back(t.index);
        --live_;
        ++stale_deadlines_;
        compact_deadlines();
        return v;
    }

    /// The pending requests whose deadline is at or before `now`, in
    /// deadline order (the caller takes each with outcome::expired).
    template <class F>
    void for_each_expired(clock::time_point now, F&& f) {
        while (!deadlines_.empty() && deadlines_.front().when <= now) {
            std::pop_heap(deadlines_.begin(), deadlines_.end(), later);
            const ticket t = deadlines_.back().which;
            deadlines_.pop_back();
            if (find(t)) {
                f(t);
                if (stale_deadlines_ > 0) --stale_deadlines_; // its own record just left the heap
            } else if (stale_deadlines_ > 0) {
                --stale_deadlines_;
            }
        }
    }

    /// The earliest deadline of a pending request.
    std::optional<clock::time_point> next_deadline() {
        while (!deadlines_.empty() && !find(deadlines_.front().which)) {
            std::pop_heap(deadlines_.begin(), deadlines_.end(), later);
            deadlines_.pop_back();
            if (stale_deadlines_ > 0) --stale_deadlines_;
        }
        if (deadlines_.empty()) return std::nullopt;
        return deadlines_.front().when;
    }

    /// Every pending request (to end them all, e.g. on close).
    std::vector<ticket> pending() const {
        std::vector<ticket> out;
        for (std::uint32_t i = 0; i < slots_.size(); ++i)
            if (slots_[i].live) out.push_back({i, slots_[i].generation});
        return out;
    }

    std::size_t size() const noexcept { return live_; }
    bool empty() const noexcept { return live_ == 0; }
    /// Deadline records kept (bounded: at most about three per pending request).
    std::size_t deadline_records() const noexcept { return deadlines_.size(); }

private:
    struct slot {
        bool live = false;
        match mode = match::seq_and_ack;
        std::uint32_t generation = 0;
        std::uint32_t seq = 0;
        std::uint32_t expected_ack = 0;
        reply_matcher custom;
        clock::time_point deadline{};
        std::optional<T> value;
    };
    struct memory {
        std::uint32_t seq;
        match mode;
        outcome how;
        std::size_t position = 0; // its place in recent_order_
    };
    struct deadline_record {
        clock::time_point when;
        ticket which;
    };
    static bool later(const deadline_record& a, const deadline_record& b) noexcept { return a.when > b.when; }

    void remember(std::uint32_t expected_ack, memory m) {
        if (recent_limit_ == 0) return;
        if (recent_order_.size() < recent_limit_) {
            m.position = recent_order_.size();
            recent_order_.push_back(expected_ack);
        } else { // forget the oldest: a ring over recent_order_
            m.position = recent_next_;
            // An ack that came up again was remembered anew at a later
            // position: that newer memory is not the oldest, keep it.
            const auto old = recent_.find(recent_order_[recent_next_]);
            if (old != recent_.end() && old->second.position == recent_next_) recent_.erase(old);
            recent_order_[recent_next_] = expected_ack;
            recent_next_ = (recent_next_ + 1) % recent_limit_;
        }
        recent_.insert_or_assign(expected_ack, m);
    }

    // Ended requests leave their deadline record in the heap (removing from
    // the middle of a heap is costly); rebuild once they outnumber the rest.
    void compact_deadlines() {
        if (stale_deadlines_ < 1024 || stale_deadlines_ < 2 * live_) return;
        std::erase_if(deadlines_, [&](const deadline_record& r) {
            const slot& s = slots_[r.which.index];
            return !(s.live && s.generation == r.which.generation);
        });
        std::make_heap(deadlines_.begin(), deadlines_.end(), later);
        stale_deadlines_ = 0;
    }

    std::vector<slot> slots_;
    std::vector<std::uint32_t> free_;
    std::unordered_map<std::uint32_t, std::uint32_t> by_ack_; // expected ack -> slot
    std::vector<std::uint32_t> custom_;
    std::vector<deadline_record> deadlines_;
    std::size_t stale_deadlines_ = 0;
    std::size_t live_ = 0;
    std::uint32_t seq_ = 0;

    std::unordered_map<std::uint32_t, memory> recent_;
    std::vector<std::uint32_t> recent_order_;
    std::size_t recent_next_ = 0;
    std::size_t recent_limit_;
};

} // namespace detail
} // namespace cnasio
