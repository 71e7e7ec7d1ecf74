// Shared by the C++ test suites linked into edgekit_test_kernels (test_f16.cpp, test_q4x16.cpp): check counters and
// a seeded splitmix64 stream, so every run draws the same cases.
#ifndef EDGEKIT_TESTS_SUITE_UTIL_H
#define EDGEKIT_TESTS_SUITE_UTIL_H

#include <cstdint>
#include <cstdio>
#include <string>

namespace edgekit_tests {

struct Counts {
    int checks = 0, failures = 0;
};

inline void expect(Counts& c, bool ok, const std::string& what) {
    ++c.checks;
    if (!ok) {
        ++c.failures;
        std::printf("FAIL %s\n", what.c_str());
    }
}

struct SplitMix {
    uint64_t state;
    uint64_t next() {
        uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    float uniform() { return (float)((next() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }  // in [-1, 1)
};

}  // namespace edgekit_tests

#endif  // EDGEKIT_TESTS_SUITE_UTIL_H
