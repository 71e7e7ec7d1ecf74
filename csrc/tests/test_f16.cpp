// The fp16-row kernels (gemm_f16_f32, attn_f16_f32), the Q8_0-row head kernels (gemm_q8_0_f32, gemm_q8_0_q8b), silu_mul_f32 and
// the fp16 converters, checked by edgekit_test_kernels.
//
// kernels.h fixes their summation order, so every implementation must equal the scalar one bit for bit, for any
// m, row range and stride: that is what this suite checks (plus fp16 round trips), natively and under qemu.
#include <algorithm>
#include <cmath>
#include <cstdint>
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

edgekit_tests::SplitMix g_rng{0x5EED0F16ull};
uint64_t next() { return g_rng.next(); }
float uniform() { return g_rng.uniform(); }

bool same_bits(const float* a, const float* b, size_t n, size_t* where) {
    for (size_t i = 0; i < n; ++i) {
        if (std::memcmp(a + i, b + i, sizeof(float)) != 0) {
            *where = i;
            return false;
        }
    }
    return true;
}

std::string shape(const char* op, const std::string& impl, int64_t m, int64_t n, int64_t k) {
    return std::string(op) + " " + impl + " m=" + std::to_string(m) + " n=" + std::to_string(n) +
           " k=" + std::to_string(k);
}

void gemm_case(Counts& c, int64_t m, int64_t n, int64_t k, int64_t pad, bool extreme) {
    const int64_t ldw = k + pad, ldx = k + pad, ldy = n + 3;
    std::vector<uint16_t> w((size_t)(n * ldw));
    std::vector<float> x((size_t)(m * ldx));
    for (auto& v : w) v = ek_fp32_to_fp16(extreme ? (next() & 1 ? 65504.0f : -65504.0f) : uniform() * 4.0f);
    for (auto& v : x) v = extreme ? (next() & 1 ? 1e30f : -1e-30f) : uniform();
    std::vector<float> ref((size_t)(m * ldy), -7.0f);
    ek_gemm_f16_f32__scalar(w.data(), ldw, x.data(), ldx, m, k, ref.data(), ldy, 0, n);
    for (const auto& name : edgekit::implementations("gemm_f16_f32")) {
        const ek_gemm_f16_f32_fn fn = edgekit::kernel<edgekit::Op::gemm_f16_f32>(name);
        std::vector<float> y((size_t)(m * ldy), -7.0f);
        const int64_t split = n / 3;  // two row ranges, as two threads would run them
        fn(w.data(), ldw, x.data(), ldx, m, k, y.data(), ldy, 0, split);
        fn(w.data(), ldw, x.data(), ldx, m, k, y.data(), ldy, split, n);
        size_t at = 0;
        expect(c, same_bits(y.data(), ref.data(), y.size(), &at),
               shape("gemm_f16_f32", name, m, n, k) + " differs from scalar at " + std::to_string(at));
        // one token at a time (decode) gives the bits of the batch (prefill)
        for (int64_t i = 0; i < m; ++i) {
            std::vector<float> yi((size_t)n);
            fn(w.data(), ldw, x.data() + i * ldx, ldx, 1, k, yi.data(), n, 0, n);
            expect(c, same_bits(yi.data(), ref.data() + i * ldy, (size_t)n, &at),
                   shape("gemm_f16_f32", name, m, n, k) + " row " + std::to_string(i) + " alone differs");
        }
    }
    if (!extreme) {  // the scalar against a double reference: the order only rounds
        for (int64_t i = 0; i < m; ++i)
            for (int64_t r = 0; r < n; ++r) {
                double s = 0.0, mag = 0.0;
                for (int64_t cc = 0; cc < k; ++cc) {
                    const double t = (double)ek_fp16_to_fp32(w[r * ldw + cc]) * x[i * ldx + cc];
                    s += t;
                    mag += std::fabs(t);
                }
                expect(c, std::fabs(ref[i * ldy + r] - s) <= 1e-5 * mag + 1e-30,
                       shape("gemm_f16_f32", "scalar", m, n, k) + " far from the float64 sum");
            }
    }
}

