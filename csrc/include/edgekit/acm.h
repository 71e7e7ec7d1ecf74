// Adaptive computation modules in the runtime (edgekit/acm/modules.py has the model): a SwiGLU FFN whose
// intermediate neurons form N learners of `width` each (learner n: rows n*width .. of gate/up, the same columns of
// down), and a per-token gate choosing k in 0..N, the number of learners run (k = 0: the FFN adds nothing).
//
// Skipping is real: learners past k are a suffix of gate/up's rows and of down's columns, so a token with k runs
// gate/up on prefix views of k * width rows and down on the prefix view of its first k * width columns
// (formats.h: ek_q4x4.ldb); in decode the skipped learners' bytes are never read. Forcing k = N is the dense FFN bit
// for bit, because the prefix view with every block is the whole matrix and each output sums its blocks in order.
#ifndef EDGEKIT_ACM_H
#define EDGEKIT_ACM_H

#include <cstdint>
#include <vector>

namespace edgekit {

// The gate MLP, float32: logits[k] = fc2(GELU(fc1(x)))[k] (+ bias * k / N) for k = 0..N (GELU with erf, as torch's
// nn.GELU()). n == 0: the layer has no ACM (a dense FFN).
struct AcmGate {
    int n = 0, width = 0, hidden = 0, dim = 0;
    std::vector<float> w1, b1;  // [dim, hidden] (fc1's weight transposed: acm_set_fc1), [hidden]
    std::vector<float> w2, b2;  // [n + 1, hidden], [n + 1]
    bool enabled() const { return n > 0; }
};

// How the runtime runs every ACM layer: the gates' choice shifted by gate_bias (> 0 runs more learners, < 0 fewer;
// the Python modules' gate_bias), or force_k in 0..N for every token (-1: the gates decide).
struct AcmControl {
    float gate_bias = 0.0f;
    int force_k = -1;
};

// Stores fc1's weight w [hidden, dim] (torch's layout) in g.w1 as [dim, hidden]: acm_choose then sweeps the input
// once and updates all hidden units per element, a loop the compiler vectorizes without reordering any unit's sum.
void acm_set_fc1(AcmGate& g, const float* w);

// Chooses k for rows x [n, dim] (the FFN's normed input): k[i] = argmax_k of the biased logits, the first of equal
// ones. The same arithmetic in every build and thread count (one fixed order per row), so the PyTorch kernel path
// calls this function too and both make the same decisions.
void acm_choose(const AcmGate& g, const float* x, int n, float gate_bias, int32_t* k);

}  // namespace edgekit

#endif  // EDGEKIT_ACM_H
