// A small persistent thread pool for the kernels: parallel_for over contiguous ranges of independent work items.
//
// Kernels split their output rows (tiles) into one contiguous range per thread, and every output element is
// computed by exactly the same code whatever range it falls in, so results do not depend on the thread count.
// Own pool rather than OpenMP: a mobile app embedding the C runtime need not ship an OpenMP runtime, and the
// Python module must not fight torch's libgomp for the same cores.
#ifndef EDGEKIT_THREADPOOL_H
#define EDGEKIT_THREADPOOL_H

#include <cstdint>
#include <functional>

namespace edgekit {

// Threads used by parallel_for (the caller counts as one). n <= 0 → the hardware concurrency.
void set_num_threads(int n);
int get_num_threads();

// Calls fn(begin, end) on disjoint ranges covering [0, n), one range per thread (fewer when n is small), and
// returns when all have finished. Ranges of `grain` items at least. Not reentrant: fn must not call parallel_for.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace edgekit

#endif  // EDGEKIT_THREADPOOL_H
