// The strict JSON parser of json.h: recursive descent over a bounded buffer; every read checks the end first.
#include "edgekit/json.h"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace edgekit {
namespace json {

const char* type_name(Type t) {
    switch (t) {
        case Type::kNull: return "null";
        case Type::kBool: return "a boolean";
        case Type::kNumber: return "a number";
        case Type::kString: return "a string";
        case Type::kArray: return "an array";
        case Type::kObject: return "an object";
    }
    return "?";
}

const Value* Value::find(const std::string& key) const {
    if (type != Type::kObject) return nullptr;
    for (const Member& m : object)
        if (m.key == key) return &m.value;
    return nullptr;
}

namespace {

class Parser {
public:
    Parser(const char* data, size_t size, const Limits& limits) : p_(data), n_(size), limits_(limits) {}

    Value document() {
        Value v;
        skip_ws();
        value(v, 0);
        skip_ws();
        if (i_ != n_) fail("unexpected data after the JSON value");
        return v;
    }

private:
    [[noreturn]] void fail(const std::string& what) const {
        throw ParseError("invalid JSON at byte " + std::to_string(i_) + ": " + what);
    }

    void skip_ws() {
        while (i_ < n_ && (p_[i_] == ' ' || p_[i_] == '\t' || p_[i_] == '\n' || p_[i_] == '\r')) ++i_;
    }

    char peek() const { return i_ < n_ ? p_[i_] : '\0'; }

    void expect(char c) {
        if (i_ >= n_) fail(std::string("expected '") + c + "', got the end of the text");
        if (p_[i_] != c) fail(std::string("expected '") + c + "'");
        ++i_;
    }

    void literal(const char* word) {
        const size_t len = std::strlen(word);
        if (n_ - i_ < len || std::memcmp(p_ + i_, word, len) != 0) fail("unexpected character");
        i_ += len;
    }

    void value(Value& v, int depth) {
        if (++count_ > limits_.max_values) fail("more than " + std::to_string(limits_.max_values) + " values");
        if (i_ >= n_) fail("expected a value, got the end of the text");
        switch (p_[i_]) {
            case '{': object(v, depth + 1); break;
            case '[': array(v, depth + 1); break;
            case '"': v.type = Type::kString; string(v.string); break;
            case 't': literal("true"); v.type = Type::kBool; v.boolean = true; break;
            case 'f': literal("false"); v.type = Type::kBool; v.boolean = false; break;
            case 'n': literal("null"); v.type = Type::kNull; break;
            default:
                if (p_[i_] == '-' || (p_[i_] >= '0' && p_[i_] <= '9')) {
                    number(v);
                } else {
                    fail("unexpected character");
                }
        }
    }

    void check_depth(int depth) const {
        if (depth > limits_.max_depth) fail("nested deeper than " + std::to_string(limits_.max_depth) + " levels");
    }

    void object(Value& v, int depth) {
        check_depth(depth);
        v.type = Type::kObject;
        expect('{');
        skip_ws();
        if (peek() == '}') {
            ++i_;
            return;
        }
        for (;;) {
            skip_ws();
            if (peek() != '"') fail("expected a string key");
            Member m;
            string(m.key);
            skip_ws();
            expect(':');
            skip_ws();
            value(m.value, depth);
            v.object.push_back(std::move(m));
            skip_ws();
            if (peek() == ',') {
                ++i_;
                continue;
            }
            expect('}');
            break;
        }
        // duplicate keys: sort pointers, compare neighbours (O(n log n) even for a hostile header)
        std::vector<const std::string*> keys;
        keys.reserve(v.object.size());
        for (const Member& m : v.object) keys.push_back(&m.key);
        std::sort(keys.begin(), keys.end(), [](const std::string* a, const std::string* b) { return *a < *b; });
        for (size_t k = 1; k < keys.size(); ++k)
            if (*keys[k] == *keys[k - 1]) fail("duplicate key \"" + keys[k]->substr(0, 100) + "\"");
    }

    void array(Value& v, int depth) {
        check_depth(depth);
        v.type = Type::kArray;
        expect('[');
        skip_ws();
        if (peek() == ']') {
            ++i_;
            return;
        }
        for (;;) {
            skip_ws();
            v.array.emplace_back();
            value(v.array.back(), depth);
            skip_ws();
            if (peek() == ',') {
                ++i_;
                continue;
            }
            expect(']');
            break;
        }
    }

    unsigned hex4() {
        if (n_ - i_ < 4) fail("truncated \\u escape");
        unsigned u = 0;
        for (int k = 0; k < 4; ++k) {
            const char c = p_[i_++];
            u <<= 4;
            if (c >= '0' && c <= '9') u |= (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f') u |= (unsigned)(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') u |= (unsigned)(c - 'A' + 10);
            else fail("bad hex digit in a \\u escape");
        }
        return u;
    }

