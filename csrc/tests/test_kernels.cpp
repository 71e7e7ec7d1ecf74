// edgekit_test_kernels: every kernel implementation this build has (and this CPU supports) against the scalar one.
//
// Standalone C++17, no framework, so it runs wherever the kernels run: natively, or under qemu-user for the
// aarch64 targets (tests/cross/test_kernels_arm.py, edgekit.build.run_target_tests). It checks what kernels.h promises:
//   gemm_q4x4_q8  (a) exact integers: scales 1.0 and xs 1.0 make the output the integer sum itself, which must equal
//                     the scalar bit for bit and an int64 reference computed here from the unpacked codes;
//                 (b) random fp16 scales and xs: |y - y_scalar| <= 1e-5 * sum_j |term_j| (+1e-30);
//                 (c) splitting the tiles [0, T) into [0, a) + [a, T) (threads) changes no bit;
//                 (d) rows >= n and columns outside [t0, t1) keep their sentinel (ldy > n);
//                 (f) ~200 random shapes from a fixed seed;
//                 (g) the Arm kernels (neon, neondot, neoni8mm) do the scalar's float steps (q4x4_neon_tiles.h),
//                     so with random scales too their output is the scalar's bit for bit.
//   gemm_q4x4_q8b (a)-(d) and 60 random shapes with per-block activation scales xs [m, k/32].
//   gemm_f16_f32, attn_f16_f32, silu_mul_f32, fp16 conversion: bit-identical to the scalar for any m, row split and stride
//                 (test_f16.cpp).
//   quant_row_q8  (e) codes and scale bits identical to the scalar: random rows, zeros, huge values, inf/NaN,
//                     subnormals and exact .5 ties.
// Prints one line per failure (op, impl, shape, worst element) and exits 1; on success prints
// `test_kernels: <N> checks passed (<impls>)`. It also prints which implementation dispatch selects; with
// --selected it prints only that and exits (tests/cross: what EDGEKIT_KERNELS forces on each qemu CPU).
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "edgekit/dispatch.h"
#include "edgekit/kernels.h"

std::pair<int, int> run_f16_suite();    // test_f16.cpp: (checks, failures)
std::pair<int, int> run_q4x16_suite();  // test_q4x16.cpp
std::pair<int, int> run_prefix_suite();  // test_prefix_view.cpp

namespace {

// ------------------------------------------------------------------------------------------------- plumbing ---

struct Rng {  // splitmix64: fixed seeds give the same data on every ISA and emulator
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed) {}
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    int range(int lo, int hi) { return lo + (int)(next() % (uint64_t)(hi - lo + 1)); }  // inclusive
    float uniform() { return (float)((next() >> 40) * (1.0 / 16777216.0)); }            // [0, 1)
    float normal() {  // Irwin-Hall approximation is plenty for test data
        float s = 0.0f;
        for (int i = 0; i < 12; ++i) s += uniform();
        return s - 6.0f;
    }
};

int g_checks = 0, g_failures = 0;

uint32_t bits_of(float f) {
    uint32_t b;
    std::memcpy(&b, &f, sizeof b);
    return b;
}

float float_of(uint32_t b) {
    float f;
    std::memcpy(&f, &b, sizeof f);
    return f;
}

void fail(const char* op, const std::string& impl, const char* check, int64_t m, int64_t n, int64_t k,
          const std::string& detail) {
    ++g_failures;
    std::printf("FAIL %s [%s] %s M=%" PRId64 " N=%" PRId64 " K=%" PRId64 ": %s\n", op, impl.c_str(), check, m, n, k,
                detail.c_str());
}

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, f);
    std::vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return buf;
}

// ------------------------------------------------------------------------------------------- gemm problems ---

enum class Data { kRandom, kMixed, kZero, kExtreme };  // kMixed: random blocks among zero / extreme / 0-scale ones

struct Gemm {  // one problem: weights as codes and as q4x4, activations, and the exact per-block integer sums
    int64_t m, n, k, nb, tiles;
    std::vector<uint8_t> codes;  // [n, k] 0..15
    std::vector<uint8_t> qs;
    std::vector<uint16_t> d, d_one;  // random fp16 scales; all 1.0
    std::vector<int8_t> xq;
    std::vector<int32_t> xbsum;
    bool blocks;  // per-block activation scales (gemm_q4x4_q8b): xs holds [m, nb], else [m]
    const char* op;
    std::vector<float> xs, xs_one;
    std::vector<int64_t> dots;  // [m, n, nb] sum_c (q - 8) * x, the int64 reference
    std::vector<int64_t> lanes;  // [m, n, nb] sum over the four lanes of |lane sum| (the kernels' error scale)
};

