// Parse cost (issue 6, benchmark 4): a 64 KiB buffer of back-to-back proc event
// messages (76 bytes each, as the kernel sends them, 4-aligned), parsed by the
// raw C walk (parse_cost.cpp) and by cnasio (parse_cost_cnasio.cpp). Each parse
// function returns a checksum of every event's `what` and pid so that both can
// be checked against each other and nothing is optimised away. The functions
// have C linkage so that valgrind's --toggle-collect can name them.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {
std::uint64_t parse_baseline(const unsigned char* buf, std::size_t len);
// Returns UINT64_MAX when cnasio cannot do this yet.
std::uint64_t parse_cnasio(const unsigned char* buf, std::size_t len);
std::uint64_t parse_cnasio_decode(const unsigned char* buf, std::size_t len);
}
