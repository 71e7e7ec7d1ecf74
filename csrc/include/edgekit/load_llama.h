// Building the runtime's LlamaModel straight from a quantized artifact (.ekq), without Python.
#ifndef EDGEKIT_LOAD_LLAMA_H
#define EDGEKIT_LOAD_LLAMA_H

#include <memory>
#include <string>

#include "edgekit/llama.h"

namespace edgekit {

// Default KV-cache length when the caller passes max_ctx <= 0 (capped by the model's max_position_embeddings).
constexpr int kDefaultMaxCtx = 2048;
constexpr int kMaxCtxLimit = 1 << 20;

// Reads `path` (artifact.h), checks that it is a W4A8 llama causal LM the runtime can run (int4 symmetric group-32
// weights, int8 per-token activations, float LM head, no W4A4 tokens or quantized attention, no rope scaling), and
// builds the model with a KV cache of max_ctx positions. Throws ArtifactError (kIO / kFormat / kUnsupported) with a
// one-line message, std::invalid_argument when max_ctx exceeds kMaxCtxLimit, std::bad_alloc when out of memory.
std::unique_ptr<LlamaModel> load_llama(const std::string& path, int max_ctx);

}  // namespace edgekit

#endif  // EDGEKIT_LOAD_LLAMA_H
