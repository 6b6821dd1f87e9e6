// score and prune as a user meets them: files written, a pruned checkpoint that loads and runs,
// --stream giving the same importance, and one-line refusals with exit code 2.
#include "data/indexed_dataset.h"
#include "model/forward.h"
#include "model/model.h"
#include "prune/importance.h"
#include "tests/prune_fixtures.h"
#include "tests/test_util.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using mp::test::run_cli;

namespace {

class PruneCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new mp::test::ScratchDir();
    mp::save_model(mp::test::prune_model(21), file("parent"));
    mp::save_model(mp::test::prune_model(22), file("other"));
    mp::IndexedDatasetWriter w(file("tokens"), mp::TokenDType::U16);
    at::Tensor t = mp::test::prune_ids(1, 2000, 21);
    for (int64_t d = 0; d < 4; ++d) {
      std::vector<int64_t> seq(t.data_ptr<int64_t>() + d * 500, t.data_ptr<int64_t>() + (d + 1) * 500);
      w.add_sequence(seq);
      w.end_document();
    }
    w.finish();
    auto r = run_cli(score_args("parent", "importance.json"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string file(const std::string& n) { return dir_->file(n); }
  static std::string score_args(const std::string& model, const std::string& out) {
    return "score --model " + file(model) + " --data " + file("tokens") + " --output " + file(out) +
           " --samples 12 --layer-samples 4 --seq-len 32 --micro-batch 3 --quiet";
  }
  static void expect_refusal(const std::string& args, const std::string& needle) {
    auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
  static mp::test::ScratchDir* dir_;
};
mp::test::ScratchDir* PruneCli::dir_ = nullptr;

TEST_F(PruneCli, ScoreWritesImportanceSvgAndSummary) {
  EXPECT_TRUE(fs::exists(file("layers.svg")));
  std::ifstream svg(file("layers.svg"));
  std::string text((std::istreambuf_iterator<char>(svg)), {});
  EXPECT_NE(text.find("<svg"), std::string::npos);
  EXPECT_NE(text.find("attention (2)"), std::string::npos);  // legend
  EXPECT_NE(text.find("layer index"), std::string::npos);
  mp::Importance imp = mp::load_importance(file("importance.json"));
  EXPECT_EQ(imp.settings.samples, 12);
  EXPECT_EQ(imp.layers.size(), 6u);
  auto r = run_cli("score --model " + file("parent") + " --data " + file("tokens") + " --output " +
                   file("sub/imp.json") + " --samples 3 --layer-samples 2 --seq-len 16");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ranked by mse_normed"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("least important"), std::string::npos) << r.output;
}

TEST_F(PruneCli, StreamingScoreGivesTheSameImportance) {
  // Its layers.svg replaces the first score's, beside it: that takes --overwrite.
  auto r = run_cli(score_args("parent", "streamed.json") + " --stream --stream-windows 6 --overwrite");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json a = mp::importance_to_json(mp::load_importance(file("importance.json")));
  nlohmann::json b = mp::importance_to_json(mp::load_importance(file("streamed.json")));
  EXPECT_TRUE(b["settings"]["stream"].get<bool>());
  a.erase("settings");
  b.erase("settings");
  EXPECT_EQ(a, b);
}

TEST_F(PruneCli, PruneEveryAxisWritesALoadableCheckpoint) {
  const std::string args = "prune --model " + file("parent") + " --importance " + file("importance.json") +
                           " --hidden-size 24 --ffn-hidden-size 40 --num-attention-heads 2 --mamba-num-heads 2 "
                           "--mamba-head-dim 6 --keep-layers mamba=2,attention=1,mlp=1";
  auto dry = run_cli(args + " --dry-run");
  ASSERT_EQ(dry.exit_code, 0) << dry.output;
  EXPECT_NE(dry.output.find("child:  4 layers"), std::string::npos) << dry.output;
  EXPECT_FALSE(fs::exists(file("child")));
  auto r = run_cli(args + " --output " + file("child"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  mp::Model child = mp::load_model(file("child"));
  EXPECT_EQ(child.config.hidden_size, 24);
  EXPECT_EQ(child.config.intermediate_size, 40);
  EXPECT_EQ(child.config.mamba_num_heads, 2);
  EXPECT_EQ(child.config.mamba_head_dim, 6);
  EXPECT_EQ(child.config.num_layers(), 4);
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream(file("child/config.json")));
  EXPECT_EQ(cfg["model_type"], "nemotron_h");
  EXPECT_EQ(cfg["hybrid_override_pattern"].get<std::string>().size(), 4u);
  at::NoGradGuard ng;
  EXPECT_TRUE(at::isfinite(mp::forward_logits(child, mp::test::prune_ids(1, 8, 1))).all().item<bool>());
  // A shape file does the same.
  std::ofstream(file("shape.json")) << R"({"hidden_size": 24, "intermediate_size": 40, "drop_layers": [5]})";
  r = run_cli("prune --model " + file("parent") + " --importance " + file("importance.json") + " --shape " +
              file("shape.json") + " --output " + file("child2"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(mp::load_config(file("child2")).pattern(), "M*-M-");
}

TEST_F(PruneCli, RefusalsExitWithCodeTwo) {
  const std::string base = "prune --model " + file("parent") + " --importance " + file("importance.json") + " --dry-run ";
  expect_refusal(base + "--hidden-size 64", "hidden_size 64 is above the parent's 32");
  expect_refusal(base + "--mamba-num-heads 3", "not a multiple of n_groups 2");
  expect_refusal(base + "--num-attention-heads 3", "not a multiple of num_key_value_heads 2");
  expect_refusal(base + "--keep-layers mamba=3", "the parent has only 2");
  expect_refusal(base + "--drop-layers 9", "dropped layer 9 does not exist");
  expect_refusal("prune --model " + file("other") + " --importance " + file("importance.json") + " --output " +
                     file("never"),
                 "weight fingerprint");
  EXPECT_FALSE(fs::exists(file("never")));
  std::ofstream(file("bad.json")) << R"({"format": "minipuzzle-importance", "version": 7})";
  expect_refusal("prune --model " + file("parent") + " --importance " + file("bad.json") + " --dry-run", "'version' is 7");
  expect_refusal("score --model " + file("parent") + " --data " + file("tokens") + " --output " + file("fresh/x.json") +
                     " --aggregate-seq median",
                 "expected mean, l2 or var");
  EXPECT_FALSE(fs::exists(file("fresh")));  // the folder made for the output is removed again
  expect_refusal("score --model " + file("parent") + " --data " + file("tokens") + " --output " + file("x.json"),
                 "layers.svg");  // another score's layers.svg is not replaced without --overwrite
}

TEST_F(PruneCli, HelpExists) {
  for (const char* sub : {"score", "prune"}) {
    auto r = run_cli(std::string(sub) + " --help");
    EXPECT_EQ(r.exit_code, 0) << sub;
    EXPECT_NE(r.output.find("Usage"), std::string::npos) << sub;
  }
}

}  // namespace
