// GPU time of a callable: the median over `reps` runs, each bracketed by CUDA events on the
// current stream, after `warmup` untimed runs. For the kernel benchmarks (bench_ssd, bench_norm).
//
// Timed the way the Triton anchor is (triton.testing.do_bench, bench/bench_ssd_triton.py): before
// each timed run, 256 MB are zeroed on the stream. That evicts the inputs from the L2 cache, and
// it keeps the GPU busy while the host prepares the call, so host-side overhead (LibTorch
// dispatch, allocations) is not counted, as it is not for Triton. Without it a 0.1 ms kernel read
// ~10 us of host time as GPU time.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <functional>
#include <vector>

namespace mp::bench {

inline float median_ms(const std::function<void()>& f, int warmup, int reps) {
  constexpr size_t kFlushBytes = 256u << 20;
  static void* flush = nullptr;
  if (!flush && cudaMalloc(&flush, kFlushBytes) != cudaSuccess) flush = nullptr;
  for (int i = 0; i < warmup; ++i) f();
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    if (flush) cudaMemsetAsync(flush, 0, kFlushBytes);
    cudaEventRecord(a);
    f();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace mp::bench
