// The memory planner (distill/memory_plan.h, memory_check.h, `train|distill --plan`): its figures
// for a tiny config against an inventory of the tensors written out by hand, its monotonicity,
// the JSON a script reads, and the refusal of a job that does not fit (exit 2, with figures).
#include "common/atomic_output.h"
#include "common/error.h"
#include "distill/memory_check.h"
#include "distill/memory_plan.h"
#include "model/config.h"
#include "tests/distill_fixture.h"
#include "tests/test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace mp;

namespace {

// One layer of each type. d 64, V 256; Mamba H 4 x P 16 (I 64), G 2, N 16, conv 4; attention 4
// query heads and 2 kv heads of 16; MLP width 128.
ModelConfig tiny() {
  ModelConfig c;
  c.layers = {LayerType::Mamba, LayerType::Attention, LayerType::Mlp};
  c.vocab_size = 256, c.hidden_size = 64, c.intermediate_size = 128;
  c.num_attention_heads = 4, c.num_key_value_heads = 2, c.head_dim = 16;
  c.mamba_num_heads = 4, c.mamba_head_dim = 16, c.ssm_state_size = 16, c.n_groups = 2, c.conv_kernel = 4;
  c.chunk_size = 16;
  return c;
}

// Parameters, tensor by tensor:
//   Mamba     in_proj [2*64 + 2*2*16 + 4 = 196, 64] 12544, conv1d [128, 1, 4] 512 + bias 128,
//             A_log, D, dt_bias 4 each, gated norm 64, out_proj [64, 64] 4096, pre-norm 64   = 17420
//   attention q [64, 64] 4096, k and v [32, 64] 2048 each, o [64, 64] 4096, pre-norm 64      = 12352
//   MLP       up [128, 64] 8192, down [64, 128] 8192, pre-norm 64                            = 16448
//   embedding 16384, LM head 16384, norm_f 64
constexpr int64_t kParams = 17420 + 12352 + 16448 + 16384 + 16384 + 64;  // 79052

// Saved for the backward at batch 2 x length 32 (T = 64 tokens), bf16 unless fp32 is said:
//   Mamba     block input 64, in_proj input 64, in_proj output 196, conv output 128, scan output 64,
//             gated-norm output 64 = 580 values (1160 B) + fp32 rstd of the pre-norm (1) and of the
//             two gated-norm groups (2) = 12 B -> 1172 B a token
//   attention block input 64, input 64, q 64, k and v repeated to 4 heads 64 + 64, attention
//             output 64 = 384 values (768 B) + fp32 rstd (1) and log-sum-exp (4 heads) = 20 B -> 788
//   MLP       block input 64, input 64, relu 128, its square 128 = 384 values (768 B) + rstd 4 B -> 772
constexpr int64_t kT = 64;
constexpr int64_t kMambaSaved = 1172 * kT, kAttnSaved = 788 * kT, kMlpSaved = 772 * kT;
constexpr int64_t kResidualGrads = 2 * kT * 64 * 2;                 // two [T, d] bf16 gradients
constexpr int64_t kChunkStates = 2 * 1 * 4 * 16 * 16 * 2;           // batch x ceil(32/64) x H x P x N, bf16
constexpr int64_t kAfterBlocks = kT * (64 * 2 + 4) + kT * 64 * 2;   // norm_f input + rstd, its output

PlanSettings tiny_settings() {
  PlanSettings s;
  s.seq_len = 32, s.micro_batch = 2, s.global_batch = 2, s.world_size = 1;
  s.loss = LossKind::CE;
  return s;
}

int64_t with_workspace(int64_t top) {
  top += kFixedWorkspaceBytes;
  return top + static_cast<int64_t>(std::ceil(kAllocatorSlack * static_cast<double>(top)));
}

}  // namespace

