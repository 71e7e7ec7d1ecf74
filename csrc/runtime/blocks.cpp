// blocks.h: the shared steps of the runtime's graphs.
#include "edgekit/blocks.h"

#include <cmath>
#include <stdexcept>
#include <vector>

#include "edgekit/dispatch.h"
#include "edgekit/linear.h"
#include "edgekit/threadpool.h"

namespace edgekit {

// Rows of the LM head per parallel task: ~150 KB of fp16 weights, enough to amortize the pool's wake-up.
constexpr int64_t kHeadGrain = 128;

void check(bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument("runtime model: " + what);
}

void check_weight(const Q4Weight& w, int64_t n, int64_t k, const std::string& name) {
    // either layout: the loader makes the one preferred here (q4x16 on AVX-512 VNNI), a test may give q4x4
    check(w.rows == EK_Q4X4_ROWS || w.rows == EK_Q4X16_ROWS, name + ": layout must be q4x4 or q4x16");
    const int64_t units = (n + w.rows - 1) / w.rows, nb = k / EK_Q4_BLOCK;
    check(w.n == n && w.k == k && k % EK_Q4_BLOCK == 0, name + " must be [" + std::to_string(n) + ", " +
                                                            std::to_string(k) + "], got [" + std::to_string(w.n) +
                                                            ", " + std::to_string(w.k) + "]");
    check((int64_t)w.qs.size() == units * nb * w.rows * (EK_Q4_BLOCK / 2) && (int64_t)w.d.size() == units * nb * w.rows,
          name + ": packed arrays do not match its shape");
}

void rms_norm(const float* x, const float* w, int n, int dim, float eps, float* out) {
    parallel_for(n, kRowGrain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
            const float* xi = x + i * dim;
            // torch's float sqrt is not correctly rounded: double, rounded once, is what every libm agrees on.
            // Eight partial sums in a fixed order (one serial chain of double adds was 3 % of a prefill); the
            // squares are exact in double, so the order moves the float result only in the last double bits
            double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            int c = 0;
            for (; c + 8 <= dim; c += 8) {
                for (int j = 0; j < 8; ++j) part[j] += (double)xi[c + j] * (double)xi[c + j];
            }
            for (int j = 0; c < dim; ++c, ++j) part[j] += (double)xi[c] * (double)xi[c];
            const double ss = ((part[0] + part[4]) + (part[2] + part[6])) + ((part[1] + part[5]) + (part[3] + part[7]));
            const float ms = (float)(ss / dim);
            const float inv = (float)(1.0 / std::sqrt((double)(ms + eps)));
            for (int d = 0; d < dim; ++d) out[i * dim + d] = w[d] * (xi[d] * inv);
        }
    });
}

void add_inplace(float* x, const float* y, int64_t n) {
    parallel_for(n, kElemGrain, [&](int64_t b, int64_t e) {
        for (int64_t c = b; c < e; ++c) x[c] += y[c];
    });
}

void linear(const Q4Weight& w, const ek_q4x4& v, const float* x, int n, float* y) {
    switch (w.act) {
        case ActQuant::kPerTensor: linear_q4x4_static(v, x, n, w.act_scale, y, w.rows); break;
        case ActQuant::kPerBlock: linear_q4x4_blocks(v, x, n, y, nullptr, nullptr, w.rows); break;
        case ActQuant::kPerToken: linear_q4x4(v, x, n, nullptr, y, nullptr, nullptr, w.rows); break;
    }
}

void linear(const Q4Weight& w, const float* x, int n, float* y) { linear(w, w.view(), x, n, y); }

void linears(const float* x, int n, const Q4Weight& a, const ek_q4x4& va, float* ya, const Q4Weight& b,
             const ek_q4x4& vb, float* yb, const Q4Weight* c, const ek_q4x4* vc, float* yc) {
    const bool shared = a.act == ActQuant::kPerBlock && b.act == a.act && b.rows == a.rows && vb.k == va.k &&
                        (!c || (c->act == a.act && c->rows == a.rows && vc->k == va.k));
    if (!shared) {
        linear(a, va, x, n, ya);
        linear(b, vb, x, n, yb);
        if (c) linear(*c, *vc, x, n, yc);
        return;
    }
    const ek_q4x4 ws[3] = {va, vb, c ? *vc : ek_q4x4{}};
    float* const ys[3] = {ya, yb, yc};
    linear_q4x4_blocks_multi(ws, ys, c ? 3 : 2, x, n, a.rows);
}

