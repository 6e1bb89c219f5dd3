// cnasio/w1/client.hpp - 1-Wire operations on a cnasio::client.
//
//     cnasio::client c(io.get_executor());
//     auto masters = co_await cnasio::w1::async_list_masters(c, asio::use_awaitable);
//     auto slaves = co_await cnasio::w1::async_search(c, masters.at(0), cnasio::w1::search_kind::search,
//                                                     asio::use_awaitable);
//     auto t = co_await cnasio::w1::async_read_temperature(c, slaves.at(0), asio::use_awaitable);
//
// Each operation sends one request (the temperature read three) to the w1
// core, {3,1}, and gathers its answer with client::async_request_parts and
// w1::reply_rule (protocol.hpp says how the kernel answers). They take any
// completion token. The w1 core answers from the bus master's kernel thread,
// after the bus work: a slow bus makes a slow reply; the timeout (the client's
// default_timeout unless w1::options says otherwise) covers the whole answer
// of each request. A status reply's errno is the operation's error_code (a
// generic_category code: ENODEV is std::errc::no_such_device, for a master or
// slave the kernel does not know, or a slave that did not answer its selection).
//
// Cancellation: every operation honours terminal, partial and total
// cancellation; the request in flight is cancelled (its answer, when it comes,
// counts as late) and the operation completes with operation_aborted.
//
// Root (CAP_NET_ADMIN) is not needed to talk to the w1 core, but the kernel
// must have CONFIG_W1_CON and the `wire` module loaded: otherwise nobody
// answers and the operations end with error::timeout (request with
// w1::options::check_registered to get error::not_registered at once).
#pragma once

#include <cnasio/client.hpp>
#include <cnasio/connector/message.hpp>
#include <cnasio/error.hpp>
#include <cnasio/w1/ds18b20.hpp>
#include <cnasio/w1/protocol.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace cnasio::w1 {

/// Settings of one operation.
struct options {
    /// Per request; 0: the client's default_timeout.
    std::chrono::milliseconds timeout{0};
    /// Fail with error::not_registered at once when the w1 core is not
    /// registered (see request_options::check_registered).
    bool check_registered = false;
    /// Where requests go: 0, the kernel; a user-space port id stands in for
    /// the w1 core in tests (admit it on the client: client_options::admitted_ports).
    std::uint32_t port_id = 0;
    /// cn_msg.flags of the requests: w1::cn_bundle asks the kernel to pack
    /// an answer's replies into fewer datagrams (the framing layer reads every
    /// cn_msg of a bundle, so the result is the same).
    std::uint16_t flags = 0;
};

/// What a search asks for.
enum class search_kind {
    search,       ///< search the bus (W1_CMD_SEARCH): every slave present now
    alarm_search, ///< only the slaves in an alarm condition (W1_CMD_ALARM_SEARCH)
    list,         ///< the slaves the kernel knows, without touching the bus (W1_CMD_LIST_SLAVES)
};

/// Where a block operation goes: a bus master (by id) or one slave (the kernel
/// resets the bus and selects it first).
using target = std::variant<std::uint32_t, rom_id>;

namespace detail {

// One request and its gathered answer, on the heap: the client keeps pointers
// to `parts` and `sent` while the request is pending, and the operation moves.
struct exchange {
    std::vector<std::byte> payload;
    std::vector<connector::message> parts;
    connector::header sent{};
    std::size_t commands = 0;

    void set(std::vector<std::byte> p, std::size_t n) {
        payload = std::move(p);
        commands = n;
        parts.clear();
    }

    template <class Self>
    void start(client& c, const options& o, Self&& self) {
        request_options ro;
        ro.match = match::seq_only;
        ro.parts = reply_rule(commands);
        ro.timeout = o.timeout;
        ro.sent = &sent;
        ro.check_registered = o.check_registered;
        ro.port_id = o.port_id;
        ro.flags = o.flags;
        c.async_request_parts(connector_id, payload, parts, std::move(ro), std::forward<Self>(self));
    }

    error_code read(answer& a) const { return read_answer(sent, parts, commands, a); }
};

inline std::vector<std::byte> target_request(const target& t, std::span<const command_spec> commands) {
    if (const auto* m = std::get_if<std::uint32_t>(&t)) return master_request(*m, commands);
    return slave_request(std::get<rom_id>(t), commands);
}

// An operation of one request: `Decode` turns the answer into the result
// (error_code(answer&, Result&), or error_code(answer&) for a void result).
template <class Result, class Decode>
struct one_request_op {
    client* c;
    std::unique_ptr<exchange> x;
    options o;
    Decode decode;

    template <class Self>
    void operator()(Self& self) {
        self.reset_cancellation_state(boost::asio::enable_total_cancellation());
        client& cl = *c;
        exchange& ex = *x;
        ex.start(cl, o, std::move(self));
    }

