// tokenizer.h: tokenizer.json → a byte-level BPE tokenizer with the `tokenizers` library's results.
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

#include "edgekit/artifact.h"
#include "edgekit/json.h"
#include "edgekit/unicode.h"

namespace edgekit {
namespace {

using K = ArtifactError::Kind;
using json::Type;
using json::Value;

[[noreturn]] void fail(K kind, const std::string& where, const std::string& what) {
    throw ArtifactError(kind, where + ": " + what);
}

const Value& member(const Value& obj, const char* key, Type type, const std::string& where, const char* in) {
    const Value* v = obj.find(key);
    if (!v || v->type != type)
        fail(K::kFormat, where, std::string(in) + "." + key + " must be " + json::type_name(type));
    return *v;
}

bool flag(const Value& obj, const char* key, bool fallback) {
    const Value* v = obj.find(key);
    return v && v->type == Type::kBool ? v->boolean : fallback;
}

std::string type_of(const Value& v, const std::string& where, const char* what) {
    const Value* t = v.type == Type::kObject ? v.find("type") : nullptr;
    if (!t || t->type != Type::kString) fail(K::kFormat, where, std::string(what) + " has no \"type\"");
    return t->string;
}

[[noreturn]] void unsupported(const std::string& where, const std::string& what) {
    fail(K::kUnsupported, where, what + "; edgekit's C++ tokenizer implements byte-level BPE only (tokenizer.h "
                                        "lists what it reads): tokenize in Python for this model");
}

std::string base64_decode(const std::string& in, const std::string& where) {
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    std::string out;
    out.reserve(in.size() / 4 * 3);
    uint32_t acc = 0;
    int bits = 0;
    size_t i = 0;
    for (; i < in.size() && in[i] != '='; ++i) {
        const int v = value(in[i]);
        if (v < 0) fail(K::kFormat, where, "is not valid base64 (byte " + std::to_string(i) + ")");
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back((char)((acc >> bits) & 0xFF));
        }
    }
    for (; i < in.size(); ++i)
        if (in[i] != '=') fail(K::kFormat, where, "is not valid base64 (data after the padding)");
    return out;
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_json(const std::string& text, const std::string& where) {
    Value root;
    try {
        json::Limits limits;
        limits.max_values = size_t(1) << 24;  // a 50k vocabulary with its merges is ~250k values
        root = json::parse(text, limits);
    } catch (const json::ParseError& e) {
        fail(K::kFormat, where, std::string("is not valid JSON (") + e.what() + ")");
    }
    if (root.type != Type::kObject) fail(K::kFormat, where, "must be a JSON object");
    std::unique_ptr<Tokenizer> t(new Tokenizer());

    // byte-level alphabet: printable bytes stand for themselves, the others for U+0100 onwards in byte order
    for (int b = 0, n = 0; b < 256; ++b) {
        const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        t->byte_char_[b] = (uint16_t)(printable ? b : 256 + n++);
    }
    std::fill(t->char_byte_, t->char_byte_ + 512, (int16_t)-1);
    for (int b = 0; b < 256; ++b) t->char_byte_[t->byte_char_[b]] = (int16_t)b;

    const Value* norm = root.find("normalizer");  // none, or an empty Sequence (what transformers' GGUF converter writes)
    if (norm && !norm->is_null()) {
        const std::string type = type_of(*norm, where, "normalizer");
        const Value* list = norm->find("normalizers");
        if (type != "Sequence" || !list || list->type != Type::kArray || !list->array.empty())
            unsupported(where, "normalizer " + type);
    }

    // pre-tokenizer: [Digits...] then ByteLevel
    const Value* pre = root.find("pre_tokenizer");
    if (!pre || pre->is_null()) unsupported(where, "no pre_tokenizer (byte-level BPE needs ByteLevel)");
    std::vector<const Value*> steps;
    if (type_of(*pre, where, "pre_tokenizer") == "Sequence") {
        for (const Value& p : member(*pre, "pretokenizers", Type::kArray, where, "pre_tokenizer").array)
            steps.push_back(&p);
    } else {
        steps.push_back(pre);
    }
    for (size_t i = 0; i < steps.size(); ++i) {
        const std::string type = type_of(*steps[i], where, "pre_tokenizer");
        const bool last = i + 1 == steps.size();
        if (type == "Digits" && !last) {
            t->steps_.push_back(flag(*steps[i], "individual_digits", false) ? Step::kDigitsIndividual
                                                                             : Step::kDigitsRuns);
        } else if (type == "ByteLevel" && last) {
            t->prefix_space_ = flag(*steps[i], "add_prefix_space", true);
            t->use_regex_ = flag(*steps[i], "use_regex", true);
        } else {
            unsupported(where, "pre_tokenizer " + type + (last ? " at the end" : " before ByteLevel"));
        }
    }

    // model: BPE
    const Value* model = root.find("model");
    if (!model || model->type != Type::kObject) fail(K::kFormat, where, "has no model object");
    const Value* mtype = model->find("type");
    if (mtype && !(mtype->type == Type::kString && mtype->string == "BPE"))
        unsupported(where, "model " + (mtype->type == Type::kString ? mtype->string : std::string("?")));
    const Value* dropout = model->find("dropout");
    if (dropout && !dropout->is_null() && !(dropout->type == Type::kNumber && dropout->number == 0.0))
        unsupported(where, "BPE dropout");
    t->byte_fallback_ = flag(*model, "byte_fallback", false);
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        const Value* v = model->find(key);
        if (v && !v->is_null() && !(v->type == Type::kString && v->string.empty()))
            unsupported(where, std::string("BPE ") + key);
    }
    t->fuse_unk_ = flag(*model, "fuse_unk", false);
    t->ignore_merges_ = flag(*model, "ignore_merges", false);

