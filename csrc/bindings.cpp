// Python bindings of the native module `edgekit._C`: the only file that includes pybind11, and nothing but bindings.
//
// Each kernel is exposed twice over one function: `impl=""` takes the dispatched implementation, and a named
// `impl` runs exactly that one, so the tests can compare every ISA compiled on the machine with the numpy
// reference. Inputs are validated here (dtype, rank, layout) and the GIL is released around the kernel; the code
// they run lives in csrc/kernels and csrc/runtime.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "edgekit/acm.h"
#include "edgekit/artifact.h"
#include "edgekit/attention.h"
#include "edgekit/dispatch.h"
#include "edgekit/formats.h"
#include "edgekit/linear.h"
#include "edgekit/llama.h"
#include "edgekit/load_llama.h"
#include "edgekit/packed_q4.h"
#include "edgekit/weight_arena.h"
#include "edgekit/roofline.h"
#include "edgekit/t5.h"
#include "edgekit/threadpool.h"
#include "edgekit/tokenizer.h"
#include "edgekit/unicode.h"

namespace py = pybind11;

namespace {

// Checks that `a` is a 2-D C-contiguous float32 array and returns (rows, cols); raises ValueError otherwise.
std::pair<int64_t, int64_t> check_matrix_f32(const py::array& a, const char* what) {
    if (!a.dtype().is(py::dtype::of<float>())) {
        throw py::value_error(std::string(what) + " must be float32, got " + std::string(py::str(a.dtype())));
    }
    if (a.ndim() != 2) {
        throw py::value_error(std::string(what) + " must be 2-D [M, K], got " + std::to_string(a.ndim()) + "-D");
    }
    if (!(a.flags() & py::array::c_style)) {
        throw py::value_error(std::string(what) + " must be C-contiguous (use np.ascontiguousarray)");
    }
    return {static_cast<int64_t>(a.shape(0)), static_cast<int64_t>(a.shape(1))};
}

py::tuple quant_row_q8(const py::array& x, int qmax, const std::string& impl) {
    const auto [m, k] = check_matrix_f32(x, "x");
    if (qmax < 1 || qmax > 127) {
        throw py::value_error("qmax must lie in 1..127, got " + std::to_string(qmax));
    }
    // resolve before allocating: unknown / unsupported impl → ValueError, EDGEKIT_KERNELS problems → RuntimeError
    const ek_quant_row_q8_fn fn = edgekit::kernel<edgekit::Op::quant_row_q8>(impl);

    py::array_t<int8_t> codes({m, k});
    py::array_t<float> scales(m);
    const float* src = static_cast<const float*>(x.data());
    int8_t* q = codes.mutable_data();
    float* s = scales.mutable_data();
    {
        py::gil_scoped_release nogil;
        fn(src, m, k, qmax, q, s);
    }
    return py::make_tuple(codes, scales);
}

template <typename T>
const T* checked(const py::array& a, const char* what, int ndim, const char* dtype_name) {
    if (!a.dtype().is(py::dtype::of<T>())) {
        throw py::value_error(std::string(what) + " must be " + dtype_name + ", got " + std::string(py::str(a.dtype())));
    }
    if (a.ndim() != ndim) {
        throw py::value_error(std::string(what) + " must be " + std::to_string(ndim) + "-D, got " +
                              std::to_string(a.ndim()) + "-D");
    }
    if (!(a.flags() & py::array::c_style)) {
        throw py::value_error(std::string(what) + " must be C-contiguous (use np.ascontiguousarray)");
    }
    return static_cast<const T*>(a.data());
}

// Keeps the numpy arrays a PackedQ4 views alive; dropped with the GIL held (whichever copy goes last).
std::shared_ptr<const void> keep_alive(py::array qs, py::array d) {
    using Held = std::pair<py::array, py::array>;
    return std::shared_ptr<const void>(new Held(std::move(qs), std::move(d)), [](Held* held) {
        py::gil_scoped_acquire gil;
        delete held;
    });
}

// PackedQ4 over the caller's arrays, without a copy: n, k and rows are checked first, then the arrays.
edgekit::PackedQ4 make_packed_q4(py::array qs, py::array d, int64_t n, int64_t k, int rows) {
    edgekit::PackedQ4::layout_sizes(n, k, rows);
    const uint8_t* q = checked<uint8_t>(qs, "qs", 1, "uint8");
    const uint16_t* s = checked<uint16_t>(d, "d", 1, "uint16");
    const int64_t qs_bytes = qs.shape(0), scales = d.shape(0);
    return edgekit::PackedQ4(q, qs_bytes, s, scales, n, k, rows, keep_alive(std::move(qs), std::move(d)));
}

std::string k_mismatch(const char* what, int64_t got, int64_t k) {
    return std::string(what) + " has K=" + std::to_string(got) + " columns, the weight has K=" + std::to_string(k);
}

py::array_t<float> packed_gemm(const edgekit::PackedQ4& w, const py::array& xq, const py::array& xs,
                               const std::string& impl, bool int4) {
    const int8_t* q = checked<int8_t>(xq, "xq", 2, "int8");
    const bool per_block = xs.ndim() == 2;  // [m, k/32]: per-block activation scales (op gemm_q4x4_q8b)
    const float* s = checked<float>(xs, "xs", per_block ? 2 : 1, "float32");
    const int64_t m = xq.shape(0);
    if (xq.shape(1) != w.k()) throw py::value_error(k_mismatch("xq", xq.shape(1), w.k()));
    if (xs.shape(0) != m) throw py::value_error("xs must have one scale (or one row of block scales) per row of xq");
    if (per_block && xs.shape(1) != w.k() / EK_Q4_BLOCK) {
        throw py::value_error("2-D xs must hold k/32 = " + std::to_string(w.k() / EK_Q4_BLOCK) +
                              " block scales per row");
    }
    py::array_t<float> y({m, w.n()});
    float* out = y.mutable_data();
    {
        py::gil_scoped_release nogil;
        w.gemm(q, s, m, per_block, int4, impl, out);
    }
    return y;
}

py::array_t<float> packed_linear(const edgekit::PackedQ4& w, const py::array& x, const py::object& qmax,
                                 const std::string& impl, bool per_block) {
    const float* src = checked<float>(x, "x", 2, "float32");
    const int64_t m = x.shape(0);
    if (x.shape(1) != w.k()) throw py::value_error(k_mismatch("x", x.shape(1), w.k()));
    if (per_block && !qmax.is_none()) {
        throw py::value_error("per_block=True quantizes every block to int8: qmax must be None");
    }
    py::array_t<int32_t> rows;
    const int32_t* qrows = nullptr;
    if (!qmax.is_none()) {
        rows = py::array_t<int32_t, py::array::c_style | py::array::forcecast>::ensure(qmax);
        if (!rows || rows.ndim() != 1 || rows.shape(0) != m) {
            throw py::value_error("qmax must be None or an int array with one entry per row of x");
        }
        for (int64_t i = 0; i < m; ++i) {
            if (rows.at(i) < 1 || rows.at(i) > 127) throw py::value_error("qmax entries must lie in 1..127");
        }
        qrows = rows.data();
    }
    py::array_t<float> y({m, w.n()});
    float* out = y.mutable_data();
    {
        py::gil_scoped_release nogil;
        w.linear(src, m, qrows, per_block, impl, out);
    }
    return y;
}

py::tuple pack_q4x4(const py::array& rows, int64_t n, int64_t k) {
    const uint8_t* src = checked<uint8_t>(rows, "rows", 1, "uint8");
    if (k % EK_Q4_BLOCK || n <= 0) throw py::value_error("pack_q4x4 needs n > 0 and k a multiple of 32");
    const int64_t nb = k / EK_Q4_BLOCK, tiles = (n + EK_Q4X4_ROWS - 1) / EK_Q4X4_ROWS;
    if (rows.nbytes() != n * nb * (int64_t)sizeof(ek_block_q4_0)) {
        throw py::value_error("rows must hold n * k / 32 Q4_0 blocks of 18 bytes");
    }
    py::array_t<uint8_t> qs(tiles * nb * EK_Q4X4_TILE_QS_BYTES);
    py::array_t<uint16_t> d(tiles * nb * EK_Q4X4_ROWS);
    ek_pack_q4x4(reinterpret_cast<const ek_block_q4_0*>(src), n, k, qs.mutable_data(), d.mutable_data());
    return py::make_tuple(qs, d);
}

// Per-block activation quantization (one scale per 32 consecutive values, as GGUF Q8_0 and ORT's accuracy level 4
// do): the same rounding rule applied to every block, i.e. the row quantizer over [m * k / 32, 32].
py::tuple quant_block_q8(const py::array& x, int qmax, const std::string& impl) {
    const auto [m, k] = check_matrix_f32(x, "x");
    if (k % EK_Q4_BLOCK) throw py::value_error("quant_block_q8 needs K a multiple of 32, got " + std::to_string(k));
    if (qmax < 1 || qmax > 127) throw py::value_error("qmax must lie in 1..127, got " + std::to_string(qmax));
    const ek_quant_row_q8_fn fn = edgekit::kernel<edgekit::Op::quant_row_q8>(impl);
    py::array_t<int8_t> codes({m, k});
    py::array_t<float> scales({m, k / EK_Q4_BLOCK});
    const float* src = static_cast<const float*>(x.data());
    int8_t* q = codes.mutable_data();
    float* s = scales.mutable_data();
    {
        py::gil_scoped_release nogil;
        edgekit::quant_blocks_q8(src, m, k, qmax, q, s, fn);
    }
    return py::make_tuple(codes, scales);
}

// The engine straight from an .ekq file (csrc/runtime/load_llama.cpp): no torch, the file memory-mapped.
std::unique_ptr<edgekit::LlamaModel> load_llama(const std::string& path, int max_ctx) {
    try {
        py::gil_scoped_release nogil;
        return edgekit::load_llama(path, max_ctx);
    } catch (const edgekit::ArtifactError& e) {
        throw py::value_error(e.what());
    } catch (const std::invalid_argument& e) {
        throw py::value_error(e.what());
    }
}

// The T5 encoder-decoder from a T5 artifact (csrc/runtime/load_t5.cpp).
std::unique_ptr<edgekit::T5Model> load_t5(const std::string& path, int max_ctx) {
    try {
        py::gil_scoped_release nogil;
        return edgekit::load_t5(path, max_ctx);
    } catch (const edgekit::ArtifactError& e) {
        throw py::value_error(e.what());
    } catch (const std::invalid_argument& e) {
        throw py::value_error(e.what());
    }
}

py::array_t<int32_t, py::array::c_style | py::array::forcecast> token_array(const py::array& tokens) {
    auto t = py::array_t<int32_t, py::array::c_style | py::array::forcecast>::ensure(tokens);
    if (!t || t.ndim() != 1 || t.shape(0) == 0) throw py::value_error("tokens must be a non-empty 1-D int array");
    return t;
}

void t5_encode(edgekit::T5Model& m, const py::array& tokens) {
    const auto t = token_array(tokens);
    try {
        py::gil_scoped_release nogil;
        m.encode(t.data(), (int)t.shape(0));
    } catch (const std::invalid_argument& e) {
        throw py::value_error(e.what());
    }
}

py::array_t<float> t5_eval(edgekit::T5Model& m, const py::array& tokens, bool all_logits) {
    const auto t = token_array(tokens);
    const int n = (int)t.shape(0), vocab = m.config().vocab;
    py::array_t<float> out = all_logits ? py::array_t<float>({(int64_t)n, (int64_t)vocab})
                                        : py::array_t<float>((int64_t)vocab);
    float* o = out.mutable_data();
    try {
        py::gil_scoped_release nogil;
        m.eval(t.data(), n, o, all_logits);
    } catch (const std::invalid_argument& e) {
        throw py::value_error(e.what());
    }
    return out;
}

// The C++ tokenizer (tokenizer.h) from a tokenizer.json text or an artifact; ValueError with the reason.
std::unique_ptr<edgekit::Tokenizer> tokenizer_from_json(const std::string& text) {
    try {
        return edgekit::Tokenizer::from_json(text, "tokenizer.json");
    } catch (const edgekit::ArtifactError& e) {
        throw py::value_error(e.what());
    }
}

std::unique_ptr<edgekit::Tokenizer> tokenizer_from_artifact(const std::string& path) {
    try {
        const edgekit::Artifact a(path);
        return edgekit::Tokenizer::from_artifact(a);
    } catch (const edgekit::ArtifactError& e) {
        throw py::value_error(e.what());
    }
}

// Many texts at once (the fuzz test's 10^4 strings in one call); ValueError for text that is not UTF-8.
std::vector<std::vector<int32_t>> tokenizer_encode_batch(const edgekit::Tokenizer& t, const std::vector<std::string>& texts,
                                                         bool add_special) {
    std::vector<std::vector<int32_t>> out;
    out.reserve(texts.size());
    try {
        for (const std::string& s : texts) out.push_back(t.encode(s, add_special));
    } catch (const std::invalid_argument& e) {
        throw py::value_error(e.what());
    }
    return out;
}

std::vector<std::string> tokenizer_decode_batch(const edgekit::Tokenizer& t,
                                                const std::vector<std::vector<int32_t>>& ids, bool skip_special) {
    std::vector<std::string> out;
    out.reserve(ids.size());
    try {
        for (const auto& v : ids) out.push_back(t.decode(v.data(), v.size(), skip_special));
    } catch (const std::invalid_argument& e) {
        throw py::value_error(e.what());
    }
    return out;
}

py::array_t<float> llama_eval(edgekit::LlamaModel& m, const py::array& tokens, bool all_logits) {
    auto t = py::array_t<int32_t, py::array::c_style | py::array::forcecast>::ensure(tokens);
    if (!t || t.ndim() != 1 || t.shape(0) == 0) throw py::value_error("tokens must be a non-empty 1-D int array");
    const int n = (int)t.shape(0);
    const int vocab = m.config().vocab;
    py::array_t<float> out = all_logits ? py::array_t<float>({(int64_t)n, (int64_t)vocab})
                                        : py::array_t<float>((int64_t)vocab);
    float* o = out.mutable_data();
    const int32_t* ids = t.data();
    try {
        py::gil_scoped_release nogil;
        m.eval(ids, n, o, all_logits);
    } catch (const std::invalid_argument& e) {
        throw py::value_error(e.what());
    }
    return out;
}

void set_pruning(edgekit::LlamaModel& m, float ratio, const std::vector<int>& layers, int keep_last) {
    try {
        m.set_pruning(edgekit::PruneSchedule{ratio, layers, keep_last});
    } catch (const std::invalid_argument& e) {
        throw py::value_error(e.what());
    }
}

int prune_keep_count(int n0, float ratio, int j, int m, int keep_last) {
    if (j < 1 || j > m || n0 < 1) throw py::value_error("need n0 >= 1 and 1 <= j <= m");
    return edgekit::prune_keep_count(n0, ratio, j, m, keep_last);
}

std::vector<int> prune_select(const py::array& score, const py::array& orig, int n0, int keep_last, int n_keep) {
    auto sc = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(score);
    auto og = py::array_t<int32_t, py::array::c_style | py::array::forcecast>::ensure(orig);
    if (!sc || !og || sc.ndim() != 1 || og.ndim() != 1 || sc.shape(0) != og.shape(0))
        throw py::value_error("score and orig must be 1-D arrays of one length");
    std::vector<int> keep;
    edgekit::prune_select(sc.data(), og.data(), (int)sc.shape(0), n0, keep_last, n_keep, keep);
    return keep;
}

py::tuple get_pruning(const edgekit::LlamaModel& m) {
    const auto& s = m.pruning();
    return py::make_tuple(s.ratio, s.layers, s.keep_last);
}

void set_acm(edgekit::LlamaModel& m, float gate_bias, int force_k) {
    try {
        m.set_acm(edgekit::AcmControl{gate_bias, force_k});
    } catch (const std::invalid_argument& e) {
        throw py::value_error(e.what());
    }
}

// [layers, N + 1] tokens per k since the last reset (an empty [0, 0] array without ACM)
py::array_t<int64_t> acm_counts(const edgekit::LlamaModel& m) {
    const int64_t nk = m.acm_learners() ? m.acm_learners() + 1 : 0, layers = nk ? m.config().n_layers : 0;
    py::array_t<int64_t> out({layers, nk});
    std::copy(m.acm_counts().begin(), m.acm_counts().end(), out.mutable_data());
    return out;
}

// The runtime's ACM gate decisions for rows x [n, dim] (acm.h: acm_choose), for the PyTorch kernel path.
py::array_t<int32_t> acm_choose(const py::array& x, const py::array& w1, const py::array& b1, const py::array& w2,
                                const py::array& b2, float gate_bias) {
    using F = py::array_t<float, py::array::c_style | py::array::forcecast>;
    auto xa = F::ensure(x), w1a = F::ensure(w1), b1a = F::ensure(b1), w2a = F::ensure(w2), b2a = F::ensure(b2);
    if (!xa || !w1a || !b1a || !w2a || !b2a || xa.ndim() != 2 || w1a.ndim() != 2 || w2a.ndim() != 2 ||
        b1a.ndim() != 1 || b2a.ndim() != 1 || w1a.shape(1) != xa.shape(1) || b1a.shape(0) != w1a.shape(0) ||
        w2a.shape(1) != w1a.shape(0) || b2a.shape(0) != w2a.shape(0) || w2a.shape(0) < 2)
        throw py::value_error("acm_choose: x [n, d], w1 [h, d], b1 [h], w2 [N + 1, h], b2 [N + 1] float arrays");
    edgekit::AcmGate g;
    g.n = (int)w2a.shape(0) - 1;
    g.width = 1;
    g.hidden = (int)w1a.shape(0);
    g.dim = (int)xa.shape(1);
    edgekit::acm_set_fc1(g, w1a.data());
    g.b1.assign(b1a.data(), b1a.data() + b1a.size());
    g.w2.assign(w2a.data(), w2a.data() + w2a.size());
    g.b2.assign(b2a.data(), b2a.data() + b2a.size());
    py::array_t<int32_t> k(xa.shape(0));
    const float* xp = xa.data();
    int32_t* kp = k.mutable_data();
    const int n = (int)xa.shape(0);
    {
        py::gil_scoped_release nogil;
        edgekit::acm_choose(g, xp, n, gate_bias, kp);
    }
    return k;
}

py::dict cpu_features_dict() {
    py::dict d;
    for (const auto& [name, present] : edgekit::cpu_features()) d[py::str(name)] = present;
    return d;
}

// The constants and block struct sizes of formats.h (tests/test_formats.py holds edgekit.quant.formats to them).
py::dict format_constants() {
    py::dict d;
    d["q4_block"] = EK_Q4_BLOCK;
    d["q4_sym_zero"] = EK_Q4_SYM_ZERO;
    d["q8_row_qmax"] = EK_Q8_ROW_QMAX;
    d["q4_act_qmax"] = EK_Q4_ACT_QMAX;
    d["q4x4_rows"] = EK_Q4X4_ROWS;
    d["q4x4_tile_qs_bytes"] = EK_Q4X4_TILE_QS_BYTES;
    d["q4x16_rows"] = EK_Q4X16_ROWS;
    d["q4x16_group_qs_bytes"] = EK_Q4X16_GROUP_QS_BYTES;
    d["sizeof_block_q4_0"] = sizeof(ek_block_q4_0);
    d["sizeof_block_q4_1"] = sizeof(ek_block_q4_1);
    d["offsetof_block_q4_0_qs"] = offsetof(ek_block_q4_0, qs);
    d["offsetof_block_q4_1_qs"] = offsetof(ek_block_q4_1, qs);
    return d;
}

py::dict build_info() {
    const py::dict formats = format_constants();
    py::dict d;
    d["compiler"] = edgekit::compiler();
    d["isas"] = edgekit::compiled_isas();
    for (const char* key : {"q8_row_qmax", "q4_act_qmax", "q4_block", "sizeof_block_q4_0", "sizeof_block_q4_1"}) {
        d[key] = formats[key];
    }
#ifdef NDEBUG
    d["debug"] = false;
#else
    d["debug"] = true;
#endif
    return d;
}

// y [m, n] = x [m, k] · w [n, k]ᵀ over fp16 rows (the LM head kernel); bits defined in kernels.h.
py::array_t<float> gemm_f16_f32(const py::array& w, const py::array& x, const std::string& impl) {
    const uint16_t* wp = checked<uint16_t>(w, "w", 2, "uint16 (fp16 bits)");
    const auto [m, k] = check_matrix_f32(x, "x");
    const int64_t n = w.shape(0);
    if (w.shape(1) != k) throw py::value_error("w must be [n, " + std::to_string(k) + "] to match x");
    const ek_gemm_f16_f32_fn fn = edgekit::kernel<edgekit::Op::gemm_f16_f32>(impl);
    py::array_t<float> y({m, n});
    const float* xp = static_cast<const float*>(x.data());
    float* yp = y.mutable_data();
    {
        py::gil_scoped_release nogil;
        fn(wp, k, xp, k, m, k, yp, n, 0, n);
    }
    return y;
}

// y [m, n] = x [m, k] · w [n, k]ᵀ over Q8_0 rows (codes int8 [n, k], fp16 scales [n, k / 32]); kernels.h. act8: x
// quantized per block of 32 first (quant_row_q8, qmax 127: the runtime's head_logits with lm_head_act_bits 8), then
// integer dot products (ek_gemm_q8_0_q8b); otherwise float activations (ek_gemm_q8_0_f32).
py::array_t<float> gemm_q8_0(const py::array& q, const py::array& d, const py::array& x, const std::string& impl,
                             bool act8) {
    const int8_t* qp = checked<int8_t>(q, "q", 2, "int8");
    const uint16_t* dp = checked<uint16_t>(d, "d", 2, "uint16 (fp16 bits)");
    const auto [m, k] = check_matrix_f32(x, "x");
    const int64_t n = q.shape(0);
    if (k % 32 || q.shape(1) != k) throw py::value_error("q must be [n, k] with k a multiple of 32, matching x");
    if (d.shape(0) != n || d.shape(1) != k / 32) throw py::value_error("d must be [n, k / 32]");
    const ek_gemm_q8_0_f32_fn f32 = act8 ? nullptr : edgekit::kernel<edgekit::Op::gemm_q8_0_f32>(impl);
    const ek_gemm_q8_0_q8b_fn q8b = act8 ? edgekit::kernel<edgekit::Op::gemm_q8_0_q8b>(impl) : nullptr;
    const ek_quant_row_q8_fn quant = edgekit::kernel<edgekit::Op::quant_row_q8>();
    py::array_t<float> y({m, n});
    const float* xp = static_cast<const float*>(x.data());
    float* yp = y.mutable_data();
    {
        py::gil_scoped_release nogil;
        if (act8) {
            std::vector<int8_t> xq((size_t)(m * k));
            std::vector<float> xs((size_t)(m * k / 32));
            quant(xp, m * k / 32, 32, EK_Q8_ROW_QMAX, xq.data(), xs.data());
            q8b(qp, dp, k, xq.data(), xs.data(), m, k, yp, n, 0, n);
        } else {
            f32(qp, dp, k, xp, k, m, k, yp, n, 0, n);
        }
    }
    return y;
}

py::tuple quantize_q8_0(const py::array& x) {
    const auto [n, k] = check_matrix_f32(x, "x");
    if (k % 32) throw py::value_error("Q8_0 rows must be a multiple of 32 values");
    py::array_t<int8_t> q({n, k});
    py::array_t<uint16_t> d({n, k / 32});
    ek_quantize_q8_0(static_cast<const float*>(x.data()), n, k, q.mutable_data(), d.mutable_data());
    return py::make_tuple(q, d);
}

// Fused attention of g heads over n cached fp16 keys (transposed, kt [hd, ldk >= n]) and values (v [n, hd]).
py::tuple attn_f16_f32(const py::array& q, const py::array& kt, const py::array& v, float scale,
                       const std::string& impl, const py::object& bias) {
    const float* qp = checked<float>(q, "q", 2, "float32");
    const uint16_t* kp = checked<uint16_t>(kt, "kt", 2, "uint16 (fp16 bits)");
    const uint16_t* vp = checked<uint16_t>(v, "v", 2, "uint16 (fp16 bits)");
    const int64_t g = q.shape(0), hd = q.shape(1), n = v.shape(0), ldk = kt.shape(1);
    if (g < 1 || hd < 1 || n < 1) throw py::value_error("q [g, hd] and v [n, hd] must not be empty");
    if (kt.shape(0) != hd || ldk < n) throw py::value_error("kt must be [hd, >= n] (the keys transposed)");
    if (v.shape(1) != hd) throw py::value_error("v must be [n, hd]");
    const float* bp = nullptr;  // the optional position bias [g, n]
    py::array bias_arr;
    if (!bias.is_none()) {
        bias_arr = py::array::ensure(bias);
        bp = checked<float>(bias_arr, "bias", 2, "float32");
        if (bias_arr.shape(0) != g || bias_arr.shape(1) != n) throw py::value_error("bias must be [g, n]");
    }
    const ek_attn_f16_f32_fn fn = edgekit::kernel<edgekit::Op::attn_f16_f32>(impl);
    py::array_t<float> out({g, hd}), p({g, n}), first(g);
    float *op = out.mutable_data(), *pp = p.mutable_data(), *fp = first.mutable_data();
    {
        py::gil_scoped_release nogil;
        fn(qp, g, hd, kp, ldk, vp, hd, n, scale, bp, n, nullptr, pp, op, fp);
    }
    return py::make_tuple(out, p, first);
}

// The runtime's causal attention (attention.h) over fp32 keys and values [L, n_kv, hd] (rounded to the fp16 cache
// the runtime keeps) for queries q [n, n_heads, hd] at the last n positions → [n, n_heads, hd].
py::array_t<float> attention_causal(const py::array& q, const py::array& k, const py::array& v) {
    const float* qp = checked<float>(q, "q", 3, "float32");
    const float* kp = checked<float>(k, "k", 3, "float32");
    const float* vp = checked<float>(v, "v", 3, "float32");
    const int64_t n = q.shape(0), nh = q.shape(1), hd = q.shape(2), len = k.shape(0), nkv = k.shape(1);
    if (k.shape(2) != hd || v.shape(0) != len || v.shape(1) != nkv || v.shape(2) != hd) {
        throw py::value_error("k and v must both be [L, n_kv, head_dim] with q's head_dim");
    }
    if (n < 1 || n > len || nkv < 1 || nh % nkv) {
        throw py::value_error("need 1 <= n <= L new tokens and n_heads a multiple of n_kv");
    }
    py::array_t<float> out({n, nh, hd});
    float* op = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        edgekit::attention_causal_f32(qp, kp, vp, (int)n, (int)len, (int)nh, (int)nkv, (int)hd, op);
    }
    return out;
}

