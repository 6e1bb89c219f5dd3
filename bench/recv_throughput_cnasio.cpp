// cnasio side of the receive throughput benchmark: not plugged in yet.
#include "recv_throughput.hpp"

std::unique_ptr<bench::recv::receiver> bench::recv::make_cnasio_receiver(const config&) { return nullptr; }
