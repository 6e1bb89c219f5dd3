// cnasio side of the request benchmark: one cnasio::client; each request is
// `co_await client.async_request(id, payload, reply, options, use_awaitable)`
// into a reused reply message (the form documented as allocation-free), driven
// by a single-threaded io_context on the calling thread.
#include "request_rtt.hpp"

#include <cnasio/client.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>
#include <string>

namespace bench::request {
namespace {

namespace asio = boost::asio;

constexpr std::uint32_t listen_op = PROC_CN_MCAST_LISTEN;

class cnasio_requester final : public requester {
public:
    explicit cnasio_requester(const target& t) : client_(io_.get_executor(), client_options(t)), target_(t)
    {
        if (t.kind == responder::proc_ack) {
            // The ack is multicast to group 1: the socket must be a member. No
            // subscription: nothing but requests reads this client.
            cnasio::error_code ec;
            client_.socket().join(CN_IDX_PROC, ec);
            if (ec)
                die_msg(("cnasio join group 1: " + ec.message()).c_str());
            options_.match = cnasio::match::ack_only;
            id_ = cnasio::connector::proc_id;
        } else {
            options_.port_id = t.peer_port;
            id_ = {echo_idx, echo_val};
        }
    }

    ~cnasio_requester() override
    {
        if (target_.kind == responder::proc_ack) {
            const std::uint32_t op = PROC_CN_MCAST_IGNORE;
            bool done = false;
            client_.async_send(id_, cnasio::connector::as_payload(op), cnasio::request_options{},
                               [&](cnasio::error_code) { done = true; });
            run_until(done);
        }
    }

    void round_trips(std::size_t n, std::vector<double>& latencies_us, stats& s) override
    {
        spawn([this, n, &latencies_us, &s]() -> asio::awaitable<void> {
            cnasio::connector::message reply;
            unsigned char payload[payload_size] = {};
            for (std::size_t i = 0; i < n; ++i) {
                const std::uint64_t t0 = now_ns();
                co_await client_.async_request(id_, body(payload, static_cast<std::uint32_t>(i)), reply, options_,
                                               asio::use_awaitable);
                latencies_us.push_back(static_cast<double>(now_ns() - t0) / 1e3);
                s.on_complete();
            }
        });
    }

    void pipelined(std::size_t n, std::size_t window, stats& s) override
    {
        std::size_t started = 0;
        for (std::size_t w = 0; w < window; ++w)
            spawn([this, n, &started, &s]() -> asio::awaitable<void> {
                cnasio::connector::message reply;
                unsigned char payload[payload_size] = {};
                while (started < n) {
                    const auto i = static_cast<std::uint32_t>(started++);
                    co_await client_.async_request(id_, body(payload, i), reply, options_, asio::use_awaitable);
                    s.on_complete();
                }
            }, false);
        run_until_idle();
    }

private:
    static cnasio::client_options client_options(const target& t)
    {
        cnasio::client_options o;
        if (t.kind == responder::echo_peer)
            o.admitted_ports = {t.peer_port};
        return o;
    }

    // The request payload: LISTEN for proc, else 64 bytes starting with `i`
    // (the same bytes the baseline sends).
    std::span<const std::byte> body(unsigned char (&payload)[payload_size], std::uint32_t i) const
    {
        if (target_.kind == responder::proc_ack)
            return cnasio::connector::as_payload(listen_op);
        std::memcpy(payload, &i, sizeof i);
        return cnasio::connector::as_payload(payload, sizeof payload);
    }

    // Runs `make()` as a coroutine; with `wait`, runs the io_context until it ended.
    template <class Make>
    void spawn(Make make, bool wait = true)
    {
        ++running_;
        asio::co_spawn(io_, make(), [this](std::exception_ptr e) {
            --running_;
            if (e)
                failure_ = e;
        });
        if (wait)
            run_until_idle();
    }

    // Runs the io_context one handler at a time until the work is done. The
    // client lets it run out of work whenever nothing waits on it, which stops
    // it: restart it then.
    void step()
    {
        if (io_.run_one() == 0)
            io_.restart();
    }

    void run_until_idle()
    {
        while (running_ != 0)
            step();
        if (failure_) {
            try {
                std::rethrow_exception(std::exchange(failure_, nullptr));
            } catch (const std::exception& e) {
                die_msg((std::string("cnasio request failed: ") + e.what()).c_str());
            }
        }
    }

    void run_until(const bool& done)
    {
        while (!done)
            step();
    }

    asio::io_context io_{1};
    cnasio::client client_;
    target target_;
    cnasio::request_options options_{};
    cnasio::connector::id id_{};
    std::size_t running_ = 0;
    std::exception_ptr failure_;
};

} // namespace

std::unique_ptr<requester> make_cnasio_requester(const target& t) { return std::make_unique<cnasio_requester>(t); }

} // namespace bench::request
