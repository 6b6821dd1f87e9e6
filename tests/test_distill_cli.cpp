// `minipuzzle train` and `distill` as a user meets them: a recipe plus overriding flags, the
// run folder's files, and one-line errors with exit code 2 that leave no output behind.
#include "common/atomic_output.h"
#include "tests/distill_fixture.h"
#include "tests/test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using mp::test::run_cli;

namespace {

class DistillCli : public ::testing::Test {
 protected:
  void SetUp() override { mp::test::write_byte_model_and_tokens(dir); }
  std::string common(const std::string& out) const {
    return " --data " + dir.file("tok") + " --output " + dir.file(out) +
           " --seq-len 32 --micro-batch 2 --global-batch 4 --quiet";
  }
  static void expect_one_line_error(const mp::test::CliResult& r, const std::string& needle) {
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
  mp::test::ScratchDir dir;
};

TEST_F(DistillCli, TrainThenDistillWithARecipeAndOverrides) {
  auto r = run_cli("train --config " + dir.file("config.json") + common("teacher") + " --steps 3 --save-every 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir.file("teacher/final/model.safetensors")));
  EXPECT_TRUE(fs::exists(dir.file("teacher/checkpoint-2/optimizer.safetensors")));
  EXPECT_EQ(mp::test::read_metrics(dir.file("teacher"), "train").size(), 3u);
  // The CPU demo recipe, shortened from the line; the teacher's final/ is a checkpoint folder.
  r = run_cli("distill --recipe " + mp::test::source_path("configs/recipes/cpu-demo-kd.json") + " --teacher " +
              dir.file("teacher/final") + " --student " + dir.file("teacher/checkpoint-2") + common("student") +
              " --steps 2 --eval-data " + dir.file("tok") + " --eval-every 1 --eval-samples 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto summary = nlohmann::json::parse(mp::read_file(dir.file("student/summary.json")));
  EXPECT_EQ(summary["total_steps"], 2);
  EXPECT_TRUE(summary.contains("eval_teacher"));
  auto cfg = nlohmann::json::parse(mp::read_file(dir.file("student/train_config.json")));
  EXPECT_EQ(cfg["lr"], 3e-3);       // from the recipe
  EXPECT_EQ(cfg["seq_len"], 32);    // overridden on the line
  EXPECT_NE(r.output.find("\"finished\": true"), std::string::npos) << r.output;
}

TEST_F(DistillCli, BadInputsExitTwoWithOneLineAndNoOutput) {
  auto r = run_cli("train --config " + dir.file("config.json") + common("o1") + " --steps 2 --global-batch 5");
  expect_one_line_error(r, "global batch 5 is not a multiple of micro batch 2");
  EXPECT_FALSE(fs::exists(dir.file("o1")));
  r = run_cli("train --config " + dir.file("config.json") + common("o2") + " --steps 2 --seq-len 100000");
  expect_one_line_error(r, "too little data");
  EXPECT_FALSE(fs::exists(dir.file("o2")));
  r = run_cli("train --config " + dir.file("config.json") + common("o3") + " --steps 2 --loss kl");
  expect_one_line_error(r, "train has no teacher");
  r = run_cli("train --config " + dir.file("config.json") + common("o4") + " --steps two");
  expect_one_line_error(r, "--steps");
  std::ofstream(dir.file("bad_recipe.json")) << R"({"lr": 0.1, "learning_rate": 0.2})";
  r = run_cli("train --recipe " + dir.file("bad_recipe.json") + " --config " + dir.file("config.json") +
              common("o5") + " --steps 2");
  expect_one_line_error(r, "unknown setting 'learning_rate'");
  for (const char* o : {"o3", "o4", "o5"}) EXPECT_FALSE(fs::exists(dir.file(o))) << o;
}

TEST_F(DistillCli, HelpListsTheSettings) {
  for (const char* sub : {"train", "distill"}) {
    auto r = run_cli(std::string(sub) + " --help");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    for (const char* flag : {"--data", "--global-batch", "--lr", "--resume", "--recipe", "--save-every"})
      EXPECT_NE(r.output.find(flag), std::string::npos) << sub << " " << flag;
  }
  EXPECT_NE(run_cli("distill --help").output.find("--teacher"), std::string::npos);
}

}  // namespace
