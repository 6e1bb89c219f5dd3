// cnasio/detail/fanout.hpp - subscriber queues and group fan-out, without any I/O.
//
// Each subscriber owns a bounded ring of messages. A message is copied once
// per subscriber into a slot whose storage is reused, and handed out by swap,
// so a subscriber that recycles its `message` costs no allocation per message
// once the ring has warmed up. A full ring applies the subscriber's policy and
// counts the drop; it never blocks the receive loop or other subscribers.
#pragma once

#include <cnasio/connector/message.hpp>
#include <cnasio/options.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace cnasio {
namespace detail {

/// A subscriber's bounded ring of messages. Full means `limit` messages, or
/// `byte_limit` bytes held, or no room left in the byte budget the caller
/// shares among queues; the policy then drops the newest or the oldest
/// messages, and every drop is counted. Bytes held (held_bytes()) are the
/// queued messages (cost()) plus the storage free slots keep for reuse, so a
/// budget bounds all the memory a queue's messages take: under pressure the
/// spare storage is given back first, and a dropped message's storage with it.
/// Free slots keep at most spare_limit bytes, so a queue holds at most that
/// much when idle. An emptied queue gives back the storage of every slot
/// larger than idle_slot_limit: what a burst of large messages grew shrinks
/// back once it is consumed, while the small slots a burst of small messages
/// used stay, so the same burst next time allocates nothing. An emptied queue
/// starts again at slot 0, so a backlog reuses the slots the last one used.
///
/// `keep` is for a subscriber whose backlogs run deeper than spare_limit's
/// worth of messages now and then (a listener preempted during a storm): a
/// ring that holds `keep` messages is not given back, and all its slots keep
/// the storage of small messages (up to idle_slot_limit each), so a backlog up
/// to `keep` messages deep, once seen, comes again without allocating.
class subscriber_queue {
public:
    static constexpr std::size_t max_bytes = static_cast<std::size_t>(-1);
    /// Storage kept for reuse in free slots, in bytes: one message of the
    /// largest payload, so that a consumer of such messages does not allocate.
    static constexpr std::size_t spare_limit = 16u << 10;
    /// An emptied queue keeps a free slot's storage only up to this size: a
    /// large message's storage goes back once consumed.
    static constexpr std::size_t idle_slot_limit = 4u << 10;

    subscriber_queue(std::size_t limit, std::size_t byte_limit, overflow_policy policy, std::size_t keep = 0)
        : limit_(limit == 0 ? 1 : limit), byte_limit_(byte_limit), keep_(std::min(keep, limit_)),
          keep_slots_(ring_size_for(keep_)), policy_(policy) {}
    /// Bounded in messages only.
    subscriber_queue(std::size_t limit, overflow_policy policy)
        : subscriber_queue(limit, max_bytes, policy) {}

    /// Bytes a queued message with `payload_capacity` bytes of storage holds.
    static constexpr std::size_t cost(std::size_t payload_capacity) noexcept {
        return sizeof(connector::message) + payload_capacity;
    }

    /// Copies `m` in; `shared_room` is what the caller's shared budget still
    /// allows. Returns false if the policy dropped a message. A message always
    /// fits an empty queue, whatever its size.
    bool push(const connector::message_view& m, std::size_t shared_room = max_bytes) {
        ++stats_.delivered;
        const std::size_t need = cost(m.payload.size());
        bool dropped = false;
        while (full(need, shared_room)) {
            std::size_t freed = 0;
            if (count_ < limit_ && spare_bytes_ > 0) {
                freed = release_spare();
            } else if (count_ == 0) {
                break;
            } else {
                ++stats_.dropped;
                dropped = true;
                if (policy_ == overflow_policy::drop_newest) return false;
                // Full by count alone: the dropped message's storage stays for reuse.
                freed = drop_oldest(bytes_full(need, shared_room));
            }
            shared_room = shared_room > max_bytes - freed ? max_bytes : shared_room + freed;
        }
        if (count_ == ring_.size()) grow();
        connector::message& slot = ring_[(head_ + count_) % ring_.size()];
        take_spare(slot);
        slot.assign(m);
        stats_.queued_bytes += cost(slot.payload.capacity());
        ++count_;
        if (count_ > stats_.max_queued) stats_.max_queued = count_;
        return !dropped;
    }

