// Token-pruning schedule and selection (prune.h). Kept tiny and free of the model so that the PyTorch path's
// mirror (edgekit/prune/schedule.py) can be checked against it rule by rule.
#include "edgekit/prune.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace edgekit {

void PruneSchedule::validate(int n_layers) const {
    if (!(ratio >= 0.0f && ratio < 1.0f))
        throw std::invalid_argument("prune ratio must lie in [0, 1), got " + std::to_string(ratio));
    if (keep_last < 1) throw std::invalid_argument("prune keep_last must be >= 1, got " + std::to_string(keep_last));
    for (size_t i = 0; i < layers.size(); ++i) {
        if (layers[i] < 0 || layers[i] >= n_layers)
            throw std::invalid_argument("prune layer " + std::to_string(layers[i]) + " outside 0.." +
                                        std::to_string(n_layers - 1));
        if (i && layers[i] <= layers[i - 1]) throw std::invalid_argument("prune layers must be strictly increasing");
    }
}

int prune_keep_count(int n0, float ratio, int j, int m, int keep_last) {
    const int protect = std::min(n0, 1 + keep_last);
    const double left = (double)n0 * std::pow(1.0 - (double)ratio, (double)j / (double)m);
    const int keep = (int)std::ceil(left - 1e-9);
    return std::max(protect, std::min(n0, keep));
}

void prune_select(const float* score, const int32_t* orig, int n, int n0, int keep_last, int n_keep,
                  std::vector<int>& keep) {
    keep.clear();
    std::vector<int> cand;
    for (int i = 0; i < n; ++i)
        if (orig[i] != 0 && orig[i] < n0 - keep_last) cand.push_back(i);
    const int n_drop = std::max(0, std::min((int)cand.size(), n - n_keep));
    // least important first; rows are in prompt order, so a stable sort breaks ties by the lower prompt index
    std::stable_sort(cand.begin(), cand.end(), [&](int a, int b) { return score[a] < score[b]; });
    std::vector<char> drop((size_t)n, 0);
    for (int i = 0; i < n_drop; ++i) drop[cand[i]] = 1;
    for (int i = 0; i < n; ++i)
        if (!drop[i]) keep.push_back(i);
}

}  // namespace edgekit
