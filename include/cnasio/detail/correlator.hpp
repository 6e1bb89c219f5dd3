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
//   ack lookup claimed (linear; meant for a handful of requests);
// - match::seq_only: same seq and connector id, whatever the ack (1-Wire
//   answers with ack = the request's ack in status replies and seq + 1 in data
//   replies): a second table keyed by seq, which is locally unique.
// Requests that ended (answered, timed out, cancelled) are remembered for a
// while, so a second reply is told apart as a duplicate and a reply after a
// timeout as late, instead of passing for a new, unsolicited message.
#pragma once

#include <cnasio/connector/message.hpp>
#include <cnasio/options.hpp>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

namespace cnasio {

namespace detail {

/// A map from 32-bit keys to 32-bit values: open addressing with linear
/// probing and backward-shift deletion, so it stops allocating once it has
/// grown to the largest number of entries it held (unlike a node-based map).
class u32_index {
public:
    static constexpr std::uint32_t none = 0xffffffffu;

    /// The value of `key`, or `none`.
    std::uint32_t find(std::uint32_t key) const noexcept {
        if (slots_.empty()) return none;
        for (std::size_t i = home(key);; i = (i + 1) & mask_) {
            const slot& s = slots_[i];
            if (s.value == none) return none;
            if (s.key == key) return s.value;
        }
    }

    /// Sets `key` to `value` (not `none`).
    void set(std::uint32_t key, std::uint32_t value) {
        if ((size_ + 1) * 2 > slots_.size()) grow();
        for (std::size_t i = home(key);; i = (i + 1) & mask_) {
            slot& s = slots_[i];
            if (s.value == none) {
                s = {key, value};
                ++size_;
                return;
            }
            if (s.key == key) {
                s.value = value;
                return;
            }
        }
    }

    /// Removes `key`; false if it was absent.
    bool erase(std::uint32_t key) noexcept {
        if (slots_.empty()) return false;
        std::size_t i = home(key);
        for (;; i = (i + 1) & mask_) {
            if (slots_[i].value == none) return false;
            if (slots_[i].key == key) break;
        }
        // Shift later members of the probe run back into the hole.
        for (std::size_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
            if (slots_[j].value == none) break;
            const std::size_t h = home(slots_[j].key);
            // Move j into i if its home is not cyclically in (i, j].
            if (((j - h) & mask_) >= ((j - i) & mask_)) {
                slots_[i] = slots_[j];
                i = j;
            }
        }
        slots_[i].value = none;
        --size_;
        return true;
    }

    std::size_t size() const noexcept { return size_; }

private:
    struct slot {
        std::uint32_t key = 0;
        std::uint32_t value = none;
    };

    std::size_t home(std::uint32_t key) const noexcept {
        return static_cast<std::size_t>((key * 0x9e3779b1u) >> shift_) & mask_;
    }

    void grow() {
        std::vector<slot> old;
        old.swap(slots_);
        const std::size_t n = old.empty() ? 64 : old.size() * 2;
        slots_.assign(n, slot{});
        mask_ = n - 1;
        shift_ = 32u - static_cast<unsigned>(std::countr_zero(n));
        size_ = 0;
        for (const slot& s : old)
            if (s.value != none) set(s.key, s.value);
    }

    std::vector<slot> slots_;
    std::size_t mask_ = 0;
    unsigned shift_ = 0;
    std::size_t size_ = 0;
};

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

    /// Records of ended requests a deadline-heap rebuild waits for (see
    /// compact_deadlines()): the client keeps the default.
    static constexpr std::size_t default_compact_after = 1024;

    /// `remembered`: ended requests kept to tell duplicates and late replies
    /// apart. `compact_after`: a test seam, so that a fuzzer reaches the
    /// deadline-heap rebuild with a dozen requests instead of a thousand; the
    /// records kept stay below about 3 per pending request + `compact_after`.
    explicit correlator(std::size_t remembered = 4096, std::size_t compact_after = default_compact_after)
        : recent_limit_(remembered), compact_after_(compact_after) {}

    /// The next seq to send: locally unique, incremented per message.
    std::uint32_t next_seq() noexcept { return ++seq_; }

    /// True when no pending request already expects `ack + 1`.
    bool ack_free(std::uint32_t ack) const { return by_ack_.find(ack + 1u) == u32_index::none; }

