// unicode.h: UTF-8, character classes and the pre-tokenizer splits of the byte-level BPE tokenizer.
#include "edgekit/unicode.h"

#include "unicode_tables.h"

namespace edgekit {
namespace unicode {
namespace {

// The character at p: its length 1..4 when valid, else -k with k >= 1 the length of the maximal invalid subpart
// (the lead byte and the continuation bytes that were still acceptable). *truncated: that subpart is a valid
// beginning cut short by the end of the input.
int next_char(const uint8_t* p, size_t n, bool* truncated) {
    *truncated = false;
    const uint8_t b = p[0];
    if (b < 0x80) return 1;
    int need;
    uint8_t lo = 0x80, hi = 0xBF;  // the range of the first continuation byte (narrowed for E0 ED F0 F4)
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        if (b == 0xE0) lo = 0xA0;  // no overlong 3-byte forms
        if (b == 0xED) hi = 0x9F;  // no surrogates
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        if (b == 0xF0) lo = 0x90;  // no overlong 4-byte forms
        if (b == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
    } else {
        return -1;  // a continuation byte, C0, C1 or F5..FF
    }
    for (int k = 1; k <= need; ++k) {
        if ((size_t)k >= n) {
            *truncated = true;
            return -k;
        }
        const uint8_t c = p[k];
        if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) return -k;
    }
    return need + 1;
}

uint32_t decode_at(const uint8_t* p, int len) {
    switch (len) {
        case 1: return p[0];
        case 2: return (uint32_t)(p[0] & 0x1F) << 6 | (p[1] & 0x3F);
        case 3: return (uint32_t)(p[0] & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
        default:
            return (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 | (uint32_t)(p[2] & 0x3F) << 6 |
                   (p[3] & 0x3F);
    }
}

}  // namespace

Class classify(uint32_t cp) {
    if (cp < 0x80) {  // the common case without a search
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return Class::kLetter;
        if (cp >= '0' && cp <= '9') return Class::kNumber;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return Class::kSpace;
        return Class::kOther;
    }
    int lo = 0, hi = unicode_data::kRangesCount - 1;
    while (lo <= hi) {
        const int mid = (lo + hi) / 2;
        const unicode_data::Range& r = unicode_data::kRanges[mid];
        if (cp < r.first) {
            hi = mid - 1;
        } else if (cp > r.last) {
            lo = mid + 1;
        } else {
            return (Class)r.cls;
        }
    }
    return Class::kOther;
}

const char* unicode_version() { return unicode_data::kUnicodeVersion; }

namespace {

// Rust's char::is_numeric as the Digits pre-tokenizer sees it: the pattern's number class, except the few code points
// whose class differs in the Digits step's Unicode version (kDigitsDiff; `tokenizers` holds two versions)
bool digits_numeric(uint32_t cp) {
    const bool number = classify(cp) == Class::kNumber;
    if (cp < 0x80) return number;
    for (int i = 0; i < unicode_data::kDigitsDiffCount; ++i) {
        const unicode_data::Range& r = unicode_data::kDigitsDiff[i];
        if (cp >= r.first && cp <= r.last) return r.cls == 1;
    }
    return number;
}

}  // namespace

size_t utf8_invalid_at(const char* s, size_t n) {
    const uint8_t* p = (const uint8_t*)s;
    bool truncated;
    for (size_t i = 0; i < n;) {
        const int len = next_char(p + i, n - i, &truncated);
        if (len < 0) return i;
        i += (size_t)len;
    }
    return n;
}

void utf8_decode(const std::string& s, std::vector<uint32_t>* cps, std::vector<size_t>* starts) {
    const uint8_t* p = (const uint8_t*)s.data();
    const size_t n = s.size();
    cps->clear();
    starts->clear();
    bool truncated;
    for (size_t i = 0; i < n;) {
        int len = next_char(p + i, n - i, &truncated);
        if (len < 0) len = -len;  // callers validate first; never loop forever on bad input
        starts->push_back(i);
        cps->push_back(decode_at(p + i, len));
        i += (size_t)len;
    }
    starts->push_back(n);
}

void utf8_append(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
        out->push_back((char)cp);
    } else if (cp < 0x800) {
        out->push_back((char)(0xC0 | (cp >> 6)));
        out->push_back((char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out->push_back((char)(0xE0 | (cp >> 12)));
        out->push_back((char)(0x80 | ((cp >> 6) & 0x3F)));
        out->push_back((char)(0x80 | (cp & 0x3F)));
    } else {
        out->push_back((char)(0xF0 | (cp >> 18)));
        out->push_back((char)(0x80 | ((cp >> 12) & 0x3F)));
        out->push_back((char)(0x80 | ((cp >> 6) & 0x3F)));
        out->push_back((char)(0x80 | (cp & 0x3F)));
    }
}

std::vector<std::string> split_digits(const std::string& s, bool individual) {
    std::vector<uint32_t> cps;
    std::vector<size_t> at;
    utf8_decode(s, &cps, &at);
    std::vector<std::string> out;
    size_t i = 0;
    while (i < cps.size()) {
        const bool number = digits_numeric(cps[i]);
        size_t j = i + 1;
        if (!number || !individual) {
            while (j < cps.size() && digits_numeric(cps[j]) == number) ++j;
        }
        out.emplace_back(s, at[i], at[j] - at[i]);
        i = j;
    }
    return out;
}

std::vector<std::string> split_gpt2(const std::string& s) {
    std::vector<uint32_t> cps;
    std::vector<size_t> at;
    utf8_decode(s, &cps, &at);
    const size_t n = cps.size();
    std::vector<Class> cls(n);
    for (size_t k = 0; k < n; ++k) cls[k] = classify(cps[k]);
    auto cls_at = [&](size_t k) { return k < n ? (int)cls[k] : -1; };
    // the same class run from k on: letters, numbers, or "other" ([^\s\p{L}\p{N}])
    auto run_end = [&](size_t k, Class c) {
        while (k < n && cls[k] == c) ++k;
        return k;
    };

    std::vector<std::string> out;
    size_t i = 0;
    while (i < n) {
        const uint32_t c = cps[i];
        size_t j = 0;
        if (c == '\'' && i + 1 < n) {  // 's 't 'm 'd, then 're 've 'll (case-sensitive, as in GPT-2)
            const uint32_t c1 = cps[i + 1];
            const uint32_t c2 = i + 2 < n ? cps[i + 2] : 0;
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
                j = i + 2;
            } else if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
                j = i + 3;
            }
        }
        if (j == 0) {
            // " ?X+" for X = letters, numbers, other: an optional U+0020 then a run of one class
            const size_t k = (c == ' ' && cls_at(i + 1) != (int)Class::kSpace && i + 1 < n) ? i + 1 : i;
            if (cls[k] != Class::kSpace) {
                j = run_end(k, cls[k]);
            } else {
                // \s+(?!\S) then \s+: a whitespace run stops one short of the non-space that follows it, unless
                // that leaves nothing (a single whitespace before a non-space matches alone)
                const size_t e = run_end(i, Class::kSpace);
                j = (e == n || e - i < 2) ? e : e - 1;
            }
        }
        out.emplace_back(s, at[i], at[j] - at[i]);
        i = j;
    }
    return out;
}

std::string utf8_lossy(const std::string& bytes) {
    const uint8_t* p = (const uint8_t*)bytes.data();
    const size_t n = bytes.size();
    std::string out;
    out.reserve(n);
    bool truncated;
    for (size_t i = 0; i < n;) {
        const int len = next_char(p + i, n - i, &truncated);
        if (len > 0) {
            out.append(bytes, i, (size_t)len);
            i += (size_t)len;
        } else {
            out.append("\xEF\xBF\xBD");  // U+FFFD
            i += (size_t)(-len);
        }
    }
    return out;
}

size_t utf8_complete_prefix(const char* s, size_t n) {
    const uint8_t* p = (const uint8_t*)s;
    bool truncated;
    for (size_t i = 0; i < n;) {
        const int len = next_char(p + i, n - i, &truncated);
        if (len < 0 && truncated) return i;
        i += (size_t)(len < 0 ? -len : len);
    }
    return n;
}

}  // namespace unicode
}  // namespace edgekit
