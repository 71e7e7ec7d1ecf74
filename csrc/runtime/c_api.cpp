// The C API of edgekit.h over load_llama / LlamaModel. Compiled into libedgekit.so only (CMakeLists.txt).
//
// Every entry point runs its body inside guard(), which turns each C++ exception into a status and a thread-local
// message; the message lives in a fixed buffer so that reporting an out-of-memory error cannot itself allocate.
// Arguments are checked here, before the model is touched, so that a rejected call leaves the model unchanged.
#include "edgekit.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "edgekit/artifact.h"
#include "edgekit/dispatch.h"
#include "edgekit/generate.h"
#include "edgekit/load_llama.h"
#include "edgekit/t5.h"
#include "edgekit/threadpool.h"
#include "edgekit/tokenizer.h"

struct ek_model {
    std::unique_ptr<edgekit::LlamaModel> model;  // a decoder-only model, or
    std::unique_ptr<edgekit::T5Model> t5;        // an encoder-decoder (then ek_eval runs its decoder)
    std::vector<float> logits;  // rows × vocab of the last evaluation
    int32_t rows = 0;
    std::string path;                                // the artifact, for the tokenizer read on first use
    std::unique_ptr<edgekit::Tokenizer> tokenizer;  // null until then
};

namespace {

thread_local char g_error[2048] = "";

ek_status fail(ek_status status, const char* message) {
    std::snprintf(g_error, sizeof g_error, "%s", message);
    return status;
}

ek_status status_of(edgekit::ArtifactError::Kind kind) {
    switch (kind) {
        case edgekit::ArtifactError::Kind::kIO: return EK_ERR_IO;
        case edgekit::ArtifactError::Kind::kFormat: return EK_ERR_FORMAT;
        case edgekit::ArtifactError::Kind::kUnsupported: return EK_ERR_UNSUPPORTED;
    }
    return EK_ERR_INTERNAL;
}

template <typename Fn>
ek_status guard(Fn&& fn) {
    try {
        return fn();
    } catch (const edgekit::ArtifactError& e) {
        return fail(status_of(e.kind()), e.what());
    } catch (const std::bad_alloc&) {
        return fail(EK_ERR_OOM, "out of memory");
    } catch (const std::length_error&) {
        return fail(EK_ERR_OOM, "out of memory (a size too large to allocate)");
    } catch (const std::invalid_argument& e) {
        return fail(EK_ERR_INVALID_ARGUMENT, e.what());
    } catch (const std::exception& e) {
        return fail(EK_ERR_INTERNAL, e.what());
    } catch (...) {
        return fail(EK_ERR_INTERNAL, "unknown C++ exception");
    }
}

ek_status no_model() { return fail(EK_ERR_INVALID_ARGUMENT, "model is NULL"); }

// What a decoder-only model has and an encoder-decoder does not (pruning, ACM, truncate).
ek_status decoder_only(const char* what) {
    return fail(EK_ERR_UNSUPPORTED, (std::string(what) + ": the model is an encoder-decoder (T5), which this call "
                                     "does not run; use ek_encode, then ek_eval / ek_decode").c_str());
}

// Whether the artifact at `path` is an encoder-decoder (edgekit.task seq2seq-lm); throws ArtifactError.
bool is_seq2seq_artifact(const char* path) {
    const edgekit::Artifact a(path);
    const std::string* task = a.meta("edgekit.task");
    return task && *task == "seq2seq-lm";
}

// The model's tokenizer, read from its artifact the first time (models that only take ids never pay for it).
// Throws ArtifactError as Tokenizer::from_artifact does.
const edgekit::Tokenizer& tokenizer_of(ek_model* model) {
    if (!model->tokenizer) {
        const edgekit::Artifact artifact(model->path);
        model->tokenizer = edgekit::Tokenizer::from_artifact(artifact);
    }
    return *model->tokenizer;
}

}  // namespace

