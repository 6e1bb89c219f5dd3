// cnasio side of the receive throughput benchmark: one cnasio::client with one
// subscription (group 0 = unicasts that answer no request, or the multicast
// group), received by a coroutine in one of two documented ways: one message
// per co_await subscription::async_receive into one reused message, or
// (config::batch) every queued message per co_await async_receive_batch into
// one reused vector.
#include "recv_throughput.hpp"

#include <cnasio/client.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace bench::recv {
namespace {

namespace asio = boost::asio;

class cnasio_receiver final : public receiver {
public:
    explicit cnasio_receiver(const config& cfg)
        : client_(io_.get_executor(), client_options(cfg)), group_(static_cast<unsigned>(cfg.group)),
          batch_(cfg.batch)
    {
        cnasio::subscription_options so;
        so.only_id = {message_idx, message_val};
        cnasio::error_code ec;
        sub_ = client_.subscribe(group_, so, ec);
        if (ec)
            die_msg(("cnasio subscribe: " + ec.message()).c_str());
    }

    std::uint32_t port_id() const override { return client_.port_id(); }

    void run(stats& s) override
    {
        if (batch_)
            asio::co_spawn(io_, receive_batches(s), asio::detached);
        else
            asio::co_spawn(io_, receive_loop(s), asio::detached);
        s.ready.store(true); // subscribe() joined the group already
        io_.run();
        s.queue_drops = sub_.stats().dropped;
        s.wakeups = client_.stats().wakeups;
        s.reads = client_.stats().reads;
    }

    void stop() override { io_.stop(); }

private:
    static cnasio::client_options client_options(const config& cfg)
    {
        cnasio::client_options o;
        o.admitted_ports = {cfg.sender_port};
        o.subscription_receive_buffer = static_cast<std::size_t>(cfg.rcvbuf_force);
        o.coalesce_window = std::chrono::microseconds(cfg.coalesce_us);
        return o;
    }

    asio::awaitable<void> receive_loop(stats& s)
    {
        cnasio::connector::message m;
        for (;;) {
            auto [ec] = co_await sub_.async_receive(m, asio::as_tuple(asio::use_awaitable));
            if (ec == cnasio::error::overrun) {
                ++s.enobufs;
                continue;
            }
            if (ec)
                co_return;
            std::uint64_t counter;
            if (m.payload.size() < sizeof counter) {
                ++s.rejected;
                continue;
            }
            std::memcpy(&counter, m.payload.data(), sizeof counter);
            s.on_message(counter);
        }
    }

    asio::awaitable<void> receive_batches(stats& s)
    {
        std::vector<cnasio::connector::message> batch;
        for (;;) {
            auto [ec, n] = co_await sub_.async_receive_batch(batch, max_batch, asio::as_tuple(asio::use_awaitable));
            if (ec == cnasio::error::overrun) {
                ++s.enobufs;
                continue;
            }
            if (ec)
                co_return;
            for (std::size_t i = 0; i < n; ++i) {
                std::uint64_t counter;
                if (batch[i].payload.size() < sizeof counter) {
                    ++s.rejected;
                    continue;
                }
                std::memcpy(&counter, batch[i].payload.data(), sizeof counter);
                s.on_message(counter);
            }
        }
    }

    static constexpr std::size_t max_batch = 256;

    asio::io_context io_{1};
    cnasio::client client_;
    unsigned group_;
    bool batch_;
    cnasio::subscription sub_;
};

} // namespace

std::unique_ptr<receiver> make_cnasio_receiver(const config& cfg) { return std::make_unique<cnasio_receiver>(cfg); }

} // namespace bench::recv
