// Artifact (artifact.h): mmap the file, parse and validate the safetensors header, index the tensors.
#include "edgekit/artifact.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "edgekit/json.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the artifact reader hands out tensor bytes as they are on disk: little-endian hosts only"
#endif

namespace edgekit {
namespace {

struct DTypeInfo {
    DType type;
    const char* name;
    size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kBool, "BOOL", 1}, {DType::kU8, "U8", 1},       {DType::kI8, "I8", 1},     {DType::kF8E4M3, "F8_E4M3", 1},
    {DType::kF8E5M2, "F8_E5M2", 1}, {DType::kI16, "I16", 2}, {DType::kU16, "U16", 2}, {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2}, {DType::kI32, "I32", 4},     {DType::kU32, "U32", 4},   {DType::kF32, "F32", 4},
    {DType::kF64, "F64", 8},   {DType::kI64, "I64", 8},     {DType::kU64, "U64", 8},
};

constexpr size_t kMaxRank = 8;

std::string errno_text(int e) { return std::generic_category().message(e); }

// A name from the file, shortened and made printable for a one-line message.
std::string printable(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size() && i < 120; ++i) out += (s[i] >= 0x20 && s[i] < 0x7F) ? s[i] : '?';
    if (s.size() > 120) out += "...";
    return out;
}

}  // namespace

const char* dtype_name(DType t) {
    for (const auto& d : kDTypes)
        if (d.type == t) return d.name;
    return "?";
}

size_t dtype_size(DType t) {
    for (const auto& d : kDTypes)
        if (d.type == t) return d.size;
    return 0;
}

std::string TensorInfo::describe() const {
    std::string s = std::string(dtype_name(dtype)) + " [";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

Artifact::Artifact(const std::string& path) : path_(path) {
    map_file();
    try {
        parse_header();
    } catch (...) {
        if (mapping_) munmap(mapping_, size_);
        throw;
    }
}

Artifact::~Artifact() {
    if (mapping_) munmap(mapping_, size_);
}

void Artifact::release(const uint8_t* p, uint64_t n) const {
    if (!mapping_ || p < base_ || n > size_ || (uint64_t)(p - base_) > size_ - n) return;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t lo = ((uintptr_t)p + page - 1) / page * page, hi = ((uintptr_t)p + n) / page * page;
    if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);  // advice only: failure is harmless
}

void Artifact::fail(ArtifactError::Kind kind, const std::string& what) const {
    throw ArtifactError(kind, path_ + ": " + what);
}

const std::string* Artifact::meta(const std::string& key) const {
    auto it = metadata_.find(key);
    return it == metadata_.end() ? nullptr : &it->second;
}

const TensorInfo* Artifact::find(const std::string& name) const {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
}

void Artifact::map_file() {
    using K = ArtifactError::Kind;
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(K::kIO, "cannot open: " + errno_text(errno));
    struct stat st {};
    if (fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        fail(K::kIO, "cannot stat: " + errno_text(e));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        fail(K::kIO, "not a regular file");
    }
    if (st.st_size < 8) {
        ::close(fd);
        fail(K::kFormat, "not a safetensors file: " + std::to_string(st.st_size) + " bytes, shorter than the 8-byte "
                         "header length");
    }
    size_ = (size_t)st.st_size;
    void* m = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m != MAP_FAILED) {
        mapping_ = m;
        base_ = static_cast<const uint8_t*>(m);
        ::close(fd);
        return;
    }
    // some file systems cannot map: read the whole file instead
    try {
        buffer_.resize(size_);
    } catch (const std::bad_alloc&) {
        ::close(fd);
        throw;
    }
    size_t got = 0;
    while (got < size_) {
        const ssize_t r = ::read(fd, buffer_.data() + got, size_ - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            const int e = r < 0 ? errno : 0;
            ::close(fd);
            fail(K::kIO, "cannot read: " + (e ? errno_text(e) : std::string("file shrank while reading")));
        }
        got += (size_t)r;
    }
    ::close(fd);
    base_ = buffer_.data();
}

