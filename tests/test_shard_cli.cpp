// `--shard optimizer|full` through the binary on the CPU, ranks as processes (--nproc, TCP
// collectives): 1, 2 and 4 ranks against one unsharded process at the same global batch (loss
// curves and final weights to 1e-5 relative), for train and for distill with the KD and
// hidden-state losses, gradient accumulation and --recompute; the bytes each rank keeps; a
// sharded run stopped and resumed at another world size and mode; and the settings check.
#include "model/model.h"
#include "tests/dist_test_util.h"
#include "tests/distill_fixture.h"
#include "tests/test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>

using mp::test::run_cli;
using mp::test::run_cli_env;

namespace {

double max_rel_weight_diff(const std::string& a, const std::string& b) {
  mp::Model ma = mp::load_model(a), mb = mp::load_model(b);
  double worst = 0.0;
  for (const auto& [n, t] : ma.weights) {
    const double scale = std::max(t.abs().max().item<double>(), 1e-12);
    worst = std::max(worst, (t - mb.w(n)).abs().max().item<double>() / scale);
  }
  return worst;
}

nlohmann::json summary_of(const std::string& out) {
  std::ifstream in(out + "/summary.json");
  return nlohmann::json::parse(in);
}

class ShardCli : public ::testing::Test {
 protected:
  void SetUp() override { mp::test::write_byte_model_and_tokens(dir); }
  std::string train(const std::string& out, int steps, const std::string& extra = "") const {
    return "train --config " + dir.file("config.json") + " --data " + dir.file("tok") + " --output " + dir.file(out) +
           " --seq-len 32 --micro-batch 1 --global-batch 8 --steps " + std::to_string(steps) +
           " --lr 3e-3 --warmup 1 --quiet " + extra;
  }
  std::string distill(const std::string& out, const std::string& extra = "") const {
    return "distill --teacher " + dir.file("t/final") + " --student " + dir.file("s/final") + " --data " +
           dir.file("tok") + " --output " + dir.file(out) +
           " --seq-len 32 --micro-batch 1 --global-batch 4 --steps 3 --lr 1e-3 --warmup 1 --quiet " + extra;
  }
  void run_ok(const std::string& args, const std::string& env = "OMP_NUM_THREADS=1") {
    auto r = run_cli_env(env, args);
    ASSERT_EQ(r.exit_code, 0) << args << "\n" << r.output;
  }
  // Same steps, losses and gradient norms within `tol` (relative; KL against the loss it is part
  // of), final weights within `tol`.
  void expect_same_run(const std::string& one, const std::string& two, double tol) {
    auto a = mp::test::read_metrics(dir.file(one), "train"), b = mp::test::read_metrics(dir.file(two), "train");
    ASSERT_EQ(a.size(), b.size());
    double worst = 0.0;
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i]["step"], b[i]["step"]);
      for (const char* k : {"loss", "kl", "ce", "grad_norm", "hidden"}) {
        if (!a[i].contains(k)) continue;
        const double x = a[i][k], y = b[i][k], loss = a[i]["loss"];
        worst = std::max(worst, std::abs(x - y) / std::max({std::abs(x), std::abs(loss), 1e-12}));
      }
    }
    const double w = max_rel_weight_diff(dir.file(one + "/final"), dir.file(two + "/final"));
    EXPECT_LE(worst, tol) << one << " vs " << two;
    EXPECT_LE(w, tol) << one << " vs " << two;
    std::printf("[ observed ] %s vs %s: loss/kl/ce/grad-norm max rel diff %.3g, final weights max rel diff %.3g\n",
                one.c_str(), two.c_str(), worst, w);
  }
  mp::test::ScratchDir dir;
};

// train: accumulation (8 sequences = micro-batch 1 x W ranks x 8 / W micro-batches).
TEST_F(ShardCli, TrainAtOneTwoAndFourRanksMatchesOneProcess) {
  MP_SKIP_WITHOUT_GLOO();
  run_ok(train("one", 4));
  for (const char* mode : {"optimizer", "full"})
    for (int n : {1, 2, 4}) {
      const std::string out = std::string(mode) + std::to_string(n);
      run_ok(train(out, 4, std::string("--shard ") + mode + (n > 1 ? " --nproc " + std::to_string(n) : "")));
      expect_same_run("one", out, 1e-5);
      EXPECT_EQ(summary_of(dir.file(out))["shard"], mode);  // one rank runs the sharded path too
    }
  // --recompute under optimizer sharding takes the model's own recomputation path.
  run_ok(train("opt_rc", 4, "--shard optimizer --recompute --nproc 2"));
  expect_same_run("one", "opt_rc", 1e-5);
}

