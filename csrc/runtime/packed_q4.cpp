// PackedQ4 (packed_q4.h): layout checks, the q4x16 regrouping, and the choice of kernel for each layout.
#include "edgekit/packed_q4.h"

#include <stdexcept>
#include <vector>

#include "edgekit/dispatch.h"
#include "edgekit/linear.h"
#include "edgekit/weight_arena.h"

namespace edgekit {
namespace {

const char* layout_name(int rows) { return rows == EK_Q4X4_ROWS ? "q4x4" : "q4x16"; }

// The arrays of a regrouped matrix, owned by its PackedQ4 (and copies).
struct OwnedArrays {
    WeightVec<uint8_t> qs;
    WeightVec<uint16_t> d;
};

}  // namespace

std::pair<int64_t, int64_t> PackedQ4::layout_sizes(int64_t n, int64_t k, int rows) {
    if (n <= 0 || k <= 0 || k % EK_Q4_BLOCK) {
        throw std::invalid_argument("q4x4 needs n > 0 and k a positive multiple of 32, got n=" + std::to_string(n) +
                                    " k=" + std::to_string(k));
    }
    if (rows != EK_Q4X4_ROWS && rows != EK_Q4X16_ROWS) {
        throw std::invalid_argument("rows must be 4 (q4x4) or 16 (q4x16)");
    }
    const int64_t tiles = (n + rows - 1) / rows, nb = k / EK_Q4_BLOCK;
    return {tiles * nb * rows * (EK_Q4_BLOCK / 2), tiles * nb * rows};
}

PackedQ4::PackedQ4(const uint8_t* qs, int64_t qs_bytes, const uint16_t* d, int64_t n_scales, int64_t n, int64_t k,
                   int rows, std::shared_ptr<const void> owner)
    : owner_(std::move(owner)), rows_(rows), nbytes_(qs_bytes + n_scales * (int64_t)sizeof(uint16_t)),
      view_{qs, d, n, k, 0} {
    const auto [want_qs, want_scales] = layout_sizes(n, k, rows);
    if (qs_bytes != want_qs || n_scales != want_scales) {
        throw std::invalid_argument(std::string(layout_name(rows)) + " arrays do not match n=" + std::to_string(n) +
                                    " k=" + std::to_string(k) + ": expected qs of " + std::to_string(want_qs) +
                                    " bytes and d of " + std::to_string(want_scales) + " scales");
    }
}

PackedQ4 PackedQ4::to_q4x16() const {
    if (rows_ != EK_Q4X4_ROWS) throw std::invalid_argument("already q4x16");
    const auto [qs_bytes, scales] = layout_sizes(view_.n, view_.k, EK_Q4X16_ROWS);
    auto arrays = std::make_shared<OwnedArrays>();
    arrays->qs.resize((size_t)qs_bytes);
    arrays->d.resize((size_t)scales);
    ek_pack_q4x16(&view_, arrays->qs.data(), arrays->d.data());
    const uint8_t* qs = arrays->qs.data();
    const uint16_t* d = arrays->d.data();
    return PackedQ4(qs, qs_bytes, d, scales, view_.n, view_.k, EK_Q4X16_ROWS, std::move(arrays));
}

void PackedQ4::gemm(const int8_t* xq, const float* xs, int64_t m, bool per_block, bool int4, const std::string& impl,
                    float* y) const {
    if (per_block && int4) throw std::invalid_argument("int4=True takes per-row scales (1-D xs)");
    if (int4) {
        for (int64_t i = 0; i < m * view_.k; ++i) {
            if (xq[i] < -EK_Q4_ACT_QMAX || xq[i] > EK_Q4_ACT_QMAX) {
                throw std::invalid_argument("int4=True needs activation codes in -7..7");
            }
        }
    }
    if (int4 && rows_ != EK_Q4X4_ROWS) throw std::invalid_argument("int4=True runs on the q4x4 layout only");
    const ek_gemm_q4x4_q8_fn fn = int4 ? kernel<Op::gemm_q4x4_q4>(impl) : gemm_fn(per_block, impl);
    gemm_q4x4(view_, xq, xs, m, y, fn, rows_);
}

void PackedQ4::linear(const float* x, int64_t m, const int32_t* qmax_rows, bool per_block, const std::string& impl,
                      float* y) const {
    const ek_gemm_q4x4_q8_fn fn = gemm_fn(per_block, impl);
    const ek_quant_row_q8_fn quant = kernel<Op::quant_row_q8>("");
    if (per_block) {
        linear_q4x4_blocks(view_, x, m, y, fn, quant, rows_);
    } else {
        linear_q4x4(view_, x, m, qmax_rows, y, fn, quant, rows_);
    }
}

ek_gemm_q4x4_q8_fn PackedQ4::gemm_fn(bool per_block, const std::string& impl) const {
    if (rows_ == EK_Q4X16_ROWS) {
        return per_block ? kernel<Op::gemm_q4x16_q8b>(impl) : kernel<Op::gemm_q4x16_q8>(impl);
    }
    return per_block ? kernel<Op::gemm_q4x4_q8b>(impl) : kernel<Op::gemm_q4x4_q8>(impl);
}

}  // namespace edgekit
