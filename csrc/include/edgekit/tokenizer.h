// The byte-level BPE tokenizer of an artifact's Hugging Face tokenizer.json, in C++: ids identical to the
// `tokenizers` library (tests/engines/test_tokenizer.py fuzzes it against it), for the C API (ek_tokenize,
// ek_detokenize, ek_generate) and the Python module (_C.Tokenizer).
//
// What it implements, and refuses everything else with one error naming the part:
//   normalizer     none (or an empty Sequence)
//   pre-tokenizer  ByteLevel (add_prefix_space, use_regex: the GPT-2 split), alone or at the end of a Sequence
//                  after Digits (individual_digits true or false), e.g. SmolLM2's [Digits(true), ByteLevel]
//   model          BPE: vocab, merges ("a b" strings or ["a", "b"] pairs), unk_token, fuse_unk, ignore_merges,
//                  byte_fallback; no dropout, no continuing_subword_prefix / end_of_word_suffix
//   added tokens   matched in the raw text before pre-tokenization, leftmost-longest (lstrip / rstrip /
//                  single_word refused)
//   post-processor none, ByteLevel, TemplateProcessing (its `single` template), or a Sequence of them
//   decoder        ByteLevel (bytes of the byte-level characters, invalid UTF-8 → U+FFFD as `tokenizers` does),
//                  alone or in a Sequence with ByteFallback, Fuse and Replace (plain string), as transformers'
//                  GGUF converter writes it for SmolLM2
// Unicode version: as `tokenizers` 0.22, the GPT-2 pattern's letter / number / whitespace classes are Unicode 16.0
// (its Oniguruma) and the Digits step's numbers 17.0 (its Rust char::is_numeric); csrc/tools/gen_unicode_tables.py
// makes both tables from PyPI's unicodedata2 (Python 3.11's own data is 14.0). Text must be UTF-8; invalid UTF-8 is
// refused, never guessed at.
#ifndef EDGEKIT_TOKENIZER_H
#define EDGEKIT_TOKENIZER_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace edgekit {

class Artifact;

class Tokenizer {
public:
    // Builds the tokenizer from the text of a tokenizer.json; `where` starts each error message (the file's name).
    // Throws ArtifactError: kFormat when the text is not JSON or a field has the wrong type, kUnsupported when it
    // names a normalizer, pre-tokenizer, model, post-processor or decoder that is not implemented here.
    static std::unique_ptr<Tokenizer> from_json(const std::string& text, const std::string& where);

    // The tokenizer an artifact carries (metadata "edgekit.tokenizer": file name → base64; its tokenizer.json,
    // and the EOS token named by tokenizer_config.json or special_tokens_map.json). Throws ArtifactError
    // (kUnsupported when the artifact carries no tokenizer.json).
    static std::unique_ptr<Tokenizer> from_artifact(const Artifact& artifact);

    // Token ids of UTF-8 text; add_special applies the post-processor (e.g. a BOS). std::invalid_argument when
    // the text is not valid UTF-8 (the message names the byte offset).
    std::vector<int32_t> encode(const std::string& text, bool add_special) const;

    // Text of token ids: the byte-level decoder, maximal invalid UTF-8 subsequences → U+FFFD; special tokens left
    // out when skip_special. std::invalid_argument for an id outside 0..n_vocab()-1 that names no token.
    std::string decode(const int32_t* ids, size_t n, bool skip_special) const;

    // The raw bytes one token stands for (no U+FFFD replacement: a character may span tokens), "" for a special
    // token when skip_special: for streaming. Their concatenation is decode()'s text whenever that is valid UTF-8
    // and no <0xXX> byte-fallback token is involved. std::invalid_argument for an unknown id.
    std::string token_bytes(int32_t id, bool skip_special) const;

    int32_t n_vocab() const { return (int32_t)id_to_token_.size(); }  // largest id + 1
    int32_t find(const std::string& token) const;                       // id of a token string, -1 if none
    bool is_special(int32_t id) const;
    bool find_id(int32_t id) const {  // whether a token has this id
        return id >= 0 && id < n_vocab() && !id_to_token_[(size_t)id].empty();
    }
    int32_t eos() const { return eos_; }                                 // -1 when unknown
    void set_eos(int32_t id) { eos_ = id; }

private:
    struct Added {
        std::string content;
        int32_t id;
        bool special, normalized;
    };
    struct Merge {
        int32_t rank, id;
    };
    enum class Step { kDigitsIndividual, kDigitsRuns };
    struct Decoder {
        enum Kind { kByteFallback, kFuse, kReplace, kByteLevel } kind;
        std::string pattern, content;  // kReplace
    };

    Tokenizer() = default;
    void split_added(const std::string& text, std::vector<std::pair<std::string, int32_t>>* out) const;
    void encode_word(const std::string& word, std::vector<int32_t>* out) const;
    const std::string& token(int32_t id) const;  // throws std::invalid_argument for an unknown id
    std::string byte_level_bytes(const std::string& tok) const;
    static std::string replace_all(const std::string& s, const std::string& pattern, const std::string& content);

    std::unordered_map<std::string, int32_t> token_to_id_;  // model vocabulary and added tokens
    std::vector<std::string> id_to_token_;                   // "" for ids no token uses
    std::vector<uint8_t> special_;                           // per id
    std::unordered_map<uint64_t, Merge> merges_;             // (left id << 32 | right id) → rank and merged id
    std::vector<Added> added_;
    int32_t byte_id_[256];                                   // the token of each byte's byte-level character
    uint16_t byte_char_[256];                                // byte → byte-level code point
    int16_t char_byte_[512];                                 // byte-level code point → byte, -1 for others
    std::vector<Step> steps_;                                // Digits pre-tokenizers before the ByteLevel one
    bool prefix_space_ = false, use_regex_ = true;
    int32_t unk_ = -1;
    bool fuse_unk_ = false, ignore_merges_ = false, byte_fallback_ = false;
    std::vector<Decoder> decoders_;
    std::vector<int32_t> prefix_ids_, suffix_ids_;           // TemplateProcessing's tokens around $A
    int32_t eos_ = -1;
};

}  // namespace edgekit

#endif  // EDGEKIT_TOKENIZER_H
