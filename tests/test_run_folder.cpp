// A training run folder after a kill: every kind of temporary is cleaned by --resume, a run killed
// between final/ and summary.json is finished by --resume (bit-exact), and an existing folder is
// continued only under --resume, replaced only under --overwrite, and never otherwise written.
#include "common/atomic_output.h"
#include "common/error.h"
#include "distill/trainer.h"
#include "model/safetensors.h"
#include "tests/distill_fixture.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

namespace fs = std::filesystem;

namespace {

using mp::test::DistillFixture;

std::string refusal(const std::function<void()>& f) {
  try {
    f();
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.exit_code(), 2) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "accepted";
  return "";
}

at::Tensor final_weights(const std::string& output) {
  return mp::SafetensorsFile::open(output + "/final/model.safetensors")->load("backbone.embeddings.weight");
}

TEST_F(DistillFixture, ResumeRemovesEveryKindOfTemporary) {
  mp::TrainConfig c = config("train", "run");
  c.save_every = 3;
  mp::TrainHooks stop;
  stop.stop_at = 3;
  mp::run_training(c, stop);
  // What kills at each write would leave: files and folders under hidden temporary names.
  const std::vector<std::string> files = {".latest.partial-77", ".train_config.json.partial-77",
                                          ".metrics.jsonl.partial-77", ".summary.json.partial-77"};
  const std::vector<std::string> dirs = {".final.partial-77", ".final.old-77", ".checkpoint-6.partial-77"};
  for (const auto& f : files) mp::write_file_atomic(c.output + "/" + f, "partial");
  for (const auto& d : dirs) {
    fs::create_directories(c.output + "/" + d);
    mp::write_file_atomic(c.output + "/" + d + "/model.safetensors", "partial");
  }
  c.resume = true;
  mp::run_training(c);
  for (const auto& e : fs::directory_iterator(c.output))
    EXPECT_EQ(e.path().filename().string().find(".partial-"), std::string::npos) << e.path();
  for (const auto& d : dirs) EXPECT_FALSE(fs::exists(c.output + "/" + d)) << d;
  EXPECT_TRUE(fs::exists(c.output + "/summary.json"));
}

TEST_F(DistillFixture, KillBetweenFinalAndSummaryIsFinishedByResume) {
  mp::TrainConfig c = config("train", "run");
  c.save_every = 3;
  mp::run_training(c);
  const at::Tensor reference = final_weights(c.output);
  fs::remove(c.output + "/summary.json");  // as a kill after final/ was committed leaves it
  EXPECT_NE(refusal([&] { mp::run_training(c); }).find("pass --resume"), std::string::npos);
  c.resume = true;
  const mp::TrainSummary s = mp::run_training(c);
  EXPECT_TRUE(s.finished);
  EXPECT_TRUE(fs::exists(c.output + "/summary.json"));
  EXPECT_TRUE(at::equal(final_weights(c.output), reference));
  // Finished and summarised: neither a plain run nor --resume touches it again.
  c.resume = false;
  EXPECT_NE(refusal([&] { mp::run_training(c); }).find("finished run"), std::string::npos);
  c.resume = true;
  EXPECT_NE(refusal([&] { mp::run_training(c); }).find("finished run"), std::string::npos);
}

TEST_F(DistillFixture, OverwriteReplacesARunButNeverAnInput) {
  mp::TrainConfig c = config("train", "run");
  c.steps = 2;
  mp::run_training(c);
  mp::write_file_atomic(c.output + "/notes.txt", "old");
  c.overwrite = true;
  mp::run_training(c);
  EXPECT_FALSE(fs::exists(c.output + "/notes.txt"));
  EXPECT_TRUE(fs::exists(c.output + "/summary.json"));
  // A folder holding the model being trained is never replaced, --overwrite or not.
  c.output = dir.path();
  EXPECT_NE(refusal([&] { mp::run_training(c); }).find("contains the input"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir.file("student/model.safetensors")));
}

TEST_F(DistillFixture, NonRunFolderIsNeitherResumedNorWritten) {
  mp::TrainConfig c = config("train", "other");
  fs::create_directories(c.output);
  mp::write_file_atomic(c.output + "/thesis.tex", "precious");
  EXPECT_NE(refusal([&] { mp::run_training(c); }).find("holds no training run"), std::string::npos);
  c.resume = true;
  EXPECT_NE(refusal([&] { mp::run_training(c); }).find("holds no training run"), std::string::npos);
  EXPECT_EQ(std::distance(fs::directory_iterator(c.output), fs::directory_iterator()), 1);
}

}  // namespace
