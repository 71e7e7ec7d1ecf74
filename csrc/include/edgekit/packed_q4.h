// An int4 weight matrix in a kernel layout (q4x4, or q4x16 regrouped for AVX-512 VNNI; formats.h) and the matmuls
// over it: what the Python module binds as edgekit._C.PackedQ4 (the PyTorch kernel path and the kernel benchmarks
// run their linears on it). Errors are std::invalid_argument with the reason; kernel selection's own errors pass
// through (dispatch.h).
#ifndef EDGEKIT_PACKED_Q4_H
#define EDGEKIT_PACKED_Q4_H

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "edgekit/kernels.h"

namespace edgekit {

class PackedQ4 {
public:
    // (qs bytes, fp16 scales) that a [n, k] matrix takes in the layout with `rows` rows per tile (EK_Q4X4_ROWS or
    // EK_Q4X16_ROWS); throws when n, k or rows are not valid.
    static std::pair<int64_t, int64_t> layout_sizes(int64_t n, int64_t k, int rows);

    // A view of the arrays qs (qs_bytes bytes) and d (n_scales fp16 scales) of a [n, k] matrix with `rows` rows per
    // tile; `owner` keeps them alive as long as this weight and its copies. Throws when they do not match the layout.
    PackedQ4(const uint8_t* qs, int64_t qs_bytes, const uint16_t* d, int64_t n_scales, int64_t n, int64_t k,
             int rows, std::shared_ptr<const void> owner);

    // The same matrix regrouped by 16 rows (ek_pack_q4x16) into arrays of its own; throws when already q4x16.
    PackedQ4 to_q4x16() const;

    int rows() const { return rows_; }
    int64_t n() const { return view_.n; }
    int64_t k() const { return view_.k; }
    int64_t nbytes() const { return nbytes_; }
    const ek_q4x4& view() const { return view_; }

    // y [m, n] (row stride n) from int8 codes xq [m, k] and per-row scales xs [m], or per-block scales xs [m, k/32]
    // (per_block: op gemm_q4x4_q8b, or gemm_q4x16_q8b on q4x16). int4: the W4A4 packed-multiplier kernel (op
    // gemm_q4x4_q4; per-row scales, codes in -7..7, q4x4 only). `impl` empty: the dispatched implementation.
    void gemm(const int8_t* xq, const float* xs, int64_t m, bool per_block, bool int4, const std::string& impl,
              float* y) const;

    // y [m, n] from float32 x [m, k]: int8 per row (qmax_rows [m] in 1..127, null: 127 for all), or per block of 32
    // values (per_block), then the W4A8 matmul of `impl` (empty: dispatched).
    void linear(const float* x, int64_t m, const int32_t* qmax_rows, bool per_block, const std::string& impl,
                float* y) const;

private:
    ek_gemm_q4x4_q8_fn gemm_fn(bool per_block, const std::string& impl) const;

    std::shared_ptr<const void> owner_;
    int rows_;
    int64_t nbytes_;
    ek_q4x4 view_;
};

}  // namespace edgekit

#endif  // EDGEKIT_PACKED_Q4_H
