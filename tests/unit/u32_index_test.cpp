// The correlator's open-addressing index against a std::unordered_map model.
#include <cnasio/detail/correlator.hpp>

#include <doctest/doctest.h>

#include <random>
#include <unordered_map>

using cnasio::detail::u32_index;

TEST_CASE("u32_index agrees with a map under random inserts and erases, clustered keys included") {
    for (const std::uint32_t spread : {0xffffffffu, 256u}) { // random keys, then keys that collide a lot
        u32_index index;
        std::unordered_map<std::uint32_t, std::uint32_t> model;
        std::mt19937 rng(7);
        for (int step = 0; step < 200000; ++step) {
            const std::uint32_t key = static_cast<std::uint32_t>(rng()) % spread;
            switch (rng() % 3) {
            case 0:
            case 1: {
                const std::uint32_t value = static_cast<std::uint32_t>(rng() % 1000);
                index.set(key, value);
                model[key] = value;
                break;
            }
            default:
                CHECK(index.erase(key) == (model.erase(key) == 1));
            }
            if (step % 20000 == 0)
                for (const auto& [k, v] : model) REQUIRE(index.find(k) == v);
            REQUIRE(index.size() == model.size());
        }
        for (const auto& [k, v] : model) CHECK(index.find(k) == v);
        CHECK(index.find(spread == 256u ? 1000u : 0u) == (model.count(spread == 256u ? 1000u : 0u) ? model[spread == 256u ? 1000u : 0u] : u32_index::none));
    }
}
