// tokenizer.h, encoding and decoding (tokenizer_load.cpp builds the tables from tokenizer.json).
//
// encode: added tokens are cut out of the raw text first (leftmost-longest, those with normalized=false first, as
// `tokenizers` does with its two tries; there is no normalizer, so both tries see the same text); each stretch
// between them goes through the Digits splits, the ByteLevel prefix space and GPT-2 split (unicode.h), each piece's
// bytes become their byte-level characters' tokens, and BPE merges the pair of lowest rank (leftmost on ties) until
// none is left, with the heap and the stale-entry check of `tokenizers`' Word::merge_all.
#include "edgekit/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <queue>
#include <stdexcept>

#include "edgekit/unicode.h"

namespace edgekit {

int32_t Tokenizer::find(const std::string& token) const {
    for (const Added& a : added_)
        if (a.content == token) return a.id;
    auto it = token_to_id_.find(token);
    return it == token_to_id_.end() ? -1 : it->second;
}

bool Tokenizer::is_special(int32_t id) const {
    return id >= 0 && id < n_vocab() && special_[(size_t)id];
}

void Tokenizer::split_added(const std::string& text, std::vector<std::pair<std::string, int32_t>>* out) const {
    out->assign(1, {text, -1});
    for (int pass = 0; pass < 2; ++pass) {  // normalized=false tokens first, then normalized=true ones
        std::vector<std::pair<std::string, int32_t>> next;
        for (auto& seg : *out) {
            if (seg.second >= 0) {
                next.push_back(std::move(seg));
                continue;
            }
            const std::string& s = seg.first;
            size_t start = 0;  // of the plain text not yet emitted
            for (size_t i = 0; i < s.size();) {
                const Added* best = nullptr;  // the longest added token starting at i
                for (const Added& a : added_) {
                    if (a.normalized != (pass == 1) || a.content.size() > s.size() - i) continue;
                    if ((!best || a.content.size() > best->content.size()) &&
                        s.compare(i, a.content.size(), a.content) == 0)
                        best = &a;
                }
                if (!best) {
                    ++i;
                    continue;
                }
                if (i > start) next.emplace_back(s.substr(start, i - start), -1);
                next.emplace_back(std::string(), best->id);
                i += best->content.size();
                start = i;
            }
            if (start < s.size()) next.emplace_back(s.substr(start), -1);
        }
        *out = std::move(next);
    }
}

void Tokenizer::encode_word(const std::string& word, std::vector<int32_t>* out) const {
    if (ignore_merges_) {  // a word that is a token as a whole is that token
        std::string mapped;
        for (unsigned char b : word) unicode::utf8_append(byte_char_[b], &mapped);
        auto it = token_to_id_.find(mapped);
        if (it != token_to_id_.end()) {
            out->push_back(it->second);
            return;
        }
    }
    struct Symbol {
        int32_t id;
        int32_t prev, next;
        bool alive;
    };
    // one symbol per byte-level character; a character missing from the vocabulary becomes the <0xXX> tokens of its
    // UTF-8 bytes (byte_fallback, when the vocabulary has them all), else unk (consecutive ones fused with fuse_unk;
    // a pending unk is placed before the next known character, after any byte-fallback tokens, as in `tokenizers`),
    // else nothing
    std::vector<Symbol> sym;
    sym.reserve(word.size());
    bool pending_unk = false;
    for (unsigned char b : word) {
        const int32_t id = byte_id_[b];
        if (id >= 0) {
            if (pending_unk) sym.push_back({unk_, 0, 0, true});
            pending_unk = false;
            sym.push_back({id, 0, 0, true});
            continue;
        }
        if (byte_fallback_) {
            std::string ch;
            unicode::utf8_append(byte_char_[b], &ch);
            int32_t ids[4];
            size_t k = 0;
            for (; k < ch.size(); ++k) {
                char name[8];
                std::snprintf(name, sizeof name, "<0x%02X>", (unsigned char)ch[k]);
                auto it = token_to_id_.find(name);
                if (it == token_to_id_.end()) break;
                ids[k] = it->second;
            }
            if (k == ch.size()) {
                for (size_t j = 0; j < k; ++j) sym.push_back({ids[j], 0, 0, true});
                continue;
            }
        }
        if (unk_ < 0) continue;
        if (pending_unk && !fuse_unk_) sym.push_back({unk_, 0, 0, true});
        pending_unk = true;
    }
    if (pending_unk) sym.push_back({unk_, 0, 0, true});
    const int32_t n = (int32_t)sym.size();
    for (int32_t i = 0; i < n; ++i) {
        sym[(size_t)i].prev = i - 1;
        sym[(size_t)i].next = i + 1 < n ? i + 1 : -1;
    }
    struct Cand {
        int32_t rank, pos, id;
        bool operator<(const Cand& o) const {  // the heap's top: lowest rank, then leftmost
            return rank != o.rank ? rank > o.rank : pos > o.pos;
        }
    };
    auto lookup = [&](int32_t a, int32_t b) -> const Merge* {
        auto it = merges_.find((uint64_t)(uint32_t)a << 32 | (uint32_t)b);
        return it == merges_.end() ? nullptr : &it->second;
    };
    std::priority_queue<Cand> heap;
    for (int32_t i = 0; i + 1 < n; ++i)
        if (const Merge* m = lookup(sym[(size_t)i].id, sym[(size_t)i + 1].id)) heap.push({m->rank, i, m->id});
    while (!heap.empty()) {
        const Cand c = heap.top();
        heap.pop();
        Symbol& s = sym[(size_t)c.pos];
        if (!s.alive || s.next < 0) continue;
        const Merge* m = lookup(s.id, sym[(size_t)s.next].id);
        if (!m || m->id != c.id) continue;  // stale: a neighbour merged since this pair was queued
        Symbol& right = sym[(size_t)s.next];
        right.alive = false;
        s.id = c.id;
        s.next = right.next;
        if (s.next >= 0) sym[(size_t)s.next].prev = c.pos;
        if (s.prev >= 0)
            if (const Merge* p = lookup(sym[(size_t)s.prev].id, s.id)) heap.push({p->rank, s.prev, p->id});
        if (s.next >= 0)
            if (const Merge* q = lookup(s.id, sym[(size_t)s.next].id)) heap.push({q->rank, c.pos, q->id});
    }
    for (const Symbol& s : sym)
        if (s.alive) out->push_back(s.id);
}

std::vector<int32_t> Tokenizer::encode(const std::string& text, bool add_special) const {
    const size_t bad = unicode::utf8_invalid_at(text.data(), text.size());
    if (bad != text.size())
        throw std::invalid_argument("text is not valid UTF-8 (byte " + std::to_string(bad) + "); pass UTF-8 text");
    std::vector<int32_t> ids;
    if (add_special) ids = prefix_ids_;
    std::vector<std::pair<std::string, int32_t>> segments;
    split_added(text, &segments);
    for (const auto& seg : segments) {
        if (seg.second >= 0) {
            ids.push_back(seg.second);
            continue;
        }
        std::vector<std::string> pieces{seg.first};
        for (Step step : steps_) {
            std::vector<std::string> next;
            for (const std::string& p : pieces)
                for (std::string& q : unicode::split_digits(p, step == Step::kDigitsIndividual))
                    next.push_back(std::move(q));
            pieces = std::move(next);
        }
        for (std::string& p : pieces) {
            if (prefix_space_ && p[0] != ' ') p.insert(0, 1, ' ');
            if (!use_regex_) {
                encode_word(p, &ids);
                continue;
            }
            for (const std::string& w : unicode::split_gpt2(p)) encode_word(w, &ids);
        }
    }
    if (add_special) ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
    return ids;
}

const std::string& Tokenizer::token(int32_t id) const {
    if (id < 0 || id >= n_vocab() || id_to_token_[(size_t)id].empty())
        throw std::invalid_argument("token id " + std::to_string(id) + " is not in the vocabulary (0.." +
                                    std::to_string(n_vocab() - 1) + ")");
    return id_to_token_[(size_t)id];
}

std::string Tokenizer::byte_level_bytes(const std::string& tok) const {
    std::vector<uint32_t> cps;
    std::vector<size_t> at;
    unicode::utf8_decode(tok, &cps, &at);
    std::string bytes;
    for (uint32_t cp : cps) {
        if (cp >= 512 || char_byte_[cp] < 0) return tok;  // not byte-level characters: the text itself
        bytes.push_back((char)char_byte_[cp]);
    }
    return bytes;
}

std::string Tokenizer::token_bytes(int32_t id, bool skip_special) const {
    const std::string& tok = token(id);
    if (skip_special && special_[(size_t)id]) return std::string();
    std::string s = tok;
    for (const Decoder& d : decoders_)
        if (d.kind == Decoder::kReplace) s = replace_all(s, d.pattern, d.content);
    return byte_level_bytes(s);
}

std::string Tokenizer::replace_all(const std::string& s, const std::string& pattern, const std::string& content) {
    std::string out;
    size_t from = 0;
    for (size_t at; (at = s.find(pattern, from)) != std::string::npos; from = at + pattern.size())
        out.append(s, from, at - from).append(content);
    return out.append(s, from, std::string::npos);
}

std::string Tokenizer::decode(const int32_t* ids, size_t n, bool skip_special) const {
    std::vector<std::string> toks;
    toks.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        const std::string& t = token(ids[i]);
        if (!(skip_special && special_[(size_t)ids[i]])) toks.push_back(t);
    }
    // the decoder chain of `tokenizers`, step by step over the list of token strings
    for (const Decoder& d : decoders_) {
        std::vector<std::string> next;
        switch (d.kind) {
            case Decoder::kByteFallback: {  // runs of <0xXX> tokens → their bytes as text, or one U+FFFD per byte
                std::string run;
                size_t n_run = 0;
                auto flush = [&] {
                    if (!n_run) return;
                    if (unicode::utf8_invalid_at(run.data(), run.size()) == run.size()) {
                        next.push_back(run);
                    } else {
                        for (size_t k = 0; k < n_run; ++k) next.emplace_back("\xEF\xBF\xBD");
                    }
                    run.clear();
                    n_run = 0;
                };
                for (std::string& t : toks) {
                    unsigned v = 0;
                    if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::isxdigit((unsigned char)t[3]) &&
                        std::isxdigit((unsigned char)t[4]) && std::sscanf(t.c_str() + 3, "%2x", &v) == 1) {
                        run.push_back((char)v);
                        ++n_run;
                    } else {
                        flush();
                        next.push_back(std::move(t));
                    }
                }
                flush();
                break;
            }
            case Decoder::kFuse: {
                std::string all;
                for (const std::string& t : toks) all += t;
                next.push_back(std::move(all));
                break;
            }
            case Decoder::kReplace:
                for (const std::string& t : toks) next.push_back(replace_all(t, d.pattern, d.content));
                break;
            case Decoder::kByteLevel: {  // each token's bytes, then the whole as lossy UTF-8
                std::string bytes;
                for (const std::string& t : toks) bytes += byte_level_bytes(t);
                next.push_back(unicode::utf8_lossy(bytes));
                break;
            }
        }
        toks = std::move(next);
    }
    std::string out;
    for (const std::string& t : toks) out += t;
    return out;
}

}  // namespace edgekit
