// Distillation throughput on one GPU as model FLOPs utilisation: the real `distill` loop
// (run_training: bf16 student with fp32 AdamW masters, frozen bf16 teacher, fused KD loss) on a
// ~1.1B student and its ~1.45B teacher (configs/distill-bench/) at sequence 4096.
//
//   MFU = (3 x F_student + F_teacher) x tokens/s / matmul rate
//
// F = forward FLOPs per token (model/accounting.h: 2 x non-embedding parameters, plus attention
// scores/values and the SSD scan), 3x for the student's forward and backward; the matmul rate is
// a bf16 8192^3 matmul measured in the same run. tokens/s is the median over the steps after
// the first `--skip` (allocator and cuBLAS warm-up). Random weights and random token ids: speed
// does not depend on them.
//
//   bench_distill_mfu --card "NVIDIA H200" --out mfu.json [--micro-batch 2 --global-batch 16 --steps 8]
#include "bench/bench_util.h"
#include "common/atomic_output.h"
#include "data/indexed_dataset.h"
#include "distill/trainer.h"
#include "model/accounting.h"
#include "model/config.h"
#include "model/model.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <CLI/CLI.hpp>
#include <c10/cuda/CUDACachingAllocator.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  CLI::App app{"distillation MFU benchmark"};
  std::string teacher_cfg = "configs/distill-bench/teacher-1.5b/config.json";
  std::string student_cfg = "configs/distill-bench/student-1b/config.json";
  std::string card = "unknown", out, work = "/tmp/mp_mfu";
  int64_t seq_len = 4096, micro = 2, global = 16, steps = 8, skip = 2;
  app.add_option("--teacher-config", teacher_cfg)->capture_default_str();
  app.add_option("--student-config", student_cfg)->capture_default_str();
  app.add_option("--seq-len", seq_len)->capture_default_str();
  app.add_option("--micro-batch", micro)->capture_default_str();
  app.add_option("--global-batch", global)->capture_default_str();
  app.add_option("--steps", steps)->capture_default_str();
  app.add_option("--skip", skip, "Steps left out of the median (warm-up)")->capture_default_str();
  app.add_option("--work", work, "Scratch folder (models, tokens, run)")->capture_default_str();
  app.add_option("--card", card)->capture_default_str();
  app.add_option("--out", out, "JSON result");
  bool keep_ssd = false, recompute = false;
  app.add_flag("--keep-ssd-states", keep_ssd, "The student's SSD scans keep their chunk states for the backward");
  app.add_flag("--recompute", recompute, "Recompute each student layer's activations in the backward");
  CLI11_PARSE(app, argc, argv);

  try {
    const at::Device dev(at::kCUDA, 0);
    const mp::ModelConfig tc = mp::load_config(teacher_cfg), sc = mp::load_config(student_cfg);
    fs::remove_all(work);
    fs::create_directories(work);
    {
      at::NoGradGuard ng;
      mp::save_model(mp::bench::random_model_on(tc, dev, at::kBFloat16, 1), work + "/teacher");
      mp::save_model(mp::bench::random_model_on(sc, dev, at::kBFloat16, 2), work + "/student");
      // Random ids, enough windows for every step without wrapping.
      mp::IndexedDatasetWriter w(work + "/tokens", mp::TokenDType::I32);
      std::mt19937_64 rng(5);
      std::uniform_int_distribution<int64_t> id(0, sc.vocab_size - 1);
      const int64_t docs = (steps + 2) * global + 8;
      for (int64_t d = 0; d < docs; ++d) {
        std::vector<int64_t> t(static_cast<size_t>(seq_len + 1));
        for (auto& x : t) x = id(rng);
        w.add_sequence(t);
        w.end_document();
      }
      w.finish();
    }
    const double tflops = mp::bench::measure_matmul_tflops(dev);

    mp::TrainConfig c = mp::default_train_config("distill");
    c.teacher = work + "/teacher", c.student = work + "/student", c.data = work + "/tokens", c.output = work + "/run";
    c.steps = steps, c.seq_len = seq_len, c.micro_batch = micro, c.global_batch = global;
    c.warmup = 1, c.device = "cuda", c.dtype = "bf16";
    c.keep_ssd_states = keep_ssd, c.recompute = recompute;
    c10::cuda::CUDACachingAllocator::resetPeakStats(0);
    const mp::TrainSummary s = mp::run_training(c);
    const double peak_gib = c10::cuda::CUDACachingAllocator::getDeviceStats(0).allocated_bytes[0].peak / double(1 << 30);

    std::vector<double> tps;
    std::istringstream lines(mp::read_file(c.output + "/metrics.jsonl"));
    for (std::string line; std::getline(lines, line);) {
      const auto j = nlohmann::json::parse(line);
      if (j.value("type", "") == "train" && j.value("step", 0) > skip) tps.push_back(j["tokens_per_s"].get<double>());
    }
    if (tps.empty()) throw std::runtime_error("no steps after the warm-up; raise --steps");
    std::sort(tps.begin(), tps.end());
    const double rate = tps[tps.size() / 2];
    const double fs_tok = mp::forward_flops_per_token(sc, seq_len), ft_tok = mp::forward_flops_per_token(tc, seq_len);
    const double ns = static_cast<double>(mp::count_params(sc).total()), nt = static_cast<double>(mp::count_params(tc).total());
    const double model_flops = (3 * fs_tok + ft_tok) * rate;
    const double mfu = model_flops / (tflops * 1e12);
    // The common 6N + 2N convention (all parameters, no attention or scan terms), for comparison.
    const double mfu_6n = (6 * ns + 2 * nt) * rate / (tflops * 1e12);
    nlohmann::json j = {{"card", card}, {"student", student_cfg}, {"teacher", teacher_cfg},
                        {"student_params", ns}, {"teacher_params", nt}, {"seq_len", seq_len},
                        {"micro_batch", micro}, {"global_batch", global}, {"steps", steps}, {"skipped_steps", skip},
                        {"dtype", "bf16 compute, fp32 AdamW masters"}, {"tokens_per_s_median", rate},
                        {"tokens_per_s_all", tps}, {"matmul_tflops_bf16_8192", tflops},
                        {"model_tflops", model_flops / 1e12}, {"mfu", mfu}, {"mfu_6n_2n", mfu_6n},
                        {"peak_allocated_gib", peak_gib}, {"final_loss", s.last_loss},
                        {"keep_ssd_states", keep_ssd}, {"recompute", recompute}};
    std::cout << fmt::format(
        "distill {:.2f}B student + {:.2f}B teacher, seq {}, micro-batch {} x {} per step, on {}: {:.0f} tokens/s, "
        "{:.0f} model TFLOP/s of {:.0f} measured -> MFU {:.1f}% ({:.1f}% by 6N+2N); peak {:.1f} GiB{}{}\n",
        ns / 1e9, nt / 1e9, seq_len, micro, global / micro, card, rate, model_flops / 1e12, tflops, 100 * mfu,
        100 * mfu_6n, peak_gib, keep_ssd ? "; SSD chunk states kept" : "", recompute ? "; recompute" : "");
    if (!out.empty()) std::ofstream(out) << j.dump(2) << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "bench_distill_mfu: " << e.what() << "\n";
    return 1;
  }
}
