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

// Names of the features of `need` (Feature bits) that this CPU lacks, comma-separated ("" when it has them all).
std::string missing_features(unsigned need);

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

// ------------------------------------------------------------------------------------------------ typed entry ----
// Every op has an id and one function type (kernels.h); its table holds pointers of exactly that type, so a kernel
// of the wrong signature does not compile, and kernel<op>() returns that type without a cast.
enum class Op : unsigned {
    quant_row_q8,
    gemm_q4x4_q8,
    gemm_q4x4_q8b,   // the same matmul with per-block activation scales (kernels.h: ek_gemm_q4x4_q8b)
    gemm_q4x16_q8,   // the same matmuls on the q4x16 layout (formats.h), per-token and per-block scales
    gemm_q4x16_q8b,
    gemm_q4x4_q4,    // the packed-multiplier W4A4 kernels (activations in -7..7)
    gemm_f16_f32,    // float kernels: the fp16 LM head, attention over the fp16 KV cache, SwiGLU, fp16 stores
    gemm_q8_0_f32,   // the Q8_0 LM head (the same sums over int8 codes times their block scales)
    gemm_q8_0_q8b,   // the Q8_0 LM head on activations quantized per block (integer dot products)
    attn_f16_f32,
    silu_mul_f32,
    gelu_mul_f32,    // T5's gated GELU (tanh form)
    cvt_f32_f16,
    kCount,          // not an op: the number of ops
};

// The name (the string of ops(), compiled(op), ...) and the function type of each op.
template <Op>
struct OpTraits;
// One specialization per op; the name is the enum's own spelling, so the two cannot disagree.
#define EK_OP_TRAITS(op, fn)                  \
    template <>                               \
    struct OpTraits<Op::op> {                 \
        using Fn = fn;                        \
        static constexpr const char* name = #op; \
    };
EK_OP_TRAITS(quant_row_q8, ek_quant_row_q8_fn)
EK_OP_TRAITS(gemm_q4x4_q8, ek_gemm_q4x4_q8_fn)
EK_OP_TRAITS(gemm_q4x4_q8b, ek_gemm_q4x4_q8_fn)
EK_OP_TRAITS(gemm_q4x16_q8, ek_gemm_q4x4_q8_fn)
EK_OP_TRAITS(gemm_q4x16_q8b, ek_gemm_q4x4_q8_fn)
EK_OP_TRAITS(gemm_q4x4_q4, ek_gemm_q4x4_q8_fn)
EK_OP_TRAITS(gemm_f16_f32, ek_gemm_f16_f32_fn)
EK_OP_TRAITS(gemm_q8_0_f32, ek_gemm_q8_0_f32_fn)
EK_OP_TRAITS(gemm_q8_0_q8b, ek_gemm_q8_0_q8b_fn)
EK_OP_TRAITS(attn_f16_f32, ek_attn_f16_f32_fn)
EK_OP_TRAITS(silu_mul_f32, ek_silu_mul_f32_fn)
EK_OP_TRAITS(gelu_mul_f32, ek_gelu_mul_f32_fn)
EK_OP_TRAITS(cvt_f32_f16, ek_cvt_f32_f16_fn)
#undef EK_OP_TRAITS

template <Op op>
using OpFn = typename OpTraits<op>::Fn;

// The kernel of `op`: `impl` empty → the selected implementation (as selected(op); std::runtime_error when
// EDGEKIT_KERNELS makes selection fail); otherwise that named one (std::invalid_argument when it is not compiled or
// not supported by this CPU). Instantiated in dispatch.cpp for every op.
template <Op op>
OpFn<op> kernel(const std::string& impl = "");

}  // namespace edgekit
#endif  // __cplusplus

#endif  // EDGEKIT_DISPATCH_H
