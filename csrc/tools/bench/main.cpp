// edgekit-bench: prefill / decode speed of an edgekit artifact on this device, through the C API only (edgekit.h),
// after checking that the model computes the host's golden logits here (--verify, on by default). llama-bench's
// flags keep their meaning (-m -p -n -pg -r -t -o --delay --no-warmup); everything else is documented in usage().
// Records: docs/edgekit-bench.schema.json. Exit status: 0 ok, 1 a runtime failure, 2 bad usage, 3 verification
// failed or this CPU lacks a required ISA feature (nothing was timed).
#include <sched.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "edgekit.h"
#include "golden.h"
#include "record.h"
#include "sysinfo.h"

using namespace ekbench;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
    std::string model, golden, output = "md", cores = "all", root = "/", require;
    std::vector<int> p = {512}, n = {128};
    std::vector<std::pair<int, int>> pg;
    std::vector<std::string> measure;  // --measure -- CMD ARGS: run another program, report its peak RSS
    int reps = 5, max_reps = 30, threads = 0, ctx = 0;
    double delay = 0, ci_width = 0.05, cool_temp = 0, cool_s = 0, sustained = 0;
    bool verify = true, warmup = true, device_info = false;
};

void usage() {
    std::puts(
        "usage: edgekit-bench -m MODEL.ekq [options]\n"
        "  -p N[,N..]        prompt (prefill) lengths, default 512 (0: none)\n"
        "  -n N[,N..]        generated (decode) lengths, default 128 (0: none)\n"
        "  -pg P,N           prefill P then decode N as one test (repeatable)\n"
        "  -r N              repetitions at least, default 5; more until the 95% interval is narrow (--ci-width)\n"
        "  --max-reps N      repetitions at most, default 30\n"
        "  --ci-width F      target width of the median's 95% interval relative to it, default 0.05\n"
        "  -t N              threads, default: the pinned cores' count\n"
        "  -c N              context (KV cache) length, default the model's (at most 2048)\n"
        "  -o md|csv|json|jsonl   output format, default md\n"
        "  --delay S         seconds of sleep before each test\n"
        "  --no-warmup       no untimed run before each test\n"
        "  --verify / --no-verify   compare logits with --golden FILE before timing (default on)\n"
        "  --golden PATH     golden logits: a file, or a bundle's golden/ folder (golden-<kernel>.txt per kernel)\n"
        "  --require F,F     ISA features this CPU must have (Linux /proc/cpuinfo names), else exit 3\n"
        "  --cores big|little|all   pin threads to the biggest / smallest cores by sysfs cpu_capacity\n"
        "  --cooldown T:S    before each test wait until every thermal zone is <= T degC, at most S seconds\n"
        "  --sustained S     afterwards, decode for S seconds and report throughput over time\n"
        "  --device-info     print the device facts as JSON and exit\n"
        "  --measure -- CMD ARGS   run CMD (e.g. llama-bench), then print one JSON line with its peak RSS and the\n"
        "                    device facts; exits with CMD's status (how a bundle measures llama.cpp's memory)\n"
        "  --sysfs-root DIR  read /proc and /sys under DIR (tests)");
}

[[noreturn]] void die(int code, const std::string& msg) {
    std::fprintf(stderr, "edgekit-bench: error: %s\n", msg.c_str());
    std::exit(code);
}

std::vector<int> int_list(const std::string& flag, const char* v) {
    std::vector<int> out;
    std::string s = v;
    size_t pos = 0;
    while (pos <= s.size()) {
        const size_t comma = s.find(',', pos);
        const std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        char* end = nullptr;
        const long x = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end || x < 0 || x > 1 << 20)
            die(2, flag + " needs non-negative integers, got '" + s + "'");
        out.push_back((int)x);
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
    return out;
}

