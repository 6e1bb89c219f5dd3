// The consumer project's program: frames a connector message, parses it back,
// and opens a connector socket - enough to prove that headers, Boost.Asio and
// the build flags reached this project through the wrap.
#include <cnasio/cnasio.hpp>

#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <string_view>

int main() {
    namespace cn = cnasio::connector;
    std::array<std::byte, cn::datagram_size(5)> buffer{};
    cnasio::error_code ec;
    const cn::header h{.id = {cn::first_user_idx + 3, 1}, .seq = 7, .ack = 41};
    const std::size_t n = cn::build_datagram(buffer, h, cn::as_payload(std::string_view("hello")), ec);
    if (ec) {
        std::printf("build failed: %s\n", ec.message().c_str());
        return 1;
    }
    cn::message_view m;
    ec = cn::parse_message({buffer.data(), n}, m);
    const std::string_view text(reinterpret_cast<const char*>(m.payload.data()), m.payload.size());
    if (ec || m.seq() != 7 || m.ack() != 41 || text != "hello") {
        std::printf("round trip failed: %s\n", ec.message().c_str());
        return 1;
    }
    std::printf("consumer: round trip ok (%zu bytes, payload \"%.*s\")\n", n, int(text.size()), text.data());

    // A socket needs the kernel's connector: report what happened either way.
    boost::asio::io_context io;
    cn::socket sock(io.get_executor());
    sock.open(ec);
    if (ec)
        std::printf("consumer: no connector socket: %s\n", ec.message().c_str());
    else
        std::printf("consumer: connector socket open\n");
    return 0;
}
