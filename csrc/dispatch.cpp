// The per-op tables of kernel implementations and the choice among them (dispatch.h); the CPU's features come from
// cpu_features.cpp.
#include "edgekit/dispatch.h"

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <utility>

namespace edgekit {
namespace {

// ------------------------------------------------------------------------------------------------ tables -------

// What each kernel folder is compiled for (CMakeLists.txt gives every file of a folder the same flags): a kernel runs
// only on a CPU that has all of its folder's features, whichever of them its own code happens to use.
constexpr unsigned kNeedsAVX2 = kAVX2 | kFMA | kF16C;                             // kernels/avx2
constexpr unsigned kNeedsAVX512 = kNeedsAVX2 | kAVX512F | kAVX512BW | kAVX512VL;  // kernels/avx512
constexpr unsigned kNeedsAVX512VNNI = kNeedsAVX512 | kAVX512VNNI;                 // kernels/avx512vnni
constexpr unsigned kNeedsNEON = kNEON;                                            // kernels/neon
constexpr unsigned kNeedsNEONDOT = kNEON | kDOTPROD;                              // kernels/neondot
constexpr unsigned kNeedsNEONI8MM = kNeedsNEONDOT | kI8MM;                        // kernels/neoni8mm

// One implementation of an op whose kernels have type Fn.
template <typename Fn>
struct Impl {
    const char* name;  // implementation string: the folder (ISA) of its file; its prefix is the ISA family
    Fn fn;
    unsigned needs;    // Feature bits the CPU must have
};

// Implementations of `op` in ascending preference (the last supported one wins); scalar first.
template <Op op>
using Table = std::vector<Impl<OpFn<op>>>;

template <Op op>
const Table<op>& table() {
    static_assert(op != op, "every op needs a table (the specializations below)");
}

template <>
const Table<Op::quant_row_q8>& table<Op::quant_row_q8>() {
    static const Table<Op::quant_row_q8> t = {
        {"scalar", &ek_quant_row_q8__scalar, 0},
#if defined(EDGEKIT_HAVE_AVX2)
        {"avx2", &ek_quant_row_q8__avx2, kNeedsAVX2},
#endif
#if defined(EDGEKIT_HAVE_AVX512)
        {"avx512", &ek_quant_row_q8__avx512, kNeedsAVX512},
#endif
#if defined(EDGEKIT_HAVE_NEON)
        {"neon", &ek_quant_row_q8__neon, kNeedsNEON},
#endif
    };
    return t;
}

template <>
const Table<Op::gemm_q4x4_q8>& table<Op::gemm_q4x4_q8>() {
    static const Table<Op::gemm_q4x4_q8> t = {
        {"scalar", &ek_gemm_q4x4_q8__scalar, 0},
#if defined(EDGEKIT_HAVE_AVX2)
        {"avx2", &ek_gemm_q4x4_q8__avx2, kNeedsAVX2},
#endif
#if defined(EDGEKIT_HAVE_AVX512VNNI)
        {"avx512vnni", &ek_gemm_q4x4_q8__avx512vnni, kNeedsAVX512VNNI},
#endif
#if defined(EDGEKIT_HAVE_NEON)
        {"neon", &ek_gemm_q4x4_q8__neon, kNeedsNEON},
#endif
#if defined(EDGEKIT_HAVE_NEONDOT)
        {"neondot", &ek_gemm_q4x4_q8__neondot, kNeedsNEONDOT},
#endif
#if defined(EDGEKIT_HAVE_NEONI8MM)
        {"neoni8mm", &ek_gemm_q4x4_q8__neoni8mm, kNeedsNEONI8MM},
#endif
    };
    return t;
}

template <>
const Table<Op::gemm_q4x4_q8b>& table<Op::gemm_q4x4_q8b>() {
    static const Table<Op::gemm_q4x4_q8b> t = {
        {"scalar", &ek_gemm_q4x4_q8b__scalar, 0},
#if defined(EDGEKIT_HAVE_AVX2)
        {"avx2", &ek_gemm_q4x4_q8b__avx2, kNeedsAVX2},
#endif
#if defined(EDGEKIT_HAVE_AVX512VNNI)
        {"avx512vnni", &ek_gemm_q4x4_q8b__avx512vnni, kNeedsAVX512VNNI},
#endif
#if defined(EDGEKIT_HAVE_NEON)
        {"neon", &ek_gemm_q4x4_q8b__neon, kNeedsNEON},
#endif
#if defined(EDGEKIT_HAVE_NEONDOT)
        {"neondot", &ek_gemm_q4x4_q8b__neondot, kNeedsNEONDOT},
#endif
#if defined(EDGEKIT_HAVE_NEONI8MM)
        {"neoni8mm", &ek_gemm_q4x4_q8b__neoni8mm, kNeedsNEONI8MM},
#endif
    };
    return t;
}

template <>
const Table<Op::gemm_q4x16_q8>& table<Op::gemm_q4x16_q8>() {
    static const Table<Op::gemm_q4x16_q8> t = {
        {"scalar", &ek_gemm_q4x16_q8__scalar, 0},
#if defined(EDGEKIT_HAVE_AVX512VNNI)
        {"avx512vnni", &ek_gemm_q4x16_q8__avx512vnni, kNeedsAVX512VNNI},
#endif
    };
    return t;
}

template <>
const Table<Op::gemm_q4x16_q8b>& table<Op::gemm_q4x16_q8b>() {
    static const Table<Op::gemm_q4x16_q8b> t = {
        {"scalar", &ek_gemm_q4x16_q8b__scalar, 0},
#if defined(EDGEKIT_HAVE_AVX512VNNI)
        {"avx512vnni", &ek_gemm_q4x16_q8b__avx512vnni, kNeedsAVX512VNNI},
#endif
    };
    return t;
}

template <>
const Table<Op::gemm_q4x4_q4>& table<Op::gemm_q4x4_q4>() {
    static const Table<Op::gemm_q4x4_q4> t = {
        {"scalar", &ek_gemm_q4x4_q4__scalar, 0},
#if defined(EDGEKIT_HAVE_AVX2)
        {"avx2", &ek_gemm_q4x4_q4__avx2, kNeedsAVX2},
#endif
    };
    return t;
}

template <>
const Table<Op::gemm_f16_f32>& table<Op::gemm_f16_f32>() {
    static const Table<Op::gemm_f16_f32> t = {
        {"scalar", &ek_gemm_f16_f32__scalar, 0},
#if defined(EDGEKIT_HAVE_AVX2)
        {"avx2", &ek_gemm_f16_f32__avx2, kNeedsAVX2},
#endif
#if defined(EDGEKIT_HAVE_NEON)
        {"neon", &ek_gemm_f16_f32__neon, kNeedsNEON},
#endif
    };
    return t;
}

template <>
const Table<Op::gemm_q8_0_f32>& table<Op::gemm_q8_0_f32>() {
    static const Table<Op::gemm_q8_0_f32> t = {
        {"scalar", &ek_gemm_q8_0_f32__scalar, 0},
#if defined(EDGEKIT_HAVE_AVX2)
        {"avx2", &ek_gemm_q8_0_f32__avx2, kNeedsAVX2},
#endif
#if defined(EDGEKIT_HAVE_NEON)
        {"neon", &ek_gemm_q8_0_f32__neon, kNeedsNEON},
#endif
    };
    return t;
}

template <>
const Table<Op::gemm_q8_0_q8b>& table<Op::gemm_q8_0_q8b>() {
    static const Table<Op::gemm_q8_0_q8b> t = {
        {"scalar", &ek_gemm_q8_0_q8b__scalar, 0},
#if defined(EDGEKIT_HAVE_AVX2)
        {"avx2", &ek_gemm_q8_0_q8b__avx2, kNeedsAVX2},
#endif
#if defined(EDGEKIT_HAVE_AVX512VNNI)
        {"avx512vnni", &ek_gemm_q8_0_q8b__avx512vnni, kNeedsAVX512VNNI},
#endif
#if defined(EDGEKIT_HAVE_NEON)
        {"neon", &ek_gemm_q8_0_q8b__neon, kNeedsNEON},
#endif
#if defined(EDGEKIT_HAVE_NEONDOT)
        {"neondot", &ek_gemm_q8_0_q8b__neondot, kNeedsNEONDOT},
#endif
    };
    return t;
}

template <>
const Table<Op::attn_f16_f32>& table<Op::attn_f16_f32>() {
    static const Table<Op::attn_f16_f32> t = {
        {"scalar", &ek_attn_f16_f32__scalar, 0},
#if defined(EDGEKIT_HAVE_AVX2)
        {"avx2", &ek_attn_f16_f32__avx2, kNeedsAVX2},
#endif
#if defined(EDGEKIT_HAVE_AVX512)
        {"avx512", &ek_attn_f16_f32__avx512, kNeedsAVX512},
#endif
#if defined(EDGEKIT_HAVE_NEON)
        {"neon", &ek_attn_f16_f32__neon, kNeedsNEON},
#endif
    };
    return t;
}

template <>
const Table<Op::silu_mul_f32>& table<Op::silu_mul_f32>() {
    static const Table<Op::silu_mul_f32> t = {
        {"scalar", &ek_silu_mul_f32__scalar, 0},
#if defined(EDGEKIT_HAVE_AVX2)
        {"avx2", &ek_silu_mul_f32__avx2, kNeedsAVX2},
#endif
#if defined(EDGEKIT_HAVE_AVX512)
        {"avx512", &ek_silu_mul_f32__avx512, kNeedsAVX512},
#endif
#if defined(EDGEKIT_HAVE_NEON)
        {"neon", &ek_silu_mul_f32__neon, kNeedsNEON},
#endif
    };
    return t;
}

template <>
const Table<Op::gelu_mul_f32>& table<Op::gelu_mul_f32>() {
    static const Table<Op::gelu_mul_f32> t = {
        {"scalar", &ek_gelu_mul_f32__scalar, 0},
#if defined(EDGEKIT_HAVE_AVX2)
        {"avx2", &ek_gelu_mul_f32__avx2, kNeedsAVX2},
#endif
#if defined(EDGEKIT_HAVE_AVX512)
        {"avx512", &ek_gelu_mul_f32__avx512, kNeedsAVX512},
#endif
    };
    return t;
}

template <>
const Table<Op::cvt_f32_f16>& table<Op::cvt_f32_f16>() {
    static const Table<Op::cvt_f32_f16> t = {
        {"scalar", &ek_cvt_f32_f16__scalar, 0},
#if defined(EDGEKIT_HAVE_AVX2)
        {"avx2", &ek_cvt_f32_f16__avx2, kNeedsAVX2},
#endif
#if defined(EDGEKIT_HAVE_NEON)
        {"neon", &ek_cvt_f32_f16__neon, kNeedsNEON},
#endif
    };
    return t;
}

// What selection reads of an op, whatever its function type: its name and, per implementation, name and needs (in
// table order, so an index here is an index into table<op>()).
struct ImplInfo {
    const char* name;
    unsigned needs;
};

struct OpInfo {
    const char* name;
    std::vector<ImplInfo> impls;
};

constexpr std::size_t kOps = static_cast<std::size_t>(Op::kCount);

template <Op op>
OpInfo describe() {
    OpInfo info{OpTraits<op>::name, {}};
    for (const auto& impl : table<op>()) info.impls.push_back({impl.name, impl.needs});
    return info;
}

template <std::size_t... I>
std::vector<OpInfo> describe_all(std::index_sequence<I...>) {
    return {describe<static_cast<Op>(I)>()...};
}

// Every op, in the order of the Op enum.
const std::vector<OpInfo>& tables() {
    static const std::vector<OpInfo> t = describe_all(std::make_index_sequence<kOps>());
    return t;
}

// ISA families EDGEKIT_KERNELS may name, whether or not this build has them.
constexpr const char* kFamilies[] = {"scalar", "avx2", "avx512", "neon"};

const OpInfo& find_op(const std::string& op) {
    for (const auto& o : tables())
        if (op == o.name) return o;
    std::string known;
    for (const auto& o : tables()) known += (known.empty() ? "" : ", ") + std::string(o.name);
    throw std::invalid_argument("unknown kernel op '" + op + "'; known ops: " + known);
}

bool supported(const ImplInfo& impl) { return (impl.needs & ~cpu_feature_bits()) == 0; }

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
    return out.empty() ? "none" : out;
}

std::string forced_value() {
    const char* env = std::getenv("EDGEKIT_KERNELS");
    std::string v = env ? env : "";
    v.erase(std::remove_if(v.begin(), v.end(), [](unsigned char ch) { return std::isspace(ch); }), v.end());
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char ch) { return (char)std::tolower(ch); });
    return v == "auto" ? "" : v;
}

