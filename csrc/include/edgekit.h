/* edgekit C API: run a quantized edgekit artifact (.ekq, a W4A8 llama-family causal LM or T5 encoder-decoder) from
 * C, C++ or any language with a C FFI. Link with -ledgekit (libedgekit.so; the Python package ships it as edgekit/lib/ and this
 * header as edgekit/include/edgekit.h, see `edgekit.native.capi`).
 *
 *   ek_model* m = NULL;
 *   if (ek_model_load("model.ekq", NULL, &m) != EK_OK) { fprintf(stderr, "%s\n", ek_last_error()); return 1; }
 *   ek_eval(m, prompt, n_prompt, 0);                  // prefill; logits of the last position
 *   for (...) { next = argmax(ek_get_logits(m, NULL), ek_n_vocab(m)); ek_decode(m, next); }
 *   ek_model_free(m);
 *
 * Conventions
 *   - Every function that can fail returns an ek_status; EK_OK is 0. On failure ek_last_error() gives a one-line
 *     message (naming the file, tensor or key when there is one) and the model's state is unchanged unless said.
 *   - No C++ exception ever leaves this library; no input file, however damaged, makes it crash: artifacts are
 *     validated in full before use.
 *   - A model may be used by one thread at a time; different models may be used from different threads (their
 *     matmuls take turns on the process-wide kernel thread pool).
 *   - Tokens are int32 ids of the model's vocabulary. ek_tokenize / ek_detokenize convert text (UTF-8) with the
 *     tokenizer the artifact carries (its Hugging Face tokenizer.json, metadata key "edgekit.tokenizer"); ids are
 *     those of the `tokenizers` library.
 *   - Functions that fill a caller's buffer take its capacity and report the size needed; a buffer too small gives
 *     EK_ERR_BUFFER_TOO_SMALL with that size, so a caller can allocate and call again.
 */
#ifndef EDGEKIT_H
#define EDGEKIT_H

#include <stdint.h>

#if defined(_WIN32)
#define EK_API __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define EK_API __attribute__((visibility("default")))
#else
#define EK_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this API; grows when functions are added (existing ones keep their meaning). */
#define EK_API_VERSION 4  /* 2: ek_tokenize, ek_detokenize, ek_token_eos, ek_generate; 3: ek_kernels;
                             4: encoder-decoders (ek_is_encoder_decoder, ek_encode, ek_decoder_start) */

typedef enum ek_status {
    EK_OK = 0,
    EK_ERR_INVALID_ARGUMENT = 1, /* a NULL pointer, a count or token id out of range, bad params */
    EK_ERR_IO = 2,               /* the file cannot be opened or read */
    EK_ERR_FORMAT = 3,           /* not a valid artifact: not safetensors, damaged, truncated, inconsistent */
    EK_ERR_UNSUPPORTED = 4,      /* a valid artifact this runtime cannot run (family, quantization, version) */
    EK_ERR_CONTEXT_FULL = 5,     /* the KV cache has no room for the tokens: ek_truncate or ek_reset first */
    EK_ERR_OOM = 6,              /* out of memory */
    EK_ERR_INTERNAL = 7,         /* a bug or an unexpected condition; the message says what */
    EK_ERR_BUFFER_TOO_SMALL = 8  /* an output buffer is too small; the size it needs was stored */
} ek_status;

/* A loaded model with its KV cache. Opaque. */
typedef struct ek_model ek_model;

#define EK_LOAD_PARAMS_VERSION 1

/* Options of ek_model_load. Start from ek_load_params_default() so that struct_size and version are right. */
typedef struct ek_load_params {
    uint32_t struct_size; /* sizeof(ek_load_params) as the caller was compiled */
    uint32_t version;     /* EK_LOAD_PARAMS_VERSION */
    int32_t max_ctx;      /* KV cache length in tokens; <= 0: min(2048, the model's max_position_embeddings) */
    int32_t n_threads;    /* threads of the kernels (process-wide, shared by all models); <= 0: leave as is
                             (initially all cores) */
} ek_load_params;

/* The defaults: max_ctx 0 and n_threads 0 (see above). */
EK_API ek_load_params ek_load_params_default(void);

/* Loads the artifact at `path` (params NULL: defaults) into *out. On failure *out is NULL.
 * EK_ERR_IO, EK_ERR_FORMAT, EK_ERR_UNSUPPORTED, EK_ERR_INVALID_ARGUMENT or EK_ERR_OOM. */
EK_API ek_status ek_model_load(const char* path, const ek_load_params* params, ek_model** out);

/* Frees the model and its cache. NULL is allowed. */
EK_API void ek_model_free(ek_model* model);

/* Runs n_tokens tokens at positions n_past .. n_past + n_tokens - 1 and appends them to the KV cache (prefill, or
 * any batch). Afterwards ek_get_logits gives n_tokens rows when all_logits is non-zero, else the last row only.
 * EK_ERR_INVALID_ARGUMENT (NULL, n_tokens <= 0, a token outside 0..n_vocab-1) and EK_ERR_CONTEXT_FULL leave the
 * model as it was; after EK_ERR_OOM or EK_ERR_INTERNAL n_past is unchanged and no logits are available. */
