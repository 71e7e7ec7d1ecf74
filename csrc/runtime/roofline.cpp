// The machine's limits on the runtime's own thread pool (roofline.h): streaming read bandwidth and int8 dot peak.
//
// The probes are chosen like kernels: a table per probe, each entry the ISA folder of its file and the CPU features
// that folder is compiled for, the widest supported one last. The dot probe follows the GEMM kernel actually in use
// (selected("gemm_q4x4_q8")), so the peak is that of the instructions the runtime runs, not of the widest the CPU has.
#include "edgekit/roofline.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "edgekit/dispatch.h"
#include "edgekit/threadpool.h"

namespace edgekit {
namespace {

constexpr unsigned kAVX2Folder = kAVX2 | kFMA | kF16C;
constexpr unsigned kAVX512Folder = kAVX2Folder | kAVX512F | kAVX512BW | kAVX512VL;

struct ReadProbe {
    const char* name;
    ek_roof_read_fn fn;
    unsigned needs;
};

struct DotProbe {
    const char* name;
    ek_roof_dot_fn fn;
    const int64_t* macs;  // int8 multiply-adds per round
    unsigned needs;
};

const std::vector<ReadProbe>& read_table() {
    static const std::vector<ReadProbe> t = {
        {"scalar", &ek_roof_read_u64__scalar, 0},
#if defined(EDGEKIT_HAVE_AVX2)
        {"avx2", &ek_roof_read_u64__avx2, kAVX2Folder},
#endif
#if defined(EDGEKIT_HAVE_AVX512)
        {"avx512", &ek_roof_read_u64__avx512, kAVX512Folder},
#endif
#if defined(EDGEKIT_HAVE_NEON)
        {"neon", &ek_roof_read_u64__neon, kNEON},
#endif
    };
    return t;
}

const std::vector<DotProbe>& dot_table() {
    static const std::vector<DotProbe> t = {
        {"scalar", &ek_roof_dot_i8__scalar, &ek_roof_dot_macs__scalar, 0},
#if defined(EDGEKIT_HAVE_AVX2)
        {"avx2", &ek_roof_dot_i8__avx2, &ek_roof_dot_macs__avx2, kAVX2Folder},
#endif
#if defined(EDGEKIT_HAVE_AVX512VNNI)
        {"avx512vnni", &ek_roof_dot_i8__avx512vnni, &ek_roof_dot_macs__avx512vnni, kAVX512Folder | kAVX512VNNI},
#endif
#if defined(EDGEKIT_HAVE_NEONDOT)
        {"neondot", &ek_roof_dot_i8__neondot, &ek_roof_dot_macs__neondot, kNEON | kDOTPROD},
#endif
#if defined(EDGEKIT_HAVE_NEONI8MM)
        {"neoni8mm", &ek_roof_dot_i8__neoni8mm, &ek_roof_dot_macs__neoni8mm, kNEON | kDOTPROD | kI8MM},
#endif
    };
    return t;
}

bool runs_here(unsigned needs) { return (needs & ~cpu_feature_bits()) == 0; }

// The named probe, or the last supported one for an empty name.
template <typename Probe>
const Probe& pick(const std::vector<Probe>& table, const std::string& impl, const char* what) {
    const Probe* best = nullptr;
    std::string names;
    for (const auto& p : table) {
        if (!runs_here(p.needs)) continue;
        names += (names.empty() ? "" : ", ") + std::string(p.name);
        if (impl.empty() || impl == p.name) best = &p;
    }
    if (!best) {
        throw std::invalid_argument(std::string("no ") + what + " probe '" + impl + "' here; choose from " + names);
    }
    return *best;
}

template <typename Probe>
std::vector<std::string> names(const std::vector<Probe>& table) {
    std::vector<std::string> out;
    for (const auto& p : table)
        if (runs_here(p.needs)) out.push_back(p.name);
    return out;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct alignas(64) Slot {  // one per thread, a cache line each: no false sharing between the partial sums
    uint64_t v = 0;
};

}  // namespace

std::vector<std::string> roofline_read_impls() { return names(read_table()); }
std::vector<std::string> roofline_dot_impls() { return names(dot_table()); }

std::string roofline_dot_default() {
    const std::string gemm = selected("gemm_q4x4_q8");
    for (const auto& n : roofline_dot_impls())
        if (n == gemm) return n;
    return "scalar";
}

RoofMeasure measure_read_bandwidth(size_t bytes, int passes, const std::string& impl) {
    if (bytes == 0 || passes < 1) throw std::invalid_argument("read bandwidth: bytes and passes must be >= 1");
    const ReadProbe& probe = pick(read_table(), impl, "read");
    const int threads = get_num_threads();
    const size_t step = EK_ROOF_READ_ALIGN;
    const size_t part = (bytes + threads * step - 1) / (threads * step) * step;  // bytes per thread
    const size_t total = part * threads;
    std::unique_ptr<uint8_t, decltype(&std::free)> buf(static_cast<uint8_t*>(std::aligned_alloc(4096, total)),
                                                        &std::free);
    if (!buf) throw std::invalid_argument("read bandwidth: cannot allocate " + std::to_string(total) + " bytes");
    uint8_t* p = buf.get();
    // first touch by the thread that will read the part (pages land near it), with non-zero bytes
    parallel_for(threads, 1, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) std::memset(p + t * part, 0x5a + (int)t, part);
    });
    std::vector<Slot> sums(threads);
    RoofMeasure m{0, 1e300, (double)total, threads, probe.name, 0};
    for (int pass = 0; pass < passes; ++pass) {
        const auto t0 = std::chrono::steady_clock::now();
        parallel_for(threads, 1, [&](int64_t b, int64_t e) {
            for (int64_t t = b; t < e; ++t) sums[t].v = probe.fn(p + t * part, part);
        });
        m.best_s = std::min(m.best_s, seconds_since(t0));
        for (const auto& s : sums) m.checksum += s.v;
    }
    m.per_s = total / m.best_s;
    return m;
}

RoofMeasure measure_int8_peak(double seconds, int passes, const std::string& impl) {
    if (!(seconds > 0) || passes < 1) throw std::invalid_argument("int8 peak: seconds must be > 0, passes >= 1");
    const DotProbe& probe = pick(dot_table(), impl.empty() ? roofline_dot_default() : impl, "dot");
    const int threads = get_num_threads();
    // rounds for about `seconds` on one thread: double from a small count until one call takes a tenth of it
    int64_t iters = 1024;
    for (;;) {
        const auto t0 = std::chrono::steady_clock::now();
        volatile uint64_t sink = probe.fn(iters, 1);
        (void)sink;
        const double dt = seconds_since(t0);
        if (dt >= seconds / 10 || iters > (int64_t(1) << 40)) {
            iters = std::max<int64_t>(1, (int64_t)(iters * (seconds / std::max(dt, 1e-9))));
            break;
        }
        iters *= 2;
    }
    std::vector<Slot> sums(threads);
    RoofMeasure m{0, 1e300, 2.0 * (double)iters * (double)*probe.macs * threads, threads, probe.name, 0};
    for (int pass = 0; pass < passes; ++pass) {
        const auto t0 = std::chrono::steady_clock::now();
        parallel_for(threads, 1, [&](int64_t b, int64_t e) {
            for (int64_t t = b; t < e; ++t) sums[t].v = probe.fn(iters, (uint32_t)(pass * 131 + t + 1));
        });
        m.best_s = std::min(m.best_s, seconds_since(t0));
        for (const auto& s : sums) m.checksum += s.v;
    }
    m.per_s = m.work / m.best_s;
    return m;
}

}  // namespace edgekit
