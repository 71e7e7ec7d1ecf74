// The Unicode pieces of the byte-level BPE tokenizer (tokenizer.h), written by hand: UTF-8 decoding, the character
// classes of csrc/runtime/unicode_tables.h, the two splits Hugging Face `tokenizers` runs before BPE (Digits and the
// GPT-2 pattern of its ByteLevel pre-tokenizer) and its lossy UTF-8 decoding. No regex library: the GPT-2 pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// is matched as Oniguruma matches it (first alternative that matches at the leftmost position, greedy runs).
#ifndef EDGEKIT_UNICODE_H
#define EDGEKIT_UNICODE_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace edgekit {
namespace unicode {

enum class Class : uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kSpace = 3 };

// General category L* → kLetter, N* → kNumber, White_Space → kSpace (Unicode version: unicode_version()).
Class classify(uint32_t cp);
const char* unicode_version();

// Byte offset of the first invalid UTF-8 sequence in [s, s + n) (overlong forms, surrogates and code points above
// U+10FFFF are invalid), or n when the whole text is valid.
size_t utf8_invalid_at(const char* s, size_t n);

// Decodes valid UTF-8 (check utf8_invalid_at first) into code points; starts[i] is the byte offset of cps[i], and
// starts has one more entry, the text's length.
void utf8_decode(const std::string& s, std::vector<uint32_t>* cps, std::vector<size_t>* starts);

// Appends the UTF-8 encoding of cp.
void utf8_append(uint32_t cp, std::string* out);

// Pieces of `s` as the Digits pre-tokenizer cuts them: every number (Nd, Nl, No: Rust's char::is_numeric, in its own
// Unicode version: unicode_tables.h) alone
// when `individual`, else runs of numbers together; the text between numbers stays one piece.
std::vector<std::string> split_digits(const std::string& s, bool individual);

// Pieces of `s` matched by the GPT-2 pattern above, in order (they cover s exactly).
std::vector<std::string> split_gpt2(const std::string& s);

// Bytes as text, each maximal invalid UTF-8 subsequence replaced by U+FFFD (Rust's String::from_utf8_lossy, which
// the byte-level decoder of `tokenizers` ends with).
std::string utf8_lossy(const std::string& bytes);

// The length of the longest prefix of [s, s + n) that ends on a complete UTF-8 character, such that the rest is the
// start of a character still missing bytes (streaming: hold the rest back until more bytes arrive). Invalid bytes
// count as complete (they become U+FFFD).
size_t utf8_complete_prefix(const char* s, size_t n);

}  // namespace unicode
}  // namespace edgekit

#endif  // EDGEKIT_UNICODE_H
