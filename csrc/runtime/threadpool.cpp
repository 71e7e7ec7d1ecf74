// Persistent worker threads for edgekit::parallel_for (threadpool.h).
//
// A job is published by bumping an atomic generation counter; each worker runs the range of its index, the caller
// runs range 0 and then waits for the others. Between jobs a worker first spins on the counter for a short while
// and only then sleeps on a condition variable: a model runs its linears back to back with a little Python in
// between, and waking a sleeping thread (on a VM, a halted vCPU) costs tens to hundreds of microseconds, as much as
// a whole small GEMV. The caller likewise spins before it sleeps while waiting for the workers. Jobs are
// serialized by a mutex, so two Python threads calling kernels at once simply take turns.
#include "edgekit/threadpool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define EK_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define EK_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define EK_CPU_RELAX() std::this_thread::yield()
#endif

namespace edgekit {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kSpin = std::chrono::microseconds(300);  // spin this long for the next job / the last worker

// Spins until pred() holds or kSpin has passed; true if it holds.
template <typename Pred>
bool spin_until(Pred pred) {
    const auto until = Clock::now() + kSpin;
    for (unsigned i = 0;; ++i) {
        if (pred()) return true;
        EK_CPU_RELAX();
        if ((i & 63) == 63 && Clock::now() > until) return pred();
    }
}

class Pool {
public:
    ~Pool() { resize(1); }

    void resize(int n) {
        std::lock_guard<std::mutex> job_lock(job_mu_);
        n = std::max(1, n);
        if (n == (int)workers_.size() + 1) return;
        {
            std::lock_guard<std::mutex> lock(mu_);
            stop_ = true;
            generation_.fetch_add(1);
        }
        cv_.notify_all();
        for (auto& t : workers_) t.join();
        workers_.clear();
        stop_ = false;
        // new workers wait for the *next* job: they must not pick up the generation of an earlier one
        const uint64_t now = generation_.load();
        for (int i = 1; i < n; ++i) workers_.emplace_back([this, i, now] { loop(i, now); });
    }

    int size() const { return (int)workers_.size() + 1; }

    void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
        if (n <= 0) return;
        std::lock_guard<std::mutex> job_lock(job_mu_);
        const int64_t g = std::max<int64_t>(grain, 1);
        const int parts = (int)std::min<int64_t>(size(), (n + g - 1) / g);
        if (parts <= 1) {
            fn(0, n);
            return;
        }
        {
            std::lock_guard<std::mutex> lock(mu_);
            fn_ = &fn;
            n_ = n;
            parts_ = parts;
            pending_.store(parts - 1);
            generation_.fetch_add(1);  // publishes the job (release) to spinning and sleeping workers
        }
        cv_.notify_all();
        fn(0, bound(1));
        if (!spin_until([this] { return pending_.load() == 0; })) {
            std::unique_lock<std::mutex> lock(mu_);
            done_cv_.wait(lock, [this] { return pending_.load() == 0; });
        }
        fn_ = nullptr;
    }

private:
    int64_t bound(int part) const { return n_ * part / parts_; }

    void loop(int index, uint64_t seen) {
        for (;;) {
            if (!spin_until([&] { return generation_.load() != seen; })) {
                std::unique_lock<std::mutex> lock(mu_);
                cv_.wait(lock, [&] { return generation_.load() != seen; });
            }
            const std::function<void(int64_t, int64_t)>* fn;
            {
                std::lock_guard<std::mutex> lock(mu_);  // the job's fields were written under this lock
                seen = generation_.load();
                if (stop_) return;
                if (index >= parts_) continue;  // this job has fewer ranges than threads
                fn = fn_;
            }
            (*fn)(bound(index), bound(index + 1));
            if (pending_.fetch_sub(1) == 1) {
                std::lock_guard<std::mutex> lock(mu_);
                done_cv_.notify_one();
            }
        }
    }

    std::mutex job_mu_;  // one job at a time
    std::mutex mu_;
    std::condition_variable cv_, done_cv_;
    std::vector<std::thread> workers_;
    const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
    int64_t n_ = 0;
    int parts_ = 1;
    std::atomic<int> pending_{0};
    std::atomic<uint64_t> generation_{0};
    bool stop_ = false;
};

Pool& pool() {
    static Pool p;
    static std::once_flag once;
    std::call_once(once, [] { p.resize((int)std::max(1u, std::thread::hardware_concurrency())); });
    return p;
}

}  // namespace

void set_num_threads(int n) {
    pool().resize(n <= 0 ? (int)std::max(1u, std::thread::hardware_concurrency()) : n);
}

int get_num_threads() { return pool().size(); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    pool().run(n, grain, fn);
}

}  // namespace edgekit
