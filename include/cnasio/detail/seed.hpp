// cnasio/detail/seed.hpp - a seed for the client's ack generator that never blocks.
//
// std::random_device is a blocking getrandom() on glibc: early in boot, before
// the kernel's generator is ready, a client would wait for it (seconds on a
// board without a hardware random source). The seed only has to make our acks
// unlikely to collide with another process's (see client_core.hpp,
// ack_generator), so it is taken without waiting: getrandom(GRND_NONBLOCK),
// else a mix of the time, the process and thread ids and an address.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>

#include <sys/random.h>
#include <unistd.h>

namespace cnasio::detail {

inline std::uint64_t nonblocking_seed() noexcept {
    std::uint64_t seed = 0;
    if (::getrandom(&seed, sizeof seed, GRND_NONBLOCK) == static_cast<ssize_t>(sizeof seed)) return seed;
    const auto now = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    const auto wall = static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
    int local = 0;
    std::uintptr_t where = 0;
    const void* p = &local;
    std::memcpy(&where, &p, sizeof p);
    return now ^ (wall << 13) ^ (static_cast<std::uint64_t>(::getpid()) << 32) ^
           (static_cast<std::uint64_t>(::gettid()) << 16) ^ static_cast<std::uint64_t>(where);
}

} // namespace cnasio::detail
