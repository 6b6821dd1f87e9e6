// Times the fused RMSNorm kernels (kernels/cuda/rms_norm.cu) against the LibTorch-ops path they
// replace, at the Nemotron-H norms' shapes (bf16, sequence 8192): the Mamba mixer's gated, grouped
// norm (W = heads x head_dim, 8 groups) and the blocks' plain RMSNorm (W = hidden size). Forward,
// forward+backward (autograd, both paths), the fraction of the card's copy bandwidth (measured
// here: bytes each path must move at least, over its time) and the memory each keeps for the
// backward. One JSON object per line to --out, a table on the terminal.
//   bench_norm [--out FILE]
#include "bench/cuda_timing.h"
#include "kernels/conv_norm.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace {

using mp::bench::median_ms;

double allocated_gib() {
  return c10::cuda::CUDACachingAllocator::getDeviceStats(0).allocated_bytes[0].current / double(1 << 30);
}

struct Shape {
  const char* name;  // which norm of which model
  int64_t width, groups;
  bool gated;
};

struct Timing {
  double fwd_ms, fb_ms, saved_gib;
};

}  // namespace

int main(int argc, char** argv) {
  std::string out_path = "bench_norm.jsonl";
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], "--out") && i + 1 < argc) out_path = argv[++i];
  if (!at::hasCUDA()) {
    std::fprintf(stderr, "bench_norm: no CUDA device\n");
    return 1;
  }
  FILE* out = std::fopen(out_path.c_str(), "w");
  if (!out) {
    std::fprintf(stderr, "bench_norm: cannot write %s\n", out_path.c_str());
    return 1;
  }
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  const std::string card = prop.name;
  auto bf = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  at::Tensor src = at::randn({1LL << 28}, bf), dst = at::empty_like(src);
  const double bw = 2.0 * src.numel() * 2 / (median_ms([&] { dst.copy_(src); }, 3, 20) * 1e-3);
  src = dst = at::Tensor();
  std::printf("card %s: copy %.2f TB/s\n", card.c_str(), bw / 1e12);
  std::fprintf(out, "{\"kind\":\"ceilings\",\"card\":\"%s\",\"copy_TBps\":%.3f}\n", card.c_str(), bw / 1e12);

  const std::vector<Shape> shapes = {{"8B mixer gated", 8192, 8, true},   {"8B block", 4096, 1, false},
                                     {"56B mixer gated", 16384, 8, true}, {"56B block", 8192, 1, false}};
  const double eps = 1e-5;
  std::printf("%-16s %2s %6s | %9s %9s %6s %5s | %9s %9s %6s %5s | %12s\n", "norm", "b", "L", "ours fwd", "ops fwd",
              "x", "bw%", "ours f+b", "ops f+b", "x", "bw%", "saved GiB");
  for (const Shape& s : shapes) {
    for (int64_t b : {1, 4}) {
      const int64_t L = 8192, W = s.width;
      at::Tensor x = at::randn({b, L, W}, bf), z = s.gated ? at::randn({b, L, W}, bf) : at::Tensor();
      at::Tensor w = (1.0 + 0.1 * at::randn({W}, bf.dtype(at::kFloat))).to(at::kBFloat16), gy = at::randn({b, L, W}, bf);
      auto run = [&](bool ours, const at::Tensor& xi, const at::Tensor& zi, const at::Tensor& wi) {
        if (ours) return s.gated ? mp::gated_rms_norm(xi, zi, wi, s.groups, eps) : mp::rms_norm(xi, wi, eps);
        return s.gated ? mp::gated_rms_norm_ops(xi, zi, wi, s.groups, eps) : mp::rms_norm_ops(xi, wi, eps);
      };
      Timing t[2];
      for (int ours = 0; ours < 2; ++ours) {
        at::NoGradGuard ng;
        t[ours].fwd_ms = median_ms([&] { run(ours, x, z, w); }, 3, 20);
      }
      for (int ours = 0; ours < 2; ++ours) {
        at::AutoGradMode grad(true);
        at::Tensor xg = x.detach().requires_grad_(true), wg = w.detach().requires_grad_(true);
        at::Tensor zg = s.gated ? z.detach().requires_grad_(true) : at::Tensor();
        std::vector<at::Tensor> leaves{xg, wg};
        if (s.gated) leaves.push_back(zg);
        t[ours].fb_ms = median_ms([&] { torch::autograd::grad({run(ours, xg, zg, wg)}, leaves, {gy}); }, 3, 20);
        cudaDeviceSynchronize();
        const double before = allocated_gib();
        at::Tensor y = run(ours, xg, zg, wg);  // the graph keeps what the backward needs
        t[ours].saved_gib = allocated_gib() - before - y.numel() * 2.0 / (1 << 30);
      }
      // Least bytes: forward reads x (and z), writes y; the backward reads x (and z) and dy, writes
      // dx (and dz); the weight and the per-row statistics are negligible.
      const double n = static_cast<double>(x.numel()) * 2, ins = s.gated ? 2 : 1;
      const double bytes_f = n * (ins + 1), bytes_fb = bytes_f + n * (2 * ins + 1);
      const Timing &o = t[1], &p = t[0];
      std::printf("%-16s %2ld %6ld | %9.3f %9.3f %5.1fx %4.0f%% | %9.3f %9.3f %5.1fx %4.0f%% | %5.2f / %5.2f\n", s.name,
                  (long)b, (long)L, o.fwd_ms, p.fwd_ms, p.fwd_ms / o.fwd_ms, 100.0 * bytes_f / bw / (o.fwd_ms * 1e-3),
                  o.fb_ms, p.fb_ms, p.fb_ms / o.fb_ms, 100.0 * bytes_fb / bw / (o.fb_ms * 1e-3), o.saved_gib,
                  p.saved_gib);
      std::fprintf(out,
                   "{\"kind\":\"rms_norm\",\"card\":\"%s\",\"norm\":\"%s\",\"b\":%ld,\"L\":%ld,\"W\":%ld,\"groups\":%ld,"
                   "\"gated\":%s,\"ours_fwd_ms\":%.4f,\"ops_fwd_ms\":%.4f,\"ours_fwdbwd_ms\":%.4f,\"ops_fwdbwd_ms\":%.4f,"
                   "\"ours_fwd_bw_frac\":%.3f,\"ours_fwdbwd_bw_frac\":%.3f,\"ours_saved_gib\":%.4f,\"ops_saved_gib\":%.4f}\n",
                   card.c_str(), s.name, (long)b, (long)L, (long)W, (long)s.groups, s.gated ? "true" : "false",
                   o.fwd_ms, p.fwd_ms, o.fb_ms, p.fb_ms, bytes_f / bw / (o.fwd_ms * 1e-3),
                   bytes_fb / bw / (o.fb_ms * 1e-3), o.saved_gib, p.saved_gib);
      std::fflush(out);
    }
  }
  std::printf("saved GiB: memory the autograd graph keeps for the backward, ours / ops\n");
  std::fclose(out);
  return 0;
}
