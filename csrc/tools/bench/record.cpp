// Statistics and output formats of edgekit-bench (record.h).
#include "record.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace ekbench {

Summary summarize(std::vector<double> x) {
    Summary s;
    const size_t n = x.size();
    if (n == 0) return s;
    std::sort(x.begin(), x.end());
    s.median = n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
    if (n < 6) {
        s.lo = x.front();
        s.hi = x.back();
        return s;
    }
    // the number of samples below the median is Binomial(n, 1/2): ranks n/2 ± 1.96·√n/2 hold it 95 % of the time
    const double half = 0.98 * std::sqrt((double)n);
    const long lo = std::max(0L, (long)std::floor(n / 2.0 - half) - 1);
    const long hi = std::min((long)n - 1, (long)std::ceil(n / 2.0 + half));
    s.lo = x[lo];
    s.hi = x[hi];
    return s;
}

double rel_width(const Summary& s) { return s.median > 0 ? (s.hi - s.lo) / s.median : 0; }

std::string jstr(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += (char)c;
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += (char)c;
        }
    }
    return out + "\"";
}

namespace {

std::string num(double v) {
    if (!std::isfinite(v)) return "null";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

std::string series(const std::vector<double>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + num(v[i]);
    return out + "]";
}

std::string stat_json(const Summary& s, const std::vector<double>& samples) {
    return "{\"median\":" + num(s.median) + ",\"ci95\":[" + num(s.lo) + "," + num(s.hi) + "],\"samples\":" +
           series(samples) + "}";
}

}  // namespace

std::string to_json(const Record& r) {
    std::string j = "{\"schema\":\"edgekit-bench/1\",\"phase\":" + jstr(r.phase) + ",\"test\":" + jstr(r.test) +
                    ",\"n_prompt\":" + std::to_string(r.n_prompt) + ",\"n_gen\":" + std::to_string(r.n_gen) +
                    ",\"threads\":" + std::to_string(r.threads) + ",\"tokens_per_s\":" + num(r.tps_s.median) +
                    ",\"tokens_per_s_ci95\":[" + num(r.tps_s.lo) + "," + num(r.tps_s.hi) +
                    "],\"tokens_per_s_samples\":" + series(r.tps) + ",\"reps\":" + std::to_string(r.tps.size());
    j += ",\"ttft_ms\":" + (r.ttft_ms.empty() ? std::string("null") : stat_json(r.ttft_s, r.ttft_ms));
    if (!r.extra.empty()) j += "," + r.extra;
    return j + "}";
}

std::string csv_header() { return "model,test,phase,threads,n_prompt,n_gen,reps,tokens_per_s,ci95_lo,ci95_hi,ttft_ms"; }

std::string to_csv(const Record& r, const std::string& model) {
    return jstr(model) + "," + r.test + "," + r.phase + "," + std::to_string(r.threads) + "," +
           std::to_string(r.n_prompt) + "," + std::to_string(r.n_gen) + "," + std::to_string(r.tps.size()) + "," +
           num(r.tps_s.median) + "," + num(r.tps_s.lo) + "," + num(r.tps_s.hi) + "," +
           (r.ttft_ms.empty() ? "" : num(r.ttft_s.median));
}

std::string md_header() {
    return "| model | threads | test | t/s (median) | 95% interval | TTFT ms |\n"
           "| ----- | ------: | ---- | -----------: | ------------ | ------: |";
}

std::string to_md(const Record& r, const std::string& model) {
    char buf[512];
    std::snprintf(buf, sizeof buf, "| %s | %d | %s | %.2f | %.2f – %.2f | %s |", model.c_str(), r.threads,
                  r.test.c_str(), r.tps_s.median, r.tps_s.lo, r.tps_s.hi,
                  r.ttft_ms.empty() ? "" : num(r.ttft_s.median).c_str());
    return buf;
}

}  // namespace ekbench
