// cnasio/detail/fanout.hpp - subscriber queues and group fan-out, without any I/O.
//
// Each subscriber owns a bounded ring of messages. A message is copied once
// per subscriber into a slot whose storage is reused, and handed out by swap,
// so a subscriber that recycles its `message` costs no allocation per message
// once the ring has warmed up. A full ring applies the subscriber's policy and
// counts the drop; it never blocks the receive loop or other subscribers.
#pragma once

#include <cnasio/connector/message.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace cnasio {

/// What a full subscription queue does with one more message.
enum class overflow_policy {
    drop_oldest, ///< make room by dropping the oldest queued message (the default)
    drop_newest, ///< keep the queue as it is and drop the new message
};

/// Counters of one subscription.
struct subscription_stats {
    std::uint64_t delivered = 0; ///< messages offered to the subscriber (= received + dropped + still queued)
    std::uint64_t dropped = 0;   ///< messages lost to a full queue (the policy)
    std::uint64_t overruns = 0;  ///< socket overruns (ENOBUFS) signalled to the subscriber
};

namespace detail {

class subscriber_queue {
public:
    subscriber_queue(std::size_t limit, overflow_policy policy) : limit_(limit == 0 ? 1 : limit), policy_(policy) {}

    /// Copies `m` in; returns false if the policy dropped a message.
    bool push(const connector::message_view& m) {
        ++stats_.delivered;
        if (count_ == limit_) {
            ++stats_.dropped;
            if (policy_ == overflow_policy::drop_newest) return false;
            head_ = (head_ + 1) % ring_.size(); // drop the oldest
            --count_;
            ring_[(head_ + count_) % ring_.size()].assign(m);
            ++count_;
            return false;
        }
        if (count_ == ring_.size()) grow();
        ring_[(head_ + count_) % ring_.size()].assign(m);
        ++count_;
        return true;
    }

    /// Moves the oldest message into `out` (its old storage stays for reuse).
    bool pop(connector::message& out) {
        if (count_ == 0) return false;
        std::swap(out, ring_[head_]);
        head_ = (head_ + 1) % ring_.size();
        --count_;
        return true;
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
    const subscription_stats& stats() const noexcept { return stats_; }

private:
    // Grows by doubling up to the limit, keeping the order of what is queued.
    void grow() {
        const std::size_t n = std::min(limit_, ring_.empty() ? std::size_t{16} : ring_.size() * 2);
        std::vector<connector::message> bigger(n);
        for (std::size_t i = 0; i < count_; ++i) std::swap(bigger[i], ring_[(head_ + i) % ring_.size()]);
        ring_.swap(bigger);
        head_ = 0;
    }

    std::vector<connector::message> ring_;
    std::size_t head_ = 0;
    std::size_t count_ = 0;
    std::size_t limit_;
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
