// tests/fuzz/fuzz_check.hpp - what the fuzz targets share: a check that stops
// the run, and a reader that turns the fuzzer's bytes into values.
//
// FUZZ_CHECK is not assert(): it stays on whatever NDEBUG says, so a property
// that fails is a crash libFuzzer records, with the input that caused it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>

#define FUZZ_CHECK(cond)                                                                                   \
    do {                                                                                                   \
        if (!(cond)) {                                                                                     \
            std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond);             \
            std::abort();                                                                                  \
        }                                                                                                  \
    } while (false)

namespace fuzz {

// Hands out the input front to back; once it runs dry every value is zero, so
// a short input still makes a complete (if dull) scenario.
class input {
public:
    input(const std::uint8_t* data, std::size_t size) noexcept : p_(data), end_(data + size) {}

    template <class T>
    T take() noexcept {
        T v{};
        const std::size_t n = left() < sizeof v ? left() : sizeof v;
        std::memcpy(&v, p_, n);
        p_ += n;
        return v;
    }
    bool take_bool() noexcept { return (take<std::uint8_t>() & 1u) != 0; }
    // A count in [0, limit].
    std::size_t take_upto(std::size_t limit) noexcept {
        return limit == 0 ? 0 : take<std::uint16_t>() % (limit + 1);
    }
    std::span<const std::byte> take_bytes(std::size_t n) noexcept {
        if (n > left()) n = left();
        std::span<const std::byte> s{reinterpret_cast<const std::byte*>(p_), n};
        p_ += n;
        return s;
    }
    std::span<const std::byte> rest() noexcept { return take_bytes(left()); }
    std::size_t left() const noexcept { return static_cast<std::size_t>(end_ - p_); }
    bool empty() const noexcept { return p_ == end_; }

private:
    const std::uint8_t* p_;
    const std::uint8_t* end_;
};

inline bool same_bytes(std::span<const std::byte> a, std::span<const std::byte> b) noexcept {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

} // namespace fuzz