bool in_family(const std::string& impl, const std::string& family) { return impl.rfind(family, 0) == 0; }

// Width order of the families: scalar, then avx2 / neon (neondot and neoni8mm are of the neon family), then avx512.
int family_rank(const std::string& name) {
    if (in_family(name, "avx512")) return 2;
    if (in_family(name, "avx2") || in_family(name, "neon")) return 1;
    return 0;
}

// Whether any op of this build has an implementation of `family` (a family of another architecture has none).
bool build_has_family(const std::string& family) {
    for (const auto& o : tables())
        for (const auto& impl : o.impls)
            if (in_family(impl.name, family)) return true;
    return false;
}

// Picks the implementation for the dispatched entry (its index in the op's table); throws std::runtime_error with
// the reason when it cannot.
std::size_t choose(const OpInfo& op) {
    const std::string forced = forced_value();
    const std::size_t none = op.impls.size();
    std::size_t best = none;
    if (forced.empty()) {
        for (std::size_t i = 0; i < op.impls.size(); ++i)
            if (supported(op.impls[i])) best = i;
        return best;  // scalar needs nothing, so there is always one
    }

    bool exact = false, family = false;
    for (const auto& impl : op.impls) exact |= forced == impl.name;
    for (const char* f : kFamilies) family |= in_family(forced, f);  // "avx512vnni" is of the avx512 family
    if (!exact && !family) {
        throw std::runtime_error("EDGEKIT_KERNELS='" + forced + "' is not a kernel implementation; use one of " +
                                 "scalar, avx2, avx512, neon (or unset it to choose automatically)");
    }
    std::size_t last_unsupported = none;
    for (std::size_t i = 0; i < op.impls.size(); ++i) {
        const ImplInfo& impl = op.impls[i];
        if (!(exact ? forced == impl.name : in_family(impl.name, forced))) continue;
        if (supported(impl)) {
            best = i;
        } else {
            last_unsupported = i;
        }
    }
    if (best != none) return best;
    if (last_unsupported != none) {
        const ImplInfo& impl = op.impls[last_unsupported];
        throw std::runtime_error("EDGEKIT_KERNELS=" + forced + ": implementation '" + impl.name + "' of " +
                                 op.name + " is compiled but this CPU lacks " + missing_features(impl.needs) +
                                 "; supported here: " + join(implementations(op.name)));
    }
    // A family this build has for other ops but not for this one (gemm_f16_f32 has no AVX-512 kernel): the best
    // supported implementation no wider than it, so that forcing avx512 still runs a whole model.
    if (!exact && build_has_family(forced)) {
        for (std::size_t i = 0; i < op.impls.size(); ++i)
            if (supported(op.impls[i]) && family_rank(op.impls[i].name) <= family_rank(forced)) best = i;
        if (best != none) return best;
    }
    throw std::runtime_error("EDGEKIT_KERNELS=" + forced + ": this build has no '" + forced + "' implementation of " +
                             op.name + " (compiled: " + join(compiled(op.name)) + ")");
}