// g heads over n keys, head_dim hd; keys transposed with ldk = n + pad; extreme: scores far apart (probabilities
// underflow to the exp clamp) and large values
void attn_case(Counts& c, int64_t g, int64_t n, int64_t hd, int64_t pad, bool extreme) {
    const int64_t ldk = n + pad, ldv = hd + pad;
    std::vector<float> q((size_t)(g * hd));
    std::vector<uint16_t> kt((size_t)(hd * ldk)), v((size_t)(n * ldv));
    for (auto& e : q) e = uniform() * (extreme ? 40.0f : 2.0f);
    for (auto& e : kt) e = ek_fp32_to_fp16(uniform() * (extreme ? 30.0f : 1.0f));
    for (auto& e : v) e = ek_fp32_to_fp16(extreme ? (next() & 1 ? 65504.0f : -65504.0f) : uniform() * 3.0f);
    const float scale = 0.125f;
    std::vector<float> p_ref((size_t)(g * n)), out_ref((size_t)(g * hd)), first_ref((size_t)g);
    ek_attn_f16_f32__scalar(q.data(), g, hd, kt.data(), ldk, v.data(), ldv, n, scale, nullptr, 0, nullptr,
                            p_ref.data(), out_ref.data(), first_ref.data());
    // the reference itself against a float64 softmax-attention (its exp is ~1 ulp, its sums float32)
    double worst = 0.0;
    for (int64_t h = 0; h < g && !extreme; ++h) {
        std::vector<double> s((size_t)n);
        double mx = -1e300, sum = 0.0;
        for (int64_t t = 0; t < n; ++t) {
            double a = 0.0;
            for (int64_t cc = 0; cc < hd; ++cc) a += (double)q[h * hd + cc] * ek_fp16_to_fp32(kt[cc * ldk + t]);
            s[t] = a * scale;
            mx = std::max(mx, s[t]);
        }
        for (auto& e : s) sum += (e = std::exp(e - mx));
        for (int64_t cc = 0; cc < hd; ++cc) {
            double o = 0.0;
            for (int64_t t = 0; t < n; ++t) o += s[t] / sum * ek_fp16_to_fp32(v[t * ldv + cc]);
            worst = std::max(worst, std::fabs(o - out_ref[h * hd + cc]));
        }
    }
    expect(c, worst < 1e-4, shape("attn_f16_f32", "scalar", g, n, hd) + " far from float64: " + std::to_string(worst));
    // every implementation on (bias, ldb, lens) gives the reference's probabilities, outputs and first column
    const auto every_impl = [&](const char* what, const char* ref_name, const float* bias, int64_t ldb,
                                const int32_t* lens, const std::vector<float>& p_want,
                                const std::vector<float>& out_want, const std::vector<float>& first_want) {
        for (const auto& name : edgekit::implementations("attn_f16_f32")) {
            std::vector<float> p((size_t)(g * n), -7.0f), out((size_t)(g * hd), -7.0f), first((size_t)g, -7.0f);
            const ek_attn_f16_f32_fn fn = edgekit::kernel<edgekit::Op::attn_f16_f32>(name);
            fn(q.data(), g, hd, kt.data(), ldk, v.data(), ldv, n, scale, bias, ldb, lens, p.data(), out.data(),
               first.data());
            size_t at = 0;
            expect(c, same_bits(out.data(), out_want.data(), out.size(), &at) &&
                          same_bits(p.data(), p_want.data(), p.size(), &at) &&
                          same_bits(first.data(), first_want.data(), first.size(), &at),
                   shape(what, name, g, n, hd) + " differs from " + ref_name + " at " + std::to_string(at));
        }
    };
    every_impl("attn_f16_f32", "scalar", nullptr, 0, nullptr, p_ref, out_ref, first_ref);
    // rows of their own lengths (causal positions sharing a call): each row is the scalar kernel on that row alone
    // with n = its length, and its probabilities are 0 past it
    std::vector<int32_t> lens((size_t)g);
    for (int64_t h = 0; h < g; ++h) lens[(size_t)h] = (int32_t)std::max<int64_t>(1, n - (h * 5) % 7);
    std::vector<float> pl_ref((size_t)(g * n), 0.0f), ol_ref((size_t)(g * hd)), fl_ref((size_t)g);
    for (int64_t h = 0; h < g; ++h) {
        const int64_t len = lens[(size_t)h];
        ek_attn_f16_f32__scalar(q.data() + h * hd, 1, hd, kt.data(), ldk, v.data(), ldv, len, scale, nullptr, 0,
                                nullptr, pl_ref.data() + h * n, ol_ref.data() + h * hd, fl_ref.data() + h);
    }
    every_impl("attn_f16_f32 lens", "each row alone", nullptr, 0, lens.data(), pl_ref, ol_ref, fl_ref);
    // a position bias read in place with a negative row stride (T5: row h starts one slot before row h - 1, ldb =
    // -1) gives the bits of the same rows copied out ([g, n], ldb = n)
    std::vector<float> table((size_t)(g - 1 + n));
    for (auto& e : table) e = uniform() * 4.0f;
    std::vector<float> rows((size_t)(g * n));
    for (int64_t h = 0; h < g; ++h)
        for (int64_t t = 0; t < n; ++t) rows[(size_t)(h * n + t)] = table[(size_t)(g - 1 - h + t)];
    std::vector<float> pb_ref((size_t)(g * n)), ob_ref((size_t)(g * hd)), fb_ref((size_t)g);
    ek_attn_f16_f32__scalar(q.data(), g, hd, kt.data(), ldk, v.data(), ldv, n, scale, rows.data(), n, nullptr,
                            pb_ref.data(), ob_ref.data(), fb_ref.data());
    every_impl("attn_f16_f32 bias ldb -1", "the copied rows", table.data() + g - 1, -1, nullptr, pb_ref, ob_ref,
               fb_ref);
}