TEST(MemoryPlan, TinyTrainMatchesTheTensorInventory) {
  const ModelConfig c = tiny();
  const RankMemory r = plan_rank_memory(c, nullptr, tiny_settings());
  EXPECT_EQ(r.weights, 2 * kParams);
  EXPECT_EQ(r.gradients, 2 * kParams);
  EXPECT_EQ(r.masters, 4 * kParams);
  EXPECT_EQ(r.moments, 8 * kParams);
  EXPECT_EQ(r.teacher, 0);
  EXPECT_EQ(r.communication, 0);
  const int64_t saved = kMambaSaved + kAttnSaved + kMlpSaved;
  // Largest backward: the Mamba layer's intermediates again plus the residual gradients.
  EXPECT_EQ(r.activations_no_recompute, saved + kAfterBlocks + kMambaSaved + kResidualGrads);
  // Recompute: three block inputs; the Mamba layer re-run (with its scan states) and its gradients.
  EXPECT_EQ(r.activations_recompute,
            3 * kT * 64 * 2 + kAfterBlocks + 2 * kMambaSaved + kChunkStates + kResidualGrads);
  EXPECT_EQ(r.activations, r.activations_no_recompute);
  // CE at 64 tokens a slice of 256 logits: d_W fp32 [256, 64], d_h [64, 64] bf16, and the slice's
  // logits fp32 + bf16, log-softmax, exp, scatter, scaled gradient fp32 + bf16 = 18 B a logit.
  const int64_t loss = 4 * 256 * 64 + kT * 64 * 2 + 18 * kT * 256;
  EXPECT_EQ(r.loss_workspace, loss);
  // Peak in the forward: weights, masters, moments (no .grad yet: one micro-batch a step),
  // everything saved, and the loss workspace.
  const int64_t state = (2 + 4 + 8) * kParams;
  EXPECT_EQ(r.peak_phase, "forward");
  EXPECT_EQ(r.peak, with_workspace(state + saved + kAfterBlocks + loss));
  EXPECT_EQ(r.workspace, r.peak - (state + saved + kAfterBlocks + loss));
}

TEST(MemoryPlan, TinyDistillAddsTheTeacherAndGradientsOfEarlierMicroBatches) {
  const ModelConfig c = tiny();
  PlanSettings s = tiny_settings();
  s.loss = LossKind::KL;
  s.global_batch = 4;  // two micro-batches a step: every .grad is alive in the second forward
  const RankMemory r = plan_rank_memory(c, &c, s);
  EXPECT_EQ(r.teacher, 2 * kParams);
  // KL at temperature 1: 8 fp32 [n, V] slices at its peak (32 B a logit).
  const int64_t loss = 4 * 256 * 64 + kT * 64 * 2 + 32 * kT * 256;
  EXPECT_EQ(r.loss_workspace, loss);
  const int64_t saved = kMambaSaved + kAttnSaved + kMlpSaved + kAfterBlocks + kT * 64 * 2;  // + teacher's h
  EXPECT_EQ(r.peak_phase, "forward");
  EXPECT_EQ(r.peak, with_workspace((2 + 2 + 4 + 8 + 2) * kParams + saved + loss));
}

TEST(MemoryPlan, ShardingDividesStateAcrossRanks) {
  const ModelConfig c = tiny();
  PlanSettings s = tiny_settings();
  s.world_size = 4;
  s.global_batch = 8;
  s.shard = ShardMode::Full;
  const RankMemory full = plan_rank_memory(c, &c, s);
  EXPECT_EQ(full.weights, (2 * kParams + 3) / 4);
  EXPECT_EQ(full.gradients, (2 * kParams + 3) / 4);
  EXPECT_EQ(full.masters, kParams);
  EXPECT_EQ(full.moments, 2 * kParams);
  EXPECT_EQ(full.teacher, (2 * kParams + 3) / 4);
  // Two gathered copies of the largest layer (the Mamba block, 17420) and its full gradient.
  EXPECT_EQ(full.communication, 3 * 17420 * 2 + kNcclBufferBytes);
  s.shard = ShardMode::Optimizer;
  const RankMemory opt = plan_rank_memory(c, &c, s);
  EXPECT_EQ(opt.weights, 2 * kParams);
  EXPECT_EQ(opt.masters, kParams);
  EXPECT_EQ(opt.teacher, 2 * kParams);
  // Buckets in flight and the largest gradient (the 256 x 64 embedding) before it is bucketed.
  EXPECT_EQ(opt.communication, 4 * s.bucket_bytes + 256 * 64 * 2 + kNcclBufferBytes);
  s.shard = ShardMode::None;
  const RankMemory none = plan_rank_memory(c, &c, s);
  EXPECT_EQ(none.masters, 4 * kParams);
  EXPECT_EQ(none.communication, 2 * kParams + kNcclBufferBytes);  // DDP's flat gradient buckets
}

