// cnasio::proc::loss_counter: per-CPU sequence holes, wrap-around, late and
// duplicate numbers, the filtered mode, bounded memory, and a randomised
// comparison against a plain model.
#include <cnasio/proc/loss.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

using cnasio::proc::loss_counter;
using cnasio::proc::loss_mode;

TEST_CASE("loss_counter: an unbroken sequence loses nothing, the first number is free") {
    loss_counter lc;
    auto first = lc.feed(0, 1000);
    CHECK(first.first);
    CHECK(first.skipped == 0);
    for (std::uint32_t s = 1001; s < 1100; ++s) {
        auto o = lc.feed(0, s);
        CHECK_FALSE(o.first);
        CHECK(o.skipped == 0);
    }
    CHECK(lc.lost() == 0u);
    CHECK(lc.received() == 100);
    CHECK(lc.skipped() == 0);
}

TEST_CASE("loss_counter: holes are counted per CPU") {
    loss_counter lc;
    lc.feed(0, 0);
    lc.feed(1, 50);
    lc.feed(0, 1);
    CHECK(lc.feed(0, 4).skipped == 2); // 2 and 3 missing
    lc.feed(1, 51);
    CHECK(lc.feed(1, 60).skipped == 8);
    CHECK(lc.lost() == 10u);
    CHECK(lc.skipped_on_cpu(0) == 2);
    CHECK(lc.skipped_on_cpu(1) == 8);
    CHECK(lc.skipped_on_cpu(2) == 0);
    CHECK(lc.skipped_on_cpu(100000) == 0);
    // A new CPU starting at any number costs nothing.
    CHECK(lc.feed(2, 123456).first);
    CHECK(lc.lost() == 10u);
}

TEST_CASE("loss_counter: the u32 counter wraps") {
    loss_counter lc;
    lc.feed(3, 0xfffffffeu);
    CHECK(lc.feed(3, 0xffffffffu).skipped == 0);
    CHECK(lc.feed(3, 0).skipped == 0);
    CHECK(lc.feed(3, 1).skipped == 0);
    CHECK(lc.lost() == 0u);
    loss_counter lc2;
    lc2.feed(0, 0xfffffffeu);
    CHECK(lc2.feed(0, 2).skipped == 3); // ffffffff, 0, 1
    CHECK(lc2.lost() == 3u);
}

TEST_CASE("loss_counter: late numbers reduce the count, repeats are duplicates") {
    loss_counter lc;
    lc.feed(0, 0);
    lc.feed(0, 1);
    lc.feed(0, 3);
    CHECK(lc.lost() == 1u);
    auto late = lc.feed(0, 2);
    CHECK(late.late);
    CHECK(lc.lost() == 0u);
    CHECK(lc.late() == 1);
    auto dup = lc.feed(0, 2);
    CHECK(dup.duplicate);
    CHECK(lc.feed(0, 3).duplicate);
    CHECK(lc.feed(0, 0).duplicate);
    CHECK(lc.duplicates() == 3);
    CHECK(lc.lost() == 0u);
    CHECK(lc.feed(0, 4).skipped == 0);
}

TEST_CASE("loss_counter: the reorder window edges after a long hole") {
    loss_counter lc;
    lc.feed(0, 0);
    CHECK(lc.feed(0, 100).skipped == 99); // 1..99 missing; next = 101
    CHECK(lc.lost() == 99u);
    CHECK(lc.feed(0, 99).late);  // 2 back
    CHECK(lc.feed(0, 37).late);  // 64 back: the oldest number the window holds
    auto stale = lc.feed(0, 36); // 65 back
    CHECK(stale.stale);
    CHECK(lc.lost() == 97u);
    CHECK(lc.stale() == 1);
    CHECK(lc.feed(0, 100).duplicate);
}

TEST_CASE("loss_counter: a gap of exactly 62, 63 and 64 fills the window correctly") {
    for (std::uint32_t gap : {62u, 63u, 64u}) {
        CAPTURE(gap);
        loss_counter lc;
        lc.feed(0, 10);
        CHECK(lc.feed(0, 11 + gap).skipped == gap);
        // Every missing number inside the window comes back as late, once.
        std::uint32_t back_in_window = std::min<std::uint32_t>(gap, loss_counter::reorder_window - 1);
        for (std::uint32_t i = 0; i < back_in_window; ++i) CHECK(lc.feed(0, 10 + gap - i).late);
        CHECK(lc.lost() == gap - back_in_window);
        // The number seen just before the hole is a duplicate when the window still covers it.
        auto o = lc.feed(0, 10);
        CHECK((o.duplicate || o.stale));
        CHECK(o.duplicate == (gap + 1 < loss_counter::reorder_window));
    }
}

TEST_CASE("loss_counter: numbers from before the first one seen are stale") {
    loss_counter lc;
    lc.feed(0, 10);
    lc.feed(0, 11);
    CHECK(lc.feed(0, 9).stale);
    CHECK(lc.feed(0, 11).duplicate);
    CHECK(lc.lost() == 0u);
}