void silu_case(Counts& c, int64_t n) {
    std::vector<float> g((size_t)n), u((size_t)n);
    for (int64_t i = 0; i < n; ++i) {
        g[i] = uniform() * (i % 7 == 0 ? 200.0f : 8.0f);  // past both ends of the exp clamp too
        u[i] = uniform() * 3.0f;
    }
    std::vector<float> ref = g;
    ek_silu_mul_f32__scalar(ref.data(), u.data(), n);
    double worst = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        const double want = (double)g[i] / (1.0 + std::exp(-(double)g[i])) * u[i];
        worst = std::max(worst, std::fabs(want - ref[i]) / std::max(1e-30, std::fabs(want)));
    }
    expect(c, worst < 1e-5, "silu_mul_f32 scalar n=" + std::to_string(n) + " relative error " + std::to_string(worst));
    for (const auto& name : edgekit::implementations("silu_mul_f32")) {
        std::vector<float> y = g;
        edgekit::kernel<edgekit::Op::silu_mul_f32>(name)(y.data(), u.data(), n);
        size_t at = 0;
        expect(c, same_bits(y.data(), ref.data(), y.size(), &at),
               "silu_mul_f32 " + name + " n=" + std::to_string(n) + " differs from scalar at " + std::to_string(at));
    }
}

// every compiled fp32 → fp16 row converter equals ek_fp32_to_fp16 on normals, subnormals, ties, overflow
void cvt_rows(Counts& c) {
    std::vector<float> x;
    for (int i = 0; i < 4000; ++i) x.push_back(uniform() * std::ldexp(1.0f, (int)(next() % 50) - 30));
    for (float e : {0.0f, -0.0f, 65504.0f, 65519.0f, 65520.0f, 1e9f, -1e9f, 1.0f + 1.0f / 2048.0f,
                    1.0f + 3.0f / 2048.0f, std::ldexp(1.0f, -25), std::ldexp(1.5f, -25), INFINITY, -INFINITY})
        x.push_back(e);
    std::vector<uint16_t> ref(x.size());
    for (size_t i = 0; i < x.size(); ++i) ref[i] = ek_fp32_to_fp16(x[i]);
    for (const auto& name : edgekit::implementations("cvt_f32_f16")) {
        std::vector<uint16_t> y(x.size(), 0x1234);
        edgekit::kernel<edgekit::Op::cvt_f32_f16>(name)(x.data(), y.data(), (int64_t)x.size());
        expect(c, y == ref, "cvt_f32_f16 " + name + " differs from ek_fp32_to_fp16");
    }
}

void convert_suite(Counts& c) {
    cvt_rows(c);
    int bad = 0;
    for (uint32_t h = 0; h < 65536; ++h) {  // every half survives half → float → half (NaNs stay NaN)
        const float f = ek_fp16_to_fp32((uint16_t)h);
        const uint16_t back = ek_fp32_to_fp16(f);
        const bool nan = ((h >> 10) & 0x1F) == 0x1F && (h & 0x3FF);
        if (nan ? !(((back >> 10) & 0x1F) == 0x1F && (back & 0x3FF)) : back != h) ++bad;
    }
    expect(c, bad == 0, "fp16 round trip: " + std::to_string(bad) + " halves changed");
    // ties round to even; overflow to inf; below half the smallest subnormal to zero
    expect(c, ek_fp32_to_fp16(1.0f + 1.0f / 2048.0f) == 0x3C00, "fp32_to_fp16 tie to even (down)");
    expect(c, ek_fp32_to_fp16(1.0f + 3.0f / 2048.0f) == 0x3C02, "fp32_to_fp16 tie to even (up)");
    expect(c, ek_fp32_to_fp16(65520.0f) == 0x7C00 && ek_fp32_to_fp16(-1e9f) == 0xFC00, "fp32_to_fp16 overflow");
    expect(c, ek_fp32_to_fp16(65519.0f) == 0x7BFF, "fp32_to_fp16 largest finite");
    expect(c, ek_fp32_to_fp16(std::ldexp(1.0f, -25)) == 0 && ek_fp32_to_fp16(std::ldexp(1.5f, -25)) == 1,
           "fp32_to_fp16 smallest subnormal rounding");
}

