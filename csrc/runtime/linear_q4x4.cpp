// linear_q4x4 / gemm_q4x4: the matmul over whole matrices (linear.h).
//
// Work is split by output tiles (four rows each, or 16 on the q4x16 layout) so every thread streams its own slice of
// the weights once; each output is computed by the same code whichever slice it is in, so the thread count never
// changes a result.
#include "edgekit/linear.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "edgekit/dispatch.h"
#include "edgekit/threadpool.h"

namespace edgekit {
namespace {

// Below about this many multiply-adds per thread, waking another thread costs more than it saves.
constexpr int64_t kMinMacsPerThread = 1 << 17;
// A prefill GEMM passes over its slice of the weights once per group of tokens; slices of about this many weight
// bytes stay in L2 (2 MiB per core on the x86 machines measured, 512 KiB-1 MiB on Cortex-A7x) between the passes.
constexpr int64_t kChunkBytes = 256 << 10;
// Rows per task when a prefill's activations are quantized and summed: on one thread they were 7 % of a 512-token
// prefill's samples on a Zen 4, with the other thread idle; a decode row is one range, which parallel_for runs on
// the caller (no wake-up)
constexpr int64_t kQuantRowGrain = 16;

// Activation codes and scales of one call, reused across calls (no allocation per linear) and shared by the
// per-token and per-block entries, so a thread holds one such buffer, not one per activation layout.
struct Scratch {
    std::vector<int8_t> xq;
    std::vector<float> xs;
};

Scratch& scratch(int64_t codes, int64_t scales) {
    thread_local Scratch s;
    s.xq.resize((size_t)codes);
    s.xs.resize((size_t)scales);
    return s;
}

}  // namespace

int preferred_q4_rows() {
    static const int rows = selected("gemm_q4x4_q8") == "avx512vnni" && selected("gemm_q4x4_q8b") == "avx512vnni"
                                ? EK_Q4X16_ROWS
                                : EK_Q4X4_ROWS;
    return rows;
}

void gemm_q4x4_multi(const ek_q4x4* ws, float* const* ys, int count, const int8_t* xq, const float* xs, int64_t m,
                     ek_gemm_q4x4_q8_fn gemm, int rows) {
    if (rows != EK_Q4X4_ROWS && rows != EK_Q4X16_ROWS) {
        throw std::invalid_argument("q4x4: rows per tile must be 4 or 16");
    }
    if (count <= 0 || m <= 0) return;
    const int64_t k = ws[0].k;
    if (k % EK_Q4_BLOCK) throw std::invalid_argument("q4x4: K must be a multiple of 32");
    for (int j = 1; j < count; ++j) {
        if (ws[j].k != k) throw std::invalid_argument("q4x4: weights sharing activations must have the same K");
    }
    if (!gemm) gemm = rows == EK_Q4X16_ROWS ? kernel<Op::gemm_q4x16_q8>() : kernel<Op::gemm_q4x4_q8>();
    thread_local std::vector<int32_t> bsums;  // scratch reused across calls: no allocation per linear
    bsums.resize((size_t)(m * (k / EK_Q4_BLOCK) * 4));
    int32_t* lane_sums = bsums.data();
    parallel_for(m, kQuantRowGrain, [&](int64_t b, int64_t e) {
        ek_lane_sums_q8(xq + b * k, e - b, k, lane_sums + b * (k / EK_Q4_BLOCK) * 4);
    });
    // the weights' tiles as one index range, so one dispatch of the pool serves them all (decode wakes the pool
    // once for q, k and v instead of three times); each tile is computed by the same call whichever task has it
    int64_t first[9] = {0};
    if (count > 8) throw std::invalid_argument("q4x4: at most 8 weights per call");
    for (int j = 0; j < count; ++j) first[j + 1] = first[j] + (ws[j].n + rows - 1) / rows;
    const int64_t tiles = first[count];
    if (tiles == 0) return;
    const int64_t macs_per_tile = m * k * rows;
    const int64_t grain = std::max<int64_t>(1, kMinMacsPerThread / std::max<int64_t>(macs_per_tile, 1));
    const int32_t* bs = bsums.data();
    // a tile block is 16 code bytes + one fp16 scale per row; every output is computed alike whatever chunk it is in
    const int64_t tile_bytes = k / EK_Q4_BLOCK * rows * (EK_Q4_BLOCK / 2 + 2);
    const int64_t chunk = m <= 4 ? tiles : std::max<int64_t>(1, kChunkBytes / tile_bytes);
    parallel_for(tiles, grain, [&](int64_t t0, int64_t t1) {
        for (int j = 0; j < count && t0 < t1; ++j) {
            const int64_t b = std::max(t0, first[j]), e = std::min(t1, first[j + 1]);
            for (int64_t c = b; c < e; c += chunk) {
                gemm(&ws[j], xq, xs, bs, m, ys[j], ws[j].n, c - first[j], std::min(c + chunk, e) - first[j]);
            }
        }
    });
}

void gemm_q4x4(const ek_q4x4& w, const int8_t* xq, const float* xs, int64_t m, float* y, ek_gemm_q4x4_q8_fn gemm,
               int rows) {
    if (w.k % EK_Q4_BLOCK) throw std::invalid_argument("q4x4: K must be a multiple of 32");
    if (w.n <= 0) return;
    gemm_q4x4_multi(&w, &y, 1, xq, xs, m, gemm, rows);
}

void linear_q4x4(const ek_q4x4& w, const float* x, int64_t m, const int32_t* qmax_rows, float* y,
                 ek_gemm_q4x4_q8_fn gemm, ek_quant_row_q8_fn quant, int rows) {
    if (!quant) quant = kernel<Op::quant_row_q8>();
    Scratch& s = scratch(m * w.k, m);
    if (!qmax_rows) {
        quant(x, m, w.k, EK_Q8_ROW_QMAX, s.xq.data(), s.xs.data());
    } else {
        for (int64_t i = 0; i < m; ++i) quant(x + i * w.k, 1, w.k, qmax_rows[i], s.xq.data() + i * w.k, &s.xs[i]);
    }
    gemm_q4x4(w, s.xq.data(), s.xs.data(), m, y, gemm, rows);
}

void linear_q4x4_blocks(const ek_q4x4& w, const float* x, int64_t m, float* y, ek_gemm_q4x4_q8_fn gemm,
                        ek_quant_row_q8_fn quant, int rows) {
    if (w.k % EK_Q4_BLOCK) throw std::invalid_argument("q4x4: K must be a multiple of 32");
    if (!quant) quant = kernel<Op::quant_row_q8>();
    if (!gemm) gemm = rows == EK_Q4X16_ROWS ? kernel<Op::gemm_q4x16_q8b>() : kernel<Op::gemm_q4x4_q8b>();
    Scratch& s = scratch(m * w.k, m * (w.k / EK_Q4_BLOCK));
    quant_blocks_q8(x, m, w.k, EK_Q8_ROW_QMAX, s.xq.data(), s.xs.data(), quant);
    gemm_q4x4(w, s.xq.data(), s.xs.data(), m, y, gemm, rows);
}

void linear_q4x4_blocks_multi(const ek_q4x4* ws, float* const* ys, int count, const float* x, int64_t m, int rows) {
    if (count <= 0) return;
    const int64_t k = ws[0].k;
    if (k % EK_Q4_BLOCK) throw std::invalid_argument("q4x4: K must be a multiple of 32");
    const ek_gemm_q4x4_q8_fn gemm = rows == EK_Q4X16_ROWS ? kernel<Op::gemm_q4x16_q8b>() : kernel<Op::gemm_q4x4_q8b>();
    Scratch& s = scratch(m * k, m * (k / EK_Q4_BLOCK));
    quant_blocks_q8(x, m, k, EK_Q8_ROW_QMAX, s.xq.data(), s.xs.data(), nullptr);
    gemm_q4x4_multi(ws, ys, count, s.xq.data(), s.xs.data(), m, gemm, rows);
}

void quant_blocks_q8(const float* x, int64_t m, int64_t k, int qmax, int8_t* q, float* scales,
                     ek_quant_row_q8_fn quant) {
    if (k % EK_Q4_BLOCK) throw std::invalid_argument("quant_blocks_q8: K must be a multiple of 32");
    if (!quant) quant = kernel<Op::quant_row_q8>();
    const int64_t nb = k / EK_Q4_BLOCK;
    // the row rule on every block; rows over the pool (each block on its own, so the split changes no bit)
    parallel_for(m, kQuantRowGrain, [&](int64_t b, int64_t e) {
        quant(x + b * k, (e - b) * nb, EK_Q4_BLOCK, qmax, q + b * k, scales + b * nb);
    });
}

void linear_q4x4_static(const ek_q4x4& w, const float* x, int64_t m, float scale, float* y, int rows) {
    if (!(scale > 0.0f) || !std::isfinite(scale)) throw std::invalid_argument("q4x4: a static scale must be > 0");
    Scratch& s = scratch(m * w.k, m);
    const float qmax = (float)EK_Q8_ROW_QMAX;
    for (int64_t i = 0; i < m * w.k; ++i) {
        const float r = std::nearbyint(x[i] / scale);
        s.xq[i] = (int8_t)(r > qmax ? qmax : (r < -qmax ? -qmax : r));
    }
    std::fill(s.xs.begin(), s.xs.end(), scale);
    gemm_q4x4(w, s.xq.data(), s.xs.data(), m, y, nullptr, rows);
}

}  // namespace edgekit
