// Persistent worker threads for edgekit::parallel_for (threadpool.h).
//
// Workers sleep on a condition variable between jobs; a job is published with a generation counter, each worker
// runs the range of its index, and the caller runs range 0 and then waits for the others. Jobs are serialized
// by a mutex so two Python threads calling kernels at once simply take turns.
#include "edgekit/threadpool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace edgekit {
namespace {

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
            ++generation_;
        }
        cv_.notify_all();
        for (auto& t : workers_) t.join();
        workers_.clear();
        stop_ = false;
        // new workers wait for the *next* job: they must not pick up the generation of an earlier one
        const uint64_t now = generation_;
        for (int i = 1; i < n; ++i) workers_.emplace_back([this, i, now] { loop(i, now); });
    }

    int size() const { return (int)workers_.size() + 1; }

    void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
        if (n <= 0) return;
        std::lock_guard<std::mutex> job_lock(job_mu_);
        const int64_t by_grain = (n + std::max<int64_t>(grain, 1) - 1) / std::max<int64_t>(grain, 1);
        const int parts = (int)std::min<int64_t>(size(), by_grain);
        if (parts <= 1) {
            fn(0, n);
            return;
        }
        {
            std::lock_guard<std::mutex> lock(mu_);
            fn_ = &fn;
            n_ = n;
            parts_ = parts;
            pending_ = parts - 1;
            ++generation_;
        }
        cv_.notify_all();
        fn(0, bound(1));
        std::unique_lock<std::mutex> lock(mu_);
        done_cv_.wait(lock, [this] { return pending_ == 0; });
        fn_ = nullptr;
    }

private:
    int64_t bound(int part) const { return n_ * part / parts_; }

    void loop(int index, uint64_t seen) {
        for (;;) {
            const std::function<void(int64_t, int64_t)>* fn;
            {
                std::unique_lock<std::mutex> lock(mu_);
                cv_.wait(lock, [&] { return generation_ != seen; });
                seen = generation_;
                if (stop_) return;
                if (index >= parts_) continue;  // this job has fewer ranges than threads
                fn = fn_;
            }
            (*fn)(bound(index), bound(index + 1));
            {
                std::lock_guard<std::mutex> lock(mu_);
                if (--pending_ == 0) done_cv_.notify_one();
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
    int pending_ = 0;
    uint64_t generation_ = 0;
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