// n random Q8_0 rows of ldq values (codes, fp16 scale bits), the first block zero (scale 0).
std::pair<std::vector<int8_t>, std::vector<uint16_t>> random_q8_rows(int64_t n, int64_t ldq) {
    std::vector<float> src((size_t)(n * ldq));
    for (auto& v : src) v = uniform() * 3.0f;
    for (int64_t i = 0; i < std::min<int64_t>(32, ldq); ++i) src[(size_t)i] = 0.0f;
    std::vector<int8_t> q((size_t)(n * ldq));
    std::vector<uint16_t> d((size_t)(n * ldq / 32));
    ek_quantize_q8_0(src.data(), n, ldq, q.data(), d.data());
    return {std::move(q), std::move(d)};
}

// A head kernel's running lane sums s[lanes] added by the contract's halving tree (s_l += s_{l + lanes / 2}, ...,
// s_0 + s_1) must give the reference's output got exactly.
void expect_lane_tree(Counts& c, float* s, int lanes, float got, const std::string& what) {
    for (int w = lanes / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; ++l) s[l] += s[l + w];
    size_t at = 0;
    expect(c, same_bits(&s[0], &got, 1, &at), what + " is not the contract's sum");
}

// One head kernel against the reference ref [m, ldy]: the rows in two calls split at n / 3, and each token alone
// (decode). call(i0, mi, y, ldy, r0, r1) runs the kernel on tokens [i0, i0 + mi) into y for the rows [r0, r1).
template <class Call>
void expect_head_rows(Counts& c, const std::string& what, int64_t m, int64_t n, int64_t ldy,
                      const std::vector<float>& ref, Call call) {
    std::vector<float> y((size_t)(m * ldy), -7.0f);
    call(0, m, y.data(), ldy, 0, n / 3);
    call(0, m, y.data(), ldy, n / 3, n);
    size_t at = 0;
    expect(c, same_bits(y.data(), ref.data(), y.size(), &at), what + " differs from scalar at " + std::to_string(at));
    for (int64_t i = 0; i < m; ++i) {
        std::vector<float> yi((size_t)n);
        call(i, 1, yi.data(), n, 0, n);
        expect(c, same_bits(yi.data(), ref.data() + i * ldy, (size_t)n, &at),
               what + " row " + std::to_string(i) + " alone differs");
    }
}

// The Q8_0 head kernel: every implementation against the scalar (split row ranges, decode rows alone), and the
// scalar against its contract: gemm_f16_f32's order over the values q * fp16(d), spelled out here.
void q8_case(Counts& c, int64_t m, int64_t n, int64_t k, int64_t pad) {
    const int64_t ldq = k + pad, ldx = k + 3, ldy = n + 3;
    auto rows = random_q8_rows(n, ldq);
    std::vector<int8_t>& q = rows.first;  // references, not structured bindings: C++17 lambdas cannot capture those
    std::vector<uint16_t>& d = rows.second;
    std::vector<float> x((size_t)(m * ldx));
    for (auto& v : x) v = uniform();
    std::vector<float> ref((size_t)(m * ldy), -7.0f);
    ek_gemm_q8_0_f32__scalar(q.data(), d.data(), ldq, x.data(), ldx, m, k, ref.data(), ldy, 0, n);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t r = 0; r < n; ++r) {
            float s[16] = {0};
            for (int64_t cc = 0; cc < k; ++cc)
                s[cc % 16] = std::fma((float)q[r * ldq + cc] * ek_fp16_to_fp32(d[r * (ldq / 32) + cc / 32]),
                                      x[i * ldx + cc], s[cc % 16]);
            expect_lane_tree(c, s, 16, ref[i * ldy + r], shape("gemm_q8_0_f32", "scalar", m, n, k));
        }
    for (const auto& name : edgekit::implementations("gemm_q8_0_f32")) {
        const ek_gemm_q8_0_f32_fn fn = edgekit::kernel<edgekit::Op::gemm_q8_0_f32>(name);
        expect_head_rows(c, shape("gemm_q8_0_f32", name, m, n, k), m, n, ldy, ref,
                         [&](int64_t i0, int64_t mi, float* y, int64_t ld, int64_t r0, int64_t r1) {
                             fn(q.data(), d.data(), ldq, x.data() + i0 * ldx, ldx, mi, k, y, ld, r0, r1);
                         });
    }
}

