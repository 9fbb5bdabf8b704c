// Just enough of CUDA for g++ to build tinylm/cuda_kernels.py's SOURCE and run it on the CPU.
// A block's threads are real threads (std::thread) that meet at __syncthreads() (a barrier);
// __shared__ arrays are function statics, shared by the threads of the one block running.
#include <math.h>
#include <string.h>
#include <pthread.h>
#include <functional>
#include <thread>
#include <vector>

struct dim3 { unsigned x = 1, y = 1, z = 1; };
static thread_local dim3 threadIdx;
static dim3 blockIdx, blockDim, gridDim;
static pthread_barrier_t tl_barrier;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

static inline void __syncthreads() { pthread_barrier_wait(&tl_barrier); }
static inline float __int_as_float(int i) { float f; memcpy(&f, &i, sizeof f); return f; }

// run every block of the grid in turn; a block's threads run in parallel when it has a barrier,
// else one after the other
static int tl_launch(const unsigned* grid, const unsigned* block, bool threaded, const std::function<void()>& kernel) {
    gridDim.x = grid[0]; gridDim.y = grid[1]; gridDim.z = grid[2];
    blockDim.x = block[0]; blockDim.y = block[1]; blockDim.z = block[2];
    unsigned nt = block[0] * block[1] * block[2];
    if (threaded && pthread_barrier_init(&tl_barrier, nullptr, nt) != 0) return 1;
    for (unsigned bz = 0; bz < grid[2]; bz++)
    for (unsigned by = 0; by < grid[1]; by++)
    for (unsigned bx = 0; bx < grid[0]; bx++) {
        blockIdx.x = bx; blockIdx.y = by; blockIdx.z = bz;
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < nt; t++) {
            dim3 idx;
            idx.x = t % block[0]; idx.y = t / block[0] % block[1]; idx.z = t / (block[0] * block[1]);
            auto body = [idx, &kernel]() { threadIdx = idx; kernel(); };
            if (threaded) threads.emplace_back(body); else body();
        }
        for (auto& th : threads) th.join();
    }
    if (threaded) pthread_barrier_destroy(&tl_barrier);
    return 0;
}