uint16_t random_fp16(Rng& r) {  // normal halfs, magnitudes 2^-10 .. 2^5, either sign
    return (uint16_t)((r.next() & 1) << 15 | (uint16_t)r.range(5, 20) << 10 | (uint16_t)(r.next() & 0x3FF));
}

Gemm make_gemm(int64_t m, int64_t n, int64_t k, Data data, uint64_t seed, bool block_scales) {
    Rng r(seed);
    Gemm g;
    g.m = m, g.n = n, g.k = k, g.nb = k / EK_Q4_BLOCK, g.tiles = (n + EK_Q4X4_ROWS - 1) / EK_Q4X4_ROWS;
    g.blocks = block_scales;
    g.op = block_scales ? "gemm_q4x4_q8b" : "gemm_q4x4_q8";
    g.codes.resize(n * k);
    g.xq.resize(m * k);
    std::vector<uint16_t> drows(n * g.nb);
    for (int64_t row = 0; row < n; ++row) {
        for (int64_t j = 0; j < g.nb; ++j) {
            int kind = data == Data::kMixed ? r.range(0, 5) : 0;  // 0..2 random, 3 zero, 4 extreme, 5 zero scale
            if (data == Data::kZero) kind = 3;
            if (data == Data::kExtreme) kind = 4;
            uint16_t dd = kind == 5 ? (r.next() & 1) << 15 : random_fp16(r);  // ±0 scales too
            drows[row * g.nb + j] = dd;
            for (int c = 0; c < EK_Q4_BLOCK; ++c) {
                uint8_t q = (uint8_t)r.range(0, 15);
                if (kind == 3) q = EK_Q4_SYM_ZERO;
                if (kind == 4) q = (r.next() & 1) ? 15 : 0;
                g.codes[row * k + j * EK_Q4_BLOCK + c] = q;
            }
        }
    }
    for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < g.nb; ++j) {
            int kind = data == Data::kMixed ? r.range(0, 4) : 0;
            if (data == Data::kZero) kind = 3;
            if (data == Data::kExtreme) kind = 4;
            for (int c = 0; c < EK_Q4_BLOCK; ++c) {
                int8_t x = (int8_t)r.range(-127, 127);
                if (kind == 3) x = 0;
                if (kind == 4) x = (r.next() & 1) ? 127 : -127;
                g.xq[i * k + j * EK_Q4_BLOCK + c] = x;
            }
        }
    }
    // Q4_0 rows (group-split nibbles), then the library's own packer into q4x4
    std::vector<ek_block_q4_0> blocks(n * g.nb);
    for (int64_t row = 0; row < n; ++row) {
        for (int64_t j = 0; j < g.nb; ++j) {
            ek_block_q4_0& b = blocks[row * g.nb + j];
            b.d = drows[row * g.nb + j];
            const uint8_t* c = &g.codes[row * k + j * EK_Q4_BLOCK];
            for (int i = 0; i < EK_Q4_BLOCK / 2; ++i) b.qs[i] = (uint8_t)(c[i] | c[i + EK_Q4_BLOCK / 2] << 4);
        }
    }
    g.qs.resize(g.tiles * g.nb * EK_Q4X4_TILE_QS_BYTES);
    g.d.resize(g.tiles * g.nb * EK_Q4X4_ROWS);
    ek_pack_q4x4(blocks.data(), n, k, g.qs.data(), g.d.data());
    g.d_one.assign(g.d.size(), 0x3C00);  // padding rows get scale 1.0 too: their codes 8 still add nothing
    g.xbsum.resize(m * g.nb * 4);  // four lane sums per block (kernels.h)
    ek_lane_sums_q8(g.xq.data(), m, k, g.xbsum.data());
    g.xs.resize(block_scales ? m * g.nb : m);
    for (auto& v : g.xs) v = 0.001f + r.uniform() * 0.05f;
    g.xs_one.assign(g.xs.size(), 1.0f);
    g.dots.resize(m * n * g.nb);
    g.lanes.resize(m * n * g.nb);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t row = 0; row < n; ++row)
            for (int64_t j = 0; j < g.nb; ++j) {
                int64_t s = 0, mag = 0;
                for (int l = 0; l < 4; ++l) {  // lane l: positions 4l..4l+3 and 16+4l..16+4l+3 (kernels.h)
                    int64_t ls = 0;
                    for (int half = 0; half < 2; ++half)
                        for (int b = 0; b < 4; ++b) {
                            const int64_t pos = j * EK_Q4_BLOCK + half * (EK_Q4_BLOCK / 2) + 4 * l + b;
                            ls += (int64_t)((int)g.codes[row * k + pos] - EK_Q4_SYM_ZERO) * g.xq[i * k + pos];
                        }
                    s += ls;
                    mag += ls < 0 ? -ls : ls;
                }
                g.dots[(i * n + row) * g.nb + j] = s;
                g.lanes[(i * n + row) * g.nb + j] = mag;
            }
    return g;
}

