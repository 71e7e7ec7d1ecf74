// The fp16-row kernels (gemm_f16_f32, wsum_f16_f32) and the fp16 converters, checked by edgekit_test_kernels.
//
// kernels.h fixes their summation order, so every implementation must equal the scalar one bit for bit, for any
// m, row range and stride: that is what this suite checks (plus fp16 round trips), natively and under qemu.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "edgekit/dispatch.h"
#include "edgekit/kernels.h"

namespace {

struct Counts {
    int checks = 0, failures = 0;
};

uint64_t g_state = 0x5EED0F16ull;
uint64_t next() {  // splitmix64
    uint64_t z = (g_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
float uniform() { return (float)((next() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }

bool same_bits(const float* a, const float* b, size_t n, size_t* where) {
    for (size_t i = 0; i < n; ++i) {
        if (std::memcmp(a + i, b + i, sizeof(float)) != 0) {
            *where = i;
            return false;
        }
    }
    return true;
}

void expect(Counts& c, bool ok, const std::string& what) {
    ++c.checks;
    if (!ok) {
        ++c.failures;
        std::printf("FAIL %s\n", what.c_str());
    }
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
        const ek_gemm_f16_f32_fn fn = edgekit::gemm_f16_f32_impl(name);
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

void wsum_case(Counts& c, int64_t n, int64_t k, int64_t pad) {
    const int64_t ldv = k + pad;
    std::vector<uint16_t> v((size_t)(n * ldv));
    std::vector<float> p((size_t)n);
    for (auto& e : v) e = ek_fp32_to_fp16(uniform() * 3.0f);
    for (auto& e : p) e = (uniform() + 1.0f) * 0.5f;
    std::vector<float> ref((size_t)k);
    ek_wsum_f16_f32__scalar(v.data(), ldv, p.data(), n, k, ref.data());
    for (const auto& name : edgekit::implementations("wsum_f16_f32")) {
        std::vector<float> y((size_t)k, -7.0f);
        edgekit::wsum_f16_f32_impl(name)(v.data(), ldv, p.data(), n, k, y.data());
        size_t at = 0;
        expect(c, same_bits(y.data(), ref.data(), y.size(), &at),
               shape("wsum_f16_f32", name, 1, n, k) + " differs from scalar at " + std::to_string(at));
    }
}

void convert_suite(Counts& c) {
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
    for (int64_t n : {1, 7, 64, 300})
        for (int64_t k : {1, 7, 8, 31, 32, 64, 65}) wsum_case(c, n, k, n % 2 ? 3 : 0);
    return {c.checks, c.failures};
}
