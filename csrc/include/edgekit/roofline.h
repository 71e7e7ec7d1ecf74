// The machine's limits as the runtime sees them (`edgekit bench roofline`): streaming read bandwidth from DRAM and
// the peak int8 dot-product rate of the kernel ISA in use, both measured on the runtime's own thread pool.
//
// Two probe kernels per ISA, in csrc/kernels/<isa>/roofline.cpp (one op per file per ISA, like the kernels):
//   ek_roof_read_u64__<isa>(p, bytes): sums `bytes` bytes (a multiple of EK_ROOF_READ_ALIGN) as 64-bit lanes with
//     the ISA's widest loads; the sum is returned so the compiler cannot drop the loads.
//   ek_roof_dot_i8__<isa>(iters, seed): `iters` rounds of independent int8 dot-product chains that stay in
//     registers (vpdpbusd zmm, vpmaddubsw+vpmaddwd ymm, sdot, smmla), returning a checksum; *macs_per_iter (set by
//     ek_roof_dot_macs__<isa>) is how many int8 multiply-adds one round does.
#ifndef EDGEKIT_ROOFLINE_H
#define EDGEKIT_ROOFLINE_H

#include <stddef.h>
#include <stdint.h>

#define EK_ROOF_READ_ALIGN 256  // bytes each read probe consumes per step (4 x 64-byte loads)

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t (*ek_roof_read_fn)(const uint8_t* p, size_t bytes);
typedef uint64_t (*ek_roof_dot_fn)(int64_t iters, uint32_t seed);

uint64_t ek_roof_read_u64__scalar(const uint8_t* p, size_t bytes);
uint64_t ek_roof_dot_i8__scalar(int64_t iters, uint32_t seed);
extern const int64_t ek_roof_dot_macs__scalar;
#if defined(EDGEKIT_HAVE_AVX2)
uint64_t ek_roof_read_u64__avx2(const uint8_t* p, size_t bytes);
uint64_t ek_roof_dot_i8__avx2(int64_t iters, uint32_t seed);
extern const int64_t ek_roof_dot_macs__avx2;
#endif
#if defined(EDGEKIT_HAVE_AVX512)
uint64_t ek_roof_read_u64__avx512(const uint8_t* p, size_t bytes);
#endif
#if defined(EDGEKIT_HAVE_AVX512VNNI)
uint64_t ek_roof_dot_i8__avx512vnni(int64_t iters, uint32_t seed);
extern const int64_t ek_roof_dot_macs__avx512vnni;
#endif
#if defined(EDGEKIT_HAVE_NEON)
uint64_t ek_roof_read_u64__neon(const uint8_t* p, size_t bytes);
#endif
#if defined(EDGEKIT_HAVE_NEONDOT)
uint64_t ek_roof_dot_i8__neondot(int64_t iters, uint32_t seed);
extern const int64_t ek_roof_dot_macs__neondot;
#endif
#if defined(EDGEKIT_HAVE_NEONI8MM)
uint64_t ek_roof_dot_i8__neoni8mm(int64_t iters, uint32_t seed);
extern const int64_t ek_roof_dot_macs__neoni8mm;
#endif

#ifdef __cplusplus
}  // extern "C"

#include <string>
#include <vector>

namespace edgekit {

struct RoofMeasure {
    double per_s;          // bytes/s (read) or int8 ops/s (dot; 2 ops per multiply-add)
    double best_s;         // the fastest pass, seconds
    double work;           // bytes or ops of one pass
    int threads;           // pool threads that ran it
    std::string impl;      // the probe implementation (ISA folder)
    uint64_t checksum;     // what the probe returned (keeps it honest; also checked by the tests)
};

// Read probe implementations this build has and this CPU runs, widest last; and the one measure_* use by default.
std::vector<std::string> roofline_read_impls();
std::vector<std::string> roofline_dot_impls();
// The dot probe of the ISA the q4 GEMM kernel in use runs on (selected("gemm_q4x4_q8"); scalar when none matches).
std::string roofline_dot_default();

// Streaming read of a `bytes` buffer (rounded up to threads x EK_ROOF_READ_ALIGN), split into one contiguous part
// per pool thread, best of `passes`. impl "" → the widest supported. Throws std::invalid_argument on bad input.
RoofMeasure measure_read_bandwidth(size_t bytes, int passes, const std::string& impl = "");

// Register-only int8 dot-product chains on every pool thread, best of `passes` runs of about `seconds` each.
// impl "" → roofline_dot_default(). Throws std::invalid_argument on bad input.
RoofMeasure measure_int8_peak(double seconds, int passes, const std::string& impl = "");

}  // namespace edgekit
#endif  // __cplusplus

#endif  // EDGEKIT_ROOFLINE_H
