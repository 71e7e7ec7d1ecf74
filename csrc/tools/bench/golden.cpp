// Golden logits (golden.h): the parser and the replay.
#include "golden.h"

#include <sys/stat.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "sysinfo.h"

namespace ekbench {

namespace {

// Parses the whole of `w` as an integer / a number.
bool as_int(const std::string& w, int32_t& v) {
    char* end = nullptr;
    const long x = std::strtol(w.c_str(), &end, 10);
    if (w.empty() || *end || x < INT32_MIN || x > INT32_MAX) return false;
    v = (int32_t)x;
    return true;
}

bool as_double(const std::string& w, double& v) {
    char* end = nullptr;
    v = std::strtod(w.c_str(), &end);
    return !w.empty() && !*end;
}

}  // namespace

std::string golden_variant(const std::string& kernels) {
    const std::string key = "gemm_q4x4_q8=";
    size_t at = kernels.find(key);
    if (at == std::string::npos) return "scalar";
    at += key.size();
    const std::string impl = kernels.substr(at, kernels.find(',', at) - at);
    return impl.compare(0, 4, "neon") == 0 ? "scalar" : impl;
}

bool is_directory(const std::string& path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool file_exists(const std::string& path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool load_golden(const std::string& path, Golden& out, std::string& error) {
    std::string text;
    if (!read_text(path, text)) {
        error = path + ": cannot be opened";
        return false;
    }
    out = Golden{};
    int lineno = 0;
    auto bad = [&](const std::string& why) {
        error = path + ":" + std::to_string(lineno) + ": " + why;
        return false;
    };
    bool header = false;
    for (const std::string& line : split_lines(text)) {
        ++lineno;
        const std::vector<std::string> w = words(line);
        if (w.empty()) continue;
        const std::string& tag = w[0];
        if (!header) {
            if (tag != "edgekit-golden" || w.size() != 2 || w[1] != "1")
                return bad("not an edgekit golden file (version 1)");
            header = true;
        } else if (tag == "tolerance") {
            if (w.size() != 3 || !as_double(w[1], out.atol) || !as_double(w[2], out.rtol) || out.atol < 0 ||
                out.rtol < 0)
                return bad("bad tolerance");
        } else if (tag == "case") {
            int32_t np = 0, ns = 0;
            if (w.size() != 3 || !as_int(w[1], np) || !as_int(w[2], ns) || np <= 0 || ns <= 0)
                return bad("bad case line");
            GoldenCase c;
            c.prompt.resize(np);
            c.steps.resize(ns);
            out.cases.push_back(c);
        } else if (tag == "prompt" && !out.cases.empty()) {
            std::vector<int32_t>& ids = out.cases.back().prompt;
            if (w.size() - 1 < ids.size()) return bad("prompt has fewer ids than its case line says");
            for (size_t i = 0; i < ids.size(); ++i)
                if (!as_int(w[i + 1], ids[i])) return bad("bad token id '" + w[i + 1] + "'");
        } else if (tag == "step" && !out.cases.empty()) {
            GoldenCase& c = out.cases.back();
            size_t filled = 0;
            while (filled < c.steps.size() && !c.steps[filled].top.empty()) ++filled;
            if (filled == c.steps.size()) return bad("more step lines than the case line says");
            GoldenStep& s = c.steps[filled];
            if (w.size() < 4 || !as_int(w[1], s.next) || !as_double(w[2], s.margin)) return bad("bad step line");
            for (size_t i = 3; i < w.size(); ++i) {
                const size_t colon = w[i].find(':');
                int32_t id = 0;
                double logit = 0;
                if (colon == std::string::npos || !as_int(w[i].substr(0, colon), id) ||
                    !as_double(w[i].substr(colon + 1), logit))
                    return bad("bad ID:LOGIT '" + w[i] + "'");
                s.top.push_back({id, logit});
            }
        } else {
            return bad("unexpected '" + tag + "'");
        }
    }
    if (!header) return bad("empty file");
    if (out.cases.empty()) return bad("no cases");
    for (const GoldenCase& c : out.cases)
        if (c.steps.back().top.empty()) return bad("a case has fewer step lines than it says");
    return true;
}

VerifyResult verify(ek_model* model, const Golden& golden) {
    VerifyResult r;
    const int32_t vocab = ek_n_vocab(model);
    char msg[512];
    for (size_t ci = 0; ci < golden.cases.size(); ++ci) {
        const GoldenCase& c = golden.cases[ci];
        ek_reset(model);
        for (size_t si = 0; si < c.steps.size(); ++si) {
            const ek_status st = si == 0 ? ek_eval(model, c.prompt.data(), (int32_t)c.prompt.size(), 0)
                                         : ek_decode(model, c.steps[si - 1].next);
            if (st != EK_OK) {
                std::snprintf(msg, sizeof msg, "case %zu step %zu: the model failed: %s", ci, si, ek_last_error());
                r.message = msg;
                ek_reset(model);
                return r;
            }
            const float* logits = ek_get_logits(model, nullptr);
            const GoldenStep& g = c.steps[si];
            for (const auto& [id, want] : g.top) {
                if (id < 0 || id >= vocab) {
                    std::snprintf(msg, sizeof msg, "token %d is outside this model's vocabulary (%d): golden data of "
                                  "another model", id, vocab);
                    r.message = msg;
                    ek_reset(model);
                    return r;
                }
                const double err = std::fabs((double)logits[id] - want);
                const double tol = golden.atol + golden.rtol * std::fabs(want);
                r.max_err = std::max(r.max_err, err);
                if (!(err <= tol)) {  // also catches NaN
                    std::snprintf(msg, sizeof msg, "case %zu step %zu: the logit of token %d is %.6g here but %.6g in "
                                  "the golden data (|diff| %.3g > tolerance %.3g)", ci, si, id, (double)logits[id],
                                  want, err, tol);
                    r.message = msg;
                    ek_reset(model);
                    return r;
                }
            }
            // the greedy choice must agree too, unless the host's top two were within the tolerance of each other
            int32_t best = 0;
            for (int32_t i = 1; i < vocab; ++i)
                if (logits[i] > logits[best]) best = i;
            const double tol_top = 2 * (golden.atol + golden.rtol * std::fabs(g.top.front().second));
            if (best != g.next && g.margin > tol_top) {
                std::snprintf(msg, sizeof msg, "case %zu step %zu: the greedy token is %d here but %d in the golden "
                              "data", ci, si, best, g.next);
                r.message = msg;
                ek_reset(model);
                return r;
            }
            ++r.steps;
        }
    }
    ek_reset(model);
    r.ok = true;
    return r;
}

}  // namespace ekbench
