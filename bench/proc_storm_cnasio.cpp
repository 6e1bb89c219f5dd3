// cnasio side of the proc storm benchmark: cnasio::proc::listener on a client
// with default options (its auto-sized receive buffer), received the
// documented way: a coroutine co_awaiting listener::async_receive into one
// reused event. Acks are delivered too (deliver_acks) so that the harness sees
// every sequence number the raw listener sees. The coalescing variant sets
// client_options::coalesce_window and nothing else; the batch variant receives
// with listener::async_receive_batch into one reused vector instead.
#include "proc_storm.hpp"

#include <cnasio/client.hpp>
#include <cnasio/proc/listener.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <string>
#include <vector>

namespace bench::storm {
namespace {

namespace asio = boost::asio;
namespace proc = cnasio::proc;

class cnasio_listener final : public listener {
public:
    cnasio_listener(unsigned coalesce_us, std::size_t batch)
        : batch_(batch), client_(io_.get_executor(), client_options(coalesce_us)), listener_(client_, listener_options())
    {
    }

    void run(stats& s) override
    {
        if (batch_ > 0)
            asio::co_spawn(io_, batch_receive_loop(s), asio::detached);
        else
            asio::co_spawn(io_, receive_loop(s), asio::detached);
        io_.run();
        // Before close(): a closed subscription has no counters left.
        const cnasio::subscription_stats sub = listener_.subscription_statistics();
        s.queue_drops = sub.dropped;
        s.library_max_queued = static_cast<double>(sub.max_queued);
        listener_.close(); // IGNORE, on this thread
        const proc::listener_stats ls = listener_.stats();
        s.library_lost = ls.lost ? static_cast<double>(*ls.lost) : std::nan("");
        s.library_reads = static_cast<double>(client_.stats().reads);
        s.library_wakeups = static_cast<double>(client_.stats().wakeups);
    }

    void stop() override { io_.stop(); }

private:
    static cnasio::client_options client_options(unsigned coalesce_us)
    {
        cnasio::client_options o;
        o.coalesce_window = std::chrono::microseconds(coalesce_us);
        return o;
    }

    static proc::listener_options listener_options()
    {
        proc::listener_options o;
        o.deliver_acks = true;
        return o;
    }

    asio::awaitable<void> receive_loop(stats& s)
    {
        auto [start_ec] = co_await listener_.async_start(asio::as_tuple(asio::use_awaitable));
        if (start_ec)
            die_msg(("cnasio proc listener start: " + start_ec.message()).c_str());
        s.ready.store(true);
        proc::event ev;
        for (;;) {
            auto [ec] = co_await listener_.async_receive(ev, asio::as_tuple(asio::use_awaitable));
            if (ec == cnasio::error::overrun) {
                ++s.enobufs;
                continue;
            }
            if (ec)
                co_return;
            on_event(s, ev);
        }
    }

    asio::awaitable<void> batch_receive_loop(stats& s)
    {
        auto [start_ec] = co_await listener_.async_start(asio::as_tuple(asio::use_awaitable));
        if (start_ec)
            die_msg(("cnasio proc listener start: " + start_ec.message()).c_str());
        s.ready.store(true);
        std::vector<proc::event> evs;
        for (;;) {
            auto [ec, n] = co_await listener_.async_receive_batch(evs, batch_, asio::as_tuple(asio::use_awaitable));
            if (ec == cnasio::error::overrun) {
                ++s.enobufs;
                continue;
            }
            if (ec)
                co_return;
            for (const proc::event& ev : evs)
                on_event(s, ev);
        }
    }

    static void on_event(stats& s, const proc::event& ev)
    {
        std::uint32_t parent_tgid = 0;
        std::uint32_t tgid = 0;
        if (const auto* f = ev.get_if<proc::fork_event>()) {
            parent_tgid = static_cast<std::uint32_t>(f->parent_tgid);
            tgid = static_cast<std::uint32_t>(f->child_tgid);
        } else if (const auto* x = ev.get_if<proc::exit_event>()) {
            parent_tgid = static_cast<std::uint32_t>(x->parent_tgid);
            tgid = static_cast<std::uint32_t>(x->process_tgid);
        }
        s.on_event(ev.cpu, ev.seq, ev.what, parent_tgid, tgid, ev.timestamp_ns);
    }

    std::size_t batch_;

    asio::io_context io_{1};
    cnasio::client client_;
    proc::listener listener_;
};

} // namespace

std::unique_ptr<listener> make_cnasio_listener(unsigned coalesce_us, std::size_t batch)
{
    return std::make_unique<cnasio_listener>(coalesce_us, batch);
}

} // namespace bench::storm