    static void utf8(unsigned cp, std::string& out) {
        if (cp < 0x80) {
            out += (char)cp;
        } else if (cp < 0x800) {
            out += (char)(0xC0 | (cp >> 6));
            out += (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += (char)(0xE0 | (cp >> 12));
            out += (char)(0x80 | ((cp >> 6) & 0x3F));
            out += (char)(0x80 | (cp & 0x3F));
        } else {
            out += (char)(0xF0 | (cp >> 18));
            out += (char)(0x80 | ((cp >> 12) & 0x3F));
            out += (char)(0x80 | ((cp >> 6) & 0x3F));
            out += (char)(0x80 | (cp & 0x3F));
        }
    }

    // Length of the well-formed UTF-8 sequence starting at byte j (>= 0x80), 0 if it is not one (overlong forms,
    // surrogates, code points above U+10FFFF and truncated sequences are all rejected, as RFC 3629 says).
    size_t utf8_length(size_t j) const {
        const unsigned char c = (unsigned char)p_[j];
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;  // overlong
            if (c == 0xED) hi = 0x9F;  // surrogates
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;  // overlong
            if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
        } else {
            return 0;
        }
        if (n_ - j < len) return 0;
        for (size_t k = 1; k < len; ++k) {
            const unsigned char b = (unsigned char)p_[j + k];
            if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
        }
        return len;
    }

    void string(std::string& out) {
        expect('"');
        for (;;) {
            // copy the run of plain characters in one go: metadata strings can be megabytes of base64
            size_t j = i_;
            for (;;) {
                while (j < n_ && p_[j] != '"' && p_[j] != '\\' && (unsigned char)p_[j] >= 0x20 &&
                       (unsigned char)p_[j] < 0x80)
                    ++j;
                if (j >= n_ || (unsigned char)p_[j] < 0x80) break;
                const size_t len = utf8_length(j);
                if (!len) {
                    i_ = j;
                    fail("invalid UTF-8 in a string");
                }
                j += len;
            }
            out.append(p_ + i_, j - i_);
            i_ = j;
            if (i_ >= n_) fail("unterminated string");
            const char c = p_[i_++];
            if (c == '"') return;
            if (c != '\\') {
                --i_;
                fail("control character in a string");
            }
            if (i_ >= n_) fail("unterminated escape");
            const char e = p_[i_++];
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    unsigned cp = hex4();
                    if (cp >= 0xDC00 && cp <= 0xDFFF) fail("lone low surrogate in a \\u escape");
                    if (cp >= 0xD800 && cp <= 0xDBFF) {  // a high surrogate needs its low half next
                        if (n_ - i_ < 2 || p_[i_] != '\\' || p_[i_ + 1] != 'u') fail("unpaired high surrogate");
                        i_ += 2;
                        const unsigned lo = hex4();
                        if (lo < 0xDC00 || lo > 0xDFFF) fail("unpaired high surrogate");
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    }
                    utf8(cp, out);
                    break;
                }
                default: fail("unknown escape");
            }
        }
    }

    bool digit() const { return i_ < n_ && p_[i_] >= '0' && p_[i_] <= '9'; }

    void number(Value& v) {
        const size_t start = i_;
        bool integral = true;
        if (peek() == '-') ++i_;
        if (!digit()) fail("expected a digit");
        if (p_[i_] == '0') {
            ++i_;
            if (digit()) fail("leading zero in a number");
        } else {
            while (digit()) ++i_;
        }
        if (peek() == '.') {
            integral = false;
            ++i_;
            if (!digit()) fail("expected a digit after the decimal point");
            while (digit()) ++i_;
        }
        if (peek() == 'e' || peek() == 'E') {
            integral = false;
            ++i_;
            if (peek() == '+' || peek() == '-') ++i_;
            if (!digit()) fail("expected a digit in the exponent");
            while (digit()) ++i_;
        }
        v.type = Type::kNumber;
        const char* b = p_ + start;
        const char* e = p_ + i_;
        if (integral) {
            int64_t x = 0;
            const auto r = std::from_chars(b, e, x);
            v.is_int = r.ec == std::errc() && r.ptr == e;  // out of int64 range: a plain (rounded) number
            v.integer = v.is_int ? x : 0;
        }
        const auto r = std::from_chars(b, e, v.number);
        if (r.ec == std::errc::result_out_of_range) fail("number out of range");
        if (r.ec != std::errc() || r.ptr != e) fail("malformed number");
    }

    const char* p_;
    size_t n_;
    size_t i_ = 0;
    size_t count_ = 0;
    Limits limits_;
};

}  // namespace

Value parse(const char* data, size_t size, const Limits& limits) {
    return Parser(data, size, limits).document();
}

}  // namespace json
}  // namespace edgekit