std::mutex g_mu;
std::size_t g_selected[kOps] = {};  // per op: 1 + the index of the chosen implementation, 0 until first use

std::size_t selected_index(std::size_t op) {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_selected[op]) return g_selected[op] - 1;
    const std::size_t i = choose(tables()[op]);  // errors are not cached: each call reports them again
    g_selected[op] = i + 1;
    return i;
}

std::size_t named_index(std::size_t op, const std::string& name) {
    const OpInfo& info = tables()[op];
    for (std::size_t i = 0; i < info.impls.size(); ++i) {
        const ImplInfo& impl = info.impls[i];
        if (name != impl.name) continue;
        if (!supported(impl)) {
            throw std::invalid_argument("implementation '" + name + "' of " + info.name +
                                        " is compiled but this CPU lacks " + missing_features(impl.needs));
        }
        return i;
    }
    throw std::invalid_argument("no implementation '" + name + "' of " + info.name +
                                " in this build (compiled: " + join(compiled(info.name)) + ")");
}

std::size_t index_of(const OpInfo& op) { return static_cast<std::size_t>(&op - tables().data()); }

}  // namespace

// ---------------------------------------------------------------------------------------------- public API -----

std::vector<std::string> ops() {
    std::vector<std::string> out;
    for (const auto& o : tables()) out.emplace_back(o.name);
    return out;
}

