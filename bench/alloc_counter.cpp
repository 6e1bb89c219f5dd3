// Replacement global allocation functions that count calls. Counting is per
// thread (a plain thread_local, so the hot path stays a single increment) and
// global (relaxed atomic) for whole-process figures. Memory comes from malloc.
#include "alloc_counter.hpp"

#include <atomic>
#include <cstdlib>
#include <execinfo.h>
#include <new>
#include <unistd.h>

namespace {

thread_local std::uint64_t thread_allocations = 0;
thread_local bool thread_tracing = false;
thread_local bool in_trace = false;
std::atomic<std::uint64_t> total_allocations{0};

// With tracing on for this thread, writes the allocating stack to stderr
// (raw addresses: resolve them with addr2line -Cfpe BINARY).
void trace() noexcept
{
    if (!thread_tracing || in_trace)
        return;
    in_trace = true;
    void* frames[24];
    const int n = ::backtrace(frames, 24);
    static constexpr char head[] = "allocation in steady state:\n";
    (void)!::write(2, head, sizeof head - 1);
    ::backtrace_symbols_fd(frames, n, 2);
    in_trace = false;
}

void count() noexcept
{
    ++thread_allocations;
    total_allocations.fetch_add(1, std::memory_order_relaxed);
    trace();
}

void* allocate(std::size_t size) noexcept
{
    count();
    return std::malloc(size != 0 ? size : 1);
}

void* allocate_aligned(std::size_t size, std::align_val_t alignment) noexcept
{
    count();
    auto align = static_cast<std::size_t>(alignment);
    if (align < sizeof(void*))
        align = sizeof(void*);
    void* p = nullptr;
    if (::posix_memalign(&p, align, size != 0 ? size : 1) != 0)
        return nullptr;
    return p;
}

} // namespace

std::uint64_t bench::allocations_this_thread() noexcept { return thread_allocations; }
std::uint64_t bench::allocations_total() noexcept { return total_allocations.load(std::memory_order_relaxed); }
void bench::trace_allocations_this_thread(bool on) noexcept { thread_tracing = on; }

void* operator new(std::size_t size)
{
    if (void* p = allocate(size))
        return p;
    throw std::bad_alloc();
}

void* operator new[](std::size_t size)
{
    if (void* p = allocate(size))
        return p;
    throw std::bad_alloc();
}

void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return allocate(size); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return allocate(size); }

void* operator new(std::size_t size, std::align_val_t alignment)
{
    if (void* p = allocate_aligned(size, alignment))
        return p;
    throw std::bad_alloc();
}

void* operator new[](std::size_t size, std::align_val_t alignment)
{
    if (void* p = allocate_aligned(size, alignment))
        return p;
    throw std::bad_alloc();
}

void* operator new(std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept
{
    return allocate_aligned(size, alignment);
}

void* operator new[](std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept
{
    return allocate_aligned(size, alignment);
}

void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
