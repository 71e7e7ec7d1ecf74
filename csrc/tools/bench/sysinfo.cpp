// Device facts (sysinfo.h). Everything is read as text files under a root directory; a file that is missing or
// unreadable gives "absent" (-1, ""), never an error: devices differ in what their kernels expose.
#include "sysinfo.h"

#include <dirent.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <set>

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace ekbench {
namespace {

std::string path_of(const std::string& root, const std::string& p) {
    if (root.empty() || root == "/") return p;
    return (root.back() == '/' ? root.substr(0, root.size() - 1) : root) + p;
}

[[maybe_unused]] bool fake_root(const std::string& root) { return !(root.empty() || root == "/"); }

}  // namespace

// stdio rather than iostreams: a static binary without the iostream/locale machinery is several hundred KB smaller
bool read_text(const std::string& path, std::string& out) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return false;
    out.clear();
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
    std::fclose(f);
    return true;
}

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string::npos) nl = text.size();
        out.push_back(text.substr(pos, nl - pos));
        pos = nl + 1;
    }
    return out;
}

std::vector<std::string> words(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::string w;
    for (char c : s) {
        const bool space = sep ? c == sep : (c == ' ' || c == '\t' || c == '\r' || c == '\n');
        if (!space) {
            w += c;
        } else if (!w.empty() || sep) {
            out.push_back(w);
            w.clear();
        }
    }
    if (!w.empty()) out.push_back(w);
    return out;
}