std::vector<std::string> compiled(const std::string& op) {
    std::vector<std::string> out;
    for (const auto& impl : find_op(op).impls) out.emplace_back(impl.name);
    return out;
}

std::vector<std::string> implementations(const std::string& op) {
    std::vector<std::string> out;
    for (const auto& impl : find_op(op).impls)
        if (supported(impl)) out.emplace_back(impl.name);
    return out;
}

std::string selected(const std::string& op) {
    const OpInfo& info = find_op(op);
    return info.impls[selected_index(index_of(info))].name;
}

std::vector<std::string> compiled_isas() {
    std::vector<std::string> out = {"scalar"};
#if defined(EDGEKIT_HAVE_AVX2)
    out.emplace_back("avx2");
#endif
#if defined(EDGEKIT_HAVE_AVX512)
    out.emplace_back("avx512");
#endif
#if defined(EDGEKIT_HAVE_AVX512VNNI)
    out.emplace_back("avx512vnni");
#endif
#if defined(EDGEKIT_HAVE_NEON)
    out.emplace_back("neon");
#endif
#if defined(EDGEKIT_HAVE_NEONDOT)
    out.emplace_back("neondot");
#endif
#if defined(EDGEKIT_HAVE_NEONI8MM)
    out.emplace_back("neoni8mm");
#endif
    return out;
}

