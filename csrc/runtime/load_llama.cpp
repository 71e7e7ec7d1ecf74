// load_llama (load_llama.h): artifact metadata → LlamaConfig, tensors → the model's arrays.
//
// Everything the runtime cannot run is refused here with a message that names the key or the linear, rather than
// run with a silently different meaning. The float32 embedding (and an untied head) is converted to fp16 (with
// lm_head_bits 8: to Q8_0) a chunk at a time, norms are copied; int4 weights go Q4_0 blocks →
// ek_pack_q4x4 → the kernel layout. Each file range is released once copied, so peak memory stays near the model's
// own arrays.
#include "edgekit/load_llama.h"
#include "edgekit/load_util.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <set>
#include <stdexcept>
#include <vector>

#include "edgekit/artifact.h"
#include "edgekit/json.h"
#include "edgekit/kernels.h"
#include "edgekit/linear.h"

namespace edgekit {
namespace load {

using K = ArtifactError::Kind;
using json::Type;
using json::Value;

void check_format(const Artifact& a) {
    const std::string* format = a.meta("edgekit.format");
    if (!format || *format != "edgekit-artifact")
        a.fail(K::kFormat, "a safetensors file but not an edgekit artifact; create one with `edgekit quantize`");
    const std::string* version = a.meta("edgekit.format_version");
    if (!version || *version != "1") {
        a.fail(K::kUnsupported, "artifact format version '" + (version ? *version : std::string("?")) +
                                "', this runtime reads version 1; re-quantize the model with this edgekit");
    }
}

void check_kind(const Artifact& a, const char* family, const char* task, const std::string& runs) {
    check_format(a);
    const std::string* f = a.meta("edgekit.family");
    const std::string* t = a.meta("edgekit.task");
    if (!f || *f != family || !t || *t != task)
        a.fail(K::kUnsupported, "a " + (f ? *f : std::string("?")) + " " + (t ? *t : std::string("?")) + " model" + runs);
}

void check_max_ctx(int max_ctx) {
    if (max_ctx > kMaxCtxLimit)
        throw std::invalid_argument("max_ctx " + std::to_string(max_ctx) + " exceeds " + std::to_string(kMaxCtxLimit));
}

const char* const kRunElsewhere = "; run it with `edgekit eval --engine kernels` instead";
const char* const kLinears[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

Value meta_json(const Artifact& a, const std::string& key) {
    const std::string* s = a.meta(key);
    if (!s) a.fail(K::kFormat, "metadata '" + key + "' is missing; re-quantize the model");
    try {
        return json::parse(*s);
    } catch (const json::ParseError& e) {
        a.fail(K::kFormat, "metadata '" + key + "' is not valid JSON (" + e.what() + ")");
    }
}

bool absent_or_null(const Value& obj, const char* key) {
    const Value* v = obj.find(key);
    return !v || v->is_null();
}

// model_config[key] as an integer in [lo, hi]; `fallback` when absent or null (nullptr: required).
int cfg_int(const Artifact& a, const Value& cfg, const char* key, int lo, int hi, const int* fallback) {
    const Value* v = cfg.find(key);
    if (!v || v->is_null()) {
        if (fallback) return *fallback;
        a.fail(K::kFormat, std::string("model_config has no ") + key);
    }
    if (!v->is_int || v->integer < lo || v->integer > hi) {
        a.fail(K::kFormat, std::string("model_config ") + key + " must be an integer in " + std::to_string(lo) +
                           ".." + std::to_string(hi));
    }
    return (int)v->integer;
}

float cfg_positive(const Artifact& a, const Value& cfg, const char* key, const float* fallback) {
    const Value* v = cfg.find(key);
    if (!v || v->is_null()) {
        if (fallback) return *fallback;
        a.fail(K::kFormat, std::string("model_config has no ") + key);
    }
    if (v->type != Type::kNumber || !(v->number > 0.0) || !std::isfinite((float)v->number))
        a.fail(K::kFormat, std::string("model_config ") + key + " must be a positive number");
    return (float)v->number;
}

LlamaConfig read_config(const Artifact& a, const Value& cfg, int max_ctx, bool* tied) {
    if (cfg.type != Type::kObject) a.fail(K::kFormat, "metadata 'edgekit.model_config' must be a JSON object");
    LlamaConfig c;
    c.hidden = cfg_int(a, cfg, "hidden_size", 1, 1 << 16);
    c.n_layers = cfg_int(a, cfg, "num_hidden_layers", 1, 4096);
    c.n_heads = cfg_int(a, cfg, "num_attention_heads", 1, 4096);
    c.n_kv_heads = cfg_int(a, cfg, "num_key_value_heads", 1, 4096, &c.n_heads);
    const int head_dim = c.hidden / c.n_heads;
    c.head_dim = cfg_int(a, cfg, "head_dim", 1, 1 << 16, &head_dim);
    c.ffn = cfg_int(a, cfg, "intermediate_size", 1, 1 << 18);
    c.vocab = cfg_int(a, cfg, "vocab_size", 1, 1 << 24);
    const float eps = 1e-6f, theta = 10000.0f;
    c.rms_eps = cfg_positive(a, cfg, "rms_norm_eps", &eps);
    c.rope_theta = cfg_positive(a, cfg, "rope_theta", &theta);
    if (absent_or_null(cfg, "head_dim") && c.hidden % c.n_heads != 0)
        a.fail(K::kFormat, "model_config hidden_size is not a multiple of num_attention_heads");
    if (c.n_heads % c.n_kv_heads != 0)
        a.fail(K::kFormat, "model_config num_attention_heads is not a multiple of num_key_value_heads");
    if (c.head_dim % 2 != 0) a.fail(K::kFormat, "model_config head_dim must be even (rotary embedding)");
    if (!absent_or_null(cfg, "rope_scaling"))
        a.fail(K::kUnsupported, "rope_scaling is not supported by the C++ runtime yet" + std::string(kRunElsewhere));
    const Value* act = cfg.find("hidden_act");
    if (act && !act->is_null() && !(act->type == Type::kString && act->string == "silu"))
        a.fail(K::kUnsupported, "the C++ runtime runs SiLU MLPs only (hidden_act)" + std::string(kRunElsewhere));
    const Value* tie = cfg.find("tie_word_embeddings");
    if (tie && !tie->is_null() && tie->type != Type::kBool)
        a.fail(K::kFormat, "model_config tie_word_embeddings must be a boolean");
    // absent: a tied head is the one stored without lm_head.weight (the artifact writer stores shared tensors once)
    *tied = tie && tie->type == Type::kBool ? tie->boolean : a.find("lm_head.weight") == nullptr;
    int ctx = max_ctx;
    if (ctx <= 0) {
        const int dflt = kDefaultMaxCtx;
        ctx = std::min(kDefaultMaxCtx, cfg_int(a, cfg, "max_position_embeddings", 1, 1 << 30, &dflt));
    }
    c.max_ctx = ctx;
    return c;
}

void check_quant(const Artifact& a, const Value& q) {
    if (q.type != Type::kObject) a.fail(K::kFormat, "metadata 'edgekit.quant' must be a JSON object");
    const Value* r = q.find("w4a4_ratio");
    if (r && !r->is_null() && !(r->type == Type::kNumber && r->number == 0.0))
        a.fail(K::kUnsupported, "the C++ runtime does not run W4A4 tokens (w4a4_ratio)" + std::string(kRunElsewhere));
    if (const Value* att = q.find("attention"); att && !att->is_null()) {
        if (att->type != Type::kObject) a.fail(K::kFormat, "edgekit.quant attention must be an object");
        for (const char* key : {"qkv_bits", "softmax_log2_bits"}) {
            if (!absent_or_null(*att, key))
                a.fail(K::kUnsupported, std::string("the C++ runtime does not run quantized attention (") + key +
                                        ")" + kRunElsewhere);
        }
    }
}

// lm_head_bits: null keeps the tied table (or untied head) in fp16; 8 makes the tied table (or the embedding and an
// untied head, as a rotation leaves them) Q8_0 (edgekit/config.py).
bool q8_head(const Artifact& a, const Value& q) {
    const Value* b = q.find("lm_head_bits");
    if (!b || b->is_null()) return false;
    if (!(b->type == Type::kNumber && b->number == 8.0))
        a.fail(K::kFormat, "edgekit.quant lm_head_bits must be 8 or null");
    return true;
}

// lm_head_act_bits: null (or absent: artifacts before it) keeps the Q8_0 head's input in float; 8 quantizes it per
// block of 32 (edgekit/config.py), and needs lm_head_bits 8.
bool q8_head_act8(const Artifact& a, const Value& q) {
    const Value* b = q.find("lm_head_act_bits");
    if (!b || b->is_null()) return false;
    if (!(b->type == Type::kNumber && b->number == 8.0))
        a.fail(K::kFormat, "edgekit.quant lm_head_act_bits must be 8 or null");
    if (!q8_head(a, q)) a.fail(K::kFormat, "edgekit.quant lm_head_act_bits 8 needs lm_head_bits 8");
    return true;
}

// The recipe's token-pruning schedule (edgekit.quant "prune": ratio, layers, keep_last; edgekit/config.py resolves
// the layers before it saves), or none when the artifact has none.
PruneSchedule read_prune(const Artifact& a, const Value& q, int n_layers) {
    PruneSchedule s;
    const Value* p = q.find("prune");
    if (!p || p->is_null()) return s;
    if (p->type != Type::kObject) a.fail(K::kFormat, "edgekit.quant prune must be an object");
    const Value* ratio = p->find("ratio");
    const Value* layers = p->find("layers");
    const Value* keep = p->find("keep_last");
    if (ratio && !ratio->is_null()) {
        if (ratio->type != Type::kNumber) a.fail(K::kFormat, "edgekit.quant prune.ratio must be a number");
        s.ratio = (float)ratio->number;
    }
    if (keep && !keep->is_null()) {
        if (!keep->is_int || keep->integer < 1 || keep->integer > (1 << 20))
            a.fail(K::kFormat, "edgekit.quant prune.keep_last must be a positive integer");
        s.keep_last = (int)keep->integer;
    }
    if (layers && !layers->is_null()) {
        if (layers->type != Type::kArray) a.fail(K::kFormat, "edgekit.quant prune.layers must be a list");
        for (const Value& v : layers->array) {
            if (!v.is_int || v.integer < 0 || v.integer >= n_layers)
                a.fail(K::kFormat,
                       "edgekit.quant prune.layers must hold layer indices 0.." + std::to_string(n_layers - 1));
            s.layers.push_back((int)v.integer);
        }
    }
    if (s.ratio == 0.0f) s.layers.clear();  // a recipe without pruning: no scoring work either
    try {
        s.validate(n_layers);
    } catch (const std::invalid_argument& e) {
        a.fail(K::kFormat, std::string("edgekit.quant ") + e.what());
    }
    return s;
}

// One entry of edgekit.linears must describe exactly the W4A8 scheme of the kernels. Returns its activation mode
// (per_tensor: static, with the tensor <name>.act_scale).
ActQuant check_linear(const Artifact& a, const Value& linears, const std::string& name, int64_t n, int64_t k) {
    const Value* e = linears.find(name);
    if (!e) a.fail(K::kUnsupported, name + " is not quantized; the C++ runtime needs every linear in W4A8" +
                                        std::string(kRunElsewhere));
    if (e->type != Type::kObject) a.fail(K::kFormat, "edgekit.linears " + name + " must be an object");
    auto is_int = [&](const char* key, int64_t want) {
        const Value* v = e->find(key);
        return v && v->is_int && v->integer == want;
    };
    auto is_bool = [&](const char* key, bool want, bool dflt) {
        const Value* v = e->find(key);
        return v ? v->type == Type::kBool && v->boolean == want : dflt == want;
    };
    const Value* mode = e->find("act_mode");
    const char* why = !is_int("bits", 4)                     ? "weights are not 4-bit"
                      : !is_int("group_size", 32)            ? "weight groups are not 32"
                      : !is_bool("symmetric", true, false)   ? "weights are asymmetric"
                      : !is_int("act_bits", 8)               ? "activations are not 8-bit"
                      : !(mode && mode->type == Type::kString &&
                          (mode->string == "per_token" || mode->string == "per_block" ||
                           mode->string == "per_tensor"))
                                                             ? "activations are not per token, block or tensor"
                      : !is_bool("mix", false, false)        ? "it mixes W4A4 tokens"
                      : !is_bool("bias", false, false)       ? "it has a bias"
                                                             : nullptr;
    if (why) {
        a.fail(K::kUnsupported, name + " cannot run in the C++ runtime (" + why + "; it runs int4 symmetric "
                                "group-32 weights with int8 per-token, per-block or static per-tensor activations)" +
                                kRunElsewhere);
    }
    const Value* s = e->find("shape");
    if (s && !(s->type == Type::kArray && s->array.size() == 2 && s->array[0].is_int && s->array[1].is_int &&
               s->array[0].integer == n && s->array[1].integer == k)) {
        a.fail(K::kFormat, "edgekit.linears " + name + " shape does not match the model config [" +
                           std::to_string(n) + ", " + std::to_string(k) + "]");
    }
    return mode->string == "per_block" ? ActQuant::kPerBlock
           : mode->string == "per_tensor" ? ActQuant::kPerTensor
                                           : ActQuant::kPerToken;
}

const TensorInfo& tensor(const Artifact& a, const std::string& name, DType dtype, std::vector<int64_t> shape) {
    const TensorInfo* t = a.find(name);
    if (!t) a.fail(K::kFormat, "tensor '" + name + "' is missing");
    if (t->dtype != dtype || t->shape != shape) {
        TensorInfo want;
        want.dtype = dtype;
        want.shape = shape;
        a.fail(K::kFormat, "tensor '" + name + "' must be " + want.describe() + ", got " + t->describe());
    }
    return *t;
}

// A float32 table (embedding, LM head) converted to the fp16 the model keeps, 1 MB of the file at a time, each
// chunk released after use: the float32 pages never all sit in memory together.
std::vector<uint16_t> fp16_table(const Artifact& a, const TensorInfo& t) {
    std::vector<uint16_t> out((size_t)t.numel);
    constexpr uint64_t kChunk = 1 << 18;  // floats
    float buf[256];
    for (uint64_t i0 = 0; i0 < t.numel; i0 += kChunk) {
        const uint64_t i1 = std::min<uint64_t>(t.numel, i0 + kChunk);
        for (uint64_t i = i0; i < i1; i += 256) {
            const uint64_t n = std::min<uint64_t>(256, i1 - i);
            std::memcpy(buf, t.data + i * 4, (size_t)(n * 4));  // the file promises no alignment
            for (uint64_t j = 0; j < n; ++j) out[i + j] = ek_fp32_to_fp16(buf[j]);
        }
        a.release(t.data + i0 * 4, (i1 - i0) * 4);
    }
    return out;
}

// A float32 table quantized to Q8_0 (ek_quantize_q8_0, the rule of the Python side and the GGUF export), likewise
// 1 MB of the file at a time. The quantizer left the table on the Q8_0 grid, so this recovers its codes exactly.
Q8Table q8_table(const Artifact& a, const TensorInfo& t) {
    Q8Table out;
    out.q.resize((size_t)t.numel);
    out.d.resize((size_t)(t.numel / 32));
    constexpr uint64_t kChunk = 1 << 18;  // floats, a multiple of 32
    float buf[256];
    for (uint64_t i0 = 0; i0 < t.numel; i0 += kChunk) {
        const uint64_t i1 = std::min<uint64_t>(t.numel, i0 + kChunk);
        for (uint64_t i = i0; i < i1; i += 256) {
            const uint64_t n = std::min<uint64_t>(256, i1 - i);  // numel is a multiple of 32 (hidden is)
            std::memcpy(buf, t.data + i * 4, (size_t)(n * 4));
            ek_quantize_q8_0(buf, 1, (int64_t)n, out.q.data() + i, out.d.data() + i / 32);
        }
        a.release(t.data + i0 * 4, (i1 - i0) * 4);
    }
    return out;
}

std::vector<float> float_vector(const Artifact& a, const std::string& name, int64_t n) {
    const TensorInfo& t = tensor(a, name, DType::kF32, {n});
    std::vector<float> v((size_t)n);
    std::memcpy(v.data(), t.data, (size_t)t.nbytes());
    return v;
}

// The static activation scale of a per_tensor linear: float32 [1], finite and positive.
float act_scale(const Artifact& a, const std::string& name) {
    const TensorInfo& t = tensor(a, name + ".act_scale", DType::kF32, {1});
    float v;
    std::memcpy(&v, t.data, sizeof v);
    if (!(v > 0.0f) || !std::isfinite(v)) a.fail(K::kFormat, name + ".act_scale must be finite and > 0");
    return v;
}

// qweight U8 [n, k/2] (Q4_0 codes, group-split nibbles) + scales F16 [n, k/32] → Q4_0 blocks → q4x4.
Q4Weight q4_weight(const Artifact& a, const std::string& name, int64_t n, int64_t k) {
    if (k % EK_Q4_BLOCK != 0) a.fail(K::kFormat, name + ": K = " + std::to_string(k) + " is not a multiple of 32");
    const int64_t nb = k / EK_Q4_BLOCK, half = EK_Q4_BLOCK / 2;
    const TensorInfo& qw = tensor(a, name + ".qweight", DType::kU8, {n, k / 2});
    const TensorInfo& sc = tensor(a, name + ".scales", DType::kF16, {n, nb});
    std::vector<ek_block_q4_0> blocks((size_t)(n * nb));
    for (int64_t b = 0; b < n * nb; ++b) {
        std::memcpy(&blocks[b].d, sc.data + b * 2, 2);                 // scales may be unaligned in the file
        std::memcpy(blocks[b].qs, qw.data + b * half, (size_t)half);  // row r, block j = bytes (r * nb + j) * 16
    }
    const int64_t tiles = (n + EK_Q4X4_ROWS - 1) / EK_Q4X4_ROWS;
    std::vector<uint8_t> qs4((size_t)(tiles * nb * EK_Q4X4_TILE_QS_BYTES));
    std::vector<uint16_t> d4((size_t)(tiles * nb * EK_Q4X4_ROWS));
    ek_pack_q4x4(blocks.data(), n, k, qs4.data(), d4.data());
    Q4Weight w;
    w.n = n;
    w.k = k;
    // the layout the kernels run here, made once into the weight chunks: a q4x4 copy regrouped later would leave
    // its bytes there as dead, resident space (weight_arena.h allocates by bumping)
    if (preferred_q4_rows() == EK_Q4X16_ROWS) {
        set_q4x16(w, ek_q4x4{qs4.data(), d4.data(), n, k, 0});
    } else {
        w.qs.assign(qs4.begin(), qs4.end());
        w.d.assign(d4.begin(), d4.end());
    }
    a.release(qw.data, qw.nbytes());  // the packed copy is what stays resident
    a.release(sc.data, sc.nbytes());
    return w;
}

// The artifact's adaptive computation modules (metadata 'edgekit.acm': n_learners, learner_width, gate_hidden,
// gate_act; edgekit/quant/serialize.py writes it), or none. Returns the learners per layer (0: none).
struct AcmSpec {
    int n = 0, width = 0, hidden = 0;
};

AcmSpec read_acm(const Artifact& a, int64_t ffn) {
    AcmSpec s;
    if (!a.meta("edgekit.acm")) return s;
    const Value v = meta_json(a, "edgekit.acm");
    if (v.type != Type::kObject) a.fail(K::kFormat, "metadata 'edgekit.acm' must be a JSON object");
    s.n = cfg_int(a, v, "n_learners", 1, 4096);
    s.width = cfg_int(a, v, "learner_width", 1, 1 << 18);
    s.hidden = cfg_int(a, v, "gate_hidden", 1, 1 << 16);
    const Value* act = v.find("gate_act");
    if (!act || act->type != Type::kString || act->string != "gelu")
        a.fail(K::kUnsupported, "edgekit.acm gate_act must be \"gelu\" (the gate this runtime runs)");
    if ((int64_t)s.n * s.width != ffn || s.width % EK_Q4_BLOCK)
        a.fail(K::kFormat, "edgekit.acm: " + std::to_string(s.n) + " learners of " + std::to_string(s.width) +
                           " must tile the FFN width " + std::to_string(ffn) + " in multiples of 32");
    return s;
}

std::vector<float> float_matrix(const Artifact& a, const std::string& name, int64_t rows, int64_t cols) {
    const TensorInfo& t = tensor(a, name, DType::kF32, {rows, cols});
    std::vector<float> v((size_t)(rows * cols));
    std::memcpy(v.data(), t.data, (size_t)t.nbytes());
    return v;
}

AcmGate acm_gate(const Artifact& a, const AcmSpec& s, const std::string& p, int64_t h) {
    AcmGate g;
    g.n = s.n;
    g.width = s.width;
    g.hidden = s.hidden;
    g.dim = (int)h;
    acm_set_fc1(g, float_matrix(a, p + "mlp.gate.fc1.weight", s.hidden, h).data());
    g.b1 = float_vector(a, p + "mlp.gate.fc1.bias", s.hidden);
    g.w2 = float_matrix(a, p + "mlp.gate.fc2.weight", s.n + 1, s.hidden);
    g.b2 = float_vector(a, p + "mlp.gate.fc2.bias", s.n + 1);
    return g;
}

}  // namespace load

using namespace load;

std::unique_ptr<LlamaModel> load_llama(const std::string& path, int max_ctx) {
    check_max_ctx(max_ctx);
    Artifact a(path);
    check_kind(a, "llama", "causal-lm", "; the C++ runtime runs llama-family causal LMs (causal-lm) and T5 "
                                        "encoder-decoders (seq2seq-lm, load_t5)");
    bool tied = false;
    const LlamaConfig c = read_config(a, meta_json(a, "edgekit.model_config"), max_ctx, &tied);
    const Value quant = meta_json(a, "edgekit.quant");
    check_quant(a, quant);
    const PruneSchedule prune = read_prune(a, quant, c.n_layers);
    const Value linears = meta_json(a, "edgekit.linears");
    if (linears.type != Type::kObject) a.fail(K::kFormat, "metadata 'edgekit.linears' must be a JSON object");

    const int64_t h = c.hidden, q_dim = (int64_t)c.n_heads * c.head_dim, kv_dim = (int64_t)c.n_kv_heads * c.head_dim;
    const int64_t shapes[7][2] = {{q_dim, h}, {kv_dim, h}, {kv_dim, h}, {h, q_dim}, {c.ffn, h}, {c.ffn, h}, {h, c.ffn}};
    std::set<std::string> expected;
    const AcmSpec acm = read_acm(a, c.ffn);
    std::vector<LlamaLayer> layers((size_t)c.n_layers);
    for (int i = 0; i < c.n_layers; ++i) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        LlamaLayer& l = layers[(size_t)i];
        l.attn_norm = float_vector(a, p + "input_layernorm.weight", h);
        l.ffn_norm = float_vector(a, p + "post_attention_layernorm.weight", h);
        Q4Weight* dst[7] = {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down};
        for (int j = 0; j < 7; ++j) {
            const std::string name = p + kLinears[j];
            const ActQuant act = check_linear(a, linears, name, shapes[j][0], shapes[j][1]);
            *dst[j] = q4_weight(a, name, shapes[j][0], shapes[j][1]);
            dst[j]->act = act;
            if (act == ActQuant::kPerTensor) dst[j]->act_scale = act_scale(a, name);
            expected.insert(name);
        }
        if (acm.n) l.acm = acm_gate(a, acm, p, h);
    }
    for (const json::Member& m : linears.object) {
        if (!expected.count(m.key))
            a.fail(K::kUnsupported, "quantized linear '" + m.key + "' is not part of the llama decoder the C++ "
                                    "runtime runs" + kRunElsewhere);
    }
    const TensorInfo& table = tensor(a, "model.embed_tokens.weight", DType::kF32, {c.vocab, h});
    Q8Table q8, head_q8;
    std::vector<uint16_t> embed, head;
    const bool act8 = q8_head_act8(a, quant);  // checked even where the head is fp16
    if (q8_head(a, quant)) {
        if (h % 32) a.fail(K::kFormat, "lm_head_bits 8 needs a hidden size that is a multiple of 32");
        q8 = q8_table(a, table);
        if (!tied) head_q8 = q8_table(a, tensor(a, "lm_head.weight", DType::kF32, {c.vocab, h}));
        q8.act8 = head_q8.act8 = act8;
    } else {
        embed = fp16_table(a, table);
        if (!tied) head = fp16_table(a, tensor(a, "lm_head.weight", DType::kF32, {c.vocab, h}));
    }
    const std::vector<float> norm = float_vector(a, "model.norm.weight", h);
    try {
        auto model = std::make_unique<LlamaModel>(c, std::move(embed), norm.data(), std::move(layers), std::move(head),
                                                  std::move(q8), std::move(head_q8));
        model->set_pruning(prune);
        return model;
    } catch (const std::invalid_argument& e) {
        a.fail(K::kFormat, e.what());
    }
}

}  // namespace edgekit