EK_API ek_status ek_eval(ek_model* model, const int32_t* tokens, int32_t n_tokens, int all_logits);

/* One decoding step: ek_eval(model, &token, 1, 0). */
EK_API ek_status ek_decode(ek_model* model, int32_t token);

/* The logits of the last successful ek_eval / ek_decode: rows × ek_n_vocab floats, row-major, one row per
 * evaluated position (all_logits) or one row for the last. *n_rows (if not NULL) receives the row count. NULL (and
 * 0 rows) before any evaluation and after ek_reset / ek_truncate. The pointer stays valid until the next call
 * that changes the model (eval, decode, reset, truncate, free). */
EK_API const float* ek_get_logits(const ek_model* model, int32_t* n_rows);

/* Sizes: vocabulary, KV cache length (max_ctx), tokens in the cache. 0 for a NULL model. */
EK_API int32_t ek_n_vocab(const ek_model* model);
EK_API int32_t ek_n_ctx(const ek_model* model);
EK_API int32_t ek_n_past(const ek_model* model);

/* Encoder-decoders (a T5 artifact of `edgekit quantize` on an `edgekit distill` student): ek_model_load loads them
 * too, and ek_is_encoder_decoder says so (1; 0 for a decoder-only model). ek_encode runs the encoder over the prompt
 * once, computes every decoder layer's cross-attention keys and values from it, and empties the decoder's cache;
 * then ek_eval / ek_decode append *decoder* tokens, starting from ek_decoder_start (-1 for a decoder-only model),
 * and n_past / n_ctx / ek_reset are the decoder's (ek_reset keeps the encoded prompt). ek_generate runs both: the
 * encoder reads the prompt, the decoder generates from ek_decoder_start. ek_truncate, ek_set_pruning and the ACM
 * calls give EK_ERR_UNSUPPORTED on an encoder-decoder; ek_encode gives it on a decoder. */
EK_API int32_t ek_is_encoder_decoder(const ek_model* model);
EK_API int32_t ek_decoder_start(const ek_model* model);
EK_API ek_status ek_encode(ek_model* model, const int32_t* tokens, int32_t n_tokens);

/* Empties the KV cache (n_past = 0). */
EK_API ek_status ek_reset(ek_model* model);

/* Keeps the first n cached tokens (0 <= n <= n_past) and forgets the rest, e.g. to rewind a rejected draft. */
EK_API ek_status ek_truncate(ek_model* model, int32_t n);

/* Token pruning of prompt prefills (Agile-Quant; the artifact's recipe sets a default): an ek_eval into an empty
 * cache drops, at each of the n_layers pruning layers (strictly increasing), the prompt tokens that attend least to
 * the first token, so that a fraction `ratio` (0 <= ratio < 1) of the prompt is gone after the last one; dropped
 * tokens skip the rest of the network. Position 0 and the last keep_last (>= 1) positions are never dropped; decode
 * is never pruned. n_layers = 0 turns pruning off. */
EK_API ek_status ek_set_pruning(ek_model* model, float ratio, const int32_t* layers, int32_t n_layers,
                                int32_t keep_last);

/* Adaptive computation modules (an artifact made by `edgekit quantize` from an `edgekit acm` model): each FFN runs
 * the first k of its N learners per token, k chosen by its gate. force_k in 0..N runs k learners for every token
 * (N: the dense FFN, bit for bit); force_k = -1 lets the gates decide, their logit k shifted by gate_bias * k / N
 * (> 0 runs more learners, < 0 fewer). EK_ERR_INVALID_ARGUMENT outside those ranges. Without ACM, N = 0. */
EK_API ek_status ek_set_acm(ek_model* model, float gate_bias, int32_t force_k);
EK_API int32_t ek_acm_learners(const ek_model* model);

/* Tokens per k since the last reset_counts (every layer's, added up), into counts[0..N] (n_counts >= N + 1); and
 * the mean executed fraction of the learners, k / N over tokens and layers, into *fraction (may be NULL). Then the
 * counts are zeroed when reset is non-zero. */
EK_API ek_status ek_acm_counts(ek_model* model, int64_t* counts, int32_t n_counts, double* fraction, int reset);

/* Text → token ids with the artifact's tokenizer. `text` holds n_text bytes of UTF-8 (n_text < 0: NUL-terminated);
 * add_special != 0 adds the tokens the tokenizer's post-processor puts around a text (e.g. a BOS), 0 gives the
 * text's tokens only. Special tokens written in the text (e.g. "<|im_start|>") become their ids. The ids go to
 * tokens[0 .. capacity) and their count to *n_tokens; when capacity is smaller, EK_ERR_BUFFER_TOO_SMALL (tokens may
 * be NULL with capacity 0 to ask for the count). The tokenizer is read from the artifact on the first call:
 * EK_ERR_UNSUPPORTED when the artifact carries none or one this runtime does not implement (byte-level BPE only;
 * the message names the part), EK_ERR_FORMAT when it is damaged, EK_ERR_INVALID_ARGUMENT for text that is not
 * UTF-8. */