TEST(MemoryPlan, MoreRanksAndRecomputeNeverNeedMore) {
  const ModelConfig st = load_config(test::source_path("configs/nemotron-h-47b/config.json"));
  const ModelConfig te = load_config(test::source_path("configs/nemotron-h-56b/config.json"));
  PlanSettings s;
  s.seq_len = 8192, s.micro_batch = 1, s.global_batch = 64;
  for (ShardMode m : {ShardMode::Optimizer, ShardMode::Full}) {
    for (bool rc : {false, true}) {
      s.shard = m, s.recompute = rc;
      int64_t last = INT64_MAX;
      for (int64_t w : {2, 3, 4, 8, 16, 32, 64}) {
        s.world_size = w;
        const RankMemory r = plan_rank_memory(st, &te, s);
        EXPECT_LE(r.peak, last) << shard_mode_name(m) << " " << w;
        EXPECT_LT(r.activations_recompute, r.activations_no_recompute);
        last = r.peak;
      }
    }
  }
  s.world_size = 8, s.shard = ShardMode::Full, s.recompute = false;
  const RankMemory off = plan_rank_memory(st, &te, s);
  s.recompute = true;
  const RankMemory on = plan_rank_memory(st, &te, s);
  EXPECT_LT(on.activations, off.activations);
  EXPECT_LT(on.peak, off.peak);
  // Smallest world size: the figure there fits and one rank fewer does not.
  const int64_t usable = reference_cards()[0].usable_bytes;
  const auto w = smallest_world_size(st, &te, s, usable);
  ASSERT_TRUE(w.has_value());
  s.world_size = *w;
  EXPECT_LE(plan_rank_memory(st, &te, s).peak, usable);
  s.world_size = *w - 1;
  EXPECT_GT(plan_rank_memory(st, &te, s).peak, usable);
  // --shard none holds everything on every rank: a 47B student never fits an 80 GB card.
  s.shard = ShardMode::None;
  EXPECT_FALSE(smallest_world_size(st, &te, s, usable).has_value());
}

TEST(MemoryPlan, MemorySizes) {
  EXPECT_EQ(parse_memory_size("80GiB", "--gpu-memory"), 80 * kGiB);
  EXPECT_EQ(parse_memory_size("141 GB", "--gpu-memory"), int64_t{141000000000});
  EXPECT_EQ(parse_memory_size("512MiB", "--gpu-memory"), 512 * kMiB);
  EXPECT_EQ(parse_memory_size("1.5", "--gpu-memory"), 3 * kGiB / 2);
  for (const char* bad : {"", "lots", "80 parsecs", "-1GiB", "0"})
    EXPECT_THROW(parse_memory_size(bad, "--gpu-memory"), Error) << bad;
  EXPECT_THROW(parse_shard_mode("zero3"), Error);
}

