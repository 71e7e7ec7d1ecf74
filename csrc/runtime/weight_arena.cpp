// The weight chunks of weight_arena.h: bump allocation in 32 MiB chunks, 2 MiB aligned and advised MADV_HUGEPAGE;
// an array of half a chunk or more gets a chunk of its own. A chunk counts its live arrays and is returned to the
// system when the count falls to zero, so loading and dropping models does not grow the process.
#include "edgekit/weight_arena.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace edgekit {
namespace {

constexpr std::size_t kHuge = std::size_t(2) << 20;   // the huge page size on x86-64 and 4 KiB-granule arm64
constexpr std::size_t kChunk = std::size_t(32) << 20;  // ~a third of a 135M model's W4A8 weights
constexpr std::size_t kAlign = 64;                     // a cache line: every kernel's loads stay aligned

struct Chunk {
    char* base;
    std::size_t size, used;
    long live;
};

std::size_t round_up(std::size_t v, std::size_t to) { return (v + to - 1) / to * to; }

class Arena {
public:
    void* alloc(std::size_t size) {
        size = round_up(size ? size : 1, kAlign);
        std::lock_guard<std::mutex> lock(mu_);
        if (size >= kChunk / 2) return take(new_chunk(round_up(size, kHuge)), size);
        if (current_ < 0 || chunks_[current_].used + size > chunks_[current_].size) current_ = new_chunk(kChunk);
        return take(current_, size);
    }

    void free(void* p) noexcept {
        if (!p) return;
        std::lock_guard<std::mutex> lock(mu_);
        char* c = static_cast<char*>(p);
        for (std::size_t i = 0; i < chunks_.size(); ++i) {
            Chunk& ch = chunks_[i];
            if (c < ch.base || c >= ch.base + ch.size) continue;
            if (--ch.live > 0) return;
            if ((long)i == current_) {  // empty again: keep it for the next model, from its start
                ch.used = 0;
                return;
            }
            std::free(ch.base);
            bytes_ -= ch.size;
            chunks_[i] = chunks_.back();
            chunks_.pop_back();
            if (current_ == (long)chunks_.size()) current_ = (long)i;  // the moved chunk was the current one
            return;
        }
        std::abort();  // not ours: a WeightAllocator mix-up, never a runtime condition
    }

    std::size_t bytes() {
        std::lock_guard<std::mutex> lock(mu_);
        return bytes_;
    }

private:
    long new_chunk(std::size_t size) {
        void* p = nullptr;  // posix_memalign, not aligned_alloc: Android's libc has it from API level 16, not 28
        if (posix_memalign(&p, kHuge, size) != 0 || !p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        if (weight_hugepages()) madvise(p, size, MADV_HUGEPAGE);  // advice only: ignored where THP is off
#endif
        chunks_.push_back({static_cast<char*>(p), size, 0, 0});
        bytes_ += size;
        return (long)chunks_.size() - 1;
    }

    void* take(long i, std::size_t size) {
        Chunk& ch = chunks_[i];
        void* p = ch.base + ch.used;
        ch.used += size;
        ++ch.live;
        return p;
    }

    std::mutex mu_;
    std::vector<Chunk> chunks_;
    long current_ = -1;  // the chunk small arrays are carved from
    std::size_t bytes_ = 0;
};

Arena& arena() {
    static Arena* a = new Arena();  // never destroyed: static weights may be freed after other statics
    return *a;
}

}  // namespace

bool weight_hugepages() {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    static const bool on = [] {
        const char* v = std::getenv("EDGEKIT_HUGEPAGES");
        return !(v && std::strcmp(v, "0") == 0);
    }();
    return on;
#else
    return false;
#endif
}

void* weight_alloc(std::size_t size) { return arena().alloc(size); }

void weight_free(void* p) noexcept { arena().free(p); }

std::size_t weight_arena_bytes() { return arena().bytes(); }

}  // namespace edgekit
