// Run-time choice among the compiled kernel implementations.
//
// Every op has a table of implementations (scalar first, then wider ISAs). The chosen one is the best that the CPU
// supports, unless the environment variable EDGEKIT_KERNELS names an ISA family (scalar, avx2, avx512, neon) or an
// exact implementation name: then that one is used, or an error says why it cannot be. An op without a kernel of a
// forced family that this build has for other ops (gemm_f16_f32 has no AVX-512 one) takes its best narrower one.
#ifndef EDGEKIT_DISPATCH_H
#define EDGEKIT_DISPATCH_H

#include "edgekit/kernels.h"

#ifdef __cplusplus
#include <string>
#include <utility>
#include <vector>

namespace edgekit {

// CPU features that some implementation may need, in a fixed order (the order cpu_features() reports them).
enum Feature : unsigned {
    kAVX2 = 1u << 0,
    kFMA = 1u << 1,
    kF16C = 1u << 2,
    kAVX512F = 1u << 3,
    kAVX512BW = 1u << 4,
    kAVX512VL = 1u << 5,
    kAVX512VNNI = 1u << 6,
    kAVXVNNI = 1u << 7,
    kNEON = 1u << 8,
    kDOTPROD = 1u << 9,
    kI8MM = 1u << 10,
};

// Bit set of Feature detected on this CPU (cpuid + xgetbv on x86, getauxval on aarch64); computed once.
unsigned cpu_feature_bits();

// (name, present) for every Feature, e.g. ("avx512vnni", true).
std::vector<std::pair<std::string, bool>> cpu_features();

// Names of the ops that have a dispatch table.
std::vector<std::string> ops();

// Implementations of `op` compiled into this build, in table order. Throws std::invalid_argument for an unknown op.
std::vector<std::string> compiled(const std::string& op);

// Implementations of `op` that are compiled and supported by this CPU, in table order.
std::vector<std::string> implementations(const std::string& op);

// The implementation the dispatched entry of `op` uses (honours EDGEKIT_KERNELS).
// Throws std::runtime_error when EDGEKIT_KERNELS asks for something unknown, not compiled or not supported.
std::string selected(const std::string& op);

// ISA families compiled into this build ("scalar", "avx2", ...), and the compiler that built it.
std::vector<std::string> compiled_isas();
std::string compiler();

// Typed entry: `impl` empty → the selected implementation; otherwise that named one.
// Throws std::invalid_argument when a named impl is not compiled or not supported by this CPU.
ek_quant_row_q8_fn quant_row_q8_impl(const std::string& impl = "");
ek_gemm_q4x4_q8_fn gemm_q4x4_q8_impl(const std::string& impl = "");
// The same matmul with per-block activation scales (kernels.h: ek_gemm_q4x4_q8b; same function type).
ek_gemm_q4x4_q8_fn gemm_q4x4_q8b_impl(const std::string& impl = "");
// The same matmuls on the q4x16 layout (formats.h), per-token and per-block activation scales.
ek_gemm_q4x4_q8_fn gemm_q4x16_q8_impl(const std::string& impl = "");
ek_gemm_q4x4_q8_fn gemm_q4x16_q8b_impl(const std::string& impl = "");
// The packed-multiplier W4A4 kernels (same function type; activations in -7..7).
ek_gemm_q4x4_q8_fn gemm_q4x4_q4_impl(const std::string& impl = "");
// Float kernels over fp16 rows (LM head, attention over the fp16 KV cache).
ek_gemm_f16_f32_fn gemm_f16_f32_impl(const std::string& impl = "");
ek_attn_f16_f32_fn attn_f16_f32_impl(const std::string& impl = "");
ek_silu_mul_f32_fn silu_mul_f32_impl(const std::string& impl = "");
ek_cvt_f32_f16_fn cvt_f32_f16_impl(const std::string& impl = "");

}  // namespace edgekit
#endif  // __cplusplus

#ifdef __cplusplus
extern "C" {
#endif

// C entry for the runtime: the dispatched quantizer, or NULL when EDGEKIT_KERNELS makes selection fail.
ek_quant_row_q8_fn ek_dispatch_quant_row_q8(void);
ek_gemm_q4x4_q8_fn ek_dispatch_gemm_q4x4_q8(void);

#ifdef __cplusplus
}
#endif

#endif  // EDGEKIT_DISPATCH_H