    const Value& vocab = member(*model, "vocab", Type::kObject, where, "model");
    int64_t max_id = -1;
    for (const json::Member& m : vocab.object) {
        if (!m.value.is_int || m.value.integer < 0 || m.value.integer >= (int64_t(1) << 30))
            fail(K::kFormat, where, "model.vocab ids must be integers in 0..2^30");
        max_id = std::max(max_id, m.value.integer);
    }
    const Value& added = root.find("added_tokens") && !root.find("added_tokens")->is_null()
                             ? member(root, "added_tokens", Type::kArray, where, "tokenizer")
                             : Value();
    for (const Value& a : added.array) {
        const Value* id = a.find("id");
        if (!id || !id->is_int || id->integer < 0 || id->integer >= (int64_t(1) << 30))
            fail(K::kFormat, where, "added_tokens ids must be integers in 0..2^30");
        max_id = std::max(max_id, id->integer);
    }
    t->id_to_token_.assign((size_t)(max_id + 1), std::string());
    t->special_.assign((size_t)(max_id + 1), 0);
    t->token_to_id_.reserve(vocab.object.size());
    for (const json::Member& m : vocab.object) {
        t->token_to_id_[m.key] = (int32_t)m.value.integer;
        t->id_to_token_[(size_t)m.value.integer] = m.key;
    }
    for (int b = 0; b < 256; ++b) {
        std::string c;
        unicode::utf8_append(t->byte_char_[b], &c);
        auto it = t->token_to_id_.find(c);
        t->byte_id_[b] = it == t->token_to_id_.end() ? -1 : it->second;
    }
    const Value* unk = model->find("unk_token");
    if (unk && !unk->is_null()) {
        if (unk->type != Type::kString) fail(K::kFormat, where, "model.unk_token must be a string or null");
        t->unk_ = t->find(unk->string);
        if (t->unk_ < 0) fail(K::kFormat, where, "model.unk_token is not in the vocabulary");
    }

    const Value& merges = member(*model, "merges", Type::kArray, where, "model");
    t->merges_.reserve(merges.array.size());
    for (size_t r = 0; r < merges.array.size(); ++r) {
        const Value& m = merges.array[r];
        std::string a, b;
        if (m.type == Type::kString && std::count(m.string.begin(), m.string.end(), ' ') == 1) {
            const size_t sp = m.string.find(' ');
            a = m.string.substr(0, sp);
            b = m.string.substr(sp + 1);
        } else if (m.type == Type::kArray && m.array.size() == 2 && m.array[0].type == Type::kString &&
                   m.array[1].type == Type::kString) {
            a = m.array[0].string;
            b = m.array[1].string;
        } else {
            fail(K::kFormat, where, "model.merges[" + std::to_string(r) + "] is neither \"a b\" nor [\"a\", \"b\"]");
        }
        auto ia = t->token_to_id_.find(a), ib = t->token_to_id_.find(b), ic = t->token_to_id_.find(a + b);
        if (ia == t->token_to_id_.end() || ib == t->token_to_id_.end() || ic == t->token_to_id_.end())
            fail(K::kFormat, where, "model.merges[" + std::to_string(r) + "] names a token outside the vocabulary");
        const uint64_t key = (uint64_t)(uint32_t)ia->second << 32 | (uint32_t)ib->second;
        t->merges_.emplace(key, Merge{(int32_t)r, ic->second});  // the first (lowest) rank of a pair wins
    }

    for (const Value& a : added.array) {
        const Value* content = a.find("content");
        if (!content || content->type != Type::kString || content->string.empty())
            fail(K::kFormat, where, "added_tokens entries need a non-empty \"content\"");
        for (const char* key : {"lstrip", "rstrip", "single_word"})
            if (flag(a, key, false)) unsupported(where, "added token " + content->string + " with " + key);
        const int32_t id = (int32_t)a.find("id")->integer;
        const bool special = flag(a, "special", false);
        t->added_.push_back(Added{content->string, id, special, flag(a, "normalized", !special)});
        t->id_to_token_[(size_t)id] = content->string;
        t->special_[(size_t)id] = special;
    }

