// cnasio/detail/send_queue.hpp - datagrams waiting for room at their destination.
//
// Sans-IO: no socket, no clock. A netlink peer whose receive queue is full
// makes sendto() fail with EAGAIN for that peer only, so waiting messages are
// kept per destination port: a peer that stops reading holds back what goes
// to it, in order, and nothing else. Each entry may belong to a request (a
// `Ticket`); the owner removes the entry when that request ends, so a request
// that timed out or was cancelled is never sent. What the queues hold
// together is bounded in bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <algorithm>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace cnasio::detail {

template <class Ticket>
class send_queue {
public:
    /// What flush() does with one front entry, as its send function says.
    enum class attempt {
        sent,     ///< gone to the peer
        full,     ///< the peer has no room yet: keep it and what follows for this peer
        failed,   ///< the send failed for good: drop it (its owner learns why)
    };

    struct entry {
        std::vector<std::byte> datagram;
        std::optional<Ticket> ticket; ///< the request it carries; none for a one-way message
    };

    explicit send_queue(std::size_t byte_limit) noexcept : limit_(byte_limit) {}

    /// True when messages to `port` wait: a new one must queue behind them to keep the order.
    bool waits(std::uint32_t port) const noexcept { return count_ != 0 && find(port) != nullptr; }
    bool empty() const noexcept { return count_ == 0; }
    std::size_t size() const noexcept { return count_; }
    std::size_t bytes() const noexcept { return bytes_; }
    std::size_t byte_limit() const noexcept { return limit_; }

    /// Queues a datagram for `port`; false (nothing queued) when it would take
    /// the queues past their byte limit. An empty queue takes one message of
    /// any size, so that a limit below one datagram still lets messages through.
    bool push(std::uint32_t port, std::vector<std::byte> datagram, std::optional<Ticket> t) {
        if (count_ != 0 && bytes_ + datagram.size() > limit_) return false;
        port_queue* q = find(port);
        if (!q) q = &ports_.emplace_back(port_queue{port, {}});
        bytes_ += datagram.size();
        ++count_;
        q->entries.push_back(entry{std::move(datagram), t});
        return true;
    }

    /// Removes the entry of request `t` queued for `port`; false when there is none.
    bool remove(std::uint32_t port, const Ticket& t) {
        port_queue* q = find(port);
        if (!q) return false;
        for (auto it = q->entries.begin(); it != q->entries.end(); ++it) {
            if (it->ticket && *it->ticket == t) {
                forget(*it);
                q->entries.erase(it);
                if (q->entries.empty()) std::erase_if(ports_, [](const port_queue& e) { return e.entries.empty(); });
                return true;
            }
        }
        return false;
    }

    /// Sends what can go: for each destination, in order, while `try_send(port,
    /// entry)` (attempt(uint32_t, const entry&)) says sent or failed. A
    /// destination that is full keeps its entries; the others go on.
    /// `failed(entry)` is called for each entry whose send failed.
    template <class TrySend, class Failed>
    std::size_t flush(TrySend&& try_send, Failed&& failed) {
        std::size_t sent = 0;
        for (auto& q : ports_) {
            while (!q.entries.empty()) {
                entry& e = q.entries.front();
                const attempt a = try_send(q.port, e);
                if (a == attempt::full) break;
                entry gone = std::move(e);
                forget(gone);
                q.entries.pop_front();
                if (a == attempt::sent)
                    ++sent;
                else
                    failed(gone);
            }
        }
        std::erase_if(ports_, [](const port_queue& q) { return q.entries.empty(); });
        return sent;
    }

    /// Drops everything; calls `dropped(entry)` for each entry.
    template <class Dropped>
    void clear(Dropped&& dropped) {
        for (auto& q : ports_)
            for (auto& e : q.entries) dropped(e);
        ports_.clear();
        bytes_ = 0;
        count_ = 0;
    }

private:
    struct port_queue {
        std::uint32_t port;
        std::deque<entry> entries;
    };

    // Few destinations are ever blocked at once: a linear search beats a map.
    port_queue* find(std::uint32_t port) noexcept {
        for (auto& q : ports_)
            if (q.port == port) return &q;
        return nullptr;
    }
    const port_queue* find(std::uint32_t port) const noexcept {
        for (auto& q : ports_)
            if (q.port == port) return &q;
        return nullptr;
    }
    void forget(const entry& e) noexcept {
        bytes_ -= e.datagram.size();
        --count_;
    }

    std::vector<port_queue> ports_;
    std::size_t bytes_ = 0;
    std::size_t count_ = 0;
    std::size_t limit_;
};

} // namespace cnasio::detail