void Artifact::parse_header() {
    using K = ArtifactError::Kind;
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | base_[i];  // little-endian u64
    if (n > kMaxHeaderBytes) {
        fail(K::kFormat, "not a safetensors file: header length " + std::to_string(n) + " exceeds the " +
                         std::to_string(kMaxHeaderBytes >> 20) + " MB limit");
    }
    if (n > size_ - 8) {
        fail(K::kFormat, "truncated or not a safetensors file: header length " + std::to_string(n) +
                         " but only " + std::to_string(size_ - 8) + " bytes follow");
    }
    const char* text = reinterpret_cast<const char*>(base_ + 8);
    if (n < 2 || text[0] != '{') fail(K::kFormat, "not a safetensors file: the header is not a JSON object");
    json::Value head;
    try {
        head = json::parse(text, (size_t)n);
    } catch (const json::ParseError& e) {
        fail(K::kFormat, std::string("damaged safetensors header: ") + e.what());
    }
    if (head.type != json::Type::kObject) fail(K::kFormat, "the safetensors header is not a JSON object");
    const uint8_t* data = base_ + 8 + n;
    const uint64_t data_len = size_ - 8 - n;

    for (json::Member& m : head.object) {
        const std::string who = "'" + printable(m.key) + "'";
        if (m.key == "__metadata__") {
            if (m.value.type != json::Type::kObject) fail(K::kFormat, "__metadata__ must be an object");
            for (json::Member& kv : m.value.object) {
                if (kv.value.type != json::Type::kString)
                    fail(K::kFormat, "metadata '" + printable(kv.key) + "' must be a string");
                metadata_[kv.key] = std::move(kv.value.string);
            }
            continue;
        }
        const json::Value& t = m.value;
        if (t.type != json::Type::kObject) fail(K::kFormat, "tensor " + who + " must be an object");
        const json::Value* dt = t.find("dtype");
        const json::Value* shape = t.find("shape");
        const json::Value* offs = t.find("data_offsets");
        if (!dt || !shape || !offs) fail(K::kFormat, "tensor " + who + " needs dtype, shape and data_offsets");
        TensorInfo info;
        info.name = m.key;
        bool known = false;
        if (dt->type == json::Type::kString) {
            for (const auto& d : kDTypes) {
                if (dt->string == d.name) {
                    info.dtype = d.type;
                    known = true;
                }
            }
        }
        if (!known) {
            fail(K::kFormat, "tensor " + who + ": unknown dtype " +
                             (dt->type == json::Type::kString ? "'" + printable(dt->string) + "'" :
                                                                std::string(json::type_name(dt->type))));
        }
        if (shape->type != json::Type::kArray || shape->array.size() > kMaxRank)
            fail(K::kFormat, "tensor " + who + ": shape must be an array of at most 8 sizes");
        uint64_t numel = 1;
        for (const json::Value& d : shape->array) {
            if (!d.is_int || d.integer < 0) fail(K::kFormat, "tensor " + who + ": shape entries must be integers >= 0");
            info.shape.push_back(d.integer);
            if (__builtin_mul_overflow(numel, (uint64_t)d.integer, &numel))
                fail(K::kFormat, "tensor " + who + ": the shape's element count overflows");
        }
        if (offs->type != json::Type::kArray || offs->array.size() != 2 || !offs->array[0].is_int ||
            !offs->array[1].is_int || offs->array[0].integer < 0 || offs->array[1].integer < 0) {
            fail(K::kFormat, "tensor " + who + ": data_offsets must be two integers >= 0");
        }
        info.begin = (uint64_t)offs->array[0].integer;
        info.end = (uint64_t)offs->array[1].integer;
        info.numel = numel;
        uint64_t bytes = 0;
        if (__builtin_mul_overflow(numel, (uint64_t)dtype_size(info.dtype), &bytes))
            fail(K::kFormat, "tensor " + who + ": the shape's byte size overflows");
        if (info.begin > info.end || info.end > data_len) {
            fail(K::kFormat, "tensor " + who + ": data_offsets [" + std::to_string(info.begin) + ", " +
                             std::to_string(info.end) + "] lie outside the " + std::to_string(data_len) +
                             " data bytes (truncated file?)");
        }
        if (info.end - info.begin != bytes) {
            fail(K::kFormat, "tensor " + who + ": " + info.describe() + " needs " + std::to_string(bytes) +
                             " bytes but data_offsets span " + std::to_string(info.end - info.begin));
        }
        info.data = data + info.begin;
        tensors_.emplace(m.key, std::move(info));
    }
}

}  // namespace edgekit