    /// Registers a request sent with (`seq`, `ack`) to `id`; `ack_free(ack)` must hold.
    ticket add(match mode, std::uint32_t seq, std::uint32_t ack, reply_matcher custom, clock::time_point deadline,
               T value, connector::id id = {}) {
        std::uint32_t index;
        if (!free_.empty()) {
            index = free_.back();
            free_.pop_back();
        } else {
            index = static_cast<std::uint32_t>(slots_.size());
            slots_.emplace_back();
            // take() puts the index on free_, which never holds more than
            // there are slots: growing it here keeps take() (a reply's path)
            // from allocating when many requests end together.
            if (free_.capacity() < slots_.capacity()) free_.reserve(slots_.capacity());
        }
        slot& s = slots_[index];
        s.live = true;
        s.mode = mode;
        s.seq = seq;
        s.expected_ack = ack + 1u;
        s.id = id;
        s.custom = std::move(custom);
        s.deadline = deadline;
        s.value.emplace(std::move(value));
        if (mode == match::custom)
            custom_.push_back(index);
        else if (mode == match::seq_only)
            by_seq_.set(seq, index);
        else
            by_ack_.set(s.expected_ack, index);
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
        if (const auto index = by_ack_.find(m.ack()); index != u32_index::none) {
            const slot& s = slots_[index];
            if (s.mode == match::ack_only || s.seq == m.seq()) {
                t = {index, s.generation};
                return verdict::reply;
            }
        }
        if (const auto index = by_seq_.find(m.seq()); index != u32_index::none && slots_[index].id == m.id()) {
            t = {index, slots_[index].generation};
            return verdict::reply;
        }
        for (std::uint32_t index : custom_) {
            const slot& s = slots_[index];
            if (s.custom && s.custom(m)) {
                t = {index, s.generation};
                return verdict::reply;
            }
        }
        if (const auto at = recent_index_.find(m.ack()); at != u32_index::none) {
            const memory& r = recent_[at];
            if (r.mode == match::ack_only || r.seq == m.seq())
                return r.how == outcome::replied ? verdict::duplicate : verdict::late;
        }
        if (const auto at = recent_seq_index_.find(m.seq()); at != u32_index::none) {
            const memory& r = recent_[at];
            if (r.id == m.id()) return r.how == outcome::replied ? verdict::duplicate : verdict::late;
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
        else if (s.mode == match::seq_only) {
            by_seq_.erase(s.seq);
            remember(s.seq, {s.seq, s.mode, how, 0, s.id});
        } else {
            by_ack_.erase(s.expected_ack);
            remember(s.expected_ack, {s.seq, s.mode, how, 0, s.id});
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
    /// Deadline records kept (bounded: about three per pending request + compact_after).
    std::size_t deadline_records() const noexcept { return deadlines_.size(); }

private:
    struct slot {
        bool live = false;
        match mode = match::seq_and_ack;
        std::uint32_t generation = 0;
        std::uint32_t seq = 0;
        std::uint32_t expected_ack = 0;
        connector::id id{}; // match::seq_only compares it
        reply_matcher custom;
        clock::time_point deadline{};
        std::optional<T> value;
    };
    struct memory {
        std::uint32_t seq;
        match mode;
        outcome how;
        std::uint32_t key = 0; // expected ack, or seq for match::seq_only
        connector::id id{};
    };
    struct deadline_record {
        clock::time_point when;
        ticket which;
    };
    static bool later(const deadline_record& a, const deadline_record& b) noexcept { return a.when > b.when; }

    u32_index& recent_index_of(match mode) noexcept {
        return mode == match::seq_only ? recent_seq_index_ : recent_index_;
    }

    // A ring of the last `recent_limit_` ended requests, indexed by expected
    // ack (by seq for match::seq_only).
    void remember(std::uint32_t key, memory m) {
        if (recent_limit_ == 0) return;
        m.key = key;
        std::uint32_t at;
        if (recent_.size() < recent_limit_) {
            at = static_cast<std::uint32_t>(recent_.size());
            recent_.push_back(m);
        } else { // forget the oldest
            at = static_cast<std::uint32_t>(recent_next_);
            recent_next_ = (recent_next_ + 1) % recent_limit_;
            u32_index& old_index = recent_index_of(recent_[at].mode);
            const std::uint32_t old = recent_[at].key;
            if (old_index.find(old) == at) old_index.erase(old);
            recent_[at] = m;
        }
        recent_index_of(m.mode).set(key, at);
    }

    // Ended requests leave their deadline record in the heap (removing from
    // the middle of a heap is costly); rebuild once they number compact_after_
    // and at least twice the pending requests: O(1) amortised per take.
    void compact_deadlines() {
        if (stale_deadlines_ < compact_after_ || stale_deadlines_ < 2 * live_) return;
        std::erase_if(deadlines_, [&](const deadline_record& r) {
            const slot& s = slots_[r.which.index];
            return !(s.live && s.generation == r.which.generation);
        });
        std::make_heap(deadlines_.begin(), deadlines_.end(), later);
        stale_deadlines_ = 0;
    }

    std::vector<slot> slots_;
    std::vector<std::uint32_t> free_;
    u32_index by_ack_; // expected ack -> slot
    u32_index by_seq_; // seq -> slot, for match::seq_only
    std::vector<std::uint32_t> custom_;
    std::vector<deadline_record> deadlines_;
    std::size_t stale_deadlines_ = 0;
    std::size_t live_ = 0;
    std::uint32_t seq_ = 0;

    std::vector<memory> recent_;
    u32_index recent_index_;     // expected ack -> position in recent_
    u32_index recent_seq_index_; // seq -> position in recent_ (match::seq_only)
    std::size_t recent_next_ = 0;
    std::size_t recent_limit_;
    std::size_t compact_after_;
};

} // namespace detail
} // namespace cnasio