// distill: KL + CE, the hidden-state loss and the fused loss, the teacher sharded with the student.
TEST_F(ShardCli, DistillWithHiddenLossMatchesOneProcess) {
  MP_SKIP_WITHOUT_GLOO();
  run_ok(train("t", 3));
  run_ok(train("s", 2, "--seed 9"));
  const std::string losses = "--loss kl+ce --hidden-loss cosine --hidden-weight 0.5 --logit-slice 16";
  run_ok(distill("d1", losses));
  run_ok(distill("d_opt", losses + " --shard optimizer --nproc 2"));
  expect_same_run("d1", "d_opt", 1e-5);
  run_ok(distill("d_full", losses + " --shard full --nproc 4"));
  expect_same_run("d1", "d_full", 1e-5);
  run_ok(distill("d1_rc", "--recompute"));
  run_ok(distill("d_full_rc", "--recompute --shard full --nproc 2"));
  expect_same_run("d1_rc", "d_full_rc", 1e-5);
}

// Weights, gradients and optimizer state kept per rank: full sharding at 4 ranks keeps at most
// 0.3 x what an unsharded rank keeps (fp32: 16 bytes a parameter against 16 / 4 plus padding).
TEST_F(ShardCli, FullShardingAtFourRanksKeepsUnderAThirdOfTheBytes) {
  MP_SKIP_WITHOUT_GLOO();
  run_ok(train("none4", 1, "--nproc 4"));
  run_ok(train("full4", 1, "--shard full --nproc 4"));
  run_ok(train("opt4", 1, "--shard optimizer --nproc 4"));
  const double none = summary_of(dir.file("none4"))["state_bytes_per_rank"];
  const double full = summary_of(dir.file("full4"))["state_bytes_per_rank"];
  const double opt = summary_of(dir.file("opt4"))["state_bytes_per_rank"];
  const double params = summary_of(dir.file("none4"))["parameters"];
  std::printf("[ observed ] bytes per rank: none %.0f (%.2f B/param), optimizer %.0f (%.3fx), full %.0f (%.3fx)\n",
              none, none / params, opt, opt / none, full, full / none);
  EXPECT_EQ(none, 16.0 * params);
  EXPECT_LE(full, 0.3 * none);
  EXPECT_LE(opt, 0.55 * none);  // the whole fp32 weights + 16 / 4 bytes a parameter
}

// A run stopped at 2 ranks (full) and resumed at 4 (optimizer), and one resumed at 1 process,
// end like an unbroken run: every rank writes its own shards of the checkpoint and a resumed run
// reads the ranges it owns at its own world size (no rank ever holds the whole state).
TEST_F(ShardCli, StoppedShardedRunsResumeAtAnotherWorldSize) {
  MP_SKIP_WITHOUT_GLOO();
  run_ok(train("whole", 4, "--save-every 2"));
  run_ok(train("a", 4, "--save-every 2 --shard full --nproc 2 --stop-at 2"));
  {
    std::ifstream in(dir.file("a/checkpoint-2/manifest.json"));
    ASSERT_TRUE(in.good()) << "a sharded run writes a sharded checkpoint";
    const nlohmann::json m = nlohmann::json::parse(in);
    EXPECT_EQ(m["world_size"], 2);
    EXPECT_EQ(m["shard_mode"], "full");
    EXPECT_TRUE(std::ifstream(dir.file("a/checkpoint-2/rank-1-of-2.safetensors")).good());
  }
  run_ok(train("a", 4, "--save-every 2 --shard optimizer --nproc 4 --resume"));
  expect_same_run("whole", "a", 1e-5);
  run_ok(train("b", 4, "--save-every 2 --shard full --nproc 4 --stop-at 2"));
  run_ok(train("b", 4, "--save-every 2 --resume"));
  expect_same_run("whole", "b", 1e-5);
}

// A NaN loss stops every rank alike (the loss and the gradient norm are global), exit 2.
// A checkpoint holding NaN is refused as it loads, on every sharded rank (a NaN loss mid-run stops the
// same way; test_distill_trainer.cpp raises one in process).
TEST_F(ShardCli, NanWeightsStopEveryShardedRankWithExitTwo) {
  MP_SKIP_WITHOUT_GLOO();
  auto r = run_cli("init --config " + dir.file("config.json") + " --output " + dir.file("model") + " --dtype fp32");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  mp::Model m = mp::load_model(dir.file("model"));
  m.weights["lm_head.weight"][0][0] = NAN;
  mp::save_model(m, dir.file("nan_model"));
  for (const char* mode : {"optimizer", "full"}) {
    const std::string args = "train --model " + dir.file("nan_model") + " --data " + dir.file("tok") + " --output " +
                             dir.file(std::string("nan_") + mode) + " --seq-len 32 --global-batch 4 --steps 3 --quiet" +
                             " --nproc 2 --shard " + mode;
    r = run_cli_env("OMP_NUM_THREADS=1", args);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("tensor 'lm_head.weight' holds NaN"), std::string::npos) << r.output;
    EXPECT_FALSE(std::ifstream(dir.file(std::string("nan_") + mode + "/final/config.json")).good());
  }
}

TEST_F(ShardCli, ABadShardModeIsAUsageError) {
  auto r = run_cli(train("bad", 2, "--shard zero3"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--shard: expected none, optimizer or full, got 'zero3'"), std::string::npos) << r.output;
}

}  // namespace
