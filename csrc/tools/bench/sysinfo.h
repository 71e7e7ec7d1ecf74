// Device facts for edgekit-bench: CPU model and ISA features, per-core frequency and capacity, governor, thermal
// zones, the process's memory. Every reader takes a root directory ("" or "/" on a device; a fake tree in the tests)
// under which /proc and /sys are read, so the parsing is tested without the hardware.
#ifndef EDGEKIT_BENCH_SYSINFO_H
#define EDGEKIT_BENCH_SYSINFO_H

#include <string>
#include <vector>

namespace ekbench {

struct Core {
    int id = 0;
    long max_khz = -1;    // cpufreq/cpuinfo_max_freq, -1 when absent
    long capacity = -1;   // cpu_capacity (Arm big.LITTLE: 1024 for the biggest core), -1 when absent
    std::string governor; // cpufreq/scaling_governor, "" when absent
};

struct Zone {
    std::string name;     // thermal_zoneN/type
    double celsius = 0;   // thermal_zoneN/temp is in millidegrees
};

struct Device {
    std::string cpu_model;              // /proc/cpuinfo "model name" / "Hardware" / the CPU part numbers
    std::vector<std::string> features;  // ISA features of this CPU, by Linux's /proc/cpuinfo names
    std::vector<Core> cores;
};

// Reads the device facts under `root` (features: /proc/cpuinfo's first "Features"/"flags" line; when that file
// has none, the running CPU's own HWCAP / cpuid bits).
Device read_device(const std::string& root);

// Every thermal zone's temperature now, in zone order.
std::vector<Zone> read_thermal(const std::string& root);

// The hottest zone's temperature, or -1000 when there is no zone.
double max_temp(const std::vector<Zone>& zones);

// CPU ids of the biggest ("big"), smallest ("little") or all cores, by capacity (max frequency when the kernel
// reports no capacity). Empty for an unknown class.
std::vector<int> cores_of_class(const Device& d, const std::string& cls);

// The features of `required` (comma-separated) that `d` lacks, comma-separated ("" when it has them all).
std::string missing_features(const Device& d, const std::string& required);

// Small text helpers shared with golden.cpp (stdio-based): the whole file (false when it cannot be read), its
// lines, and the words of s split at whitespace (sep 0) or at every `sep` (empty items kept).
bool read_text(const std::string& path, std::string& out);
std::vector<std::string> split_lines(const std::string& text);
std::vector<std::string> words(const std::string& s, char sep = 0);

// Peak resident set (VmHWM) and proportional set size (smaps_rollup Pss) of this process, in MiB; -1 when absent.
double peak_rss_mb(const std::string& root);
double pss_mb(const std::string& root);

// The CPUs this process's threads last ran on (/proc/self/task/*/stat field 39), sorted, without repeats.
std::vector<int> ran_on(const std::string& root);

}  // namespace ekbench

#endif