// The gated activations g ← act(g) * u (SwiGLU's silu_mul_f32, T5's gelu_mul_f32) on a copy of g.
template <edgekit::Op op>
py::array_t<float> gated_mul_f32(const py::array& g, const py::array& u, const std::string& impl) {
    const float* gp = checked<float>(g, "g", 1, "float32");
    const float* up = checked<float>(u, "u", 1, "float32");
    if (u.shape(0) != g.shape(0)) throw py::value_error("g and u must have the same length");
    const auto fn = edgekit::kernel<op>(impl);
    py::array_t<float> y(g.shape(0));
    float* yp = y.mutable_data();
    std::copy(gp, gp + g.shape(0), yp);
    {
        py::gil_scoped_release nogil;
        fn(yp, up, g.shape(0));
    }
    return y;
}

// float32 → fp16 bits with the runtime's converter (tested against numpy's astype(float16)).
py::array_t<uint16_t> fp32_to_fp16(const py::array& x, const std::string& impl) {
    const float* xp = checked<float>(x, "x", 1, "float32");
    const ek_cvt_f32_f16_fn fn = edgekit::kernel<edgekit::Op::cvt_f32_f16>(impl);
    py::array_t<uint16_t> out(x.shape(0));
    fn(xp, out.mutable_data(), x.shape(0));
    return out;
}