constexpr uint32_t kSentinel = 0x7FBADBADu;  // a signalling-NaN pattern no kernel would compute
constexpr int64_t kPad = 3;                   // ldy = n + kPad

// y [m, ldy] filled with the sentinel, then the kernel over tiles [t0, t1).
std::vector<float> run_gemm(ek_gemm_q4x4_q8_fn fn, const Gemm& g, bool unit, int64_t t0, int64_t t1,
                            std::vector<float>* into = nullptr) {
    const int64_t ldy = g.n + kPad;
    std::vector<float> y;
    if (into) y = *into;
    else y.assign(g.m * ldy, float_of(kSentinel));
    const ek_q4x4 w{g.qs.data(), unit ? g.d_one.data() : g.d.data(), g.n, g.k, 0};
    fn(&w, g.xq.data(), unit ? g.xs_one.data() : g.xs.data(), g.xbsum.data(), g.m, y.data(), ldy, t0, t1);
    return y;
}

// (d): everything outside rows [4 t0, min(4 t1, n)) of every token must still be the sentinel.
void check_untouched(const char* check, const std::string& impl, const Gemm& g, const std::vector<float>& y,
                     int64_t t0, int64_t t1) {
    ++g_checks;
    const int64_t ldy = g.n + kPad;
    const int64_t lo = t0 * EK_Q4X4_ROWS, hi = std::min<int64_t>(t1 * EK_Q4X4_ROWS, g.n);
    for (int64_t i = 0; i < g.m; ++i)
        for (int64_t c = 0; c < ldy; ++c) {
            const bool inside = c >= lo && c < hi;
            if (!inside && bits_of(y[i * ldy + c]) != kSentinel) {
                return fail(g.op, impl, check, g.m, g.n, g.k,
                            fmt("wrote outside its rows: y[%" PRId64 ", %" PRId64 "] (tiles [%" PRId64 ", %" PRId64
                                "), ldy %" PRId64 ")", i, c, t0, t1, ldy));
            }
        }
}

