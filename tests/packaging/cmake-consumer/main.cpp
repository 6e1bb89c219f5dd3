// Builds two connector messages into one datagram, walks it back with
// datagram_reader, and starts a thread (Threads::Threads) that runs an
// io_context with a connector socket object (not opened: no kernel needed).
#include <cnasio/cnasio.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <array>
#include <cstdio>
#include <thread>

static_assert(__cplusplus >= 202002L, "cnasio::cnasio must bring C++20");

int main() {
    namespace cn = cnasio::connector;
    std::array<std::byte, 2 * cn::datagram_size(8)> buffer{};
    cnasio::error_code ec;
    std::size_t n = cn::build_datagram(buffer, {.id = {14, 1}, .seq = 1, .ack = 7}, cn::as_payload("ping"), ec);
    if (ec) return 1;
    n += cn::build_datagram(std::span(buffer).subspan(n), {.id = cn::proc_id, .seq = 2, .ack = 9},
                            cn::as_payload(std::uint32_t{1}), ec);
    if (ec) return 1;
    cn::datagram_reader reader(std::span(buffer.data(), n));
    cn::message_view m;
    while (reader.next(m, ec)) {
        if (ec) return 1;
        std::printf("%u:%u seq %u ack %u, %zu bytes\n", m.id().idx, m.id().val, m.seq(), m.ack(), m.payload.size());
    }
    boost::asio::io_context io;
    cn::socket sock(io.get_executor());
    boost::asio::post(io, [] { std::puts("io_context ran on a second thread"); });
    std::thread t([&] { io.run(); });
    t.join();
    return 0;
}