// The integer Q8_0 head kernel (lm_head_act_bits 8): the scalar against its contract (exact four-byte lane sums, one
// fma chain per lane, the 8-4-2 tree), spelled out here; every implementation against the scalar (split row ranges,
// decode rows alone). One block holds extreme codes (+-127 both sides: maddubs' pairs must not saturate).
void q8b_case(Counts& c, int64_t m, int64_t n, int64_t k, int64_t pad) {
    const int64_t ldq = k + pad, ldy = n + 3, nb = k / 32;
    auto rows = random_q8_rows(n, ldq);
    std::vector<int8_t>& q = rows.first;  // references, not structured bindings: C++17 lambdas cannot capture those
    std::vector<uint16_t>& d = rows.second;
    std::vector<float> x((size_t)(m * k));
    for (auto& v : x) v = uniform();
    std::vector<int8_t> xq((size_t)(m * k));
    std::vector<float> xs((size_t)(m * nb));
    ek_quant_row_q8__scalar(x.data(), m * nb, 32, 127, xq.data(), xs.data());
    if (n > 1 && k > 32)  // row 1's second block and token 0's: all codes at the extremes, signs mixed
        for (int cc = 0; cc < 32; ++cc) q[ldq + 32 + cc] = (cc % 3) ? -127 : 127, xq[32 + cc] = (cc % 5) ? -127 : 127;
    std::vector<float> ref((size_t)(m * ldy), -7.0f);
    ek_gemm_q8_0_q8b__scalar(q.data(), d.data(), ldq, xq.data(), xs.data(), m, k, ref.data(), ldy, 0, n);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t r = 0; r < n; ++r) {
            float acc[8] = {0};
            for (int64_t j = 0; j < nb; ++j) {
                const float s = ek_fp16_to_fp32(d[r * (ldq / 32) + j]) * xs[i * nb + j];
                for (int l = 0; l < 8; ++l) {
                    int64_t p = 0;
                    for (int cc = 0; cc < 4; ++cc) p += q[r * ldq + 32 * j + 4 * l + cc] * xq[i * k + 32 * j + 4 * l + cc];
                    acc[l] = std::fma((float)p, s, acc[l]);
                }
            }
            expect_lane_tree(c, acc, 8, ref[i * ldy + r], shape("gemm_q8_0_q8b", "scalar", m, n, k));
        }
    for (const auto& name : edgekit::implementations("gemm_q8_0_q8b")) {
        const ek_gemm_q8_0_q8b_fn fn = edgekit::kernel<edgekit::Op::gemm_q8_0_q8b>(name);
        expect_head_rows(c, shape("gemm_q8_0_q8b", name, m, n, k), m, n, ldy, ref,
                         [&](int64_t i0, int64_t mi, float* y, int64_t ld, int64_t r0, int64_t r1) {
                             fn(q.data(), d.data(), ldq, xq.data() + i0 * k, xs.data() + i0 * nb, mi, k, y, ld, r0,
                                r1);
                         });
    }
}

}  // namespace

// Runs the suite; adds to the caller's counters. Returns the number of failures.
std::pair<int, int> run_f16_suite() {
    Counts c;
    convert_suite(c);
    const int64_t ks[] = {1, 15, 16, 17, 64, 100, 576};
    const int64_t ns[] = {1, 3, 4, 5, 9, 37};
    const int64_t ms[] = {1, 2, 3, 5};
    for (int64_t k : ks)
        for (int64_t n : ns)
            for (int64_t m : ms) gemm_case(c, m, n, k, (k + n + m) % 3 == 0 ? 5 : 0, false);
    gemm_case(c, 2, 9, 48, 0, true);  // huge products: inf / overflow behave alike everywhere
    for (int64_t k : {32, 64, 96, 576})
        for (int64_t n : {1, 2, 3, 5, 37})
            for (int64_t m : {1, 2, 5}) {
                q8_case(c, m, n, k, (k + n + m) % 3 == 0 ? 32 : 0);
                q8b_case(c, m, n, k, (k + n + m) % 3 == 0 ? 32 : 0);
            }
    for (int64_t g : {1, 2, 3, 4, 5, 9})
        for (int64_t n : {1, 7, 8, 15, 16, 17, 33, 300})
            for (int64_t hd : {2, 8, 14, 64, 96}) attn_case(c, g, n, hd, (g + n) % 3 ? 0 : 5, false);
    attn_case(c, 3, 100, 64, 1, true);
    for (int64_t n : {1, 7, 8, 9, 1000}) silu_case(c, n);
    return {c.checks, c.failures};
}