    template <class Self>
    void operator()(Self& self, error_code ec) {
        answer a;
        if (!ec) ec = x->read(a);
        if constexpr (std::is_void_v<Result>) {
            if (!ec) ec = decode(a);
            self.complete(ec);
        } else {
            Result r{};
            if (!ec) ec = decode(a, r);
            self.complete(ec, std::move(r));
        }
    }
};

template <class Result, class Signature, class Decode, class CompletionToken>
auto one_request(client& c, std::vector<std::byte> payload, std::size_t commands, const options& o, Decode decode,
                 CompletionToken&& token) {
    auto x = std::make_unique<exchange>();
    x->set(std::move(payload), commands);
    return boost::asio::async_compose<CompletionToken, Signature>(
        one_request_op<Result, Decode>{&c, std::move(x), o, std::move(decode)}, token, c.get_executor());
}

// The temperature read: scratchpad (for the resolution), convert, wait, scratchpad.
struct temperature_op {
    client* c;
    rom_id rom;
    options o;
    struct state {
        explicit state(const client::executor_type& ex) : timer(ex) {}
        exchange x;
        boost::asio::steady_timer timer;
        int step = 0;             // 1: first scratchpad, 2: convert, 3: waiting, 4: converted scratchpad
        unsigned resolution = 12; // from the first scratchpad
    };
    std::unique_ptr<state> s;

    static std::vector<std::byte> read_scratchpad_request(const rom_id& rom) {
        static constexpr std::byte cmd[1] = {std::byte{ds18b20::read_scratchpad}};
        static constexpr std::byte nine[ds18b20::scratchpad_size] = {};
        const command_spec commands[] = {{command::write, cmd}, {command::read, nine}};
        return slave_request(rom, commands);
    }

    template <class Self>
    void operator()(Self& self) {
        self.reset_cancellation_state(boost::asio::enable_total_cancellation());
        if (rom.family() != ds18b20::family) { // never complete inside the initiating function
            auto ex = s->timer.get_executor();
            return boost::asio::post(ex, boost::asio::append(std::move(self), error_code(error::w1_wrong_family)));
        }
        s->x.set(read_scratchpad_request(rom), 2);
        send(self, 1);
    }

    template <class Self>
    void operator()(Self& self, error_code ec) {
        if (!ec && self.cancelled() != boost::asio::cancellation_type::none) ec = aborted();
        if (ec) return self.complete(ec, ds18b20::reading{});
        answer a;
        ds18b20::reading r;
        switch (s->step) {
        case 1: // the first scratchpad: its resolution says how long to wait
            if (!(ec = s->x.read(a))) ec = ds18b20::decode(a.data, false, r);
            if (ec) return self.complete(ec, r);
            s->resolution = r.resolution;
            {
                static constexpr std::byte cmd[1] = {std::byte{ds18b20::convert_t}};
                const command_spec convert[] = {{command::write, cmd}};
                s->x.set(slave_request(rom, convert), 1);
            }
            return send(self, 2);
        case 2: // conversion started
            if ((ec = s->x.read(a))) return self.complete(ec, r);
            s->step = 3;
            s->timer.expires_after(ds18b20::conversion_time(s->resolution));
            return s->timer.async_wait(std::move(self));
        case 3: // waited: read the result
            s->x.set(read_scratchpad_request(rom), 2);
            return send(self, 4);
        default: // step 4: the converted scratchpad
            if (!(ec = s->x.read(a))) ec = ds18b20::decode(a.data, true, r);
            return self.complete(ec, r);
        }
    }

private:
    template <class Self>
    void send(Self& self, int step) {
        s->step = step;
        client& cl = *c;
        exchange& ex = s->x;
        ex.start(cl, o, std::move(self));
    }
    static error_code aborted() noexcept { return error_code(ECANCELED, boost::system::system_category()); }
};

} // namespace detail

/// The ids of the bus masters the w1 core has.
/// Completion: void(error_code, std::vector<std::uint32_t>).
template <class CompletionToken>
auto async_list_masters(client& c, const options& o, CompletionToken&& token) {
    return detail::one_request<std::vector<std::uint32_t>, void(error_code, std::vector<std::uint32_t>)>(
        c, list_masters_request(), 0, o,
        [](answer& a, std::vector<std::uint32_t>& out) {
            out = std::move(a.masters);
            return error_code{};
        },
        std::forward<CompletionToken>(token));
}
template <class CompletionToken>
auto async_list_masters(client& c, CompletionToken&& token) {
    return async_list_masters(c, options{}, std::forward<CompletionToken>(token));
}