    /// Moves the oldest message into `out`; `out`'s old storage stays for
    /// reuse, within spare_limit.
    bool pop(connector::message& out) {
        if (count_ == 0) return false;
        connector::message& slot = ring_[head_];
        stats_.queued_bytes -= cost(slot.payload.capacity());
        std::swap(out, slot);
        keep_spare(slot);
        head_ = (head_ + 1) % ring_.size();
        --count_;
        if (count_ == 0) {
            head_ = 0;
            trim();
        }
        return true;
    }

    /// Allocates now the ring that holds keep() messages and `payload_bytes`
    /// of storage (at most idle_slot_limit) in each of its slots, so that
    /// not even the first backlog up to keep() small messages allocates.
    /// Only for an empty queue that never held a message; else it does nothing.
    void reserve(std::size_t payload_bytes) {
        if (keep_ == 0 || payload_bytes == 0 || !ring_.empty()) return;
        payload_bytes = std::min(payload_bytes, idle_slot_limit);
        ring_.resize(keep_slots_);
        for (auto& slot : ring_) {
            slot.payload.reserve(payload_bytes);
            spare_bytes_ += slot.payload.capacity();
        }
    }

    /// Marks an overrun to report before the next message.
    void mark_overrun() {
        overrun_pending_ = true;
        ++stats_.overruns;
    }
    /// Takes the pending overrun mark, if any.
    bool take_overrun() { return std::exchange(overrun_pending_, false); }
    bool overrun_pending() const noexcept { return overrun_pending_; }

    bool empty() const noexcept { return count_ == 0; }
    std::size_t size() const noexcept { return count_; }
    std::size_t limit() const noexcept { return limit_; }
    std::size_t keep() const noexcept { return keep_; }
    /// Payload storage kept in free slots for reuse.
    std::size_t spare_bytes() const noexcept { return spare_bytes_; }
    /// Ring slots, free or not.
    std::size_t slots() const noexcept { return ring_.size(); }
    /// What the budgets count: queued messages plus spare storage.
    std::size_t held_bytes() const noexcept { return stats_.queued_bytes + spare_bytes_; }
    const subscription_stats& stats() const noexcept { return stats_; }

private:
    // Above this many slots, an emptied ring is given back.
    static constexpr std::size_t shrink_slots = 256;

    bool bytes_full(std::size_t need, std::size_t shared_room) const noexcept {
        return held_bytes() + need > byte_limit_ || need > shared_room;
    }
    bool full(std::size_t need, std::size_t shared_room) const noexcept {
        return count_ == limit_ || bytes_full(need, shared_room);
    }

    // Drops the oldest message, and its storage if `release` (else the storage
    // stays for reuse, within spare_limit); returns the bytes given back.
    std::size_t drop_oldest(bool release) {
        connector::message& slot = ring_[head_];
        const std::size_t before = held_bytes();
        stats_.queued_bytes -= cost(slot.payload.capacity());
        if (release)
            std::vector<std::byte>().swap(slot.payload);
        else
            keep_spare(slot);
        head_ = (head_ + 1) % ring_.size();
        --count_;
        return before - held_bytes();
    }

    // Gives back the storage of every free slot; returns the bytes.
    std::size_t release_spare() {
        const std::size_t freed = spare_bytes_;
        for (std::size_t i = count_; i < ring_.size(); ++i)
            std::vector<std::byte>().swap(ring_[(head_ + i) % ring_.size()].payload);
        spare_bytes_ = 0;
        large_spare_ = 0;
        return freed;
    }

    // The ring size grow() reaches to hold `n` messages (0 for none).
    std::size_t ring_size_for(std::size_t n) const noexcept {
        if (n == 0) return 0;
        std::size_t size = 16;
        while (size < n && size < limit_) size *= 2;
        return std::min(size, limit_);
    }