double number(const std::string& flag, const char* v) {
    char* end = nullptr;
    const double x = std::strtod(v, &end);
    if (end == v || *end || x < 0) die(2, flag + " needs a non-negative number, got '" + std::string(v) + "'");
    return x;
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) die(2, a + " needs a value");
            return argv[++i];
        };
        if (a == "-h" || a == "--help") { usage(); std::exit(0); }
        else if (a == "-m" || a == "--model") o.model = value();
        else if (a == "-p" || a == "--n-prompt") o.p = int_list(a, value());
        else if (a == "-n" || a == "--n-gen") o.n = int_list(a, value());
        else if (a == "-pg") {
            const std::vector<int> v = int_list(a, value());
            if (v.size() != 2 || v[0] == 0 || v[1] == 0) die(2, "-pg needs two positive integers P,N");
            o.pg.push_back({v[0], v[1]});
        }
        else if (a == "-r" || a == "--repetitions") o.reps = (int)number(a, value());
        else if (a == "--max-reps") o.max_reps = (int)number(a, value());
        else if (a == "--ci-width") o.ci_width = number(a, value());
        else if (a == "-t" || a == "--threads") o.threads = (int)number(a, value());
        else if (a == "-c" || a == "--ctx") o.ctx = (int)number(a, value());
        else if (a == "-o" || a == "--output") o.output = value();
        else if (a == "--delay") o.delay = number(a, value());
        else if (a == "--no-warmup") o.warmup = false;
        else if (a == "--verify") o.verify = true;
        else if (a == "--no-verify") o.verify = false;
        else if (a == "--golden") o.golden = value();
        else if (a == "--require") o.require = value();
        else if (a == "--cores") o.cores = value();
        else if (a == "--cooldown") {
            const std::string v = value();
            const size_t colon = v.find(':');
            if (colon == std::string::npos) die(2, "--cooldown needs TEMP:SECONDS, got '" + v + "'");
            o.cool_temp = number(a, v.substr(0, colon).c_str());
            o.cool_s = number(a, v.substr(colon + 1).c_str());
        }
        else if (a == "--sustained") o.sustained = number(a, value());
        else if (a == "--device-info") o.device_info = true;
        else if (a == "--sysfs-root") o.root = value();
        else if (a == "--measure") {
            if (i + 1 < argc && std::string(argv[i + 1]) == "--") ++i;
            for (++i; i < argc; ++i) o.measure.push_back(argv[i]);
            if (o.measure.empty()) die(2, "--measure needs a command after it: --measure -- CMD ARGS");
        }
        else die(2, "unknown option '" + a + "' (--help lists them)");
    }
    if (o.output != "md" && o.output != "csv" && o.output != "json" && o.output != "jsonl")
        die(2, "-o must be md, csv, json or jsonl, got '" + o.output + "'");
    if (o.cores != "big" && o.cores != "little" && o.cores != "all")
        die(2, "--cores must be big, little or all, got '" + o.cores + "'");
    if (o.reps < 1 || o.max_reps < o.reps) die(2, "-r must be >= 1 and --max-reps >= -r");
    if (!o.device_info && o.measure.empty() && o.model.empty()) die(2, "-m MODEL is required (--help)");
    if (!o.device_info && o.measure.empty() && o.verify && o.golden.empty())
        die(2, "--verify (the default) needs --golden FILE (a bundle's run.sh passes it); --no-verify times unchecked");
    return o;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string device_json(const Device& d) {
    std::string j = "{\"model\":" + jstr(d.cpu_model) + ",\"features\":[";
    for (size_t i = 0; i < d.features.size(); ++i) j += (i ? "," : "") + jstr(d.features[i]);
    j += "],\"cores\":[";
    for (size_t i = 0; i < d.cores.size(); ++i) {
        const Core& c = d.cores[i];
        j += std::string(i ? "," : "") + "{\"id\":" + std::to_string(c.id) + ",\"max_khz\":" +
             (c.max_khz < 0 ? "null" : std::to_string(c.max_khz)) + ",\"capacity\":" +
             (c.capacity < 0 ? "null" : std::to_string(c.capacity)) + ",\"governor\":" +
             (c.governor.empty() ? "null" : jstr(c.governor)) + "}";
    }
    return j + "]}";
}

std::string thermal_json(const std::vector<Zone>& zones) {
    std::string j = "[";
    for (size_t i = 0; i < zones.size(); ++i) {
        char t[32];
        std::snprintf(t, sizeof t, "%.1f", zones[i].celsius);
        j += std::string(i ? "," : "") + "{\"zone\":" + jstr(zones[i].name) + ",\"celsius\":" + t + "}";
    }
    return j + "]";
}