extern "C" {

ek_load_params ek_load_params_default(void) {
    ek_load_params p;
    std::memset(&p, 0, sizeof p);
    p.struct_size = sizeof(ek_load_params);
    p.version = EK_LOAD_PARAMS_VERSION;
    return p;
}

ek_status ek_model_load(const char* path, const ek_load_params* params, ek_model** out) {
    if (out) *out = nullptr;
    if (!path || !out) return fail(EK_ERR_INVALID_ARGUMENT, "ek_model_load: path and out must not be NULL");
    ek_load_params p = ek_load_params_default();
    if (params) {
        if (params->version != EK_LOAD_PARAMS_VERSION || params->struct_size < sizeof(ek_load_params)) {
            return fail(EK_ERR_INVALID_ARGUMENT, "ek_model_load: params must come from ek_load_params_default() "
                                                 "(struct_size or version does not match this library)");
        }
        p = *params;
    }
    return guard([&] {
        // an unusable EDGEKIT_KERNELS setting is reported now rather than at the first token
        try {
            edgekit::kernel<edgekit::Op::quant_row_q8>();
            edgekit::kernel<edgekit::Op::gemm_q4x4_q8>();
        } catch (const std::runtime_error& e) {
            return fail(EK_ERR_UNSUPPORTED, (std::string("kernel selection failed: ") + e.what()).c_str());
        }
        if (p.n_threads > 0) edgekit::set_num_threads(p.n_threads);
        auto m = std::make_unique<ek_model>();
        if (is_seq2seq_artifact(path)) m->t5 = edgekit::load_t5(path, p.max_ctx);
        else m->model = edgekit::load_llama(path, p.max_ctx);
        m->path = path;
        *out = m.release();
        return EK_OK;
    });
}

void ek_model_free(ek_model* model) { delete model; }

ek_status ek_eval(ek_model* model, const int32_t* tokens, int32_t n_tokens, int all_logits) {
    if (!model) return no_model();
    if (!tokens || n_tokens <= 0) return fail(EK_ERR_INVALID_ARGUMENT, "ek_eval: tokens must be a non-empty array");
    return guard([&] {
        const int32_t vocab = ek_n_vocab(model), max_ctx = ek_n_ctx(model);
        for (int32_t i = 0; i < n_tokens; ++i) {
            if (tokens[i] < 0 || tokens[i] >= vocab) {
                const std::string msg = "ek_eval: token " + std::to_string(i) + " is " + std::to_string(tokens[i]) +
                                        ", outside the vocabulary 0.." + std::to_string(vocab - 1);
                return fail(EK_ERR_INVALID_ARGUMENT, msg.c_str());
            }
        }
        if (model->t5 && model->t5->n_source() == 0)
            return fail(EK_ERR_INVALID_ARGUMENT, "ek_eval: an encoder-decoder decodes after ek_encode(prompt)");
        const int32_t past = ek_n_past(model);
        if ((int64_t)past + n_tokens > max_ctx) {
            const std::string msg = "ek_eval: the KV cache holds " + std::to_string(max_ctx) + " tokens; " +
                                    std::to_string(past) + " used, " + std::to_string(n_tokens) + " more requested";
            return fail(EK_ERR_CONTEXT_FULL, msg.c_str());
        }
        const int32_t rows = all_logits ? n_tokens : 1;
        model->rows = 0;  // no logits while (and if) the evaluation fails
        model->logits.resize((size_t)rows * (size_t)vocab);
        if (model->t5) model->t5->eval(tokens, n_tokens, model->logits.data(), all_logits != 0);
        else model->model->eval(tokens, n_tokens, model->logits.data(), all_logits != 0);
        model->rows = rows;
        return EK_OK;
    });
}

ek_status ek_decode(ek_model* model, int32_t token) { return ek_eval(model, &token, 1, 0); }

const float* ek_get_logits(const ek_model* model, int32_t* n_rows) {
    const int32_t rows = model ? model->rows : 0;
    if (n_rows) *n_rows = rows;
    return rows > 0 ? model->logits.data() : nullptr;
}

int32_t ek_n_vocab(const ek_model* model) {
    return !model ? 0 : model->t5 ? model->t5->config().vocab : model->model->config().vocab;
}
int32_t ek_n_ctx(const ek_model* model) {
    return !model ? 0 : model->t5 ? model->t5->config().max_ctx : model->model->config().max_ctx;
}
int32_t ek_n_past(const ek_model* model) { return !model ? 0 : model->t5 ? model->t5->n_past() : model->model->n_past(); }

int32_t ek_is_encoder_decoder(const ek_model* model) { return model && model->t5 ? 1 : 0; }

int32_t ek_decoder_start(const ek_model* model) { return model && model->t5 ? model->t5->config().decoder_start : -1; }

ek_status ek_encode(ek_model* model, const int32_t* tokens, int32_t n_tokens) {
    if (!model) return no_model();
    if (!model->t5) return fail(EK_ERR_UNSUPPORTED, "ek_encode: the model is decoder-only; ek_eval reads its prompt");
    if (!tokens || n_tokens <= 0) return fail(EK_ERR_INVALID_ARGUMENT, "ek_encode: tokens must be a non-empty array");
    return guard([&] {
        model->rows = 0;
        model->t5->encode(tokens, n_tokens);
        return EK_OK;
    });
}

ek_status ek_reset(ek_model* model) {
    if (!model) return no_model();
    if (model->t5) model->t5->reset();
    else model->model->reset();
    model->rows = 0;
    return EK_OK;
}

ek_status ek_truncate(ek_model* model, int32_t n) {
    if (!model) return no_model();
    if (model->t5) return decoder_only("ek_truncate");
    return guard([&] {
        const int32_t past = model->model->n_past();
        if (n < 0 || n > past) {
            const std::string msg = "ek_truncate: n = " + std::to_string(n) + " must lie in 0.." + std::to_string(past);
            return fail(EK_ERR_INVALID_ARGUMENT, msg.c_str());
        }
        model->model->truncate(n);
        model->rows = 0;
        return EK_OK;
    });
}

ek_status ek_set_pruning(ek_model* model, float ratio, const int32_t* layers, int32_t n_layers,
                         int32_t keep_last) {
    if (!model) return no_model();
    if (model->t5) return decoder_only("ek_set_pruning");
    if (n_layers < 0 || (n_layers > 0 && !layers))
        return fail(EK_ERR_INVALID_ARGUMENT, "ek_set_pruning: layers must point to n_layers >= 0 layer indices");
    return guard([&] {
        model->model->set_pruning(edgekit::PruneSchedule{ratio, {layers, layers + n_layers}, keep_last});
        return EK_OK;
    });
}

ek_status ek_set_acm(ek_model* model, float gate_bias, int32_t force_k) {
    if (!model) return no_model();
    if (model->t5) return decoder_only("ek_set_acm");
    return guard([&] {
        model->model->set_acm(edgekit::AcmControl{gate_bias, force_k});
        return EK_OK;
    });
}

int32_t ek_acm_learners(const ek_model* model) { return model && model->model ? model->model->acm_learners() : 0; }

ek_status ek_acm_counts(ek_model* model, int64_t* counts, int32_t n_counts, double* fraction, int reset) {
    if (!model) return no_model();
    if (model->t5) return decoder_only("ek_acm_counts");
    const int n = model->model->acm_learners();
    if (n == 0) return fail(EK_ERR_INVALID_ARGUMENT, "ek_acm_counts: the model has no adaptive computation modules");
    if (!counts || n_counts < n + 1)
        return fail(EK_ERR_INVALID_ARGUMENT, ("ek_acm_counts: counts must hold N + 1 = " + std::to_string(n + 1) +
                                                  " values").c_str());
    const std::vector<int64_t>& c = model->model->acm_counts();
    int64_t tokens = 0;
    double learners = 0.0;
    for (int k = 0; k <= n; ++k) counts[k] = 0;
    for (size_t i = 0; i < c.size(); ++i) {
        const int k = (int)(i % (size_t)(n + 1));
        counts[k] += c[i];
        tokens += c[i];
        learners += (double)k * (double)c[i];
    }
    if (fraction) *fraction = tokens ? learners / ((double)tokens * n) : 0.0;
    if (reset) model->model->reset_acm_counts();
    return EK_OK;
}

ek_status ek_tokenize(ek_model* model, const char* text, int32_t n_text, int add_special, int32_t* tokens,
                      int32_t capacity, int32_t* n_tokens) {
    if (n_tokens) *n_tokens = 0;
    if (!model) return no_model();
    if (!text || !n_tokens || capacity < 0 || (capacity > 0 && !tokens))
        return fail(EK_ERR_INVALID_ARGUMENT, "ek_tokenize: text and n_tokens must not be NULL, tokens must hold "
                                             "capacity >= 0 ids");
    return guard([&] {
        const size_t len = n_text < 0 ? std::strlen(text) : (size_t)n_text;
        const std::vector<int32_t> ids = tokenizer_of(model).encode(std::string(text, len), add_special != 0);
        if (ids.size() > (size_t)INT32_MAX) return fail(EK_ERR_INVALID_ARGUMENT, "ek_tokenize: text too long");
        *n_tokens = (int32_t)ids.size();
        if ((size_t)capacity < ids.size()) {
            const std::string msg = "ek_tokenize: the text has " + std::to_string(ids.size()) + " tokens, the "
                                    "buffer holds " + std::to_string(capacity);
            return fail(EK_ERR_BUFFER_TOO_SMALL, msg.c_str());
        }
        std::copy(ids.begin(), ids.end(), tokens);
        return EK_OK;
    });
}

ek_status ek_detokenize(ek_model* model, const int32_t* tokens, int32_t n_tokens, int skip_special, char* text,
                        int32_t capacity, int32_t* n_text) {
    if (n_text) *n_text = 0;
    if (!model) return no_model();
    if (!n_text || n_tokens < 0 || (n_tokens > 0 && !tokens) || capacity < 0 || (capacity > 0 && !text))
        return fail(EK_ERR_INVALID_ARGUMENT, "ek_detokenize: tokens must hold n_tokens >= 0 ids, text capacity "
                                             ">= 0 bytes, and n_text must not be NULL");
    return guard([&] {
        const std::string s = tokenizer_of(model).decode(tokens, (size_t)n_tokens, skip_special != 0);
        if (s.size() >= (size_t)INT32_MAX) return fail(EK_ERR_INVALID_ARGUMENT, "ek_detokenize: text too long");
        *n_text = (int32_t)s.size();
        if ((size_t)capacity < s.size() + 1) {
            const std::string msg = "ek_detokenize: the text needs " + std::to_string(s.size() + 1) + " bytes with "
                                    "its NUL, the buffer holds " + std::to_string(capacity);
            return fail(EK_ERR_BUFFER_TOO_SMALL, msg.c_str());
        }
        std::memcpy(text, s.data(), s.size());
        text[s.size()] = '\0';
        return EK_OK;
    });
}

int32_t ek_token_eos(ek_model* model) {
    if (!model) return (no_model(), -1);
    int32_t eos = -1;
    guard([&] {
        eos = tokenizer_of(model).eos();
        return eos < 0 ? fail(EK_ERR_UNSUPPORTED, "the artifact's tokenizer names no end-of-sequence token") : EK_OK;
    });
    return eos;
}

ek_sampling ek_sampling_default(void) {
    ek_sampling s;
    std::memset(&s, 0, sizeof s);
    s.struct_size = sizeof(ek_sampling);
    s.version = EK_SAMPLING_VERSION;
    s.top_p = 1.0f;
    s.max_tokens = 64;
    s.stop_at_eos = 1;
    return s;
}

ek_status ek_generate(ek_model* model, const char* prompt, const ek_sampling* settings, ek_token_callback callback,
                      void* user_data, int32_t* n_generated) {
    if (n_generated) *n_generated = 0;
    if (!model) return no_model();
    if (!prompt) return fail(EK_ERR_INVALID_ARGUMENT, "ek_generate: prompt must not be NULL");
    ek_sampling s = ek_sampling_default();
    if (settings) {
        if (settings->version != EK_SAMPLING_VERSION || settings->struct_size < sizeof(ek_sampling))
            return fail(EK_ERR_INVALID_ARGUMENT, "ek_generate: settings must come from ek_sampling_default() "
                                                 "(struct_size or version does not match this library)");
        s = *settings;
    }
    if (s.max_tokens <= 0) return fail(EK_ERR_INVALID_ARGUMENT, "ek_generate: max_tokens must be > 0");
    if (!(s.top_p > 0.0f && s.top_p <= 1.0f) || !std::isfinite(s.temperature))
        return fail(EK_ERR_INVALID_ARGUMENT, "ek_generate: top_p must lie in (0, 1] and temperature be finite");
    if (s.n_stop < 0 || (s.n_stop > 0 && !s.stop))
        return fail(EK_ERR_INVALID_ARGUMENT, "ek_generate: stop must point to n_stop >= 0 strings");
    edgekit::GenerateOptions opt;
    opt.sampling = edgekit::SamplingOptions{s.temperature, s.top_k, s.top_p, s.seed};
    opt.max_tokens = s.max_tokens;
    opt.stop_at_eos = s.stop_at_eos != 0;
    opt.add_special = s.add_special != 0;
    for (int32_t i = 0; i < s.n_stop; ++i) {
        if (!s.stop[i] || !*s.stop[i])
            return fail(EK_ERR_INVALID_ARGUMENT, "ek_generate: stop strings must be non-empty and not NULL");
        opt.stop.emplace_back(s.stop[i]);
    }
    return guard([&] {
        const edgekit::Tokenizer& tok = tokenizer_of(model);
        model->rows = 0;  // the logits of earlier calls are gone once the cache is reset
        try {  // std::invalid_argument (bad input) goes on to guard()
            const edgekit::TokenCallback each = [&](int32_t id, const std::string& text) {
                return !callback || callback(user_data, id, text.c_str(), (int32_t)text.size()) == 0;
            };
            const int n = model->t5 ? edgekit::generate(*model->t5, tok, prompt, opt, each)
                                    : edgekit::generate(*model->model, tok, prompt, opt, each);
            if (n_generated) *n_generated = n;
        } catch (const edgekit::ContextFullError& e) {
            return fail(EK_ERR_CONTEXT_FULL, e.what());
        }
        return EK_OK;
    });
}

ek_status ek_kernels(char* text, int32_t capacity, int32_t* n_text) {
    if (capacity < 0 || (capacity > 0 && !text)) return fail(EK_ERR_INVALID_ARGUMENT, "ek_kernels: NULL buffer");
    return guard([&] {
        std::string line;
        try {
            for (const std::string& op : edgekit::ops()) line += (line.empty() ? "" : ",") + op + "=" +
                                                                edgekit::selected(op);
        } catch (const std::runtime_error& e) {  // EDGEKIT_KERNELS names something this CPU cannot run
            return fail(EK_ERR_UNSUPPORTED, e.what());
        }
        if (n_text) *n_text = (int32_t)line.size();
        if ((int64_t)line.size() + 1 > capacity) {
            std::snprintf(g_error, sizeof g_error, "ek_kernels: the buffer needs %zu bytes", line.size() + 1);
            return EK_ERR_BUFFER_TOO_SMALL;
        }
        std::memcpy(text, line.c_str(), line.size() + 1);
        return EK_OK;
    });
}

ek_status ek_set_num_threads(int32_t n) {
    return guard([&] {
        edgekit::set_num_threads(n);
        return EK_OK;
    });
}

const char* ek_last_error(void) { return g_error; }

const char* ek_status_name(ek_status status) {
    switch (status) {
        case EK_OK: return "EK_OK";
        case EK_ERR_INVALID_ARGUMENT: return "EK_ERR_INVALID_ARGUMENT";
        case EK_ERR_IO: return "EK_ERR_IO";
        case EK_ERR_FORMAT: return "EK_ERR_FORMAT";
        case EK_ERR_UNSUPPORTED: return "EK_ERR_UNSUPPORTED";
        case EK_ERR_CONTEXT_FULL: return "EK_ERR_CONTEXT_FULL";
        case EK_ERR_OOM: return "EK_ERR_OOM";
        case EK_ERR_INTERNAL: return "EK_ERR_INTERNAL";
        case EK_ERR_BUFFER_TOO_SMALL: return "EK_ERR_BUFFER_TOO_SMALL";
    }
    return "EK_ERR_UNKNOWN";
}

}  // extern "C"