/// The slaves on bus master `master` (a search also updates the kernel's own
/// list, as its periodic search does). Ids are as the kernel sent them; check
/// rom_id::crc_ok() if that matters to you (the kernel's search checks it).
/// Completion: void(error_code, std::vector<rom_id>).
template <class CompletionToken>
auto async_search(client& c, std::uint32_t master, search_kind kind, const options& o, CompletionToken&& token) {
    const command cmd = kind == search_kind::search         ? command::search
                        : kind == search_kind::alarm_search ? command::alarm_search
                                                            : command::list_slaves;
    const command_spec spec[] = {{cmd, {}}};
    return detail::one_request<std::vector<rom_id>, void(error_code, std::vector<rom_id>)>(
        c, master_request(master, spec), 1, o,
        [](answer& a, std::vector<rom_id>& out) {
            out = std::move(a.slaves);
            return error_code{};
        },
        std::forward<CompletionToken>(token));
}
template <class CompletionToken>
auto async_search(client& c, std::uint32_t master, search_kind kind, CompletionToken&& token) {
    return async_search(c, master, kind, options{}, std::forward<CompletionToken>(token));
}

/// Resets bus master `master`'s bus: error::w1_no_presence when no device
/// answered with a presence pulse. Completion: void(error_code).
template <class CompletionToken>
auto async_reset(client& c, std::uint32_t master, const options& o, CompletionToken&& token) {
    const command_spec spec[] = {{command::reset, {}}};
    return detail::one_request<void, void(error_code)>(
        c, master_request(master, spec), 1, o, [](answer&) { return error_code{}; },
        std::forward<CompletionToken>(token));
}

/// Reads `count` bytes from the bus (a slave: after selecting it).
/// Completion: void(error_code, std::vector<std::byte>).
template <class CompletionToken>
auto async_read(client& c, const target& t, std::size_t count, const options& o, CompletionToken&& token) {
    const std::vector<std::byte> room(count);
    const command_spec spec[] = {{command::read, room}};
    return detail::one_request<std::vector<std::byte>, void(error_code, std::vector<std::byte>)>(
        c, detail::target_request(t, spec), 1, o,
        [count](answer& a, std::vector<std::byte>& out) {
            out = std::move(a.data);
            return out.size() == count ? error_code{} : error_code(error::w1_reply_malformed);
        },
        std::forward<CompletionToken>(token));
}

/// Writes `data` to the bus (a slave: after selecting it); copied at once.
/// Completion: void(error_code).
template <class CompletionToken>
auto async_write(client& c, const target& t, std::span<const std::byte> data, const options& o,
                 CompletionToken&& token) {
    const command_spec spec[] = {{command::write, data}};
    return detail::one_request<void, void(error_code)>(
        c, detail::target_request(t, spec), 1, o, [](answer&) { return error_code{}; },
        std::forward<CompletionToken>(token));
}

/// Writes `data` bit by bit and returns the bits read back at the same time
/// (W1_CMD_TOUCH: a 0xff byte reads what the device drives).
/// Completion: void(error_code, std::vector<std::byte>).
template <class CompletionToken>
auto async_touch(client& c, const target& t, std::span<const std::byte> data, const options& o,
                 CompletionToken&& token) {
    const command_spec spec[] = {{command::touch, data}};
    return detail::one_request<std::vector<std::byte>, void(error_code, std::vector<std::byte>)>(
        c, detail::target_request(t, spec), 1, o,
        [n = data.size()](answer& a, std::vector<std::byte>& out) {
            out = std::move(a.data);
            return out.size() == n ? error_code{} : error_code(error::w1_reply_malformed);
        },
        std::forward<CompletionToken>(token));
}

/// Reads a DS18B20 (family 0x28): reads its scratchpad for the resolution,
/// starts a conversion, waits the conversion time for that resolution (750 ms
/// at 12 bits), reads the scratchpad again, checks its CRC8 and decodes it.
/// Errors: error::w1_wrong_family (before anything is sent), ENODEV (no such
/// slave, or it did not answer), error::w1_crc_mismatch,
/// error::w1_power_on_reset (85 °C after a conversion: it did not run),
/// error::timeout, the status errors of the kernel.
/// Completion: void(error_code, ds18b20::reading).
template <class CompletionToken>
auto async_read_temperature(client& c, const rom_id& rom, const options& o, CompletionToken&& token) {
    return boost::asio::async_compose<CompletionToken, void(error_code, ds18b20::reading)>(
        detail::temperature_op{&c, rom, o, std::make_unique<detail::temperature_op::state>(c.get_executor())},
        token, c.get_executor());
}
template <class CompletionToken>
auto async_read_temperature(client& c, const rom_id& rom, CompletionToken&& token) {
    return async_read_temperature(c, rom, options{}, std::forward<CompletionToken>(token));
}

} // namespace cnasio::w1
