// The fused, token-sliced KD loss (distill/kd_loss.h) against the plain LibTorch formula at
// Nemotron-H's vocabulary: time of forward + backward and peak GPU memory, same inputs, same card.
// The plain formula materialises fp32 logits, log-softmaxes and softmaxes of both models for all
// tokens at once ([T, 131072] fp32 is 17 GB at T = 32768), which is what the fused loss avoids.
//   bench_kd_loss --tokens 32768 --hidden 4096 --vocab 131072 --card "NVIDIA H200" --out r.json
#include "distill/kd_loss.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <CLI/CLI.hpp>
#include <c10/cuda/CUDACachingAllocator.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <iostream>

namespace {

struct Measure {
  double ms = -1, peak_gib = -1, loss = 0;
  std::string error;
};

Measure measure(const std::function<at::Tensor()>& step, int reps) {
  Measure m;
  try {
    step().item<double>();  // warm-up
    c10::cuda::CUDACachingAllocator::emptyCache();
    c10::cuda::CUDACachingAllocator::resetPeakStats(0);
    std::vector<double> t;
    for (int r = 0; r < reps; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      m.loss = step().item<double>();  // .item() synchronises
      t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    m.ms = t[t.size() / 2];
    m.peak_gib = c10::cuda::CUDACachingAllocator::getDeviceStats(0).allocated_bytes[0].peak / double(1 << 30);
  } catch (const c10::Error& e) {
    std::string w = e.what_without_backtrace();
    m.error = w.substr(0, w.find('\n')).substr(0, 120);
  }
  c10::cuda::CUDACachingAllocator::emptyCache();
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fused KD loss vs the plain formula"};
  int64_t T = 32768, d = 4096, V = 131072;
  int reps = 5;
  std::string card = "unknown", out;
  app.add_option("--tokens", T)->capture_default_str();
  app.add_option("--hidden", d)->capture_default_str();
  app.add_option("--vocab", V)->capture_default_str();
  app.add_option("--reps", reps)->capture_default_str();
  app.add_option("--card", card);
  app.add_option("--out", out);
  CLI11_PARSE(app, argc, argv);

  auto o = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  at::manual_seed(0);
  at::Tensor hs = at::randn({T, d}, o).requires_grad_(true), Ws = (at::randn({V, d}, o) * 0.02).requires_grad_(true);
  at::Tensor ht = at::randn({T, d}, o), Wt = at::randn({V, d}, o) * 0.02;
  at::Tensor targets = at::randint(0, V, {T}, at::TensorOptions().device(at::kCUDA).dtype(at::kLong));
  const double inputs_gib = (2.0 * T * d + 2.0 * V * d) * 2 / double(1 << 30);

  auto fused = [&]() {
    hs.mutable_grad() = at::Tensor();
    Ws.mutable_grad() = at::Tensor();
    mp::KdLossOptions opt;
    at::Tensor loss = mp::kd_loss(hs, Ws, ht, Wt, targets, opt).loss;
    loss.backward();
    return loss.detach();
  };
  auto plain = [&]() {
    hs.mutable_grad() = at::Tensor();
    Ws.mutable_grad() = at::Tensor();
    at::Tensor zs = at::matmul(hs, Ws.t()).to(at::kFloat);
    at::Tensor zt;
    {
      at::NoGradGuard ng;
      zt = at::matmul(ht, Wt.t()).to(at::kFloat);
    }
    at::Tensor lt = at::log_softmax(zt, -1);
    at::Tensor loss = (lt.exp() * (lt - at::log_softmax(zs, -1))).sum(-1).mean();
    loss.backward();
    return loss.detach();
  };
  Measure f = measure(fused, reps), p = measure(plain, reps);
  auto row = [](const char* name, const Measure& m) {
    return m.error.empty() ? fmt::format("{:<6} {:>9.2f} ms  peak {:>7.2f} GiB  loss {:.6f}", name, m.ms, m.peak_gib, m.loss)
                           : fmt::format("{:<6} failed: {}", name, m.error);
  };
  std::cout << fmt::format("KD loss fwd+bwd, T={} d={} V={} bf16 on {} (inputs {:.2f} GiB)\n", T, d, V, card, inputs_gib)
            << row("fused", f) << "\n" << row("plain", p) << "\n";
  if (!out.empty()) {
    auto js = [](const Measure& m) {
      return nlohmann::json{{"ms", m.ms}, {"peak_gib", m.peak_gib}, {"loss", m.loss}, {"error", m.error}};
    };
    nlohmann::json j = {{"card", card}, {"tokens", T}, {"hidden", d}, {"vocab", V}, {"dtype", "bf16"},
                        {"inputs_gib", inputs_gib}, {"fused", js(f)}, {"plain", js(p)}};
    std::ofstream(out) << j.dump(2) << "\n";
  }
  return 0;
}
