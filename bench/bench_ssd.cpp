// Times our CUDA SSD scan and causal conv1d at Nemotron-H shapes (bf16) with CUDA events.
// For each shape: forward per kernel variant (internal chunk, p-tile), forward+backward through
// mp::ssd_scan, the backward alone per internal chunk, checks against ssd_scan_ops, and the floor: max(bytes / copy bandwidth, FLOPs / bf16 matmul rate),
// both measured here. Writes one JSON object per line to --out; bench/bench_ssd_triton.py times
// Triton at the same shapes and scripts/gpu_kernels.sh prints both side by side.
//   bench_ssd [--out FILE] [--quick] [--only MODEL:b:chunk] [--auto-only]
#include "bench/cuda_timing.h"
#include "kernels/conv_norm.h"
#include "kernels/cuda_dispatch.h"
#include "kernels/ssd_scan.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <cuda_runtime_api.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace {

using mp::bench::median_ms;

struct Shape {
  const char* name;
  int64_t H, P, N, G, b, L, chunk;
};

// An error figure as JSON: null when it is not finite (a kernel that wrote NaN or inf), which
// JSON cannot spell, with a line on stderr so that it is not missed.
std::string json_number(double v) {
  if (std::isfinite(v)) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3e", v);
    return buf;
  }
  std::fprintf(stderr, "bench_ssd: an error against the ops path is %f: the kernel's output is not finite\n", v);
  return "null";
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path = "bench_ssd.jsonl";
  bool quick = false, auto_only = false, profile_once = false;  // profile: fwd, bwd, then both with kept states (for ncu)
  std::string only;  // "MODEL:b:chunk", e.g. 56B:1:128 (profiling one shape)
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--out") && i + 1 < argc) out_path = argv[++i];
    else if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else if (!std::strcmp(argv[i], "--auto-only")) auto_only = true;
    else if (!std::strcmp(argv[i], "--profile-once")) profile_once = true;
  }
  if (!at::hasCUDA()) {
    std::fprintf(stderr, "bench_ssd: no CUDA device\n");
    return 1;
  }
  FILE* out = std::fopen(out_path.c_str(), "w");
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  const std::string card = prop.name;
  at::NoGradGuard no_grad;
  auto cuda = at::TensorOptions().device(at::kCUDA);

  // Ceilings: device copy (bytes read + written) and a bf16 8192^3 matmul, on random data.
  at::Tensor src = at::randn({1LL << 28}, cuda.dtype(at::kBFloat16)), dst = at::empty_like(src);
  const double copy_ms = median_ms([&] { dst.copy_(src); }, 3, 20);
  const double bw = 2.0 * src.numel() * 2 / (copy_ms * 1e-3);
  at::Tensor m1 = at::randn({8192, 8192}, cuda.dtype(at::kBFloat16)), m2 = at::randn({8192, 8192}, cuda.dtype(at::kBFloat16));
  const double mm_ms = median_ms([&] { at::matmul(m1, m2); }, 3, 10);
  const double rate = 2.0 * 8192.0 * 8192.0 * 8192.0 / (mm_ms * 1e-3);
  src = dst = m1 = m2 = at::Tensor();
  // Which products the SSD kernels use on this card (wgmma needs device code for sm_90a).
  const bool wgmma = mp::ssd_wgmma_built();
  std::printf("card %s: copy %.2f TB/s, bf16 matmul %.0f TFLOP/s; SSD kernels on %s\n", card.c_str(), bw / 1e12,
              rate / 1e12, wgmma ? "wgmma" : "mma.sync (device code without sm_90a)");
  std::fprintf(out,
               "{\"kind\":\"ceilings\",\"card\":\"%s\",\"copy_TBps\":%.3f,\"matmul_TFLOPs\":%.1f,\"ssd_wgmma\":%s}\n",
               card.c_str(), bw / 1e12, rate / 1e12, wgmma ? "true" : "false");

  std::vector<Shape> shapes = {{"8B", 128, 64, 128, 8, 1, 8192, 128}, {"8B", 128, 64, 128, 8, 4, 8192, 256},
                               {"56B", 256, 64, 256, 8, 1, 8192, 128}, {"56B", 256, 64, 256, 8, 1, 8192, 256},
                               {"56B", 256, 64, 256, 8, 4, 8192, 256}};
  if (quick) shapes.resize(1);
  if (!only.empty()) {
    std::vector<Shape> keep;
    for (const Shape& s : shapes)
      if (only == std::string(s.name) + ":" + std::to_string(s.b) + ":" + std::to_string(s.chunk)) keep.push_back(s);
    shapes = keep;
  }
  // (Q, PT, segments); 0 = automatic, segments 1 = the single pass. Q = PT = 0 lets the launcher
  // take the register-fragment kernel where it applies; an explicit PT selects the WMMA kernel.
  struct Variant {
    int q, pt, seg;
  };
  const std::vector<Variant> variants = {{0, 0, 0},  {0, 0, 2},  {0, 0, 4},  {64, 64, 1}, {64, 32, 1},
                                         {64, 64, 2}, {64, 64, 8}, {64, 32, 8}, {128, 32, 8}};
  for (const Shape& s : shapes) {
    const int64_t b = s.b, L = s.L, H = s.H, P = s.P, N = s.N, G = s.G;
    auto bf = cuda.dtype(at::kBFloat16);
    at::Tensor x = at::randn({b, L, H, P}, bf), dt = at::randn({b, L, H}, bf);
    at::Tensor Bm = at::randn({b, L, G, N}, bf), Cm = at::randn({b, L, G, N}, bf);
    at::Tensor A = -at::exp(at::randn({H}, cuda) * 0.5), D = at::randn({H}, cuda), bias = at::randn({H}, cuda) - 1.0;
    mp::SsdOptions opt;
    opt.chunk_size = s.chunk;
    const double bytes = 2.0 * (2 * b * L * H * P + b * L * H + 2 * b * L * G * N);
    const double flops = 4.0 * b * L * H * P * N + 2.0 * b * L * G * s.chunk * N + 2.0 * b * L * H * s.chunk * P;
    const double floor_ms = std::max(bytes / bw, flops / rate) * 1e3;
    // Forward + backward floor. Bytes: x, B, C, dt read twice and their gradients written once,
    // y written and dy read. FLOPs: the forward's, plus the backward's products: in units of
    // 2 L H P N per batch, B dS^T, X dS, dY S_in and the two state passes (5); per chunk Q, C B^T
    // again, dY X^T and M^T dY (Q x Q x P each), W B and W^T C (Q x Q x N each, per head).
    const double bytes_fb = 2.0 * (3 * b * L * H * P + 2 * b * L * H * P + 3 * b * L * H + 3 * 2 * b * L * G * N);
    const double flops_fb = flops + 10.0 * b * L * H * P * N + 2.0 * b * L * G * s.chunk * N +
                            4.0 * b * L * H * s.chunk * P + 4.0 * b * L * H * s.chunk * N;
    const double floor_fb_ms = std::max(bytes_fb / bw, flops_fb / rate) * 1e3;
    if (profile_once) {  // the default forward and backward, then both with the chunk states kept
      at::Tensor gy = at::randn({b, L, H, P}, bf), states;
      mp::ssd_scan_cuda_forward(x, dt, A, Bm, Cm, D, bias, opt, {});
      mp::ssd_scan_cuda_backward(x, dt, A, Bm, Cm, D, bias, {}, opt, gy, {}, 0);
      mp::ssd_scan_cuda_forward(x, dt, A, Bm, Cm, D, bias, opt, {}, 0, 0, 0, &states);
      mp::ssd_scan_cuda_backward(x, dt, A, Bm, Cm, D, bias, {}, opt, gy, {}, 0, states);
      cudaDeviceSynchronize();
      continue;
    }
    // Check: every variant against the LibTorch-ops path on the same inputs.
    at::Tensor ref = mp::ssd_scan_ops(x, dt, A, Bm, Cm, D, bias, opt).y_BLHP;
    double best = 1e30;
    int best_q = 0, best_pt = 0, best_seg = 0;
    for (const Variant& v : variants) {
      if (auto_only && (v.q || v.pt || v.seg)) continue;
      int q = 0, pt = 0, seg = 0;
      mp::ssd_scan_cuda_plan(x, dt, Bm, v.q, v.pt, v.seg, &q, &pt, &seg);
      at::Tensor y;
      try {
        y = mp::ssd_scan_cuda_forward(x, dt, A, Bm, Cm, D, bias, opt, {}, v.q, v.pt, v.seg).y_BLHP;
      } catch (const std::exception& e) {
        continue;  // variant does not fit this shape
      }
      const double err = ((y.to(at::kFloat) - ref.to(at::kFloat)).norm() / ref.to(at::kFloat).norm()).item<double>();
      const double ms =
          median_ms([&] { mp::ssd_scan_cuda_forward(x, dt, A, Bm, Cm, D, bias, opt, {}, v.q, v.pt, v.seg); }, 3, 20);
      std::printf("%-4s b=%ld chunk=%ld variant Q=%d PT=%d S=%d%s: fwd %.3f ms (floor %.3f, %.0f%%) rel err vs ops %.2e\n",
                  s.name, (long)b, (long)s.chunk, q, pt, seg, v.seg == 0 ? " (auto)" : "", ms, floor_ms,
                  100.0 * floor_ms / ms, err);
      std::fprintf(out,
                   "{\"kind\":\"ssd_fwd\",\"card\":\"%s\",\"model\":\"%s\",\"b\":%ld,\"L\":%ld,\"chunk\":%ld,\"Q\":%d,"
                   "\"PT\":%d,\"S\":%d,\"auto\":%d,\"ms\":%.4f,\"floor_ms\":%.4f,\"rel_err\":%s}\n",
                   card.c_str(), s.name, (long)b, (long)L, (long)s.chunk, q, pt, seg, v.q == 0 && v.pt == 0 && v.seg == 0,
                   ms, floor_ms, json_number(err).c_str());
      if (ms < best) best = ms, best_q = q, best_pt = pt, best_seg = seg;
    }
    // Backward alone (our CUDA kernels) at each internal chunk; at the first shape also checked
    // against the LibTorch-ops path's gradients on the same inputs.
    double best_bwd = 1e30;
    int best_bq = 0;
    {
      at::Tensor gy = at::randn({b, L, H, P}, bf);
      for (int q : {64, 128}) {
        std::vector<at::Tensor> g;
        try {
          g = mp::ssd_scan_cuda_backward(x, dt, A, Bm, Cm, D, bias, {}, opt, gy, {}, q);
        } catch (const std::exception& e) {
          std::printf("bwd Q=%d failed: %.200s\n", q, e.what());
          continue;
        }
        if (g.empty()) continue;
        const double ms = median_ms([&] { mp::ssd_scan_cuda_backward(x, dt, A, Bm, Cm, D, bias, {}, opt, gy, {}, q); }, 2, 10);
        double err = -1;
        if (&s == &shapes.front()) {
          at::AutoGradMode grad(true);
          std::vector<at::Tensor> lv{x, dt, A, Bm, Cm, D, bias};
          for (auto& t : lv) t = t.detach().to(at::kFloat).requires_grad_(true);
          at::Tensor y = mp::ssd_scan_ops(lv[0], lv[1], lv[2], lv[3], lv[4], lv[5], lv[6], opt).y_BLHP;
          auto r = torch::autograd::grad({y}, lv, {gy.to(at::kFloat)});
          err = 0;
          for (size_t i = 0; i < 7; ++i)
            err = std::max(err, ((g[i].to(at::kFloat) - r[i]).norm() / r[i].norm()).item<double>());
        }
        std::printf("%-4s b=%ld chunk=%ld bwd Q=%d: %.3f ms%s\n", s.name, (long)b, (long)s.chunk, q, ms,
                    err >= 0 ? (" (max grad rel err vs ops " + std::to_string(err) + ")").c_str() : "");
        std::fprintf(out,
                     "{\"kind\":\"ssd_bwd\",\"card\":\"%s\",\"model\":\"%s\",\"b\":%ld,\"L\":%ld,\"chunk\":%ld,"
                     "\"Q\":%d,\"ms\":%.4f,\"max_grad_rel_err\":%s}\n",
                     card.c_str(), s.name, (long)b, (long)L, (long)s.chunk, q, ms, json_number(err).c_str());
        if (ms < best_bwd) best_bwd = ms, best_bq = q;
      }
    }
    // Forward + backward through the autograd Function (both in CUDA): as the model runs it by
    // default (the backward recomputes the chunk states, as Triton's does), and with the
    // forward's chunk states kept for the backward (SsdOptions::keep_chunk_states), whose
    // extra activation memory is printed with it.
    auto fwd_bwd = [&](bool keep) -> double {
      at::AutoGradMode grad(true);
      std::vector<at::Tensor> leaves{x, dt, A, Bm, Cm, D, bias};
      for (auto& t : leaves) t = t.detach().requires_grad_(true);
      at::Tensor gy = at::randn({b, L, H, P}, bf);
      mp::SsdOptions o = opt;
      o.keep_chunk_states = keep;
      try {
        return median_ms(
            [&] {
              at::Tensor y = mp::ssd_scan(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], leaves[5], leaves[6], o).y_BLHP;
              torch::autograd::grad({y}, leaves, {gy});
            },
            2, 10);
      } catch (const std::exception& e) {
        std::printf("fwd+bwd failed: %.200s\n", e.what());
        return -1.0;
      }
    };
    const double fb = fwd_bwd(false), fb_keep = fwd_bwd(true);
    const double kept_gib = 2.0 * b * ((L + 63) / 64) * H * P * N / 1073741824.0;
    std::printf("%-4s b=%ld chunk=%ld best fwd %.3f ms (Q=%d PT=%d S=%d), best bwd %.3f ms (Q=%d), fwd+bwd %.2f ms, "
                "with kept chunk states %.2f ms (+%.2f GiB)\n",
                s.name, (long)b, (long)s.chunk, best, best_q, best_pt, best_seg, best_bwd, best_bq, fb, fb_keep, kept_gib);
    std::fprintf(out,
                 "{\"kind\":\"ssd_best\",\"card\":\"%s\",\"model\":\"%s\",\"b\":%ld,\"L\":%ld,\"chunk\":%ld,\"fwd_ms\":%.4f,"
                 "\"Q\":%d,\"PT\":%d,\"S\":%d,\"bwd_ms\":%.4f,\"bwd_Q\":%d,\"fwdbwd_ms\":%.3f,\"floor_ms\":%.4f,"
                 "\"fwdbwd_floor_ms\":%.4f,\"fwdbwd_kept_states_ms\":%.3f,\"kept_states_GiB\":%.3f}\n",
                 card.c_str(), s.name, (long)b, (long)L, (long)s.chunk, best, best_q, best_pt, best_seg, best_bwd, best_bq,
                 fb, floor_ms, floor_fb_ms, fb_keep, kept_gib);
    std::fflush(out);
  }

  if (profile_once) return 0;
  // Conv1d at the 8B mixer's conv width (conv_dim = H*P + 2*G*N = 10240), bf16, K = 4, SiLU.
  for (int64_t b : {1, 4}) {
    const int64_t L = 8192, C = 10240;
    at::Tensor x = at::randn({b, L, C}, cuda.dtype(at::kBFloat16));
    at::Tensor w = at::randn({C, 1, 4}, cuda.dtype(at::kBFloat16)), bias = at::randn({C}, cuda.dtype(at::kBFloat16));
    const double fwd = median_ms([&] { mp::causal_conv1d(x, w, bias, true); }, 3, 20);
    const double ops = median_ms([&] { mp::causal_conv1d_ops(x, w, bias, true); }, 3, 20);
    at::AutoGradMode grad(true);
    at::Tensor xg = x.detach().requires_grad_(true), wg = w.detach().requires_grad_(true),
               bg = bias.detach().requires_grad_(true), gy = at::randn_like(x);
    at::Tensor y = mp::causal_conv1d(xg, wg, bg, true);
    const double fb = median_ms(
        [&] { torch::autograd::grad({mp::causal_conv1d(xg, wg, bg, true)}, {xg, wg, bg}, {gy}); }, 3, 20);
    const double bytes_f = 2.0 * x.numel() * 2, bytes_b = 3.0 * x.numel() * 2;  // fwd: x, y; bwd: x, dy, dx
    std::printf("conv1d b=%ld L=%ld C=%ld: fwd %.3f ms (%.0f%% of copy bw; ATen ops %.3f ms), fwd+bwd %.3f ms\n",
                (long)b, (long)L, (long)C, fwd, 100.0 * bytes_f / bw / (fwd * 1e-3), ops, fb);
    std::fprintf(out,
                 "{\"kind\":\"conv1d\",\"card\":\"%s\",\"b\":%ld,\"L\":%ld,\"C\":%ld,\"fwd_ms\":%.4f,\"fwd_bw_frac\":%.3f,"
                 "\"ops_fwd_ms\":%.4f,\"fwdbwd_ms\":%.4f,\"fwdbwd_bw_frac\":%.3f}\n",
                 card.c_str(), (long)b, (long)L, (long)C, fwd, bytes_f / bw / (fwd * 1e-3), ops, fb,
                 (bytes_f + bytes_b) / bw / (fb * 1e-3));
  }
  std::fclose(out);
  return 0;
}
