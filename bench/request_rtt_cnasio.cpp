// cnasio side of the request benchmark: not plugged in yet.
#include "request_rtt.hpp"

std::unique_ptr<bench::request::requester> bench::request::make_cnasio_requester(const target&) { return nullptr; }