std::string compiler() {
#if defined(__clang__)
    return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    return std::string("gcc ") + __VERSION__;
#else
    return "unknown";
#endif
}

template <Op op>
OpFn<op> kernel(const std::string& impl) {
    constexpr std::size_t i = static_cast<std::size_t>(op);
    return table<op>()[impl.empty() ? selected_index(i) : named_index(i, impl)].fn;
}

template ek_quant_row_q8_fn kernel<Op::quant_row_q8>(const std::string&);
template ek_gemm_q4x4_q8_fn kernel<Op::gemm_q4x4_q8>(const std::string&);
template ek_gemm_q4x4_q8_fn kernel<Op::gemm_q4x4_q8b>(const std::string&);
template ek_gemm_q4x4_q8_fn kernel<Op::gemm_q4x16_q8>(const std::string&);
template ek_gemm_q4x4_q8_fn kernel<Op::gemm_q4x16_q8b>(const std::string&);
template ek_gemm_q4x4_q8_fn kernel<Op::gemm_q4x4_q4>(const std::string&);
template ek_gemm_f16_f32_fn kernel<Op::gemm_f16_f32>(const std::string&);
template ek_gemm_q8_0_f32_fn kernel<Op::gemm_q8_0_f32>(const std::string&);
template ek_gemm_q8_0_q8b_fn kernel<Op::gemm_q8_0_q8b>(const std::string&);
template ek_attn_f16_f32_fn kernel<Op::attn_f16_f32>(const std::string&);
template ek_silu_mul_f32_fn kernel<Op::silu_mul_f32>(const std::string&);
template ek_gelu_mul_f32_fn kernel<Op::gelu_mul_f32>(const std::string&);
template ek_cvt_f32_f16_fn kernel<Op::cvt_f32_f16>(const std::string&);

}  // namespace edgekit
