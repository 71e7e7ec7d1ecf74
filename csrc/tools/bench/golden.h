// The golden data of a bundle (golden/golden-<kernel>.txt, written by edgekit.device.golden on the host with the
// same runtime) and its check: before timing anything, edgekit-bench replays each golden prompt and compares its logits
// with the host's, so a kernel that computes something else on this CPU fails loudly instead of timing garbage.
//
// Format (text, one record per line, ids and logits in decimal):
//   edgekit-golden 1
//   tolerance ABS REL             a logit passes when |here - golden| <= ABS + REL * |golden|
//   case N_PROMPT N_STEPS
//   prompt ID ...                 N_PROMPT ids
//   step NEXT MARGIN ID:LOGIT ... N_STEPS lines: the golden greedy token after this position, its lead over the
//                                 runner-up, and the top-k logits (step 0 after the prompt, step i after NEXT of i-1)
#ifndef EDGEKIT_BENCH_GOLDEN_H
#define EDGEKIT_BENCH_GOLDEN_H

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "edgekit.h"

namespace ekbench {

struct GoldenStep {
    int32_t next = 0;
    double margin = 0;
    std::vector<std::pair<int32_t, double>> top;  // (id, logit)
};

struct GoldenCase {
    std::vector<int32_t> prompt;
    std::vector<GoldenStep> steps;
};

struct Golden {
    double atol = 0, rtol = 0;
    std::vector<GoldenCase> cases;
};

// Which golden file a run checks against: the W4A8 matmul's implementation in ek_kernels' line ("op=impl,...").
// The Arm kernels (neon, neondot, neoni8mm) give the scalar reference's bits (kernels.h), so they share "scalar";
// the x86 ones add float block terms in their own order, and each has its own file.
std::string golden_variant(const std::string& kernels);

bool is_directory(const std::string& path);
bool file_exists(const std::string& path);

// Parses `path`; false with a message naming the file and line on any error.
bool load_golden(const std::string& path, Golden& out, std::string& error);

struct VerifyResult {
    bool ok = false;
    int steps = 0;          // positions compared
    double max_err = 0;     // the largest |here - golden| over every compared logit
    std::string message;    // why it failed ("" when ok)
};

// Replays every case on `model` (its cache is reset first and left empty afterwards).
VerifyResult verify(ek_model* model, const Golden& golden);

}  // namespace ekbench

#endif
