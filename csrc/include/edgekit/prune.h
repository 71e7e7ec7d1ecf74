// Activation-aware token pruning (Agile-Quant): during a prompt prefill, the tokens that attend least to the first
// token are dropped after a pruning layer's attention residual; they skip that layer's MLP and every later layer.
//
// The schedule and the selection rule are shared with the PyTorch path (edgekit/prune/schedule.py), which must pick
// the same tokens from the same scores:
//   * importance of token t at a layer = sum over heads (in head order) of its softmax probability on position 0;
//   * with n0 prompt tokens, m pruning layers and target ratio beta, the j-th pruning layer (j = 1..m) keeps
//     max(protected, ceil(n0 * (1 - beta)^(j / m) - 1e-9)) tokens, where `protected` = min(n0, 1 + keep_last);
//     the per-layer ratio is therefore gamma = 1 - (1 - beta)^(1/m) of the survivors;
//   * position 0 and the last keep_last prompt positions are never dropped; the others are dropped in order of
//     increasing importance, ties broken by the lower prompt index first.
#ifndef EDGEKIT_PRUNE_H
#define EDGEKIT_PRUNE_H

#include <cstdint>
#include <vector>

namespace edgekit {

// Tokens that survive the j-th (1-based) of m pruning layers of a prompt of n0 tokens at target ratio `ratio`.
int prune_keep_count(int n0, float ratio, int j, int m, int keep_last);

struct PruneSchedule {
    float ratio = 0.0f;       // beta: fraction of the prompt dropped once the last pruning layer has run
    std::vector<int> layers;  // pruning layers, strictly increasing; empty = pruning off
    int keep_last = 4;        // the last prompt positions that are never dropped (>= 1: the next token needs them)

    bool enabled() const { return !layers.empty(); }
    // Throws std::invalid_argument naming what is wrong (ratio outside [0, 1), layers not increasing or out of
    // 0..n_layers-1, keep_last < 1).
    void validate(int n_layers) const;
    // Tokens that survive the j-th pruning layer (1-based) of a prompt of n0 tokens.
    int keep_count(int n0, int j) const { return prune_keep_count(n0, ratio, j, (int)layers.size(), keep_last); }
};

// Chooses the survivors among `n` active rows. score[i]: importance of row i; orig[i]: its index in the prompt
// (increasing). Writes the surviving row numbers, in increasing order, to `keep` (n_keep of them).
void prune_select(const float* score, const int32_t* orig, int n, int n0, int keep_last, int n_keep,
                  std::vector<int>& keep);

}  // namespace edgekit

#endif  // EDGEKIT_PRUNE_H