TEST_CASE("loss_counter: filtered mode counts holes but reports no loss") {
    loss_counter lc{loss_mode::filtered};
    lc.feed(0, 0);
    CHECK(lc.feed(0, 5).skipped == 4);
    CHECK_FALSE(lc.lost().has_value());
    CHECK_FALSE(lc.take_lost().has_value());
    CHECK(lc.skipped() == 4);
    // Switching to exact: holes from then on are losses.
    lc.set_mode(loss_mode::exact);
    CHECK(lc.lost() == 0u);
    lc.feed(0, 7);
    CHECK(lc.lost() == 1u);
    CHECK(lc.skipped() == 5);
}

TEST_CASE("loss_counter: take_lost reports each loss once and never goes negative") {
    loss_counter lc;
    lc.feed(0, 0);
    lc.feed(0, 3);
    CHECK(lc.take_lost() == 2u);
    CHECK(lc.take_lost() == 0u);
    lc.feed(0, 1); // late: lost() drops to 1, already reported 2
    CHECK(lc.lost() == 1u);
    CHECK(lc.take_lost() == 0u);
    lc.feed(0, 5); // 4 missing: lost() 2, equal to what was reported
    CHECK(lc.take_lost() == 0u);
    lc.feed(0, 8); // 6, 7 missing
    CHECK(lc.take_lost() == 2u);
}

TEST_CASE("loss_counter: memory is bounded by max_cpus") {
    loss_counter lc;
    CHECK(lc.feed(0xffffffffu, 5).out_of_range); // pre-send_msg acks had cpu = -1
    CHECK(lc.feed(loss_counter::default_max_cpus, 5).out_of_range);
    CHECK(lc.tracked_cpus() == 0);
    CHECK(lc.out_of_range() == 2);
    CHECK(lc.received() == 0);
    lc.feed(4000, 1);
    CHECK(lc.tracked_cpus() == 4001);
    loss_counter small{loss_mode::exact, 4};
    CHECK_FALSE(small.feed(3, 0).out_of_range);
    CHECK(small.feed(4, 0).out_of_range);
    CHECK(small.tracked_cpus() == 4);
}

TEST_CASE("loss_counter: reset forgets positions and counts") {
    loss_counter lc{loss_mode::filtered};
    lc.feed(0, 0);
    lc.feed(0, 10);
    lc.reset();
    CHECK(lc.skipped() == 0);
    CHECK(lc.received() == 0);
    CHECK(lc.tracked_cpus() == 0);
    CHECK(lc.feed(0, 500).first);
    CHECK(lc.mode() == loss_mode::filtered);
}

TEST_CASE("loss_counter: feeds decoded events") {
    loss_counter lc;
    cnasio::proc::event ev;
    ev.cpu = 1;
    ev.seq = 4;
    lc.feed(ev);
    ev.seq = 6;
    CHECK(lc.feed(ev).skipped == 1);
}

TEST_CASE("loss_counter: agrees with a model on random drops and local reordering") {
    std::mt19937 rng{12345};
    for (int round = 0; round < 200; ++round) {
        CAPTURE(round);
        const std::uint32_t cpus = 1 + rng() % 8;
        const std::uint32_t per_cpu = 1 + rng() % 400;
        const std::uint32_t start = rng(); // anywhere, wrap included
        const unsigned drop_per_mille = rng() % 300;
        std::vector<std::pair<std::uint32_t, std::uint32_t>> stream; // (cpu, seq)
        std::vector<std::set<std::uint32_t>> delivered(cpus);        // offsets from start
        for (std::uint32_t i = 0; i < per_cpu; ++i) {
            for (std::uint32_t c = 0; c < cpus; ++c) {
                if (rng() % 1000 < drop_per_mille) continue;
                stream.emplace_back(c, start + i);
                delivered[c].insert(i);
            }
        }
        // Swap some neighbours of the same CPU that are close, each element at
        // most once, so that no number moves further than the window.
        std::vector<bool> moved(stream.size());
        for (std::size_t k = 0; k + 1 < stream.size(); ++k) {
            if (moved[k] || rng() % 10 != 0) continue;
            for (std::size_t j = k + 1; j < stream.size() && j < k + 20; ++j) {
                if (!moved[j] && stream[j].first == stream[k].first) {
                    std::swap(stream[k], stream[j]);
                    moved[k] = moved[j] = true;
                    break;
                }
            }
        }
        loss_counter lc;
        for (auto [c, s] : stream) lc.feed(c, s);
        // The first number fed per CPU may not be the smallest after reordering;
        // anything older than it is stale. Model: for each CPU, count numbers
        // between the first fed and the largest delivered that never came.
        std::uint64_t expected = 0;
        std::uint64_t expected_stale = 0;
        for (std::uint32_t c = 0; c < cpus; ++c) {
            auto first_it = std::find_if(stream.begin(), stream.end(), [c](auto& e) { return e.first == c; });
            if (first_it == stream.end()) continue;
            std::uint32_t first = first_it->second - start;
            std::uint32_t last = *delivered[c].rbegin();
            for (std::uint32_t i = first; i <= last; ++i)
                if (!delivered[c].count(i)) ++expected;
            for (auto i : delivered[c])
                if (i < first) ++expected_stale;
        }
        CHECK(lc.lost() == expected);
        CHECK(lc.stale() == expected_stale);
        CHECK(lc.duplicates() == 0);
        CHECK(lc.received() == stream.size());
    }
}