// A roofline measurement as a dict (GIL released while it runs); bad arguments raise ValueError.
py::dict roof_dict(const edgekit::RoofMeasure& r) {
    py::dict d;
    d["per_s"] = r.per_s;
    d["best_s"] = r.best_s;
    d["work"] = r.work;
    d["threads"] = r.threads;
    d["impl"] = r.impl;
    d["checksum"] = r.checksum;
    return d;
}

py::dict roofline_read(size_t bytes, int passes, const std::string& impl) {
    edgekit::RoofMeasure r;
    try {
        py::gil_scoped_release release;
        r = edgekit::measure_read_bandwidth(bytes, passes, impl);
    } catch (const std::invalid_argument& e) {
        throw py::value_error(e.what());
    }
    return roof_dict(r);
}

py::dict roofline_dot(double seconds, int passes, const std::string& impl) {
    edgekit::RoofMeasure r;
    try {
        py::gil_scoped_release release;
        r = edgekit::measure_int8_peak(seconds, passes, impl);
    } catch (const std::invalid_argument& e) {
        throw py::value_error(e.what());
    }
    return roof_dict(r);
}

}  // namespace

PYBIND11_MODULE(_C, m) {
    m.doc() = "edgekit native kernels: CPU feature detection, dispatch, and the kernels themselves.";

    m.def("cpu_features", &cpu_features_dict,
          "CPU features relevant to the kernels, as {name: present} (x86 and aarch64 names both listed).");
    m.def("ops", &edgekit::ops, "Names of the kernel ops that have a dispatch table.");
    m.def("compiled", &edgekit::compiled, py::arg("op"), "Implementations of `op` compiled into this build.");
    m.def("implementations", &edgekit::implementations, py::arg("op"),
          "Implementations of `op` compiled into this build and supported by this CPU.");
    m.def("selected", &edgekit::selected, py::arg("op"),
          "The implementation the dispatched entry of `op` uses; honours EDGEKIT_KERNELS (RuntimeError when it "
          "names something unknown, not compiled or unsupported).");
    m.def("build_info", &build_info, "Compiler, compiled ISA families and the layout constants of formats.h.");
    m.def("format_constants", &format_constants,
          "The block sizes, layout constants and block struct sizes (sizeof, offsetof) of formats.h, as a dict.");

    m.def("quant_block_q8", &quant_block_q8, py::arg("x"), py::arg("qmax") = EK_Q8_ROW_QMAX, py::arg("impl") = "",
          "Per-block (32 values) symmetric quantization of float32 [M, K] → (codes int8 [M, K], scales float32 "
          "[M, K/32]); bit-identical to edgekit.quant.formats.quantize_blocks_q8. `impl` as for quant_row_q8.");
    py::class_<edgekit::LlamaModel>(m, "LlamaRuntime", "The C++ Llama decoder on the W4A8 kernels, with a KV cache.")
        .def_static("load", &load_llama, py::arg("path"), py::arg("max_ctx") = 0,
                    "Load a W4A8 llama artifact (.ekq) in C++ (max_ctx <= 0: the default cache length); "
                    "ValueError with the reason when the file is damaged or not runnable.")
        .def("eval", &llama_eval, py::arg("tokens"), py::arg("all_logits") = false,
             "Append tokens at the next positions; logits [n, vocab] (all_logits) or [vocab] for the last.")
        .def("set_pruning", &set_pruning, py::arg("ratio"), py::arg("layers"), py::arg("keep_last") = 4,
             "Token pruning of prompt prefills (prune.h): drop `ratio` of the prompt by the last of `layers`; "
             "empty layers turn it off.")
        .def_property_readonly("pruning", &get_pruning, "(ratio, layers, keep_last) of the pruning schedule.")
        .def("last_kept", &edgekit::LlamaModel::last_kept,
             "Prompt indices that survived each pruning layer of the last pruned prefill.")
        .def("first_token_mass", &edgekit::LlamaModel::first_token_mass,
             "Per layer: the last eval's mean attention probability on position 0 (heads averaged, first query "
             "excluded).")
        .def("cached", &edgekit::LlamaModel::cached, py::arg("layer"), "Positions held by a layer's KV cache.")
        .def("reset", &edgekit::LlamaModel::reset, "Empty the KV cache.")
        .def("truncate", &edgekit::LlamaModel::truncate, py::arg("n"), "Keep the first n cached positions.")
        .def_property_readonly("n_past", &edgekit::LlamaModel::n_past)
        .def("set_acm", &set_acm, py::arg("gate_bias") = 0.0f, py::arg("force_k") = -1,
             "How every ACM layer runs: the gates shifted by gate_bias, or force_k learners for every token "
             "(-1: the gates decide).")
        .def("acm_counts", &acm_counts, "Tokens per k [layers, N + 1] since reset_acm_counts() (ACM artifacts).")
        .def("reset_acm_counts", &edgekit::LlamaModel::reset_acm_counts, "Zero the ACM k counts.")
        .def_property_readonly("acm_learners", &edgekit::LlamaModel::acm_learners,
                               "Learners per ACM layer (0: no adaptive computation modules).")
        .def_property_readonly("memory_bytes", &edgekit::LlamaModel::memory_bytes,
                               "Bytes of weights, KV cache and scratch held by the engine.");
    py::class_<edgekit::T5Model>(m, "T5Runtime",
                                 "The C++ T5 encoder-decoder on the W4A8 kernels: encode once, then decode with a "
                                 "self-attention KV cache and the prompt's cross-attention K/V.")
        .def_static("load", &load_t5, py::arg("path"), py::arg("max_ctx") = 0,
                    "Load a W4A8 T5 artifact (.ekq) in C++ (max_ctx: decoder positions, <= 0 the default); "
                    "ValueError with the reason when the file is damaged or not runnable.")
        .def("encode", &t5_encode, py::arg("tokens"),
             "Run the encoder over the prompt, compute every decoder layer's cross-attention K/V, empty the "
             "decoder's cache.")
        .def("eval", &t5_eval, py::arg("tokens"), py::arg("all_logits") = false,
             "Append decoder tokens; logits [n, vocab] (all_logits) or [vocab] for the last.")
        .def("reset", &edgekit::T5Model::reset, "Empty the decoder's cache (the encoded prompt stays).")
        .def_property_readonly("n_past", &edgekit::T5Model::n_past, "Decoder tokens in the cache.")
        .def_property_readonly("n_source", &edgekit::T5Model::n_source, "Tokens of the encoded prompt.")
        .def_property_readonly("decoder_start", [](const edgekit::T5Model& t) { return t.config().decoder_start; })
        .def_property_readonly("cross_kv_computations", &edgekit::T5Model::cross_kv_computations,
                               "How many times the cross-attention K/V were computed (once per encode).")
        .def_property_readonly("memory_bytes", &edgekit::T5Model::memory_bytes,
                               "Bytes of weights, caches and scratch held by the engine.");
    py::class_<edgekit::Tokenizer>(m, "Tokenizer",
                                   "The C++ byte-level BPE tokenizer of the C API (ek_tokenize / ek_detokenize).")
        .def_static("from_json", &tokenizer_from_json, py::arg("text"),
                    "From the text of a Hugging Face tokenizer.json; ValueError naming what is unsupported or bad.")
        .def_static("from_artifact", &tokenizer_from_artifact, py::arg("path"),
                    "The tokenizer an artifact (.ekq) carries; ValueError when it has none or it is unsupported.")
        .def("encode_batch", &tokenizer_encode_batch, py::arg("texts"), py::arg("add_special_tokens") = false,
             "Token ids of each text (ValueError for text that is not UTF-8).")
        .def("decode_batch", &tokenizer_decode_batch, py::arg("ids"), py::arg("skip_special_tokens") = false,
             "Text of each id list (ValueError for an unknown id).")
        .def_property_readonly("n_vocab", &edgekit::Tokenizer::n_vocab, "Largest id + 1.")
        .def_property_readonly("eos", &edgekit::Tokenizer::eos, "End-of-sequence id (-1: unknown).")
        .def("token_to_id", &edgekit::Tokenizer::find, py::arg("token"), "Id of a token string, -1 if none.");
    m.def("unicode_version", &edgekit::unicode::unicode_version,
          "Unicode version of the tokenizer's character classes (csrc/tools/gen_unicode_tables.py).");
    m.def("acm_choose", &acm_choose, py::arg("x"), py::arg("w1"), py::arg("b1"), py::arg("w2"), py::arg("b2"),
          py::arg("gate_bias") = 0.0f,
          "The runtime's ACM gate (acm.h): k per row of x [n, d] = argmax of fc2(GELU(fc1(x))) + gate_bias * k / N.");
    m.def("prune_keep_count", &prune_keep_count, py::arg("n0"), py::arg("ratio"), py::arg("j"), py::arg("m"),
          py::arg("keep_last"), "Survivors after the j-th of m pruning layers (prune.h).");
    m.def("prune_select", &prune_select, py::arg("score"), py::arg("orig"), py::arg("n0"), py::arg("keep_last"),
          py::arg("n_keep"), "Surviving rows of a pruning step (prune.h), increasing.");
    m.def("set_num_threads", &edgekit::set_num_threads, py::arg("n"),
          "Threads of the kernels' pool (n <= 0: all cores). Results do not depend on it.");
    m.def("get_num_threads", &edgekit::get_num_threads, "Threads of the kernels' pool.");
    m.def("pack_q4x4", &pack_q4x4, py::arg("rows"), py::arg("n"), py::arg("k"),
          "Repack GGUF Q4_0 rows (uint8 bytes of n * k/32 blocks) into the q4x4 layout → (qs uint8, d uint16).");
    py::class_<edgekit::PackedQ4>(m, "PackedQ4",
                                  "A [n, k] int4 weight in the q4x4 kernel layout, or q4x16 (formats.h).")
        .def(py::init(&make_packed_q4), py::arg("qs"), py::arg("d"), py::arg("n"), py::arg("k"),
             py::arg("rows") = EK_Q4X4_ROWS)
        .def("to_q4x16", &edgekit::PackedQ4::to_q4x16,
             "The same weights regrouped by 16 rows (layout q4x16; ops gemm_q4x16_q8 / _q8b, AVX-512 VNNI).")
        .def_property_readonly("rows", &edgekit::PackedQ4::rows)
        .def_property_readonly("n", &edgekit::PackedQ4::n)
        .def_property_readonly("k", &edgekit::PackedQ4::k)
        .def_property_readonly("nbytes", &edgekit::PackedQ4::nbytes)
        .def_property_readonly(
            "addresses",
            [](const edgekit::PackedQ4& w) {
                return py::make_tuple((uintptr_t)w.view().qs, (uintptr_t)w.view().d);
            },
            "(qs, d) start addresses, to check the weight chunks' alignment (weight_arena.h).")
        .def("gemm", &packed_gemm, py::arg("xq"), py::arg("xs"), py::arg("impl") = "", py::arg("int4") = false,
             "y [m, n] float32 from int8 codes xq [m, k] and per-row scales xs [m], or per-block scales xs "
             "[m, k/32] (op gemm_q4x4_q8b; gemm_q4x16_* on q4x16). int4=True runs the W4A4 packed-multiplier "
             "kernels (op gemm_q4x4_q4, q4x4 only; codes must lie in -7..7).")
        .def("linear", &packed_linear, py::arg("x"), py::arg("qmax") = py::none(), py::arg("impl") = "",
             py::arg("per_block") = false,
             "y [m, n] float32 from float32 x [m, k]: per-row int8 quantization (qmax per row, default 127), or "
             "per_block=True: one int8 scale per 32 values (op gemm_q4x4_q8b), then the W4A8 matmul.");

    m.def("gemm_f16_f32", &gemm_f16_f32, py::arg("w"), py::arg("x"), py::arg("impl") = "",
          "y [m, n] float32 = x [m, k] @ w.T for fp16 weights w (uint16 bits [n, k]); the runtime's LM head kernel.");
    m.def("gemm_q8_0_f32",
          [](const py::array& q, const py::array& d, const py::array& x, const std::string& impl) {
              return gemm_q8_0(q, d, x, impl, false);
          },
          py::arg("q"), py::arg("d"), py::arg("x"), py::arg("impl") = "",
          "y [m, n] float32 = x [m, k] @ w.T for Q8_0 rows w = q * fp16(d) (q int8 [n, k], d uint16 fp16 bits "
          "[n, k / 32]); the runtime's 8-bit LM head kernel.");
    m.def("gemm_q8_0_q8b",
          [](const py::array& q, const py::array& d, const py::array& x, const std::string& impl) {
              return gemm_q8_0(q, d, x, impl, true);
          },
          py::arg("q"), py::arg("d"), py::arg("x"), py::arg("impl") = "",
          "gemm_q8_0_f32 with x quantized per block of 32 first (int8, qmax 127) and integer dot products: the "
          "runtime's 8-bit LM head with lm_head_act_bits 8.");
    m.def("quantize_q8_0", &quantize_q8_0, py::arg("x"),
          "float32 rows [n, k] → (codes int8 [n, k], fp16 scale bits uint16 [n, k / 32]); the runtime's Q8_0 rule.");
    m.def("attn_f16_f32", &attn_f16_f32, py::arg("q"), py::arg("kt"), py::arg("v"), py::arg("scale"),
          py::arg("impl") = "", py::arg("bias") = py::none(),
          "Fused attention of g heads sharing one KV head: q float32 [g, hd], keys transposed kt uint16 fp16 bits "
          "[hd, >= n], values v uint16 [n, hd], optional score bias float32 [g, n] → (out [g, hd], probabilities "
          "[g, n], first [g]); kernels.h.");
    m.def("attention_causal", &attention_causal, py::arg("q"), py::arg("k"), py::arg("v"),
          "The runtime's causal GQA attention: q float32 [n, n_heads, hd] (the last n of L positions), k and v "
          "float32 [L, n_kv, hd] rounded to its fp16 cache → [n, n_heads, hd], bit for bit what the runtime computes.");
    m.def("weight_arena_bytes", &edgekit::weight_arena_bytes,
          "Bytes of weight chunks held from the system (weight_arena.h: regrouped weights, the Q8_0 head).");
    m.def("weight_hugepages", &edgekit::weight_hugepages,
          "Whether weight chunks are advised for transparent huge pages (Linux; EDGEKIT_HUGEPAGES=0 turns it off).");
    m.def("preferred_q4_rows", &edgekit::preferred_q4_rows,
          "Rows per tile of the int4 layout the runtime runs here: 16 (q4x16, AVX-512 VNNI) or 4 (q4x4).");
    m.def("gelu_mul_f32", &gated_mul_f32<edgekit::Op::gelu_mul_f32>, py::arg("g"), py::arg("u"),
          py::arg("impl") = "", "T5's gated GELU: gelu_tanh(g) * u (kernels.h: ek_gelu_mul_f32).");
    m.def("silu_mul_f32", &gated_mul_f32<edgekit::Op::silu_mul_f32>, py::arg("g"), py::arg("u"), py::arg("impl") = "",
          "SwiGLU gate: g / (1 + exp(-g)) * u with the kernels' exp, float32 [n] → float32 [n].");
    m.def("fp32_to_fp16", &fp32_to_fp16, py::arg("x"), py::arg("impl") = "",
          "float32 [n] → fp16 bits uint16 [n], round to nearest even (the KV cache's converter, cvt_f32_f16).");
    m.def("quant_row_q8", &quant_row_q8, py::arg("x"), py::arg("qmax") = EK_Q8_ROW_QMAX, py::arg("impl") = "",
          "Per-row symmetric quantization of float32 [M, K] → (codes int8 [M, K], scales float32 [M]).\n\n"
          "Bit-identical to edgekit.quant.formats.quantize_rows_q8. `impl` empty uses the dispatched "
          "implementation, otherwise the named one (ValueError if it is not compiled or not supported).");
    m.def("roofline_read_bandwidth", &roofline_read, py::arg("bytes"), py::arg("passes") = 5, py::arg("impl") = "",
          "Streaming read of a `bytes` buffer on the pool's threads, best of `passes`: {per_s (bytes/s), best_s, "
          "work (bytes), threads, impl, checksum} (roofline.h).");
    m.def("roofline_int8_peak", &roofline_dot, py::arg("seconds") = 0.2, py::arg("passes") = 5, py::arg("impl") = "",
          "Register-only int8 dot-product chains on the pool's threads (the ISA of the GEMM kernel in use unless "
          "`impl` names one), best of `passes`: {per_s (int8 ops/s, 2 per multiply-add), ...} (roofline.h).");
    m.def("roofline_impls", [] {
        return py::make_tuple(edgekit::roofline_read_impls(), edgekit::roofline_dot_impls(),
                              edgekit::roofline_dot_default());
    }, "(read probes, dot probes this CPU runs, the dot probe of the GEMM kernel in use).");
}
