// The artifact checks and tensor readers every loader of the C++ runtime shares (load_llama.cpp defines them; the
// Llama loader and the T5 loader, load_t5.cpp, use them): one rule per metadata key and per tensor format.
#ifndef EDGEKIT_LOAD_UTIL_H
#define EDGEKIT_LOAD_UTIL_H

#include <cstdint>
#include <string>
#include <vector>

#include "edgekit/artifact.h"
#include "edgekit/blocks.h"
#include "edgekit/json.h"

namespace edgekit {
namespace load {

// edgekit.format and edgekit.format_version: an edgekit artifact this runtime reads (ArtifactError otherwise).
void check_format(const Artifact& a);
// check_format, then edgekit.family / edgekit.task must be `family` / `task` (kUnsupported naming what the artifact
// is, then `runs`: what the C++ runtime runs instead).
void check_kind(const Artifact& a, const char* family, const char* task, const std::string& runs);
// max_ctx within the runtime's limit (std::invalid_argument otherwise), before any file is opened.
void check_max_ctx(int max_ctx);
// The metadata value of `key` parsed as JSON (kFormat when absent or invalid).
json::Value meta_json(const Artifact& a, const std::string& key);
// model_config[key] as an integer in [lo, hi]; `fallback` when absent or null (nullptr: required).
int cfg_int(const Artifact& a, const json::Value& cfg, const char* key, int lo, int hi, const int* fallback = nullptr);
// model_config[key] as a positive finite number; `fallback` when absent or null (nullptr: required).
float cfg_positive(const Artifact& a, const json::Value& cfg, const char* key, const float* fallback);
// edgekit.quant: no W4A4 tokens, no quantized attention (kUnsupported).
void check_quant(const Artifact& a, const json::Value& q);
// lm_head_bits 8: the tied table (or the embedding and an untied head) in Q8_0 (true); null: fp16 (false).
bool q8_head(const Artifact& a, const json::Value& q);
// lm_head_act_bits 8: the Q8_0 head's input quantized per block of 32 (true); null or absent: float (false).
bool q8_head_act8(const Artifact& a, const json::Value& q);
// One edgekit.linears entry: the W4A8 scheme of the kernels with shape [n, k]; returns its activation mode.
ActQuant check_linear(const Artifact& a, const json::Value& linears, const std::string& name, int64_t n, int64_t k);
// The tensor `name` with exactly this dtype and shape (kFormat otherwise).
const TensorInfo& tensor(const Artifact& a, const std::string& name, DType dtype, std::vector<int64_t> shape);
// A float32 table as fp16 / as Q8_0, a chunk of the file at a time (each chunk released after use).
std::vector<uint16_t> fp16_table(const Artifact& a, const TensorInfo& t);
Q8Table q8_table(const Artifact& a, const TensorInfo& t);
std::vector<float> float_vector(const Artifact& a, const std::string& name, int64_t n);
std::vector<float> float_matrix(const Artifact& a, const std::string& name, int64_t rows, int64_t cols);
// The static activation scale of a per_tensor linear (float32 [1], finite, > 0).
float act_scale(const Artifact& a, const std::string& name);
// qweight U8 [n, k/2] + scales F16 [n, k/32] → the q4x4 kernel layout.
Q4Weight q4_weight(const Artifact& a, const std::string& name, int64_t n, int64_t k);

}  // namespace load
}  // namespace edgekit

#endif  // EDGEKIT_LOAD_UTIL_H
