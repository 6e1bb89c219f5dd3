// Heap allocation counting for the benchmarks: alloc_counter.cpp replaces the
// global operator new/delete of every benchmark binary it is linked into, so a
// receive loop can report allocations per message in steady state.
#pragma once

#include <cstdint>

namespace bench {

// Calls of any operator new made by the calling thread so far.
std::uint64_t allocations_this_thread() noexcept;

// Calls of any operator new made by all threads so far.
std::uint64_t allocations_total() noexcept;

// While on, every allocation the calling thread makes writes its stack to
// stderr (steady_allocations turns it on past warm-up when the environment
// has BENCH_ALLOC_TRACE=1).
void trace_allocations_this_thread(bool on) noexcept;

} // namespace bench
