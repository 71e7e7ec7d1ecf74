// Golden logits (golden.h): the parser and the replay.
#include "golden.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace ekbench {

bool load_golden(const std::string& path, Golden& out, std::string& error) {
    std::ifstream f(path);
    if (!f) {
        error = path + ": cannot be opened";
        return false;
    }
    out = Golden{};
    int lineno = 0;
    auto bad = [&](const std::string& why) {
        error = path + ":" + std::to_string(lineno) + ": " + why;
        return false;
    };
    std::string line, tag;
    bool header = false;
    while (std::getline(f, line)) {
        ++lineno;
        std::istringstream in(line);
        if (!(in >> tag)) continue;
        if (!header) {
            int version = 0;
            if (tag != "edgekit-golden" || !(in >> version) || version != 1)
                return bad("not an edgekit golden file (version 1)");
            header = true;
        } else if (tag == "tolerance") {
            if (!(in >> out.atol >> out.rtol) || out.atol < 0 || out.rtol < 0) return bad("bad tolerance");
        } else if (tag == "case") {
            int np = 0, ns = 0;
            if (!(in >> np >> ns) || np <= 0 || ns <= 0) return bad("bad case line");
            GoldenCase c;
            c.prompt.resize(np);
            c.steps.resize(ns);
            out.cases.push_back(c);
        } else if (tag == "prompt" && !out.cases.empty()) {
            for (int32_t& id : out.cases.back().prompt)
                if (!(in >> id)) return bad("prompt has fewer ids than its case line says");
        } else if (tag == "step" && !out.cases.empty()) {
            GoldenCase& c = out.cases.back();
            size_t filled = 0;
            while (filled < c.steps.size() && !c.steps[filled].top.empty()) ++filled;
            if (filled == c.steps.size()) return bad("more step lines than the case line says");
            GoldenStep& s = c.steps[filled];
            if (!(in >> s.next >> s.margin)) return bad("bad step line");
            for (std::string pair; in >> pair;) {
                int32_t id = 0;
                double logit = 0;
                if (std::sscanf(pair.c_str(), "%d:%lf", &id, &logit) != 2) return bad("bad ID:LOGIT '" + pair + "'");
                s.top.push_back({id, logit});
            }
            if (s.top.empty()) return bad("a step line without logits");
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
                const double err = std::fabs((double)logits[id] - want), tol = golden.atol + golden.rtol * std::fabs(want);
                r.max_err = std::max(r.max_err, err);
                if (!(err <= tol)) {  // also catches NaN
                    std::snprintf(msg, sizeof msg, "case %zu step %zu: the logit of token %d is %.6g here but %.6g in "
                                  "the golden data (|diff| %.3g > tolerance %.3g)", ci, si, id, (double)logits[id], want,
                                  err, tol);
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