// (a) + (b) + (c) + (d) for one implementation on one problem; `ys_*` are the scalar's outputs.
void check_gemm_impl(const std::string& impl, ek_gemm_q4x4_q8_fn fn, const Gemm& g, const std::vector<float>& ys_unit,
                     const std::vector<float>& ys_rand, Rng& r) {
    const int64_t ldy = g.n + kPad;
    // (a) exact: bit-equal to the scalar and to the int64 reference
    const std::vector<float> yu = run_gemm(fn, g, true, 0, g.tiles);
    ++g_checks;
    for (int64_t i = 0; i < g.m; ++i)
        for (int64_t c = 0; c < g.n; ++c) {
            int64_t ref = 0;
            for (int64_t j = 0; j < g.nb; ++j) ref += g.dots[(i * g.n + c) * g.nb + j];
            const float got = yu[i * ldy + c];
            if (bits_of(got) != bits_of((float)ref) || bits_of(got) != bits_of(ys_unit[i * ldy + c])) {
                fail(g.op, impl, "exact", g.m, g.n, g.k,
                     fmt("y[%" PRId64 ", %" PRId64 "] = %.9g, int64 reference %" PRId64 ", scalar %.9g", i, c,
                         (double)got, ref, (double)ys_unit[i * ldy + c]));
                i = g.m;
                break;
            }
        }
    check_untouched("padding(exact)", impl, g, yu, 0, g.tiles);

    // (b) random scales: every int32 lane is exact (checked by (a)); float rounding is relative to the lane terms
    // d * lane, so the bound is 1e-5 of the sum of their magnitudes (a zero-weight block contributes exactly 0)
    const std::vector<float> yr = run_gemm(fn, g, false, 0, g.tiles);
    ++g_checks;
    double worst = 0.0;
    int64_t wi = -1, wc = -1;
    for (int64_t i = 0; i < g.m; ++i)
        for (int64_t c = 0; c < g.n; ++c) {
            const int64_t t = c / EK_Q4X4_ROWS, rr = c % EK_Q4X4_ROWS;
            double mag = 0.0;
            for (int64_t j = 0; j < g.nb; ++j)
                mag += std::fabs((double)ek_fp16_to_fp32(g.d[(t * g.nb + j) * EK_Q4X4_ROWS + rr]) *
                                 (double)g.lanes[(i * g.n + c) * g.nb + j]) *
                       (g.blocks ? std::fabs((double)g.xs[i * g.nb + j]) : 1.0);
            if (!g.blocks) mag *= std::fabs((double)g.xs[i]);
            const double err = std::fabs((double)yr[i * ldy + c] - (double)ys_rand[i * ldy + c]);
            const double ratio = err / (1e-5 * mag + 1e-30);
            if (!(ratio <= 1.0) && !(ratio <= worst)) worst = ratio, wi = i, wc = c;  // NaN counts as worst
        }
    if (wi >= 0) {
        const double err = std::fabs((double)yr[wi * ldy + wc] - (double)ys_rand[wi * ldy + wc]);
        fail(g.op, impl, "tolerance", g.m, g.n, g.k,
             fmt("worst y[%" PRId64 ", %" PRId64 "] = %.9g vs scalar %.9g (%.3g x the bound, error %.3g)", wi, wc,
                 (double)yr[wi * ldy + wc], (double)ys_rand[wi * ldy + wc], worst, err));
    }
    check_untouched("padding(random)", impl, g, yr, 0, g.tiles);

    // (c) + (d): two calls over [0, a) and [a, T) give the same bits; the first alone touches only its rows
    const int64_t a = g.tiles > 1 ? r.range(1, (int)g.tiles - 1) : r.range(0, 1) * g.tiles;
    std::vector<float> part = run_gemm(fn, g, false, 0, a);
    check_untouched("padding(split)", impl, g, part, 0, a);
    part = run_gemm(fn, g, false, a, g.tiles, &part);
    ++g_checks;
    if (std::memcmp(part.data(), yr.data(), yr.size() * sizeof(float)) != 0) {
        for (size_t e = 0; e < yr.size(); ++e)
            if (bits_of(part[e]) != bits_of(yr[e])) {
                fail(g.op, impl, "split", g.m, g.n, g.k,
                     fmt("tiles [0,%" PRId64 ")+[%" PRId64 ",%" PRId64 "): y[%zu, %zu] = %.9g vs one call %.9g", a, a,
                         g.tiles, e / (size_t)ldy, e % (size_t)ldy, (double)part[e], (double)yr[e]));
                break;
            }
    }
}

struct Impl {
    std::string name;
    ek_gemm_q4x4_q8_fn fn;
};

void check_gemm(const std::vector<Impl>& impls, int64_t m, int64_t n, int64_t k, Data data, uint64_t seed,
                bool blocks = false) {
    const Gemm g = make_gemm(m, n, k, data, seed, blocks);
    Rng r(seed ^ 0xC0FFEEull);
    const ek_gemm_q4x4_q8_fn scalar = impls[0].fn;  // implementations() lists scalar first
    const std::vector<float> ys_unit = run_gemm(scalar, g, true, 0, g.tiles);
    const std::vector<float> ys_rand = run_gemm(scalar, g, false, 0, g.tiles);
    for (const Impl& impl : impls) check_gemm_impl(impl.name, impl.fn, g, ys_unit, ys_rand, r);
    // (g) the neon family: the scalar's bits with random scales
    for (const Impl& impl : impls) {
        if (impl.name.rfind("neon", 0) != 0) continue;
        ++g_checks;
        const std::vector<float> y = run_gemm(impl.fn, g, false, 0, g.tiles);
        for (size_t e = 0; e < y.size(); ++e)
            if (bits_of(y[e]) != bits_of(ys_rand[e])) {
                fail(g.op, impl.name, "scalar bits", g.m, g.n, g.k,
                     fmt("y[%zu, %zu] = %.9g vs scalar %.9g", e / (size_t)(g.n + kPad), e % (size_t)(g.n + kPad),
                         (double)y[e], (double)ys_rand[e]));
                break;
            }
    }
}

// ------------------------------------------------------------------------------------------- quant_row_q8 -----