std::string int_array(const std::vector<int>& v) {
    std::string j = "[";
    for (size_t i = 0; i < v.size(); ++i) j += (i ? "," : "") + std::to_string(v[i]);
    return j + "]";
}

// Waits until the hottest zone is at most `temp` or `limit` seconds passed; returns the seconds waited.
double cool_down(const Options& o) {
    if (o.cool_s <= 0) return 0;
    const auto t0 = Clock::now();
    while (max_temp(read_thermal(o.root)) > o.cool_temp && seconds_since(t0) < o.cool_s)
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    return seconds_since(t0);
}

void check(ek_status st, const char* what) {
    if (st != EK_OK) die(1, std::string(what) + ": " + ek_status_name(st) + ": " + ek_last_error());
}

// One repetition: prefill n_prompt random ids (timing TTFT), then n_gen decode steps; returns (tokens/s, TTFT ms).
std::pair<double, double> run_once(ek_model* m, int n_prompt, int n_gen, std::mt19937& rng) {
    std::uniform_int_distribution<int32_t> tok(0, ek_n_vocab(m) - 1);
    check(ek_reset(m), "reset");
    std::vector<int32_t> prompt(n_prompt > 0 ? n_prompt : 1);
    for (int32_t& t : prompt) t = tok(rng);
    if (n_prompt == 0) check(ek_eval(m, prompt.data(), 1, 0), "eval");  // decode-only: one token to start from
    const auto t0 = Clock::now();
    double ttft = 0;
    if (n_prompt > 0) {
        check(ek_eval(m, prompt.data(), n_prompt, 0), "prefill");
        ttft = seconds_since(t0) * 1e3;
    }
    for (int i = 0; i < n_gen; ++i) check(ek_decode(m, tok(rng)), "decode");
    return {(n_prompt + n_gen) / seconds_since(t0), ttft};
}

