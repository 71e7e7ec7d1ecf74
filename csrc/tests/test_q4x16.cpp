// The q4x16 matmuls (gemm_q4x16_q8 / _q8b) and the q4x4 → q4x16 regrouping, checked by edgekit_test_kernels.
//
// kernels.h gives their exact contract, so every implementation must equal the scalar one bit for bit; with unit
// scales the output is the exact integer sum (below 2^24 here), and with random scales it agrees with the q4x4
// reference within float rounding (same codes, same scales, another summation order). Shapes: K not a multiple of
// 512, N around the 16-row groups (1, 15, 16, 17, 1071), M = 1 .. 33, zero and extreme codes, split calls.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "edgekit/dispatch.h"
#include "edgekit/kernels.h"
#include "suite_util.h"

namespace {

using edgekit_tests::Counts;
using edgekit_tests::expect;

edgekit_tests::SplitMix g_rng{0x9A416ull};
uint64_t next() { return g_rng.next(); }

// kind 0: random codes and activations, 1: zero codes, 2: extreme codes (0 / 15) and activations (±127)
void q4x16_case(Counts& c, int64_t m, int64_t n, int64_t k, int kind, bool blocks) {
    const int64_t nb = k / EK_Q4_BLOCK, tiles = (n + 3) / 4, groups = (n + 15) / 16;
    std::vector<ek_block_q4_0> rows((size_t)(n * nb));
    for (auto& b : rows) {
        b.d = (uint16_t)((next() & 1) << 15 | (5 + next() % 16) << 10 | (next() & 0x3FF));
        for (auto& q : b.qs) {
            const uint8_t lo = kind == 1 ? 8 : kind == 2 ? (next() & 1 ? 15 : 0) : next() % 16;
            const uint8_t hi = kind == 1 ? 8 : kind == 2 ? (next() & 1 ? 15 : 0) : next() % 16;
            q = (uint8_t)(lo | hi << 4);
        }
    }
    std::vector<int8_t> xq((size_t)(m * k));
    for (auto& x : xq) x = kind == 2 ? (next() & 1 ? 127 : -127) : (int8_t)((int)(next() % 255) - 127);
    std::vector<float> xs((size_t)(blocks ? m * nb : m)), ones(xs.size(), 1.0f);
    for (auto& s : xs) s = 0.001f + (float)(next() % 1000) * 5e-5f;
    std::vector<int32_t> xbsum((size_t)(m * nb * 4));
    ek_lane_sums_q8(xq.data(), m, k, xbsum.data());
    std::vector<uint8_t> qs4((size_t)(tiles * nb * 64)), qs16((size_t)(groups * nb * 256));
    std::vector<uint16_t> d4((size_t)(tiles * nb * 4)), d16((size_t)(groups * nb * 16));
    ek_pack_q4x4(rows.data(), n, k, qs4.data(), d4.data());
    const ek_q4x4 w4{qs4.data(), d4.data(), n, k, 0};
    ek_pack_q4x16(&w4, qs16.data(), d16.data());
    std::vector<uint16_t> d16_one(d16.size(), 0x3C00);
    const std::string op = blocks ? "gemm_q4x16_q8b" : "gemm_q4x16_q8";
    const std::string what = op + " m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) +
                             " kind=" + std::to_string(kind);
    const int64_t ldy = n + 3;
    auto run = [&](ek_gemm_q4x4_q8_fn fn, const uint16_t* d, const float* s, int64_t g0, int64_t g1,
                   std::vector<float> y) {
        const ek_q4x4 w{qs16.data(), d, n, k, 0};
        fn(&w, xq.data(), s, xbsum.data(), m, y.data(), ldy, g0, g1);
        return y;
    };
    const std::vector<float> sentinel((size_t)(m * ldy), -7.0f);
    const auto scalar16 = blocks ? ek_gemm_q4x16_q8b__scalar : ek_gemm_q4x16_q8__scalar;
    const std::vector<float> ref_unit = run(scalar16, d16_one.data(), ones.data(), 0, groups, sentinel);
    const std::vector<float> ref = run(scalar16, d16.data(), xs.data(), 0, groups, sentinel);
    // the scalar reference: exact integers with unit scales, the q4x4 reference's values with random ones
    std::vector<float> y4(sentinel);
    (blocks ? ek_gemm_q4x4_q8b__scalar : ek_gemm_q4x4_q8__scalar)(&w4, xq.data(), xs.data(), xbsum.data(), m,
                                                                   y4.data(), ldy, 0, tiles);
    bool exact = true, close = true;
    for (int64_t i = 0; i < m; ++i)
        for (int64_t r = 0; r < n; ++r) {
            int64_t dot = 0;
            for (int64_t j = 0; j < nb; ++j) {
                const ek_block_q4_0& b = rows[r * nb + j];
                for (int cc = 0; cc < 16; ++cc) {
                    dot += ((b.qs[cc] & 15) - 8) * (int64_t)xq[i * k + j * 32 + cc];
                    dot += ((b.qs[cc] >> 4) - 8) * (int64_t)xq[i * k + j * 32 + 16 + cc];
                }
            }
            exact &= ref_unit[i * ldy + r] == (float)dot;
            const double a = ref[i * ldy + r], b = y4[i * ldy + r];
            close &= std::fabs(a - b) <= 1e-4 * std::fabs(b) + 1e-3;
        }
    expect(c, exact, what + ": scalar with unit scales is not the integer dot product");
    expect(c, close, what + ": scalar far from the q4x4 reference");
    for (const auto& name : edgekit::implementations(op)) {
        const ek_gemm_q4x4_q8_fn fn = blocks ? edgekit::kernel<edgekit::Op::gemm_q4x16_q8b>(name)
                                             : edgekit::kernel<edgekit::Op::gemm_q4x16_q8>(name);
        expect(c, run(fn, d16_one.data(), ones.data(), 0, groups, sentinel) == ref_unit, what + " " + name + " unit");
        expect(c, run(fn, d16.data(), xs.data(), 0, groups, sentinel) == ref,
               what + " " + name + " differs from scalar");
        // two calls over [0, a) and [a, G): the same bits, and the first leaves every other row untouched
        const int64_t a = groups > 1 ? 1 + (int64_t)(next() % (uint64_t)(groups - 1)) : 0;
        std::vector<float> part = run(fn, d16.data(), xs.data(), 0, a, sentinel);
        bool untouched = true;
        for (int64_t i = 0; i < m; ++i)
            for (int64_t r = 0; r < ldy; ++r)
                if (r >= std::min<int64_t>(a * 16, n)) untouched &= part[i * ldy + r] == -7.0f;
        expect(c, untouched, what + " " + name + " wrote outside its groups");
        expect(c, run(fn, d16.data(), xs.data(), a, groups, part) == ref, what + " " + name + " split");
    }
}

}  // namespace

// Runs the suite. Returns (checks, failures).
std::pair<int, int> run_q4x16_suite() {
    Counts c;
    for (int64_t k : {32, 96, 576, 1536})
        for (int64_t n : {1, 15, 16, 17, 40})
            for (int64_t m : {1, 2, 3, 4, 5, 9})
                for (bool blocks : {false, true}) q4x16_case(c, m, n, k, (int)((m + n) % 3), blocks);
    q4x16_case(c, 33, 1071, 576, 0, true);
    q4x16_case(c, 1, 1071, 4096, 0, false);
    q4x16_case(c, 5, 64, 4096, 2, true);  // extreme codes over 128 blocks: the integer sum stays below 2^24
    return {c.checks, c.failures};
}
