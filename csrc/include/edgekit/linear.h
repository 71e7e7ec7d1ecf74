// Whole-matrix entry points over the dispatched kernels: activation quantization, block sums and the W4A8 matmul
// split over the thread pool. Used by the Python module and the C++ runtime alike.
#ifndef EDGEKIT_LINEAR_H
#define EDGEKIT_LINEAR_H

#include <cstdint>

#include "edgekit/kernels.h"

namespace edgekit {

// y[m, n] (row stride n) = W xq for pre-quantized activations (codes xq [m, k], per-row scales xs [m]).
// gemm null → the dispatched implementation. rows: the layout's rows per tile, EK_Q4X4_ROWS (q4x4) or
// EK_Q4X16_ROWS (q4x16, formats.h); the same for every entry below.
void gemm_q4x4(const ek_q4x4& w, const int8_t* xq, const float* xs, int64_t m, float* y,
               ek_gemm_q4x4_q8_fn gemm = nullptr, int rows = EK_Q4X4_ROWS);

// gemm_q4x4 for up to 8 weights with the same K reading the same activations (q, k, v; gate, up): y_j [m, n_j] (row
// stride n_j) = W_j xq, every output the bits gemm_q4x4 gives, in one dispatch of the thread pool.
void gemm_q4x4_multi(const ek_q4x4* ws, float* const* ys, int count, const int8_t* xq, const float* xs, int64_t m,
                     ek_gemm_q4x4_q8_fn gemm = nullptr, int rows = EK_Q4X4_ROWS);

// y[m, n] = W x for float activations x [m, k]: each row is quantized with its own qmax (qmax_rows [m], e.g. 7 for
// the W4A4 tokens; null → 127 for all), then gemm_q4x4. Null function pointers → the dispatched implementations.
void linear_q4x4(const ek_q4x4& w, const float* x, int64_t m, const int32_t* qmax_rows, float* y,
                 ek_gemm_q4x4_q8_fn gemm = nullptr, ek_quant_row_q8_fn quant = nullptr, int rows = EK_Q4X4_ROWS);

// Per-block activation quantization: codes q [m, k] and one scale per 32 consecutive values, scales [m, k / 32]
// (GGUF Q8_0's blocking), by the row quantizer's rule applied to every block (quant null → the dispatched one).
void quant_blocks_q8(const float* x, int64_t m, int64_t k, int qmax, int8_t* q, float* scales,
                     ek_quant_row_q8_fn quant = nullptr);

// y[m, n] = W x with x quantized per block of 32 values (GGUF Q8_0's blocking; one scale per token and block),
// then the per-block-scale matmul (gemm null → the dispatched ek_gemm_q4x4_q8b).
void linear_q4x4_blocks(const ek_q4x4& w, const float* x, int64_t m, float* y, ek_gemm_q4x4_q8_fn gemm = nullptr,
                        ek_quant_row_q8_fn quant = nullptr, int rows = EK_Q4X4_ROWS);

// linear_q4x4_blocks for up to 8 weights with the same K on the same x: one quantization, one dispatch
// (gemm_q4x4_multi); y_j the bits linear_q4x4_blocks gives for W_j.
void linear_q4x4_blocks_multi(const ek_q4x4* ws, float* const* ys, int count, const float* x, int64_t m,
                              int rows = EK_Q4X4_ROWS);

// y[m, n] = W x with x on a static per-tensor grid (TRIP recipes): codes clamp(round_half_even(x / scale), ±127),
// one scale for every row, then the per-token matmul (the kernel path's and numpy's rule: division, not a reciprocal).
void linear_q4x4_static(const ek_q4x4& w, const float* x, int64_t m, float scale, float* y, int rows = EK_Q4X4_ROWS);

// The layout the runtime and the PyTorch kernel path run int4 weights in: EK_Q4X16_ROWS where the dispatched q4x4
// kernels are the AVX-512 VNNI ones (the q4x16 kernels serve 16 rows per float epilogue instead of 4: faster on the
// same ISA), else EK_Q4X4_ROWS. Both paths asking here is what keeps their float rounding identical.
int preferred_q4_rows();

}  // namespace edgekit

#endif  // EDGEKIT_LINEAR_H