void check_quant(const std::string& impl, ek_quant_row_q8_fn fn, const std::vector<float>& x, int64_t m, int64_t k,
                 int qmax, const char* what) {
    std::vector<int8_t> q0(m * k, 99), q1(m * k, 99);
    std::vector<float> s0(m, -1.0f), s1(m, -1.0f);
    ek_quant_row_q8__scalar(x.data(), m, k, qmax, q0.data(), s0.data());
    fn(x.data(), m, k, qmax, q1.data(), s1.data());
    ++g_checks;
    for (int64_t e = 0; e < m * k; ++e)
        if (q0[e] != q1[e])
            return fail("quant_row_q8", impl, what, m, 0, k,
                        fmt("qmax %d: code[%" PRId64 ", %" PRId64 "] = %d vs scalar %d (x = %.9g)", qmax, e / k, e % k,
                            q1[e], q0[e], (double)x[e]));
    for (int64_t i = 0; i < m; ++i)
        if (bits_of(s0[i]) != bits_of(s1[i]))
            return fail("quant_row_q8", impl, what, m, 0, k,
                        fmt("qmax %d: scale[%" PRId64 "] bits %08x vs scalar %08x", qmax, i, bits_of(s1[i]),
                            bits_of(s0[i])));
}

void quant_suite(const std::string& impl, ek_quant_row_q8_fn fn) {
    Rng r(0x5EED0001ull);
    const int64_t ks[] = {1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 100, 576, 1536, 4099};
    for (int qmax : {127, 7}) {
        for (int64_t k : ks) {
            const int64_t m = 5;
            std::vector<float> x(m * k);
            for (auto& v : x) v = r.normal() * 3.0f;
            check_quant(impl, fn, x, m, k, qmax, "random");
            std::fill(x.begin(), x.end(), 0.0f);
            x[0] = -0.0f;
            check_quant(impl, fn, x, m, k, qmax, "zeros");
            for (auto& v : x) v = (r.next() & 1 ? 1.0f : -1.0f) * std::ldexp(1.0f + r.uniform(), r.range(100, 127));
            check_quant(impl, fn, x, m, k, qmax, "huge");
            for (auto& v : x) v = float_of((uint32_t)(r.next() & 0x807FFFFFu));  // subnormals: inv becomes inf
            check_quant(impl, fn, x, m, k, qmax, "subnormal");
            // ties: one element is ±qmax so inv = 1 exactly, the others are n + 0.5
            for (int64_t i = 0; i < m; ++i)
                for (int64_t c = 0; c < k; ++c)
                    x[i * k + c] = c == (i * 7) % k ? (i & 1 ? -(float)qmax : (float)qmax)
                                                    : (float)r.range(-qmax, qmax - 1) + 0.5f;
            check_quant(impl, fn, x, m, k, qmax, "ties");
            // non-finite: row 0 has a NaN, row 1 an inf, row 2 both, rows 3-4 ±inf only at the end (tails)
            for (auto& v : x) v = r.normal();
            x[(k - 1) / 2] = NAN;
            x[1 * k + (k - 1) / 3] = INFINITY;
            x[2 * k] = -INFINITY;
            x[2 * k + k - 1] = -NAN;
            x[3 * k + k - 1] = INFINITY;
            x[4 * k + k - 1] = -INFINITY;
            check_quant(impl, fn, x, m, k, qmax, "nonfinite");
        }
    }
}

// ------------------------------------------------------------------------------------------------- main -------