TEST(MemoryPlan, CheckRefusesWithFiguresAndARemedy) {
  test::ScratchDir dir;
  const ModelConfig c = tiny();
  write_file_atomic(dir.file("config.json"), config_to_json_text(c));
  TrainConfig tc = default_train_config("train");
  tc.config = dir.file("config.json");
  tc.seq_len = 32, tc.micro_batch = 2, tc.global_batch = 2;
  PlanSettings s = tiny_settings();
  const int64_t off = plan_rank_memory(c, nullptr, s).peak;
  s.recompute = true;
  const int64_t on = plan_rank_memory(c, nullptr, s).peak;
  ASSERT_LT(on, off);
  const Card between{"a test card", (on + off) / 2};
  try {
    check_job_fits(tc, 1, between);
    FAIL() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    const std::string m = e.what();
    EXPECT_NE(m.find("train does not fit on a test card"), std::string::npos) << m;
    EXPECT_NE(m.find("activations"), std::string::npos) << m;
    EXPECT_NE(m.find("it would fit with --recompute"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
  tc.recompute = true;
  EXPECT_NO_THROW(check_job_fits(tc, 1, between));
}

TEST(MemoryPlan, PlanJsonForTheRealJob) {
  auto r = test::run_cli("distill --plan --json --teacher " + test::source_path("configs/nemotron-h-56b") +
                         " --student " + test::source_path("configs/nemotron-h-47b/config.json") +
                         " --seq-len 8192 --micro-batch 1 --global-batch 64 --world-size 16 --shard full --recompute"
                         " --gpu-memory 80GiB");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output);
  ASSERT_TRUE(j["fits"].is_boolean());
  EXPECT_EQ(j["world_size"], 16);
  EXPECT_EQ(j["shard"], "full");
  EXPECT_EQ(j["recompute"], true);
  EXPECT_EQ(j["card"]["usable_bytes"], 80 * kGiB - kCudaContextBytes);
  for (const char* mode : {"none", "optimizer", "full"}) {
    const nlohmann::json& m = j["per_rank"][mode];
    for (const char* k : {"student_weights_bytes", "gradients_bytes", "masters_bytes", "moments_bytes",
                          "teacher_weights_bytes", "activations_no_recompute_bytes", "activations_recompute_bytes",
                          "loss_workspace_bytes", "communication_bytes", "workspace_bytes", "peak_bytes"})
      EXPECT_TRUE(m[k].is_number_integer()) << mode << " " << k;
    EXPECT_TRUE(m["fits"].is_boolean());
  }
  EXPECT_EQ(j["peak_bytes"], j["per_rank"]["full"]["peak_bytes"]);
  EXPECT_EQ(j["fits"], j["per_rank"]["full"]["fits"]);
  EXPECT_FALSE(j["per_rank"]["none"]["fits"].get<bool>());
  ASSERT_EQ(j["smallest_world_size"].size(), 4u);  // two cards, recompute off and on
  EXPECT_TRUE(j["smallest_world_size"][0]["none"].is_null());
  EXPECT_TRUE(j["smallest_world_size"][1]["full"].is_number_integer());
  // The table names every row.
  r = test::run_cli("distill --plan --teacher " + test::source_path("configs/nemotron-h-56b") + " --student " +
                    test::source_path("configs/nemotron-h-47b") + " --seq-len 8192 --world-size 16");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* row : {"student weights", "gradients", "fp32 masters", "AdamW moments", "teacher weights",
                          "activations, --recompute", "loss workspace", "communication buffers", "allocator slack",
                          "smallest world size", "141 GB card"})
    EXPECT_NE(r.output.find(row), std::string::npos) << row << "\n" << r.output;
}

TEST(MemoryPlan, RunThatDoesNotFitIsRefusedBeforeAnythingLoads) {
  test::ScratchDir dir;
  test::write_byte_model_and_tokens(dir);
  auto r = test::run_cli("train --config " + dir.file("config.json") + " --data " + dir.file("tok") + " --output " +
                         dir.file("run") + " --steps 1 --seq-len 32 --micro-batch 2 --global-batch 2 --quiet"
                         " --gpu-memory 1GiB");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("train does not fit on --gpu-memory 1GiB"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("per rank"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_FALSE(fs::exists(dir.file("run")));
  // The same with the check switched off runs.
  r = test::run_cli_env("MP_MEMORY_CHECK=0", "train --config " + dir.file("config.json") + " --data " +
                                                 dir.file("tok") + " --output " + dir.file("run") +
                                                 " --steps 1 --seq-len 32 --micro-batch 2 --global-batch 2 --quiet"
                                                 " --gpu-memory 1GiB");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}