// --measure: the child's own output first, then one record of what the child cost; wait4's ru_maxrss is the
// child's peak resident set, the same figure edgekit-bench reports for itself (VmHWM)
int run_measured(const Options& o, const Device& dev) {
    const std::string thermal_before = thermal_json(read_thermal(o.root));
    std::fflush(stdout);
    const auto t0 = Clock::now();
    const pid_t pid = fork();
    if (pid < 0) die(1, "cannot fork to run " + o.measure[0]);
    if (pid == 0) {
        std::vector<char*> args;
        for (const std::string& a : o.measure) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        execvp(args[0], args.data());
        std::fprintf(stderr, "edgekit-bench: error: cannot run %s: %s\n", args[0], std::strerror(errno));
        _exit(127);
    }
    int status = 0;
    struct rusage ru {};
    if (wait4(pid, &status, 0, &ru) < 0) die(1, "wait4 failed for " + o.measure[0]);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::string cmd = "[";
    for (size_t i = 0; i < o.measure.size(); ++i) cmd += (i ? "," : "") + jstr(o.measure[i]);
    std::printf("{\"schema\":\"edgekit-bench/measure\",\"command\":%s],\"exit_status\":%d,\"wall_s\":%.3f,"
                "\"peak_rss_mb\":%.2f,\"cpu\":%s,\"thermal_before\":%s,\"thermal_after\":%s}\n",
                cmd.c_str(), code, seconds_since(t0), ru.ru_maxrss / 1024.0, device_json(dev).c_str(),
                thermal_before.c_str(), thermal_json(read_thermal(o.root)).c_str());
    return code;
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
    const Device dev = read_device(o.root);
    if (!o.measure.empty()) return run_measured(o, dev);
    if (o.device_info) {
        std::printf("{\"cpu\":%s,\"thermal\":%s,\"big\":%s,\"little\":%s}\n", device_json(dev).c_str(),
                    thermal_json(read_thermal(o.root)).c_str(), int_array(cores_of_class(dev, "big")).c_str(),
                    int_array(cores_of_class(dev, "little")).c_str());
        return 0;
    }
    // before any kernel runs: a CPU without what the bundle was built for gets a message, not SIGILL
    const std::string missing = missing_features(dev, o.require);
    if (!missing.empty())
        die(3, "this CPU lacks the required ISA feature(s) " + missing + " (has: " +
               [&] { std::string s; for (auto& f : dev.features) s += (s.empty() ? "" : " ") + f; return s; }() +
               "); use a bundle built for an older target (e.g. --target rpi4)");

    const std::vector<int> pinned = o.cores == "all" ? std::vector<int>{} : cores_of_class(dev, o.cores);
    if (!pinned.empty()) {
        cpu_set_t set;
        CPU_ZERO(&set);
        for (int c : pinned) CPU_SET(c, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0) die(1, "cannot pin to the " + o.cores + " cores");
    }
    // what the kernels' pool will use: -t, else the pinned cores, else every core (the pool's own default)
    const int threads = o.threads > 0 ? o.threads : !pinned.empty() ? (int)pinned.size()
                                                 : (int)std::max(1u, std::thread::hardware_concurrency());
    Golden golden;
    std::string err;

    ek_load_params lp = ek_load_params_default();
    lp.max_ctx = o.ctx;
    lp.n_threads = threads;
    ek_model* m = nullptr;
    const auto t_load = Clock::now();
    if (ek_model_load(o.model.c_str(), &lp, &m) != EK_OK)
        die(1, std::string("cannot load the model: ") + ek_last_error());
    const double load_ms = seconds_since(t_load) * 1e3;
    char kernels[2048] = "";
    check(ek_kernels(kernels, sizeof kernels, nullptr), "kernels");

    VerifyResult vr;
    if (o.verify) {
        std::string file = o.golden;
        if (is_directory(o.golden)) {
            const std::string variant = golden_variant(kernels);
            file = o.golden + "/golden-" + variant + ".txt";
            if (!file_exists(file))
                die(3, "no golden data for this CPU's W4A8 kernel '" + variant + "' in " + o.golden +
                       " (the bundle's host could not run it); EDGEKIT_KERNELS=avx2 (or scalar) runs one it has");
        }
        if (!load_golden(file, golden, err)) die(2, "golden data: " + err);
        vr = verify(m, golden);
        if (!vr.ok) die(3, "verification failed, nothing was timed: " + vr.message + "; kernels: " + kernels);
        std::fprintf(stderr, "edgekit-bench: verified %d positions of %zu golden prompts (max |diff| %.3g, "
                     "tolerance %g + %g*|logit|)\n", vr.steps, golden.cases.size(), vr.max_err, golden.atol,
                     golden.rtol);
    }

    std::vector<std::pair<int, int>> tests;
    for (int p : o.p) if (p > 0) tests.push_back({p, 0});
    for (int n : o.n) if (n > 0) tests.push_back({0, n});
    for (auto& pg : o.pg) tests.push_back(pg);
    for (auto& t : tests)
        if (t.first + t.second + 1 > ek_n_ctx(m))
            die(2, "test pp" + std::to_string(t.first) + "+tg" + std::to_string(t.second) + " needs " +
                   std::to_string(t.first + t.second + 1) + " positions, the context has " +
                   std::to_string(ek_n_ctx(m)) + " (-c)");

    std::mt19937 rng(1234);
    std::vector<Record> records;
    const std::string thermal_before = thermal_json(read_thermal(o.root));
    for (auto [np, ng] : tests) {
        if (o.delay > 0) std::this_thread::sleep_for(std::chrono::duration<double>(o.delay));
        const double waited = cool_down(o);
        const std::string zones_at_start = thermal_json(read_thermal(o.root));
        if (o.warmup) run_once(m, np, ng, rng);
        Record r;
        r.n_prompt = np;
        r.n_gen = ng;
        r.threads = threads;
        r.phase = np && ng ? "prefill+decode" : np ? "prefill" : "decode";
        r.test = np && ng ? "pp" + std::to_string(np) + "+tg" + std::to_string(ng)
                          : np ? "pp" + std::to_string(np) : "tg" + std::to_string(ng);
        while ((int)r.tps.size() < o.max_reps) {
            const auto [tps, ttft] = run_once(m, np, ng, rng);
            r.tps.push_back(tps);
            if (np) r.ttft_ms.push_back(ttft);
            r.tps_s = summarize(r.tps);
            if ((int)r.tps.size() >= o.reps && rel_width(r.tps_s) <= o.ci_width) break;
        }
        r.ttft_s = summarize(r.ttft_ms);
        char buf[160];
        std::snprintf(buf, sizeof buf, "\"ci_width_target\":%g,\"ci_width\":%.4g,\"cooldown_wait_s\":%.1f", o.ci_width,
                      rel_width(r.tps_s), waited);
        r.extra = std::string(buf) + ",\"thermal_before\":" + zones_at_start + ",\"thermal_after\":" +
                  thermal_json(read_thermal(o.root));
        records.push_back(r);
    }
    if (o.sustained > 0) {  // throughput over time: decode windows back to back, no cool-down between them
        const int ng = o.n.empty() || o.n.front() == 0 ? 128 : o.n.front();
        Record r;
        r.phase = "sustained";
        r.test = "tg" + std::to_string(ng) + " for " + std::to_string((int)o.sustained) + " s";
        r.n_gen = ng;
        r.threads = threads;
        std::string over = "[";
        const auto t0 = Clock::now();
        while (seconds_since(t0) < o.sustained && ng + 1 <= ek_n_ctx(m)) {
            const double tps = run_once(m, 0, ng, rng).first;
            char row[96];
            std::snprintf(row, sizeof row, "%s[%.2f,%.4g,%.1f]", r.tps.empty() ? "" : ",", seconds_since(t0), tps,
                          max_temp(read_thermal(o.root)));
            over += row;
            r.tps.push_back(tps);
        }
        r.tps_s = summarize(r.tps);
        char buf[96];
        std::snprintf(buf, sizeof buf, "\"last_over_first\":%.4g",
                      r.tps.empty() ? 0.0 : r.tps.back() / r.tps.front());
        r.extra = "\"over_time\":" + over + "]," + buf;
        records.push_back(r);
    }

    // what every record shares: verification, memory, where it ran, the device
    char max_err[32] = "null";
    if (o.verify) std::snprintf(max_err, sizeof max_err, "%.3g", vr.max_err);
    char common[512];
    std::snprintf(common, sizeof common,
                  "\"verified\":%s,\"verify_max_abs_diff\":%s,\"verify_positions\":%d,\"load_ms\":%.2f,"
                  "\"peak_rss_mb\":%.2f,\"pss_mb\":%.2f,\"n_ctx\":%d,\"model\":",
                  o.verify ? "true" : "false", max_err, vr.steps, load_ms,
                  peak_rss_mb(o.root), pss_mb(o.root), ek_n_ctx(m));
    std::string kernel_json = "{";
    for (const char* p = kernels; *p;) {
        const char* eq = std::strchr(p, '=');
        const char* comma = std::strchr(p, ',');
        if (!eq) break;
        if (!comma) comma = p + std::strlen(p);
        kernel_json += (kernel_json.size() > 1 ? "," : "") + jstr(std::string(p, eq)) + ":" +
                       jstr(std::string(eq + 1, comma));
        p = *comma ? comma + 1 : comma;
    }
    kernel_json += "}";
    const std::string shared = std::string(common) + jstr(o.model) + ",\"kernel\":" + kernel_json + ",\"cores\":" +
                               jstr(o.cores) + ",\"pinned\":" + int_array(pinned) + ",\"ran_on\":" +
                               int_array(ran_on(o.root)) + ",\"cpu\":" + device_json(dev) +
                               ",\"thermal_start\":" + thermal_before;
    ek_model_free(m);

    const std::string name = o.model.substr(o.model.find_last_of('/') + 1);
    if (o.output == "md") {
        std::printf("CPU: %s; kernels: %s; load %.1f ms; peak RSS %.1f MiB; %s\n\n%s\n", dev.cpu_model.c_str(), kernels,
                    load_ms, peak_rss_mb(o.root), o.verify ? "verified" : "NOT verified (--no-verify)",
                    md_header().c_str());
        for (const Record& r : records) std::printf("%s\n", to_md(r, name).c_str());
    } else if (o.output == "csv") {
        std::printf("%s\n", csv_header().c_str());
        for (const Record& r : records) std::printf("%s\n", to_csv(r, name).c_str());
    } else {
        if (o.output == "json") std::printf("[\n");
        for (size_t i = 0; i < records.size(); ++i) {
            Record r = records[i];
            r.extra = shared + (r.extra.empty() ? "" : "," + r.extra);
            std::printf("%s%s\n", to_json(r).c_str(), o.output == "json" && i + 1 < records.size() ? "," : "");
        }
        if (o.output == "json") std::printf("]\n");
    }
    return 0;
}