namespace {

std::string trim(const std::string& s) {
    const size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
    return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

long read_long(const std::string& path) {
    std::string t;
    if (!read_text(path, t)) return -1;
    char* end = nullptr;
    const long v = std::strtol(t.c_str(), &end, 10);
    return end == t.c_str() ? -1 : v;
}

// The value of the first "key : value" line of /proc/cpuinfo-style text whose key is `key`.
std::string field(const std::string& text, const std::string& key) {
    for (const std::string& line : split_lines(text)) {
        const size_t colon = line.find(':');
        if (colon != std::string::npos && trim(line.substr(0, colon)) == key) return trim(line.substr(colon + 1));
    }
    return "";
}

// The features the kernels care about (x86: /proc/cpuinfo flag names), so records stay short.
const char* const kX86Features[] = {"sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
                                    "avx512_vnni", "avx_vnni", "amx_int8"};

#if defined(__aarch64__) && defined(__linux__)
// Linux's arm64 HWCAP / HWCAP2 bit numbers and their /proc/cpuinfo names (arch/arm64/include/uapi/asm/hwcap.h).
struct Bit {
    int word, bit;
    const char* name;
};
const Bit kArmBits[] = {{1, 0, "fp"},      {1, 1, "asimd"},     {1, 3, "aes"},      {1, 4, "pmull"},
                        {1, 5, "sha1"},    {1, 6, "sha2"},      {1, 7, "crc32"},    {1, 8, "atomics"},
                        {1, 9, "fphp"},    {1, 10, "asimdhp"},  {1, 12, "asimdrdm"}, {1, 20, "asimddp"},
                        {1, 22, "sve"},    {1, 23, "asimdfhm"}, {2, 1, "sve2"},     {2, 13, "i8mm"},
                        {2, 14, "bf16"}};
#endif

}  // namespace

Device read_device(const std::string& root) {
    Device d;
    std::string info;
    read_text(path_of(root, "/proc/cpuinfo"), info);
#if defined(__aarch64__)
    const bool host_cpuinfo = !fake_root(root) && !field(info, "flags").empty();  // qemu-user shows the host's
#else
    const bool host_cpuinfo = false;
#endif
    if (host_cpuinfo) {
        d.cpu_model = "unknown (emulated: /proc/cpuinfo is the host's)";
    } else {
        for (const char* key : {"model name", "Model", "Hardware"}) {
            d.cpu_model = field(info, key);
            if (!d.cpu_model.empty()) break;
        }
        if (d.cpu_model.empty() && !field(info, "CPU part").empty())
            d.cpu_model = "CPU implementer " + field(info, "CPU implementer") + " part " + field(info, "CPU part");
    }
#if defined(__aarch64__) && defined(__linux__)
    if (!fake_root(root)) {  // the running CPU's own bits, as dispatch sees them
        const unsigned long hw[3] = {0, getauxval(AT_HWCAP), getauxval(AT_HWCAP2)};
        for (const Bit& b : kArmBits)
            if (hw[b.word] & (1ul << b.bit)) d.features.push_back(b.name);
    } else {
        d.features = words(field(info, "Features"));
    }
#else
    const std::vector<std::string> flags = words(field(info, "flags"));
    if (!flags.empty()) {
        for (const char* f : kX86Features)
            if (std::find(flags.begin(), flags.end(), f) != flags.end()) d.features.push_back(f);
    } else {
        d.features = words(field(info, "Features"));  // an Arm tree read by a host build (tests)
    }
#endif
    // cores: cpu0, cpu1, ... under /sys/devices/system/cpu, in id order
    std::vector<int> ids;
    if (DIR* dir = opendir(path_of(root, "/sys/devices/system/cpu").c_str())) {
        while (dirent* e = readdir(dir)) {
            const std::string n = e->d_name;
            if (n.size() > 3 && n.compare(0, 3, "cpu") == 0 &&
                n.find_first_not_of("0123456789", 3) == std::string::npos)
                ids.push_back(std::atoi(n.c_str() + 3));
        }
        closedir(dir);
    }
    std::sort(ids.begin(), ids.end());
    for (int id : ids) {
        const std::string base = path_of(root, "/sys/devices/system/cpu/cpu" + std::to_string(id));
        Core c;
        c.id = id;
        c.max_khz = read_long(base + "/cpufreq/cpuinfo_max_freq");
        c.capacity = read_long(base + "/cpu_capacity");
        std::string g;
        if (read_text(base + "/cpufreq/scaling_governor", g)) c.governor = trim(g);
        d.cores.push_back(c);
    }
    return d;
}

std::vector<Zone> read_thermal(const std::string& root) {
    std::vector<std::pair<int, Zone>> zones;
    const std::string dir_path = path_of(root, "/sys/class/thermal");
    if (DIR* dir = opendir(dir_path.c_str())) {
        while (dirent* e = readdir(dir)) {
            const std::string n = e->d_name;
            if (n.compare(0, 12, "thermal_zone") != 0) continue;
            const long milli = read_long(dir_path + "/" + n + "/temp");
            if (milli == -1) continue;  // a zone that cannot be read (some phones restrict them)
            Zone z;
            std::string type;
            z.name = read_text(dir_path + "/" + n + "/type", type) ? trim(type) : n;
            z.celsius = milli / 1000.0;
            zones.push_back({std::atoi(n.c_str() + 12), z});
        }
        closedir(dir);
    }
    std::sort(zones.begin(), zones.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<Zone> out;
    for (auto& z : zones) out.push_back(z.second);
    return out;
}

double max_temp(const std::vector<Zone>& zones) {
    double t = -1000;
    for (const Zone& z : zones) t = std::max(t, z.celsius);
    return t;
}

std::vector<int> cores_of_class(const Device& d, const std::string& cls) {
    std::vector<int> out;
    if (cls != "big" && cls != "little" && cls != "all") return out;
    // capacity when every core reports one, else the maximum frequency (older kernels), else all cores are alike
    bool cap = !d.cores.empty(), freq = !d.cores.empty();
    for (const Core& c : d.cores) {
        cap = cap && c.capacity > 0;
        freq = freq && c.max_khz > 0;
    }
    auto size = [&](const Core& c) { return cap ? c.capacity : freq ? c.max_khz : 1; };
    long lo = -1, hi = -1;
    for (const Core& c : d.cores) {
        lo = lo < 0 ? size(c) : std::min(lo, size(c));
        hi = std::max(hi, size(c));
    }
    for (const Core& c : d.cores)
        if (cls == "all" || (cls == "big" && size(c) == hi) || (cls == "little" && size(c) == lo))
            out.push_back(c.id);
    return out;
}

std::string missing_features(const Device& d, const std::string& required) {
    std::string missing;
    for (std::string f : words(required, ',')) {
        f = trim(f);
        if (!f.empty() && std::find(d.features.begin(), d.features.end(), f) == d.features.end())
            missing += (missing.empty() ? "" : ",") + f;
    }
    return missing;
}

static double kb_field_mb(const std::string& path, const std::string& key) {
    std::string t;
    if (!read_text(path, t)) return -1;
    const std::string v = field(t, key);
    return v.empty() ? -1 : std::strtod(v.c_str(), nullptr) / 1024.0;  // "123456 kB"
}

double peak_rss_mb(const std::string& root) { return kb_field_mb(path_of(root, "/proc/self/status"), "VmHWM"); }

double pss_mb(const std::string& root) { return kb_field_mb(path_of(root, "/proc/self/smaps_rollup"), "Pss"); }

std::vector<int> ran_on(const std::string& root) {
    std::set<int> cpus;
    const std::string dir_path = path_of(root, "/proc/self/task");
    if (DIR* dir = opendir(dir_path.c_str())) {
        while (dirent* e = readdir(dir)) {
            if (e->d_name[0] == '.') continue;
            std::string stat;
            if (!read_text(dir_path + "/" + e->d_name + "/stat", stat)) continue;
            // the command name (field 2) may hold spaces: count fields after its closing parenthesis
            const size_t paren = stat.rfind(')');
            if (paren == std::string::npos) continue;
            const std::vector<std::string> f = words(stat.substr(paren + 1));
            if (f.size() > 36) cpus.insert(std::atoi(f[36].c_str()));  // field 39 overall: "processor"
        }
        closedir(dir);
    }
    return {cpus.begin(), cpus.end()};
}

}  // namespace ekbench
