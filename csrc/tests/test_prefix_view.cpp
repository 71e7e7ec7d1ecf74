// Prefix views (formats.h: ek_q4x4.ldb) through every int4 matmul, checked by edgekit_test_kernels.
//
// An adaptive computation module's down projection runs the first k columns of its weight (the inputs of the
// learners a token executes) without copying them: a view {qs, d, n, k, ldb = K / 32} of the whole [n, K] matrix.
// Every implementation of every q4x4 / q4x16 op must give, on that view, exactly the bits it gives on the first k
// columns packed as a matrix of their own, for k from one block to all of K; ldb = 0 must mean K / 32. Shapes: N
// around the tile and group sizes, K of one to 48 blocks, M = 1 .. 9, per-token and per-block activation scales.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "edgekit/dispatch.h"
#include "edgekit/kernels.h"
#include "suite_util.h"

namespace {

using edgekit_tests::Counts;
using edgekit_tests::expect;

edgekit_tests::SplitMix g_rng{0x50F1Cull};
uint64_t next() { return g_rng.next(); }

// the packed arrays of rows [n, nb blocks] in the layout of `rows` (4: q4x4, 16: q4x16)
struct Packed {
    std::vector<uint8_t> qs;
    std::vector<uint16_t> d;
};

Packed pack(const std::vector<ek_block_q4_0>& blocks, int64_t n, int64_t nb, int rows) {
    const int64_t tiles = (n + 3) / 4, groups = (n + 15) / 16;
    Packed p4{std::vector<uint8_t>((size_t)(tiles * nb * EK_Q4X4_TILE_QS_BYTES)),
              std::vector<uint16_t>((size_t)(tiles * nb * EK_Q4X4_ROWS))};
    ek_pack_q4x4(blocks.data(), n, nb * EK_Q4_BLOCK, p4.qs.data(), p4.d.data());
    if (rows == EK_Q4X4_ROWS) return p4;
    Packed p16{std::vector<uint8_t>((size_t)(groups * nb * EK_Q4X16_GROUP_QS_BYTES)),
               std::vector<uint16_t>((size_t)(groups * nb * EK_Q4X16_ROWS))};
    const ek_q4x4 w4{p4.qs.data(), p4.d.data(), n, nb * EK_Q4_BLOCK, 0};
    ek_pack_q4x16(&w4, p16.qs.data(), p16.d.data());
    return p16;
}

void prefix_case(Counts& c, const std::string& op, ek_gemm_q4x4_q8_fn (*get)(const std::string&), int rows,
                 bool blocks, int64_t m, int64_t n, int64_t nb_all) {
    const bool w4a4 = op == "gemm_q4x4_q4";
    std::vector<ek_block_q4_0> all((size_t)(n * nb_all));
    for (auto& b : all) {
        b.d = (uint16_t)((next() & 1) << 15 | (5 + next() % 16) << 10 | (next() & 0x3FF));
        for (auto& q : b.qs) q = (uint8_t)(next() & 0xFF);
    }
    const Packed whole = pack(all, n, nb_all, rows);
    const int64_t units = (n + rows - 1) / rows, ldy = n + 2;
    for (int64_t nb : {int64_t(1), nb_all / 2, nb_all - 1, nb_all}) {
        if (nb < 1) continue;
        const int64_t k = nb * EK_Q4_BLOCK;
        std::vector<ek_block_q4_0> pre((size_t)(n * nb));
        for (int64_t r = 0; r < n; ++r)
            for (int64_t j = 0; j < nb; ++j) pre[(size_t)(r * nb + j)] = all[(size_t)(r * nb_all + j)];
        const Packed own = pack(pre, n, nb, rows);
        std::vector<int8_t> xq((size_t)(m * k));
        for (auto& x : xq) x = w4a4 ? (int8_t)((int)(next() % 15) - 7) : (int8_t)((int)(next() % 255) - 127);
        std::vector<float> xs((size_t)(blocks ? m * nb : m));
        for (auto& s : xs) s = 0.001f + (float)(next() % 1000) * 5e-5f;
        std::vector<int32_t> xbsum((size_t)(m * nb * 4));
        ek_lane_sums_q8(xq.data(), m, k, xbsum.data());
        const std::string what = op + " m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" +
                                 std::to_string(k) + " of " + std::to_string(nb_all * EK_Q4_BLOCK);
        for (const auto& name : edgekit::implementations(op)) {
            const ek_gemm_q4x4_q8_fn fn = get(name);
            auto run = [&](const ek_q4x4& w) {
                std::vector<float> y((size_t)(m * ldy), -7.0f);
                fn(&w, xq.data(), xs.data(), xbsum.data(), m, y.data(), ldy, 0, units);
                return y;
            };
            const std::vector<float> ref = run({own.qs.data(), own.d.data(), n, k, 0});
            expect(c, run({whole.qs.data(), whole.d.data(), n, k, nb_all}) == ref, what + " " + name + " prefix view");
            expect(c, run({own.qs.data(), own.d.data(), n, k, nb}) == ref, what + " " + name + " ldb = K / 32");
        }
    }
}

template <edgekit::Op op>
ek_gemm_q4x4_q8_fn getter(const std::string& name) {
    return edgekit::kernel<op>(name);
}

}  // namespace

// Runs the suite. Returns (checks, failures).
std::pair<int, int> run_prefix_suite() {
    using edgekit::Op;
    Counts c;
    for (int64_t nb_all : {2, 7, 48})
        for (int64_t n : {1, 5, 16, 33})
            for (int64_t m : {1, 2, 5, 9}) {
                prefix_case(c, "gemm_q4x4_q8", getter<Op::gemm_q4x4_q8>, EK_Q4X4_ROWS, false, m, n, nb_all);
                prefix_case(c, "gemm_q4x4_q8b", getter<Op::gemm_q4x4_q8b>, EK_Q4X4_ROWS, true, m, n, nb_all);
                prefix_case(c, "gemm_q4x16_q8", getter<Op::gemm_q4x16_q8>, EK_Q4X16_ROWS, false, m, n, nb_all);
                prefix_case(c, "gemm_q4x16_q8b", getter<Op::gemm_q4x16_q8b>, EK_Q4X16_ROWS, true, m, n, nb_all);
                prefix_case(c, "gemm_q4x4_q4", getter<Op::gemm_q4x4_q4>, EK_Q4X4_ROWS, false, m, n, nb_all);
            }
    return {c.checks, c.failures};
}
