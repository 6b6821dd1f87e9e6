// The training loop's invariants: KL 0 for a student identical to its teacher, a falling loss,
// resume equal to an unbroken run bit for bit (also past a leftover partial checkpoint), a
// non-finite loss stopping cleanly, and bad inputs refused before anything is written.
#include "common/atomic_output.h"
#include "common/error.h"
#include "distill/checkpoint.h"
#include "distill/hidden_loss.h"
#include "distill/trainer.h"
#include "model/model.h"
#include "tests/distill_fixture.h"
#include "tests/expect_error.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

namespace fs = std::filesystem;

namespace {

using mp::test::DistillFixture;
using mp::test::read_metrics;

void expect_same_weights(const std::string& a, const std::string& b) {
  mp::Model ma = mp::load_model(a), mb = mp::load_model(b);
  for (const auto& [n, t] : ma.weights) EXPECT_TRUE(at::equal(t, mb.w(n))) << n;
}

using mp::test::expect_bad_input;

TEST_F(DistillFixture, StudentIdenticalToTeacherHasZeroKlAtStepZero) {
  mp::TrainConfig c = config("distill", "same");
  c.student = c.teacher;
  c.steps = 1;
  mp::TrainSummary s = mp::run_training(c);
  EXPECT_EQ(s.last_kl, 0.0);
  auto rec = read_metrics(c.output, "train");
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_EQ(rec[0]["kl"].get<double>(), 0.0);
  EXPECT_GT(rec[0]["ce"].get<double>(), 0.0);  // CE is logged alongside
}

TEST_F(DistillFixture, TrainLossFallsOnRepetitiveData) {
  mp::TrainConfig c = config("train", "train");
  c.steps = 20, c.lr = 1e-2, c.warmup = 2;
  c.eval_data = dir.file("heldout"), c.eval_every = 10, c.eval_samples = 8;
  mp::TrainSummary s = mp::run_training(c);
  auto rec = read_metrics(c.output, "train");
  ASSERT_EQ(rec.size(), 20u);
  const double first = rec[0]["loss"], last = (rec[17]["loss"].get<double>() + rec[18]["loss"].get<double>() +
                                               rec[19]["loss"].get<double>()) / 3;
  EXPECT_LT(last, 0.6 * first) << "first " << first << " last " << last;
  ASSERT_TRUE(s.eval_start && s.eval_end);
  EXPECT_LT(s.eval_end->loss(), s.eval_start->loss());
  EXPECT_EQ(read_metrics(c.output, "eval").size(), 3u);  // step 0, 10, 20
  EXPECT_TRUE(s.finished);
  EXPECT_EQ(rec[19]["tokens"].get<int64_t>(), 20 * 4 * 16);
  EXPECT_TRUE(fs::exists(c.output + "/final/model.safetensors"));
  EXPECT_TRUE(fs::exists(c.output + "/summary.json"));
}

TEST_F(DistillFixture, ResumeEqualsAnUnbrokenRunBitForBit) {
  mp::TrainConfig a = config("distill", "straight");
  a.loss = "kl+ce", a.temperature = 2.0;
  mp::run_training(a);
  mp::TrainConfig b = a;
  b.output = dir.file("broken");
  b.save_every = 2;
  mp::TrainHooks stop;
  stop.stop_at = 3;
  mp::TrainSummary half = mp::run_training(b, stop);
  EXPECT_FALSE(half.finished);
  EXPECT_EQ(mp::read_file(b.output + "/latest"), "checkpoint-3\n");
  EXPECT_FALSE(fs::exists(b.output + "/final"));
  b.resume = true;
  mp::TrainSummary rest = mp::run_training(b);
  EXPECT_EQ(rest.start_step, 3);
  EXPECT_TRUE(rest.finished);
  expect_same_weights(a.output + "/final", b.output + "/final");
  auto ra = read_metrics(a.output, "train"), rb = read_metrics(b.output, "train");
  ASSERT_EQ(rb.size(), 6u);
  for (size_t i = 0; i < ra.size(); ++i) EXPECT_EQ(ra[i]["loss"], rb[i]["loss"]) << i;
}

// Recomputing activations in the backward changes memory, not results: the same weights.
TEST_F(DistillFixture, ActivationRecomputationGivesTheSameRun) {
  mp::TrainConfig a = config("distill", "kept");
  a.loss = "kl+ce";
  mp::run_training(a);
  mp::TrainConfig b = a;
  b.output = dir.file("recomputed");
  b.recompute = true;
  mp::run_training(b);
  expect_same_weights(a.output + "/final", b.output + "/final");
  EXPECT_TRUE(fs::exists(b.output + "/loss.svg"));
  b.output = dir.file("refused"), b.hidden_loss = "cosine";
  EXPECT_THROW(mp::run_training(b), mp::Error);
}

TEST_F(DistillFixture, ResumeSkipsALeftoverPartialCheckpoint) {
  mp::TrainConfig a = config("distill", "straight");
  mp::run_training(a);
  mp::TrainConfig b = a;
  b.output = dir.file("killed");
  b.save_every = 2;
  mp::TrainHooks stop;
  stop.stop_at = 2;
  mp::run_training(b, stop);
  // A save killed half-way: a hidden temporary folder, and a folder latest does not name.
  fs::create_directories(b.output + "/.checkpoint-4.partial-99999");
  std::ofstream(b.output + "/.checkpoint-4.partial-99999/model.safetensors") << "garbage";
  fs::create_directories(b.output + "/checkpoint-4");
  std::ofstream(b.output + "/checkpoint-4/config.json") << "{";
  b.resume = true;
  mp::run_training(b);
  expect_same_weights(a.output + "/final", b.output + "/final");
  EXPECT_FALSE(fs::exists(b.output + "/.checkpoint-4.partial-99999"));
  EXPECT_TRUE(fs::exists(b.output + "/checkpoint-4/trainer_state.json"));  // rewritten whole
}

TEST_F(DistillFixture, NonFiniteGradientStopsAndKeepsTheLastGoodCheckpoint) {
  mp::TrainConfig c = config("distill", "nan");
  c.save_every = 2;
  mp::TrainHooks poison;
  poison.after_backward = [](int64_t step, const std::vector<at::Tensor>& grads) {
    if (step == 3) grads[0].fill_(NAN);
  };
  std::string msg = expect_bad_input([&] { mp::run_training(c, poison); }, {"step 4"});
  EXPECT_NE(msg.find("checkpoint-2"), std::string::npos) << msg;
  EXPECT_EQ(mp::read_file(c.output + "/latest"), "checkpoint-2\n");
  EXPECT_FALSE(fs::exists(c.output + "/final"));
  EXPECT_FALSE(fs::exists(c.output + "/checkpoint-4"));
  ASSERT_EQ(read_metrics(c.output, "error").size(), 1u);
  // Resuming (without the fault) finishes from checkpoint-2.
  c.resume = true;
  EXPECT_TRUE(mp::run_training(c).finished);
  // A finished run is not run again, with or without --resume.
  expect_bad_input([&] { mp::run_training(c); }, {"finished run"});
}

TEST_F(DistillFixture, NanLossBeforeAnyCheckpointSaysSo) {
  // A checkpoint holding NaN is refused as it loads, naming the tensor.
  mp::Model bad = mp::load_model(dir.file("student"));
  bad.weights["lm_head.weight"][0][0] = NAN;
  mp::save_model(bad, dir.file("nan_student"));
  mp::TrainConfig c = config("distill", "nan_loss");
  c.student = dir.file("nan_student");
  expect_bad_input([&] { mp::run_training(c); }, {"tensor 'lm_head.weight' holds NaN"});
  // NaN arising in training (here written into the weights once they are bound) stops at step 1.
  c.student = dir.file("student");
  mp::TrainHooks poison;
  poison.on_weights = [](const std::vector<at::Tensor>& w) {
    at::NoGradGuard ng;
    for (at::Tensor t : w) t.fill_(NAN);
  };
  std::string msg = expect_bad_input([&] { mp::run_training(c, poison); }, {"step 1: the loss is nan"});
  EXPECT_NE(msg.find("no checkpoint was written yet"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(c.output + "/final"));
}

// Weights that turn non-finite in the update itself (written here after the gradient norm was
// taken) are caught before a checkpoint holds them: every checkpoint a run leaves can be resumed.
TEST_F(DistillFixture, NonFiniteWeightsAreNeverSaved) {
  mp::TrainConfig c = config("train", "nan_update");
  c.save_every = 1;
  std::vector<at::Tensor> weights;
  mp::TrainHooks poison;
  poison.on_weights = [&](const std::vector<at::Tensor>& w) { weights = w; };
  poison.after_backward = [&](int64_t step, const std::vector<at::Tensor>&) {
    at::NoGradGuard ng;
    if (step == 1) weights[0].view(-1)[3] = INFINITY;
  };
  const std::string msg = expect_bad_input([&] { mp::run_training(c, poison); }, {"step 2: tensor '"});
  EXPECT_NE(msg.find("holds NaN or infinity after the update; stopped without writing checkpoint-2; last good "
                     "checkpoint " + c.output + "/checkpoint-1"),
            std::string::npos)
      << msg;
  EXPECT_EQ(mp::read_file(c.output + "/latest"), "checkpoint-1\n");
  EXPECT_FALSE(fs::exists(c.output + "/checkpoint-2"));
  EXPECT_NO_THROW(mp::load_model(c.output + "/checkpoint-1"));
}

// A CUDA allocation failing mid-step (c10::OutOfMemoryError, raised here by a hook) is one line
// of bad input naming the step and what lowers the memory a step needs, not an internal error.
TEST_F(DistillFixture, OutOfMemoryMidStepNamesTheStepAndTheRemedies) {
  mp::TrainConfig c = config("distill", "oom");
  c.save_every = 1;
  mp::TrainHooks oom;
  oom.before_backward = [](int64_t step, int64_t, bool) {
    if (step == 2)
      throw c10::OutOfMemoryError(c10::SourceLocation{__func__, __FILE__, static_cast<uint32_t>(__LINE__)},
                                  "CUDA out of memory. Tried to allocate 2.00 GiB\nadvice on a second line");
  };
  const std::string msg = expect_bad_input([&] { mp::run_training(c, oom); }, {"step 3: out of GPU memory"});
  for (const char* remedy : {"--plan", "--shard full", "--recompute", "smaller --micro-batch",
                             "Tried to allocate 2.00 GiB", "checkpoint-2"})
    EXPECT_NE(msg.find(remedy), std::string::npos) << remedy << ": " << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  EXPECT_EQ(read_metrics(c.output, "error").size(), 1u);
}

TEST_F(DistillFixture, BadInputsAreRefusedBeforeAnythingIsWritten) {
  // Different vocabularies.
  mp::ModelConfig other = mp::test::distill_tiny_config();
  other.vocab_size = 67;
  mp::save_model(mp::make_random_model(other, 3, at::kFloat), dir.file("teacher67"));
  mp::TrainConfig c = config("distill", "out");
  c.teacher = dir.file("teacher67");
  expect_bad_input([&] { mp::run_training(c); }, {"teacher vocabulary 67 differs from the student's 61"});
  // Global batch not a multiple of the micro batch.
  c = config("distill", "out");
  c.global_batch = 5;
  expect_bad_input([&] { mp::run_training(c); }, {"global batch 5 is not a multiple of micro batch 2"});
  // Data shorter than one sequence.
  mp::test::write_repetitive_data(dir.file("short"), 10);
  c = config("distill", "out");
  c.data = dir.file("short");
  expect_bad_input([&] { mp::run_training(c); }, {"too little data"});
  EXPECT_FALSE(fs::exists(dir.file("out")));
  // An output folder that holds a run: --resume or a new folder; a resume may not change the recipe.
  c = config("distill", "out");
  c.save_every = 3;
  mp::TrainHooks stop;
  stop.stop_at = 3;
  mp::run_training(c, stop);
  expect_bad_input([&] { mp::run_training(c); }, {"pass --resume"});
  c.resume = true;
  c.lr = 5e-3;
  expect_bad_input([&] { mp::run_training(c); }, {"'lr'"});
  // latest naming a folder that is not there.
  mp::write_file_atomic(c.output + "/latest", "checkpoint-9\n");
  expect_bad_input([&] { mp::run_training(c); }, {"missing or incomplete"});
}

TEST_F(DistillFixture, HiddenCosineLossMatchesLayersAndIsZeroForIdenticalModels) {
  EXPECT_EQ(mp::match_layers(5, 5, ""), (mp::LayerPairs{{0, 0}, {1, 1}, {2, 2}, {3, 3}, {4, 4}}));
  EXPECT_EQ(mp::match_layers(2, 5, ""), (mp::LayerPairs{{0, 2}, {1, 4}}));
  EXPECT_EQ(mp::match_layers(3, 5, "0:1,2:4"), (mp::LayerPairs{{0, 1}, {2, 4}}));
  EXPECT_THROW(mp::match_layers(3, 5, "0:7"), mp::Error);
  mp::TrainConfig c = config("distill", "hidden");
  c.student = c.teacher;
  c.hidden_loss = "cosine";
  c.steps = 1;
  mp::run_training(c);
  auto rec = read_metrics(c.output, "train");
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_NEAR(rec[0]["hidden"].get<double>(), 0.0, 1e-6);
  EXPECT_EQ(rec[0]["loss"].get<double>(), rec[0]["hidden"].get<double>());
}

}  // namespace
