// acm_choose (acm.h): the ACM gate per token, in float32 with one fixed summation order per row.
#include "edgekit/acm.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "edgekit/threadpool.h"

namespace edgekit {

void acm_set_fc1(AcmGate& g, const float* w) {
    g.w1.resize((size_t)g.hidden * g.dim);
    for (int j = 0; j < g.hidden; ++j)
        for (int c = 0; c < g.dim; ++c) g.w1[(size_t)c * g.hidden + j] = w[(size_t)j * g.dim + c];
}

void acm_choose(const AcmGate& g, const float* x, int n, float gate_bias, int32_t* k) {
    if (!g.enabled()) throw std::invalid_argument("acm_choose: the layer has no gate");
    const int d = g.dim, hid = g.hidden, nk = g.n + 1;
    // ~40k multiply-adds per row: a few rows per task amortize the pool's wake-up
    parallel_for(n, 8, [&](int64_t b, int64_t e) {
        std::vector<float> h((size_t)hid);
        for (int64_t i = b; i < e; ++i) {
            const float* xi = x + i * d;
            // unit j sums w[j, c] * x[c] for c = 0, 1, ... in order; the inner loop runs across units (SIMD lanes)
            std::fill(h.begin(), h.end(), 0.0f);
            for (int c = 0; c < d; ++c) {
                const float* w = g.w1.data() + (int64_t)c * hid;
                const float xc = xi[c];
                for (int j = 0; j < hid; ++j) h[j] += w[j] * xc;
            }
            for (int j = 0; j < hid; ++j) {
                const float v = h[j] + g.b1[j];
                h[j] = 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f));
            }
            int best = 0;
            float best_z = 0.0f;
            for (int kk = 0; kk < nk; ++kk) {
                const float* w = g.w2.data() + (int64_t)kk * hid;
                float s = 0.0f;
                for (int j = 0; j < hid; ++j) s += w[j] * h[j];
                float z = s + g.b2[kk];
                if (gate_bias != 0.0f) z += gate_bias * (float)kk / (float)g.n;
                if (kk == 0 || z > best_z) best = kk, best_z = z;  // NaN never wins: the first index stays
            }
            k[i] = best;
        }
    });
}

}  // namespace edgekit
