// Programmatic dependent launch (compute capability 9.0 and up).
//
// A kernel launched with `launch_dependent(..., true)` may start while the kernel before it on
// the stream is still running: its blocks take the SM slots that the earlier grid's finished
// blocks free, and run until they call `pdl_wait()`, which returns once every earlier grid has
// completed and its memory is visible. The earlier kernel lets it start by calling
// `pdl_release()` (without that call, at its own end). Used where a grid's last partial wave
// would otherwise leave SMs idle: the dependent's prologue, or work that reads nothing the
// earlier grid writes, fills them.
//
// Rules a dependent kernel keeps: it calls `pdl_wait()` before it reads anything the earlier grid
// writes, and before it writes anything that grid reads or writes; and before it exits, so that
// its own completion implies the earlier grid's (the next kernel's wait relies on that). Launched
// normally, or on a card without the feature, `pdl_wait()` returns at once and the launch is an
// ordinary one.
#pragma once
#include <cuda_runtime.h>

#include <atomic>
#include <cstdlib>

namespace mp_ssd {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_release() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// A yes/no fact about the current device, asked on launch paths: looked up once per device with
// lookup(dev) and kept in `known` (the caller's static table: 0 unknown, 1 no, 2 yes). False
// when the device cannot be read.
constexpr int kMaxDevices = 64;
template <typename Lookup>
bool once_per_device(std::atomic<int> (&known)[kMaxDevices], Lookup lookup) {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= kMaxDevices) return false;
  if (!known[dev].load(std::memory_order_relaxed)) known[dev].store(lookup(dev) ? 2 : 1, std::memory_order_relaxed);
  return known[dev].load(std::memory_order_relaxed) == 2;
}

// Whether the current device runs programmatic dependent launches (compute capability >= 9),
// and they are not switched off with MP_SSD_PDL=0 (to measure what they gain).
inline bool pdl_supported() {
  static const bool off = [] {
    const char* v = std::getenv("MP_SSD_PDL");
    return v && v[0] == '0';
  }();
  if (off) return false;
  static std::atomic<int> known[kMaxDevices];  // zero-initialized (static storage)
  return once_per_device(known, [](int dev) {
    int major = 0;
    return cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major >= 9;
  });
}

// kernel<<<grid, threads, smem, stream>>>(args...), as a programmatic dependent of the stream's
// previous kernel when `dependent` (and the card supports it).
template <typename... KArgs, typename... Args>
cudaError_t launch_dependent(void (*kernel)(KArgs...), unsigned grid, unsigned threads, int smem, cudaStream_t stream,
                             bool dependent, Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(grid);
  cfg.blockDim = dim3(threads);
  cfg.dynamicSmemBytes = (size_t)smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  if (dependent && pdl_supported()) {
    cfg.attrs = attr;
    cfg.numAttrs = 1;
  }
  return cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...);
}

}  // namespace mp_ssd