std::string joined(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    const bool only_selected = argc > 1 && std::strcmp(argv[1], "--selected") == 0;
    try {
        const std::vector<std::string> gemm_names = edgekit::implementations("gemm_q4x4_q8");
        std::vector<std::string> quant_names = edgekit::implementations("quant_row_q8");
        for (const char* op : {"quant_row_q8", "gemm_q4x4_q8", "gemm_q4x4_q8b"}) {
            try {
                std::printf("selected %s: %s\n", op, edgekit::selected(op).c_str());
            } catch (const std::exception& e) {
                std::printf("selected %s: error (%s)\n", op, e.what());
            }
        }
        std::printf("implementations: gemm_q4x4_q8 [%s], quant_row_q8 [%s]\n", joined(gemm_names).c_str(),
                    joined(quant_names).c_str());
        if (only_selected) return 0;
        if (gemm_names.empty() || gemm_names[0] != "scalar" || quant_names.empty() || quant_names[0] != "scalar") {
            std::printf("FAIL dispatch: the scalar implementation must come first\n");
            return 1;
        }

        // quant_row_q8 (e)
        for (const auto& name : quant_names) quant_suite(name, edgekit::kernel<edgekit::Op::quant_row_q8>(name));

        // gemm_q4x4_q8 (a)-(d) over the shape sweep; the cost cap keeps the scalar passes affordable under qemu
        std::vector<Impl> impls;
        for (const auto& name : gemm_names) impls.push_back({name, edgekit::kernel<edgekit::Op::gemm_q4x4_q8>(name)});
        const int64_t Ks[] = {32, 64, 96, 576, 1536, 4096};
        const int64_t Ns[] = {1, 7, 8, 9, 1071};
        const int64_t Ms[] = {1, 3, 33, 128};
        uint64_t seed = 1;
        for (int64_t k : Ks)
            for (int64_t n : Ns)
                for (int64_t m : Ms) {
                    const double cost = (double)m * (double)n * (double)k;
                    if (cost > 6e7 && m > 3) continue;  // e.g. N=1071, K=4096 only with M in {1, 3}
                    check_gemm(impls, m, n, k, Data::kRandom, seed++);
                    if (cost <= 2e6) check_gemm(impls, m, n, k, Data::kMixed, seed++);
                    if (cost <= 2e5) {
                        check_gemm(impls, m, n, k, Data::kZero, seed++);
                        check_gemm(impls, m, n, k, Data::kExtreme, seed++);
                    }
                }
        // (f) fuzz: random small shapes, mixed block kinds
        Rng fz(0xF022ull);
        for (int it = 0; it < 200; ++it) {
            const int64_t m = fz.range(1, 9), n = fz.range(1, 70), k = EK_Q4_BLOCK * fz.range(1, 24);
            check_gemm(impls, m, n, k, it % 3 == 0 ? Data::kRandom : Data::kMixed, 0xF000ull + it);
        }

        // gemm_q4x4_q8b (per-block activation scales): the same checks on a lighter sweep (the kernels share
        // their code with gemm_q4x4_q8; what differs is where the scales enter)
        std::vector<Impl> bimpls;
        const std::vector<std::string> bnames = edgekit::implementations("gemm_q4x4_q8b");
        if (bnames != gemm_names) {
            std::printf("FAIL dispatch: gemm_q4x4_q8b [%s] must have gemm_q4x4_q8's implementations [%s]\n",
                        joined(bnames).c_str(), joined(gemm_names).c_str());
            return 1;
        }
        for (const auto& name : bnames) bimpls.push_back({name, edgekit::kernel<edgekit::Op::gemm_q4x4_q8b>(name)});
        for (int64_t k : Ks)
            for (int64_t n : Ns)
                for (int64_t m : Ms) {
                    const double cost = (double)m * (double)n * (double)k;
                    if (cost > 2e6) continue;
                    check_gemm(bimpls, m, n, k, Data::kRandom, seed++, true);
                    if (cost <= 2e5) check_gemm(bimpls, m, n, k, Data::kMixed, seed++, true);
                }
        for (int it = 0; it < 60; ++it) {
            const int64_t m = fz.range(1, 9), n = fz.range(1, 70), k = EK_Q4_BLOCK * fz.range(1, 24);
            check_gemm(bimpls, m, n, k, Data::kMixed, 0xB000ull + it, true);
        }

        // gemm_f16_f32 / attn_f16_f32 / silu_mul_f32 / fp16 conversion (test_f16.cpp)
        const auto f16 = run_f16_suite();
        g_checks += f16.first;
        g_failures += f16.second;
        // gemm_q4x16_q8 / _q8b and the regrouping (test_q4x16.cpp)
        const auto x16 = run_q4x16_suite();
        g_checks += x16.first;
        g_failures += x16.second;
        // every int4 matmul on prefix views (ek_q4x4.ldb; test_prefix_view.cpp)
        const auto pre = run_prefix_suite();
        g_checks += pre.first;
        g_failures += pre.second;

        if (g_failures) {
            std::printf("test_kernels: %d of %d checks FAILED\n", g_failures, g_checks);
            return 1;
        }
        std::printf("test_kernels: %d checks passed (gemm_q4x4_q8: %s; quant_row_q8: %s)\n", g_checks,
                    joined(gemm_names).c_str(), joined(quant_names).c_str());
        return 0;
    } catch (const std::exception& e) {
        std::printf("FAIL test_kernels: %s\n", e.what());
        return 1;
    }
}