    // post-processor: the tokens TemplateProcessing puts around the text
    std::vector<const Value*> posts;
    const Value* post = root.find("post_processor");
    if (post && !post->is_null()) {
        if (type_of(*post, where, "post_processor") == "Sequence") {
            for (const Value& p : member(*post, "processors", Type::kArray, where, "post_processor").array)
                posts.push_back(&p);
        } else {
            posts.push_back(post);
        }
    }
    for (const Value* p : posts) {
        const std::string type = type_of(*p, where, "post_processor");
        if (type == "ByteLevel") continue;  // only trims offsets
        if (type != "TemplateProcessing") unsupported(where, "post_processor " + type);
        const Value& specials = member(*p, "special_tokens", Type::kObject, where, "TemplateProcessing");
        bool seen_a = false;
        for (const Value& piece : member(*p, "single", Type::kArray, where, "TemplateProcessing").array) {
            const Value* sp = piece.find("SpecialToken");
            if (piece.find("Sequence")) {
                seen_a = true;
                continue;
            }
            const Value* name = sp ? sp->find("id") : nullptr;
            const Value* entry = name && name->type == Type::kString ? specials.find(name->string) : nullptr;
            const Value* ids = entry ? entry->find("ids") : nullptr;
            if (!ids || ids->type != Type::kArray)
                fail(K::kFormat, where, "TemplateProcessing.single names a special token without ids");
            for (const Value& id : ids->array) {
                if (!id.is_int || id.integer < 0 || id.integer > max_id)
                    fail(K::kFormat, where, "TemplateProcessing special token ids must lie in the vocabulary");
                (seen_a ? t->suffix_ids_ : t->prefix_ids_).push_back((int32_t)id.integer);
            }
        }
    }

    // decoder: ByteLevel, alone or in a Sequence with ByteFallback, Fuse and Replace (transformers' GGUF converter)
    const Value* dec = root.find("decoder");
    if (!dec || dec->is_null()) unsupported(where, "no decoder (byte-level BPE needs ByteLevel)");
    std::vector<const Value*> decs;
    if (type_of(*dec, where, "decoder") == "Sequence") {
        for (const Value& d : member(*dec, "decoders", Type::kArray, where, "decoder").array) decs.push_back(&d);
    } else {
        decs.push_back(dec);
    }
    bool byte_level = false;
    for (const Value* d : decs) {
        const std::string type = type_of(*d, where, "decoder");
        Decoder step{};
        if (type == "ByteLevel") {
            step.kind = Decoder::kByteLevel;
            byte_level = true;
        } else if (type == "ByteFallback") {
            step.kind = Decoder::kByteFallback;
        } else if (type == "Fuse") {
            step.kind = Decoder::kFuse;
        } else if (type == "Replace") {
            const Value* pat = d->find("pattern");
            const Value* str = pat && pat->type == Type::kObject ? pat->find("String") : nullptr;
            const Value* content = d->find("content");
            if (!str || str->type != Type::kString || str->string.empty() || !content ||
                content->type != Type::kString)
                unsupported(where, "decoder Replace other than of a plain string");
            step.kind = Decoder::kReplace;
            step.pattern = str->string;
            step.content = content->string;
        } else {
            unsupported(where, "decoder " + type);
        }
        t->decoders_.push_back(step);
    }
    if (!byte_level) unsupported(where, "a decoder without ByteLevel");
    return t;
}

std::unique_ptr<Tokenizer> Tokenizer::from_artifact(const Artifact& artifact) {
    const std::string* meta = artifact.meta("edgekit.tokenizer");
    if (!meta) artifact.fail(K::kUnsupported, "carries no tokenizer (metadata 'edgekit.tokenizer'); re-quantize it");
    Value files;
    try {
        files = json::parse(*meta);
    } catch (const json::ParseError& e) {
        artifact.fail(K::kFormat, std::string("metadata 'edgekit.tokenizer' is not valid JSON (") + e.what() + ")");
    }
    auto file = [&](const char* name) -> std::string {
        const Value* v = files.find(name);
        if (!v) return std::string();
        if (v->type != Type::kString) artifact.fail(K::kFormat, std::string("edgekit.tokenizer ") + name +
                                                                  " must be a base64 string");
        return base64_decode(v->string, artifact.path() + ": edgekit.tokenizer " + name);
    };
    const std::string text = file("tokenizer.json");
    if (text.empty())
        artifact.fail(K::kUnsupported, "carries no tokenizer.json (a slow tokenizer only); the C++ tokenizer "
                                       "reads tokenizer.json");
    std::unique_ptr<Tokenizer> t = from_json(text, artifact.path() + ": tokenizer.json");
    // the end-of-sequence token, as transformers' tokenizer names it
    for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"}) {
        const std::string cfg = file(name);
        if (cfg.empty()) continue;
        Value v;
        try {
            v = json::parse(cfg);
        } catch (const json::ParseError& e) {
            artifact.fail(K::kFormat, std::string(name) + " is not valid JSON (" + e.what() + ")");
        }
        const Value* eos = v.find("eos_token");
        if (eos && eos->type == Type::kObject) eos = eos->find("content");
        if (eos && eos->type == Type::kString && t->find(eos->string) >= 0) {
            t->set_eos(t->find(eos->string));
            break;
        }
    }
    return t;
}

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
