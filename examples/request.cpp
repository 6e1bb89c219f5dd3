// One request to the kernel, one co_await: ask the process-events connector
// to start listening and print its acknowledgement.
//
//   sudo ./request
//
// The proc connector answers with a PROC_EVENT_NONE message whose ack is ours
// + 1 and whose err is an errno. It multicasts that answer to group 1, so the
// client joins the group first, and it overwrites seq, so the reply is matched
// on ack alone (match::ack_only). A driver that follows connector.rst needs
// neither: the default request_options match seq and ack + 1 on a unicast.
#include <cnasio/client.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdio>
#include <cstring>

#include <linux/cn_proc.h>

namespace asio = boost::asio;

asio::awaitable<int> listen_once(cnasio::client& client) {
    cnasio::error_code ec;
    auto group = client.subscribe(CN_IDX_PROC, {}, ec);
    if (ec) throw boost::system::system_error(ec, "joining the proc group");

    cnasio::request_options options;
    options.match = cnasio::match::ack_only;
    const std::uint32_t op = PROC_CN_MCAST_LISTEN;
    cnasio::connector::message reply =
        co_await client.async_request(cnasio::connector::proc_id, cnasio::connector::as_payload(op), options,
                                      asio::use_awaitable);

    proc_event ack{};
    std::memcpy(&ack, reply.payload.data(), std::min(reply.payload.size(), sizeof ack));
    std::printf("proc connector acknowledged: seq=%u ack=%u err=%u (%s)\n", reply.seq(), reply.ack(),
                ack.event_data.ack.err, cnasio::errno_code(static_cast<int>(ack.event_data.ack.err)).message().c_str());

    // Tell the kernel we stopped listening: it counts listeners, not sockets.
    const std::uint32_t ignore = PROC_CN_MCAST_IGNORE;
    co_await client.async_send(cnasio::connector::proc_id, cnasio::connector::as_payload(ignore), {},
                               asio::use_awaitable);
    co_return ack.event_data.ack.err == 0 ? 0 : 1;
}

int main() {
    asio::io_context io;
    int status = 1;
    try {
        cnasio::client client(io.get_executor());
        asio::co_spawn(io, listen_once(client), [&](std::exception_ptr e, int rc) {
            if (e) {
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& x) {
                    std::fprintf(stderr, "request failed: %s\n", x.what());
                }
                return;
            }
            status = rc;
        });
        io.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cannot open the connector: %s\n", e.what());
    }
    return status;
}
