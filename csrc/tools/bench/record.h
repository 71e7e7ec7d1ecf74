// edgekit-bench's results: the statistics of a series of timings (median and a distribution-free 95 % interval of
// the median), the record of one test, and its output as JSON lines, JSON, CSV or a Markdown table. The JSONL record
// layout is docs/edgekit-bench.schema.json (keep the two in step).
#ifndef EDGEKIT_BENCH_RECORD_H
#define EDGEKIT_BENCH_RECORD_H

#include <string>
#include <vector>

namespace ekbench {

struct Summary {
    double median = 0, lo = 0, hi = 0;  // 95 % interval of the median: [lo, hi]
};

// Median and 95 % interval from order statistics (binomial ranks n/2 ± 0.98·√n, normal approximation); with fewer
// than 6 samples the interval is [min, max]. Empty input gives zeros.
Summary summarize(std::vector<double> samples);

// (hi - lo) / median: the relative width the repetitions run until (0 for a single sample).
double rel_width(const Summary& s);

// A JSON string literal of s (quotes, backslashes and control characters escaped).
std::string jstr(const std::string& s);

// One timed test: the fields every output format shares. `extra` is pre-rendered JSON members (device facts,
// kernels, memory, ...) appended to the JSON forms as they are.
struct Record {
    std::string phase;        // prefill | decode | prefill+decode | sustained
    std::string test;         // llama-bench's name: pp512, tg128, pp512+tg128
    int n_prompt = 0, n_gen = 0, threads = 0;
    std::vector<double> tps;  // tokens/s of every repetition
    std::vector<double> ttft_ms;  // time to first token of every repetition (prefill phases)
    Summary tps_s, ttft_s;
    std::string extra;
};

std::string to_json(const Record& r);
std::string csv_header();
std::string to_csv(const Record& r, const std::string& model);
std::string md_header();
std::string to_md(const Record& r, const std::string& model);

}  // namespace ekbench

#endif
