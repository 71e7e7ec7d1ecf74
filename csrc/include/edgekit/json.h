// A small strict JSON parser for the artifact header (untrusted input): no external dependency, bounded.
//
// Grammar per RFC 8259: no comments, no trailing commas, no NaN/Infinity, strings valid UTF-8 without control
// characters, \uXXXX escapes with surrogate pairs → UTF-8, duplicate object keys rejected. Limits on nesting depth
// and on the number of values keep a hostile 100 MB header from exhausting the stack or the memory. Numbers are
// parsed without the C locale (std::from_chars), so an application that calls setlocale cannot change a header.
#ifndef EDGEKIT_JSON_H
#define EDGEKIT_JSON_H

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace edgekit {
namespace json {

// Thrown for malformed input; the message names the byte offset and what was expected.
class ParseError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

const char* type_name(Type t);

struct Member;

struct Value {
    Type type = Type::kNull;
    bool boolean = false;
    double number = 0.0;   // every number, integers included (possibly rounded)
    bool is_int = false;   // an integer literal (no fraction, no exponent) that fits int64 exactly
    int64_t integer = 0;   // its value when is_int
    std::string string;
    std::vector<Value> array;
    std::vector<Member> object;  // in document order; keys are unique

    bool is_null() const { return type == Type::kNull; }
    // The member `key` of an object, nullptr when absent or when this is not an object.
    const Value* find(const std::string& key) const;
};

struct Member {
    std::string key;
    Value value;
};

struct Limits {
    int max_depth = 64;               // nested arrays/objects
    size_t max_values = size_t(1) << 18;  // values of any kind in one document (real headers: a few thousand)
};

// Parses [data, data + size) as exactly one JSON value, whitespace allowed around it. Throws ParseError.
Value parse(const char* data, size_t size, const Limits& limits = Limits());
inline Value parse(const std::string& text, const Limits& limits = Limits()) {
    return parse(text.data(), text.size(), limits);
}

}  // namespace json
}  // namespace edgekit

#endif  // EDGEKIT_JSON_H