EK_API ek_status ek_tokenize(ek_model* model, const char* text, int32_t n_text, int add_special, int32_t* tokens,
                             int32_t capacity, int32_t* n_tokens);

/* Token ids → UTF-8 text, as the tokenizer's decoder gives it (bytes that are not valid UTF-8 on their own, such as
 * half a character, become U+FFFD); skip_special != 0 leaves special tokens out. Writes the text and a terminating
 * NUL into text[0 .. capacity) and the length without the NUL to *n_text; EK_ERR_BUFFER_TOO_SMALL when capacity
 * < length + 1. EK_ERR_INVALID_ARGUMENT for an id the vocabulary does not have. */
EK_API ek_status ek_detokenize(ek_model* model, const int32_t* tokens, int32_t n_tokens, int skip_special,
                               char* text, int32_t capacity, int32_t* n_text);

/* The end-of-sequence token of the artifact's tokenizer (its tokenizer_config.json), or -1 when there is none or
 * no tokenizer (ek_last_error says why). */
EK_API int32_t ek_token_eos(ek_model* model);

#define EK_SAMPLING_VERSION 1

/* Settings of ek_generate. Start from ek_sampling_default() so that struct_size and version are right. */
typedef struct ek_sampling {
    uint32_t struct_size;    /* sizeof(ek_sampling) as the caller was compiled */
    uint32_t version;        /* EK_SAMPLING_VERSION */
    float temperature;       /* <= 0: greedy (the first largest logit); else softmax(logits / temperature) */
    int32_t top_k;           /* > 0: only the k most likely tokens (and any tied with the k-th) */
    float top_p;             /* < 1: only the most likely tokens whose mass reaches top_p (nucleus); in (0, 1] */
    uint64_t seed;           /* the same seed, settings and model give the same tokens, on every platform */
    int32_t max_tokens;      /* new tokens at most, > 0 */
    int32_t stop_at_eos;     /* non-zero: the tokenizer's end-of-sequence token ends generation */
    int32_t add_special;     /* non-zero: tokenize the prompt with the post-processor's tokens (ek_tokenize) */
    const char* const* stop; /* n_stop NUL-terminated, non-empty stop strings (may be NULL when n_stop is 0) */
    int32_t n_stop;
} ek_sampling;

/* Greedy, max_tokens 64, stop at EOS, no stop strings, add_special 0, seed 0, top_k 0, top_p 1. */
EK_API ek_sampling ek_sampling_default(void);

/* Called by ek_generate once per new token: its id and the UTF-8 text it completes (n_text bytes, NUL-terminated;
 * empty while a character or a possible stop string is still open, the last call carries what was held back).
 * Return non-zero to stop after this token (text still held back then is not reported). */
typedef int (*ek_token_callback)(void* user_data, int32_t token, const char* text, int32_t n_text);

/* Generates a continuation of `prompt` (NUL-terminated UTF-8): empties the cache, prefills the prompt's tokens (an
 * encoder-decoder: encodes them and starts the decoder from ek_decoder_start), then
 * samples until max_tokens, EOS (stop_at_eos), a stop string (neither its text nor anything after it is reported),
 * the callback's non-zero return, or a full cache. callback may be NULL. *n_generated (if not NULL) receives the
 * number of new tokens. Afterwards the cache holds the prompt and every new token but the last (reported, not
 * evaluated), so a caller can ek_decode it to continue. EK_ERR_INVALID_ARGUMENT for bad settings or an empty prompt,
 * EK_ERR_CONTEXT_FULL when the prompt alone does not fit, tokenizer errors as ek_tokenize. */
EK_API ek_status ek_generate(ek_model* model, const char* prompt, const ek_sampling* settings,
                             ek_token_callback callback, void* user_data, int32_t* n_generated);

/* The kernel implementation dispatch runs for every op on this CPU (honouring EDGEKIT_KERNELS), as one line
 * "op=impl,op=impl,..." (e.g. "gemm_q4x4_q8=neondot,..."), with the buffer conventions of ek_detokenize.
 * EK_ERR_UNSUPPORTED when EDGEKIT_KERNELS asks for a kernel this CPU or build lacks (the message says which). */
EK_API ek_status ek_kernels(char* text, int32_t capacity, int32_t* n_text);

/* Sets the kernels' thread count (process-wide; n <= 0: all cores). */
EK_API ek_status ek_set_num_threads(int32_t n);

/* The message of the most recent failed call on this thread ("" if none). Valid until the next failing call on
 * this thread. Never NULL. */
EK_API const char* ek_last_error(void);

/* A static name for a status, e.g. "EK_ERR_FORMAT". */
EK_API const char* ek_status_name(ek_status status);

#ifdef __cplusplus
}
#endif

#endif /* EDGEKIT_H */