void set_q4x16(Q4Weight& w, const ek_q4x4& v) {
    const int64_t groups = (w.n + EK_Q4X16_ROWS - 1) / EK_Q4X16_ROWS, nb = w.k / EK_Q4_BLOCK;
    WeightVec<uint8_t> qs((size_t)(groups * nb * EK_Q4X16_GROUP_QS_BYTES));
    WeightVec<uint16_t> d((size_t)(groups * nb * EK_Q4X16_ROWS));
    ek_pack_q4x16(&v, qs.data(), d.data());  // into new arrays first: v may view w's own
    w.qs = std::move(qs);
    w.d = std::move(d);
    w.rows = EK_Q4X16_ROWS;
}

void regroup_q4x16(Q4Weight& w) {
    if (w.rows == EK_Q4X16_ROWS) return;  // loaded so (load_llama.cpp: q4_weight)
    set_q4x16(w, w.view());
}

void embed_rows(const Q8Table& q8, const std::vector<uint16_t>& table16, int64_t h, const int32_t* tokens, int n,
                float* x) {
    for (int i = 0; i < n; ++i) {
        if (!q8.q.empty()) {
            const int8_t* e = q8.q.data() + (int64_t)tokens[i] * h;
            const uint16_t* ed = q8.d.data() + (int64_t)tokens[i] * (h / 32);
            for (int64_t c = 0; c < h; ++c) x[i * h + c] = (float)e[c] * ek_fp16_to_fp32(ed[c / 32]);
        } else {
            const uint16_t* e = table16.data() + (int64_t)tokens[i] * h;
            for (int64_t c = 0; c < h; ++c) x[i * h + c] = ek_fp16_to_fp32(e[c]);
        }
    }
}

void head_logits(const Q8Table& q8, const uint16_t* table16, int vocab, int64_t h, const float* xn, int rows,
                 float* logits) {
    if (!q8.q.empty() && q8.act8) {
        // the rows quantized once per call, each block of 32 on its own (GGUF Q8_0's blocking), then integer dots
        static const ek_quant_row_q8_fn quant_fn = kernel<Op::quant_row_q8>();
        static const ek_gemm_q8_0_q8b_fn q8b_fn = kernel<Op::gemm_q8_0_q8b>();
        thread_local std::vector<int8_t> xq;
        thread_local std::vector<float> xs;
        xq.resize((size_t)(rows * h));
        xs.resize((size_t)(rows * h / 32));
        quant_fn(xn, rows * h / 32, 32, EK_Q8_ROW_QMAX, xq.data(), xs.data());
        const int8_t* q = q8.q.data();
        const uint16_t* d = q8.d.data();
        const int8_t* xqp = xq.data();
        const float* xsp = xs.data();
        parallel_for(vocab, kHeadGrain,
                     [&](int64_t b, int64_t e) { q8b_fn(q, d, h, xqp, xsp, rows, h, logits, vocab, b, e); });
        return;
    }
    if (!q8.q.empty()) {
        static const ek_gemm_q8_0_f32_fn q8_fn = kernel<Op::gemm_q8_0_f32>();
        const int8_t* q = q8.q.data();
        const uint16_t* d = q8.d.data();
        parallel_for(vocab, kHeadGrain,
                     [&](int64_t b, int64_t e) { q8_fn(q, d, h, xn, h, rows, h, logits, vocab, b, e); });
        return;
    }
    static const ek_gemm_f16_f32_fn head_fn = kernel<Op::gemm_f16_f32>();
    parallel_for(vocab, kHeadGrain,
                 [&](int64_t b, int64_t e) { head_fn(table16, h, xn, h, rows, h, logits, vocab, b, e); });
}

}  // namespace edgekit