    // `slot` just left the queue: keep its storage for reuse within
    // spare_limit, or if it is small and the ring is one keep_ asks for.
    void keep_spare(connector::message& slot) {
        const std::size_t cap = slot.payload.capacity();
        if (spare_bytes_ + cap <= spare_limit || (cap <= idle_slot_limit && ring_.size() <= keep_slots_)) {
            spare_bytes_ += cap;
            if (cap > idle_slot_limit) ++large_spare_;
        } else {
            std::vector<std::byte>().swap(slot.payload);
        }
    }

    // A free slot is about to be filled: its storage is no longer spare.
    void take_spare(const connector::message& slot) noexcept {
        const std::size_t cap = slot.payload.capacity();
        spare_bytes_ -= cap;
        if (cap > idle_slot_limit) --large_spare_;
    }

    // Grows by doubling up to the limit, keeping the order of what is queued.
    void grow() {
        const std::size_t n = std::min(limit_, ring_.empty() ? std::size_t{16} : ring_.size() * 2);
        std::vector<connector::message> bigger(n);
        for (std::size_t i = 0; i < count_; ++i) std::swap(bigger[i], ring_[(head_ + i) % ring_.size()]);
        ring_.swap(bigger);
        head_ = 0;
    }

    // The queue is empty: give back what a burst of large messages grew (and
    // the ring if it grew past shrink_slots and keep). Small slots keep their
    // storage (keep_spare bounds it): a receive loop fed in bursts of
    // up to drain_batch small messages would otherwise free and regrow that
    // storage with every burst.
    void trim() {
        if (ring_.size() > std::max(shrink_slots, keep_slots_)) {
            std::vector<connector::message>().swap(ring_);
            spare_bytes_ = 0;
            large_spare_ = 0;
            return;
        }
        if (large_spare_ == 0) return; // the common case: nothing to look for
        for (auto& slot : ring_) {
            if (slot.payload.capacity() <= idle_slot_limit) continue;
            take_spare(slot);
            std::vector<std::byte>().swap(slot.payload);
        }
    }

    std::vector<connector::message> ring_;
    std::size_t head_ = 0;
    std::size_t count_ = 0;
    std::size_t limit_;
    std::size_t byte_limit_;
    std::size_t keep_;
    std::size_t keep_slots_; // the ring that holds keep_ messages
    std::size_t spare_bytes_ = 0;
    std::size_t large_spare_ = 0; // free slots whose storage exceeds idle_slot_limit
    overflow_policy policy_;
    bool overrun_pending_ = false;
    subscription_stats stats_;
};

/// Subscribers by group. Group 0 stands for unicasts that answer no request.
/// `S` is the subscriber type; it must have a `bool accepts(const message_view&)`.
template <class S>
class fanout {
public:
    static constexpr unsigned max_group = 32;

    /// Adds a subscriber; true if it is the first of its group (join it now).
    bool add(unsigned group, S* s) {
        auto& list = groups_.at(group);
        list.push_back(s);
        ++count_;
        return list.size() == 1;
    }

    /// Removes a subscriber; true if it was the last of its group (leave it now).
    bool remove(unsigned group, S* s) {
        auto& list = groups_.at(group);
        const auto it = std::find(list.begin(), list.end(), s);
        if (it == list.end()) return false;
        list.erase(it);
        --count_;
        return list.empty();
    }

    /// Calls `f(S&)` for each subscriber of `group` that accepts `m`;
    /// returns how many did.
    template <class F>
    std::size_t deliver(unsigned group, const connector::message_view& m, F&& f) {
        if (group > max_group) return 0;
        std::size_t n = 0;
        for (S* s : groups_[group])
            if (s->accepts(m)) {
                f(*s);
                ++n;
            }
        return n;
    }

    /// Calls `f(S&)` for every subscriber of every group.
    template <class F>
    void for_each(F&& f) {
        for (auto& list : groups_)
            for (S* s : list) f(*s);
    }

    std::size_t subscribers(unsigned group) const { return group <= max_group ? groups_[group].size() : 0; }
    bool empty() const noexcept { return count_ == 0; } // asked on every read: no scan of the groups

private:
    std::array<std::vector<S*>, max_group + 1> groups_;
    std::size_t count_ = 0;
};

} // namespace detail
} // namespace cnasio
