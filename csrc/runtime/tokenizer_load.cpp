// tokenizer.h, loading: tokenizer.json (or an artifact's "edgekit.tokenizer" metadata) → the Tokenizer's tables.
// Every part the C++ tokenizer does not implement is refused here, with the part named (ArtifactError kUnsupported);
// a file that is not JSON or has a field of the wrong type is kFormat.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "edgekit/artifact.h"
#include "edgekit/json.h"
#include "edgekit/tokenizer.h"
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

}  // namespace edgekit
