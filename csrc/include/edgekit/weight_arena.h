// Memory for a model's weights: packed into 2 MiB-aligned chunks that Linux may back with transparent huge pages.
//
// Why: decode streams every weight once per token (~100 MB for SmolLM2-135M W4A8), and the weights are some
// hundreds of separate arrays of 50–450 KB. On 4 KiB pages that is ~25,000 TLB misses per token, and a core's
// streaming read of them ran at 13–16 GB/s where one contiguous buffer reads at ~25 (BENCHMARKS §3). Allocated
// here, the arrays of one model sit side by side in chunks advised MADV_HUGEPAGE (Linux's "madvise" THP mode, the
// usual default), so the same bytes need a few dozen 2 MiB pages. Nothing else changes: the contents, the layout
// and the kernels are the same; where huge pages are not available the chunks are ordinary memory.
//
// EDGEKIT_HUGEPAGES=0 in the environment turns the advice off (read once per process; for A/B timings).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace edgekit {

// size bytes, 64-byte aligned, from the shared weight chunks (own chunk when large); throws std::bad_alloc
void* weight_alloc(std::size_t size);
// returns memory from weight_alloc; a chunk goes back to the system when its last array is freed
void weight_free(void* p) noexcept;
// whether chunks are advised for huge pages in this process (false: EDGEKIT_HUGEPAGES=0, or not Linux)
bool weight_hugepages();
// bytes of chunks currently held from the system (for tests)
std::size_t weight_arena_bytes();

// std::vector's allocator over weight_alloc: WeightVec<T> is a std::vector<T> whose storage lives in the chunks.
template <class T>
struct WeightAllocator {
    using value_type = T;
    WeightAllocator() = default;
    template <class U>
    WeightAllocator(const WeightAllocator<U>&) noexcept {}
    T* allocate(std::size_t n) {
        if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_alloc();
        return static_cast<T*>(weight_alloc(n * sizeof(T)));
    }
    void deallocate(T* p, std::size_t) noexcept { weight_free(p); }
    template <class U>
    bool operator==(const WeightAllocator<U>&) const noexcept { return true; }
    template <class U>
    bool operator!=(const WeightAllocator<U>&) const noexcept { return false; }
};

template <class T>
using WeightVec = std::vector<T, WeightAllocator<T>>;

}  // namespace edgekit
