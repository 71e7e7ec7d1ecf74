// Text generation on the runtime (the C API's ek_generate): a sampler (greedy, temperature, top-k, top-p, seeded)
// and the loop that prefills a prompt, samples token after token and streams their text with stop strings.
#ifndef EDGEKIT_GENERATE_H
#define EDGEKIT_GENERATE_H

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace edgekit {

class LlamaModel;
class T5Model;
class Tokenizer;

struct SamplingOptions {
    float temperature = 0.0f;  // <= 0: greedy (the first largest logit)
    int top_k = 0;             // <= 0: all tokens
    float top_p = 1.0f;        // >= 1: no nucleus cut
    uint64_t seed = 0;
};

// Draws tokens from logits. The same options, seed and logits give the same tokens on every platform: its own
// random generator (splitmix64) and double-precision arithmetic in a fixed order, no <random> distributions.
class Sampler {
public:
    explicit Sampler(const SamplingOptions& o);
    int32_t sample(const float* logits, int n);

private:
    double uniform();  // in [0, 1)
    SamplingOptions o_;
    uint64_t state_;
    std::vector<int32_t> order_;
    std::vector<double> p_;
};

struct GenerateOptions {
    SamplingOptions sampling;
    int max_tokens = 64;              // new tokens at most (> 0)
    std::vector<std::string> stop;    // generation ends once the text contains one of these (non-empty) strings
    bool stop_at_eos = true;          // the tokenizer's EOS ends generation
    bool add_special = false;         // tokenize the prompt with the post-processor's tokens
};

// Called once per new token with its id and the text it completes (UTF-8; empty while a character or a possible stop
// string is still open; the last call carries whatever was held back). Returns false to stop after this token (text
// still held back then is dropped).
using TokenCallback = std::function<bool(int32_t token, const std::string& text)>;

// The prompt alone does not fit the KV cache (the C API's EK_ERR_CONTEXT_FULL).
class ContextFullError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Empties the model's cache, prefills the prompt's tokens and generates until max_tokens, EOS, a stop string (its
// text and what follows it are not reported), the callback's false, or a full cache. The last token is reported but
// not evaluated, so the cache holds the prompt and every new token but the last. Returns the number of new tokens.
// std::invalid_argument for an empty prompt or bad options, ContextFullError for a prompt longer than the cache.
int generate(LlamaModel& model, const Tokenizer& tok, const std::string& prompt, const GenerateOptions& opt,
             const TokenCallback& on_token);
// The same for an encoder-decoder: the encoder reads the prompt once (any length), the decoder starts from its
// decoder_start token and its cache bounds the new tokens.
int generate(T5Model& model, const Tokenizer& tok, const std::string& prompt, const GenerateOptions& opt,
             const TokenCallback& on_token);

}  // namespace edgekit

#endif  // EDGEKIT_GENERATE_H
