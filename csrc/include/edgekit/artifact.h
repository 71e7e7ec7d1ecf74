// Reader of edgekit's quantized artifact (.ekq, edgekit/artifact.py documents the layout): a safetensors file.
//
//   [8 bytes: header length N, little-endian] [N bytes: JSON header] [data]
//   header = {tensor name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//             "__metadata__": {string: string}}        offsets are relative to the start of the data
//
// The file is untrusted: the header is parsed by the strict bounded parser of json.h and every tensor is checked
// (known dtype, shape product × dtype size == end − begin without overflow, begin <= end <= data length) before
// any byte of it is handed out. The file is memory-mapped read-only (read() into memory when mmap fails), so a
// tensor's bytes are a pointer into the mapping, valid while the Artifact lives. Little-endian hosts only. As with
// any mmap reader, another process truncating the file while it is mapped can still raise SIGBUS; load_llama keeps
// the mapping only while it builds the model (which copies what it keeps).
#ifndef EDGEKIT_ARTIFACT_H
#define EDGEKIT_ARTIFACT_H

#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace edgekit {

// Every failure to read or use an artifact; kind() tells the C API which status to return. Messages are one line
// and name the file, the tensor or key, and what is wrong.
class ArtifactError : public std::runtime_error {
public:
    enum class Kind {
        kIO,           // cannot open / read the file
        kFormat,       // not a valid safetensors file or edgekit artifact (damaged, truncated, inconsistent)
        kUnsupported,  // a valid artifact that this runtime cannot run (other family, quantization, version)
    };
    ArtifactError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
    Kind kind() const { return kind_; }

private:
    Kind kind_;
};

enum class DType { kBool, kU8, kI8, kF8E4M3, kF8E5M2, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kF64, kI64, kU64 };

const char* dtype_name(DType t);   // safetensors spelling: "F32", "U8", ...
size_t dtype_size(DType t);        // bytes per element

struct TensorInfo {
    std::string name;
    DType dtype = DType::kU8;
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;    // data_offsets
    const uint8_t* data = nullptr;  // the tensor's bytes inside the file (no alignment promised)
    uint64_t numel = 0;

    uint64_t nbytes() const { return end - begin; }
    std::string describe() const;   // e.g. "F16 [576, 18]"
};

class Artifact {
public:
    // Maps and validates `path`; throws ArtifactError.
    explicit Artifact(const std::string& path);
    ~Artifact();
    Artifact(const Artifact&) = delete;
    Artifact& operator=(const Artifact&) = delete;

    const std::string& path() const { return path_; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }

    // The metadata value of `key`, nullptr when absent.
    const std::string* meta(const std::string& key) const;
    // The tensor `name`, nullptr when absent.
    const TensorInfo* find(const std::string& name) const;

    // Tells the OS that bytes [p, p + n) of the mapping will not be read again, so the whole pages inside them leave
    // this process's resident set (a loader that copies a tensor out releases it, which keeps peak RSS near the
    // size of the model's own copies). A no-op when the file was read into memory.
    void release(const uint8_t* p, uint64_t n) const;

    // Throws ArtifactError(kind, "<path>: <what>").
    [[noreturn]] void fail(ArtifactError::Kind kind, const std::string& what) const;

    static constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // as edgekit/artifact.py's is_artifact

private:
    void map_file();
    void parse_header();

    std::string path_;
    const uint8_t* base_ = nullptr;  // whole file
    size_t size_ = 0;
    void* mapping_ = nullptr;        // mmap result to unmap, or null when read into buffer_
    std::vector<uint8_t> buffer_;
    std::map<std::string, std::string> metadata_;
    std::map<std::string, TensorInfo> tensors_;
};

}  // namespace edgekit

#endif  // EDGEKIT_ARTIFACT_H
