// generate.h: the sampler and the generation loop over LlamaModel::eval and the tokenizer.
#include "edgekit/generate.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "edgekit/llama.h"
#include "edgekit/t5.h"
#include "edgekit/tokenizer.h"
#include "edgekit/unicode.h"

namespace edgekit {

Sampler::Sampler(const SamplingOptions& o) : o_(o), state_(o.seed) {
    if (!std::isfinite(o.temperature) || !std::isfinite(o.top_p) || o.top_p <= 0.0f)
        throw std::invalid_argument("sampling: temperature must be finite and top_p in (0, 1]");
}

double Sampler::uniform() {
    // splitmix64: a fixed, portable sequence per seed
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53;
}

int32_t Sampler::sample(const float* logits, int n) {
    if (o_.temperature <= 0.0f) return (int32_t)(std::max_element(logits, logits + n) - logits);
    // candidates by logit, largest first (ties: lower id first); top-k keeps the k largest and any tied with the k-th
    order_.resize((size_t)n);
    for (int i = 0; i < n; ++i) order_[(size_t)i] = i;
    std::stable_sort(order_.begin(), order_.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
    size_t keep = (size_t)n;
    if (o_.top_k > 0 && o_.top_k < n) {
        const float kth = logits[order_[(size_t)o_.top_k - 1]];
        keep = (size_t)o_.top_k;
        while (keep < (size_t)n && logits[order_[keep]] >= kth) ++keep;
    }
    // softmax of logits / temperature over the candidates
    p_.resize(keep);
    const double top = (double)logits[order_[0]] / o_.temperature;
    double sum = 0.0;
    for (size_t i = 0; i < keep; ++i) sum += p_[i] = std::exp((double)logits[order_[i]] / o_.temperature - top);
    // top-p: the smallest prefix whose mass reaches top_p (a token stays when the mass before it is <= top_p)
    if (o_.top_p < 1.0f) {
        double before = 0.0;
        size_t k = 0;
        while (k < keep && before / sum <= (double)o_.top_p) before += p_[k++];
        keep = std::max<size_t>(k, 1);
        sum = 0.0;
        for (size_t i = 0; i < keep; ++i) sum += p_[i];
    }
    double u = uniform() * sum;
    for (size_t i = 0; i < keep; ++i) {
        if (u < p_[i]) return order_[i];
        u -= p_[i];
    }
    return order_[keep - 1];  // rounding left u at the very end
}

namespace {

// Text streaming with stop strings: bytes are held back while they end in an unfinished UTF-8 character or in the
// beginning of a stop string; a stop string found ends the text just before it.
class Stream {
public:
    explicit Stream(const std::vector<std::string>& stop) : stop_(stop) {}

    // Adds a token's bytes; returns the text that is safe to report now. *stopped: a stop string was completed.
    std::string add(const std::string& bytes, bool final, bool* stopped) {
        pending_ += bytes;
        size_t cut = std::string::npos;
        for (const std::string& s : stop_) cut = std::min(cut, pending_.find(s));
        *stopped = cut != std::string::npos;
        if (*stopped || final) return take(*stopped ? cut : pending_.size());
        size_t hold = 0;  // the longest end of pending_ that begins a stop string
        for (const std::string& s : stop_)
            for (size_t k = std::min(s.size() - 1, pending_.size()); k > hold; --k)
                if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
                    hold = k;
                    break;
                }
        return take(unicode::utf8_complete_prefix(pending_.data(), pending_.size() - hold));
    }

private:
    std::string take(size_t n) {  // as lossy UTF-8: the cuts never split a character or an invalid sequence
        std::string out = pending_.substr(0, n);
        pending_.erase(0, n);
        return unicode::utf8_lossy(out);
    }
    const std::vector<std::string>& stop_;
    std::string pending_;
};

// What the loop needs of a model: its sizes, how it turns the prompt into the first logits, and one step.
struct Decoder {
    int vocab, max_ctx;
    std::function<void(const std::vector<int32_t>&, float*)> start;
    std::function<void(int32_t, float*)> step;
    std::function<int()> n_past;
};

std::vector<int32_t> prompt_ids(const Tokenizer& tok, const std::string& prompt, const GenerateOptions& opt,
                                int vocab) {
    if (opt.max_tokens <= 0) throw std::invalid_argument("generate: max_tokens must be > 0");
    for (const std::string& s : opt.stop)
        if (s.empty()) throw std::invalid_argument("generate: stop strings must not be empty");
    std::vector<int32_t> ids = tok.encode(prompt, opt.add_special);
    if (ids.empty()) throw std::invalid_argument("generate: the prompt has no tokens; pass some text");
    for (int32_t id : ids)
        if (id >= vocab) throw std::invalid_argument("generate: the tokenizer gave id " + std::to_string(id) +
                                                     ", outside the model's vocabulary");
    return ids;
}

int run(const Decoder& m, const Tokenizer& tok, const std::vector<int32_t>& ids, const GenerateOptions& opt,
        const TokenCallback& on_token) {
    Sampler sampler(opt.sampling);
    Stream stream(opt.stop);
    std::vector<float> logits((size_t)m.vocab);
    m.start(ids, logits.data());
    int n = 0;
    while (true) {
        const int32_t next = sampler.sample(logits.data(), m.vocab);
        ++n;
        const bool eos = opt.stop_at_eos && next == tok.eos();
        const bool last = eos || n == opt.max_tokens || m.n_past() >= m.max_ctx;
        bool stopped = false;
        std::string bytes;  // an id the model has but the tokenizer does not (a padded vocabulary) adds no text
        if (next < tok.n_vocab() && tok.find_id(next)) bytes = tok.token_bytes(next, true);
        const std::string text = stream.add(bytes, last, &stopped);
        const bool go_on = on_token ? on_token(next, text) : true;
        if (last || stopped || !go_on) return n;
        m.step(next, logits.data());
    }
}

}  // namespace

int generate(LlamaModel& model, const Tokenizer& tok, const std::string& prompt, const GenerateOptions& opt,
             const TokenCallback& on_token) {
    const LlamaConfig& c = model.config();
    const std::vector<int32_t> ids = prompt_ids(tok, prompt, opt, c.vocab);
    if ((int64_t)ids.size() > c.max_ctx)
        throw ContextFullError("generate: the prompt has " + std::to_string(ids.size()) + " tokens, the cache "
                               "holds " + std::to_string(c.max_ctx) + "; load with a larger max_ctx");
    const Decoder d{c.vocab, c.max_ctx,
                    [&](const std::vector<int32_t>& p, float* logits) {
                        model.reset();
                        model.eval(p.data(), (int)p.size(), logits, false);
                    },
                    [&](int32_t t, float* logits) { model.eval(&t, 1, logits, false); },
                    [&] { return model.n_past(); }};
    return run(d, tok, ids, opt, on_token);
}

int generate(T5Model& model, const Tokenizer& tok, const std::string& prompt, const GenerateOptions& opt,
             const TokenCallback& on_token) {
    const T5Config& c = model.config();
    const std::vector<int32_t> ids = prompt_ids(tok, prompt, opt, c.vocab);
    const Decoder d{c.vocab, c.max_ctx,
                    [&](const std::vector<int32_t>& p, float* logits) {
                        model.encode(p.data(), (int)p.size());  // also empties the decoder's cache
                        const int32_t s = c.decoder_start;
                        model.eval(&s, 1, logits, false);
                    },
                    [&](int32_t t, float* logits) { model.eval(&t, 1, logits, false); },
                    [&] { return model.n_past(); }};
    return run(d, tok, ids, opt, on_token);
}

}  // namespace edgekit
