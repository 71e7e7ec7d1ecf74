// CPU feature detection (dispatch.h): what the running CPU and OS support, asked once.
//
// Detection asks the CPU and the OS: on x86 cpuid says what the core implements and xgetbv says whether the OS saves
// the wider registers (AVX state, AVX-512 opmask/ZMM state); without both a feature is reported absent. On aarch64
// the kernel's HWCAP bits say the same in one go. Other targets report no features and get the scalar kernels.
#include "edgekit/dispatch.h"

#include <string>
#include <utility>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#define EK_X86 1
#include <cpuid.h>
#endif

#if defined(__aarch64__) && defined(__linux__)
#define EK_AARCH64_LINUX 1
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1 << 13)
#endif
#endif

namespace edgekit {
namespace {

// ------------------------------------------------------------------------------------------------ detection ----

struct FeatureName {
    Feature bit;
    const char* name;
};

constexpr FeatureName kFeatureNames[] = {
    {kAVX2, "avx2"},         {kFMA, "fma"},           {kF16C, "f16c"},         {kAVX512F, "avx512f"},
    {kAVX512BW, "avx512bw"}, {kAVX512VL, "avx512vl"}, {kAVX512VNNI, "avx512vnni"}, {kAVXVNNI, "avxvnni"},
    {kNEON, "neon"},         {kDOTPROD, "dotprod"},   {kI8MM, "i8mm"},
};

#if defined(EK_X86)
unsigned long long xgetbv0() {
    unsigned eax = 0, edx = 0;
    // xgetbv with ecx = 0 reads XCR0, the set of register states the OS saves on context switch
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

unsigned detect() {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const bool osxsave = c & (1u << 27);
    const bool avx = c & (1u << 28);
    const bool fma = c & (1u << 12);
    const bool f16c = c & (1u << 29);
    if (!(osxsave && avx)) return 0;

    const unsigned long long xcr0 = xgetbv0();
    const bool os_avx = (xcr0 & 0x6) == 0x6;        // XMM and YMM state
    const bool os_avx512 = (xcr0 & 0xE6) == 0xE6;   // plus opmask, ZMM_Hi256, Hi16_ZMM
    if (!os_avx) return 0;

    unsigned bits = 0;
    if (fma) bits |= kFMA;
    if (f16c) bits |= kF16C;

    unsigned max_leaf = __get_cpuid_max(0, nullptr);
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        if (b & (1u << 5)) bits |= kAVX2;
        if (os_avx512) {
            if (b & (1u << 16)) bits |= kAVX512F;
            if (b & (1u << 30)) bits |= kAVX512BW;
            if (b & (1u << 31)) bits |= kAVX512VL;
            if (c & (1u << 11)) bits |= kAVX512VNNI;
        }
        const unsigned max_sub = a;
        if (max_sub >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            if (a & (1u << 4)) bits |= kAVXVNNI;
        }
    }
    return bits;
}
#elif defined(EK_AARCH64_LINUX)
unsigned detect() {
    const unsigned long hw = getauxval(AT_HWCAP);
    const unsigned long hw2 = getauxval(AT_HWCAP2);
    unsigned bits = 0;
    if (hw & HWCAP_ASIMD) bits |= kNEON;
    if (hw & HWCAP_ASIMDDP) bits |= kDOTPROD;
    if (hw2 & HWCAP2_I8MM) bits |= kI8MM;
    return bits;
}
#else
unsigned detect() { return 0; }
#endif

}  // namespace

std::string missing_features(unsigned need) {
    std::string out;
    const unsigned have = cpu_feature_bits();
    for (const auto& f : kFeatureNames) {
        if ((need & f.bit) && !(have & f.bit)) out += (out.empty() ? "" : ", ") + std::string(f.name);
    }
    return out;
}

unsigned cpu_feature_bits() {
    static const unsigned bits = detect();
    return bits;
}

std::vector<std::pair<std::string, bool>> cpu_features() {
    std::vector<std::pair<std::string, bool>> out;
    const unsigned have = cpu_feature_bits();
    for (const auto& f : kFeatureNames) out.emplace_back(f.name, (have & f.bit) != 0);
    return out;
}

}  // namespace edgekit
