// Eval throughput (tokens/s) of the LM forward pass at a real Nemotron-H shape with random
// weights, against the roofline 2 x parameters x tokens FLOPs at the matmul rate measured in the
// same run on the same card. This is the baseline the kernel work must move.
//
//   bench_eval --config configs/nemotron-h-8b/config.json --seq-len 4096 --batch 1 --out r.json
#include "model/accounting.h"
#include "model/config.h"
#include "model/lm_eval.h"
#include "model/model.h"
#include "model/weights.h"
#include "bench/bench_util.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"eval throughput benchmark"};
  std::string config = "configs/nemotron-h-8b/config.json", out, device = "cuda", card = "unknown";
  int64_t seq_len = 4096, batch = 1, iters = 5;
  app.add_option("--config", config)->capture_default_str();
  app.add_option("--seq-len", seq_len)->capture_default_str();
  app.add_option("--batch", batch)->capture_default_str();
  app.add_option("--iters", iters)->capture_default_str();
  app.add_option("--device", device)->capture_default_str();
  app.add_option("--card", card, "GPU name for the record")->capture_default_str();
  app.add_option("--out", out, "JSON result file");
  CLI11_PARSE(app, argc, argv);

  at::NoGradGuard ng;
  at::Device dev = mp::parse_device(device);
  mp::ModelConfig c = mp::load_config(config);
  mp::Model m = mp::bench::random_model_on(c, dev, at::kBFloat16);
  const double params = static_cast<double>(mp::count_params(c).total());
  at::Tensor windows = at::randint(0, c.vocab_size, {batch, seq_len + 1}, at::TensorOptions().dtype(at::kLong));

  mp::lm_stats(m, windows, batch);  // warm-up (allocator, cuBLAS handles)
  std::vector<double> times;
  for (int64_t i = 0; i < iters; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    mp::LmStats s = mp::lm_stats(m, windows, batch);
    times.push_back(seconds_since(t0));
  }
  std::sort(times.begin(), times.end());
  const double t = times[times.size() / 2];
  const double tokens = static_cast<double>(batch * seq_len);
  const double tps = tokens / t;
  const double tflops = dev.is_cuda() ? mp::bench::measure_matmul_tflops(dev, 8192, 5) : 0.0;
  const double roofline_tps = tflops * 1e12 / (2.0 * params);
  const double model_tflops = 2.0 * params * tps / 1e12;
  const double full_flops_tps = tps * mp::forward_flops_per_token(c, seq_len) / 1e12;

  nlohmann::json j = {{"config", config}, {"card", card}, {"seq_len", seq_len}, {"batch", batch},
                      {"dtype", "bf16"}, {"parameters", params}, {"median_seconds", t},
                      {"tokens_per_second", tps}, {"matmul_tflops_bf16_8192", tflops},
                      {"roofline_tokens_per_second", roofline_tps}, {"fraction_of_roofline", tps / roofline_tps},
                      {"achieved_tflops_2N", model_tflops}, {"achieved_tflops_with_attention_and_scan", full_flops_tps},
                      {"times", times}};
  std::cout << fmt::format("eval {} b={} L={} bf16 on {}: {:.3f} s, {:.0f} tokens/s; roofline {:.0f} tokens/s "
                           "(matmul {:.0f} TFLOP/s) -> {:.1f}% of roofline\n",
                           config, batch, seq_len, card, t, tps, roofline_tps, tflops, 100.0 * tps / roofline_tps);
  if (!out.empty()) std::ofstream(out) << j.dump(2) << "\n";
  return 0;
}
