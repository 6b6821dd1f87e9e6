// `search --finalists N --distill-tokens T`: the finalists distilled from the parent, evaluated on
// the ranking's held-out windows and ranked again, end to end on a tiny model through the CLI; a
// search killed (SIGKILL) during its finalists' distillation resumes with --resume and ends with
// the same results as an unbroken one.
#include "common/atomic_output.h"
#include "distill/finalists.h"
#include "tests/test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

namespace {

TEST(FinalistRanks, SpearmanOfKnownRankings) {
  EXPECT_DOUBLE_EQ(mp::spearman_rank_correlation({1, 2, 3}, {1, 2, 3}), 1.0);
  EXPECT_DOUBLE_EQ(mp::spearman_rank_correlation({1, 2, 3}, {3, 2, 1}), -1.0);
  // d = (1, 1, 1, 1): 1 - 6 * 4 / (4 * 15) = 0.6
  EXPECT_DOUBLE_EQ(mp::spearman_rank_correlation({1, 2, 3, 4}, {2, 1, 4, 3}), 0.6);
  // Zero-shot places need not be consecutive: 1, 2, 5 orders like 1, 2, 3.
  EXPECT_DOUBLE_EQ(mp::spearman_rank_correlation({1, 2, 5}, {1, 2, 3}), 1.0);
}

class SearchFinalists : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir.file("config.json")) << R"({"hybrid_override_pattern": "M*-M-", "vocab_size": 256,
      "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
      "mamba_num_heads": 4, "mamba_head_dim": 8, "ssm_state_size": 8, "n_groups": 2, "conv_kernel": 4,
      "chunk_size": 16})";
    std::ofstream(dir.file("recipe.json"))
        << R"({"loss": "kl", "seq_len": 64, "global_batch": 4, "micro_batch": 4, "lr": 2e-3, "min_lr": 2e-4,
              "warmup": 1, "save_every": 2})";
    std::string text;
    for (int i = 0; i < 300; ++i) text += "Finalists are distilled and ranked again, sentence " + std::to_string(i) + ". ";
    std::ofstream(dir.file("a.txt")) << text;
    run("init --config " + dir.file("config.json") + " --output " + dir.file("model") + " --dtype fp32 --seed 3");
    run("data from-text " + dir.file("a.txt") + " --output " + dir.file("tok"));
    run("score --model " + dir.file("model") + " --data " + dir.file("tok") + " --output " +
        dir.file("imp/importance.json") + " --samples 8 --layer-samples 4 --seq-len 64 --quiet");
  }
  std::string search(const std::string& out) const {
    return "search --model " + dir.file("model") + " --importance " + dir.file("imp/importance.json") + " --data " +
           dir.file("tok") + " --eval-tokens 512 --seq-len 64 --mamba-layers 1:2 --attention-layers 1 --mlp-layers 1:2 " +
           "--ffn-hidden-size 32,64 --top 100 --finalists 3 --distill-tokens 1536 --recipe " + dir.file("recipe.json") +
           " --quiet --output " + dir.file(out);
  }
  void run(const std::string& args) const {
    auto r = mp::test::run_cli(args);
    ASSERT_EQ(r.exit_code, 0) << args << "\n" << r.output;
  }
  nlohmann::json report(const std::string& out) const {
    return nlohmann::json::parse(mp::read_file(dir.file(out + "/finalists.json")));
  }
  mp::test::ScratchDir dir;
};

TEST_F(SearchFinalists, DistillsRanksAgainAndReportsWhatEvalMeasures) {
  run(search("out"));
  const nlohmann::json j = report("out");
  ASSERT_EQ(j["finalists"].size(), 3u);
  std::set<int64_t> ranks;
  for (const auto& f : j["finalists"]) {
    ranks.insert(f["rank_after"].get<int64_t>());
    EXPECT_EQ(f["steps"], 6);  // 1536 tokens at 4 x 64 a step
    // The held-out loss after distillation is what `eval` measures on the same windows.
    auto e = mp::test::run_cli("eval --model " + f["run"].get<std::string>() + "/final --data " + dir.file("tok") +
                               " --seq-len 64 --samples 8 --seed 4321 --micro-batch 4 --json --quiet");
    ASSERT_EQ(e.exit_code, 0) << e.output;
    const double loss = nlohmann::json::parse(e.output.substr(e.output.find('{')))["loss"];
    EXPECT_NEAR(f["loss_after"].get<double>(), loss, 1e-6 * loss);
  }
  EXPECT_EQ(ranks, (std::set<int64_t>{1, 2, 3}));
  for (const auto& f : j["finalists"])  // rank_after orders by loss_after
    for (const auto& g : j["finalists"])
      if (f["rank_after"] < g["rank_after"]) EXPECT_LE(f["loss_after"].get<double>(), g["loss_after"].get<double>());
  EXPECT_GE(j["spearman"].get<double>(), -1.0);
  EXPECT_LE(j["spearman"].get<double>(), 1.0);
  EXPECT_TRUE(std::filesystem::exists(dir.file("out/finalists.csv")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("out/finalists.svg")));
}

TEST_F(SearchFinalists, AKilledSearchResumesWithTheFinalistsNotYetDone) {
  run(search("whole"));
  // SIGKILL once the first finalist's distillation has finished and the second has begun.
  const std::string cmd = std::string("bash -c '") + MP_CLI_PATH + " " + search("cut") +
                          " >/dev/null 2>&1 & pid=$!; for i in $(seq 1 600); do "
                          "[ -f " + dir.file("cut/finalist-2-distill/metrics.jsonl") + " ] && break; sleep 0.05; done; "
                          "kill -9 $pid; wait $pid; exit 0'";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  ASSERT_TRUE(std::filesystem::exists(dir.file("cut/finalist-1-distill/summary.json")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("cut/finalists.json")));
  auto again = mp::test::run_cli(search("cut"));
  EXPECT_EQ(again.exit_code, 2) << "an existing search folder is refused without --resume\n" << again.output;
  run(search("cut") + " --resume");
  const nlohmann::json a = report("whole"), b = report("cut");
  ASSERT_EQ(a["finalists"].size(), b["finalists"].size());
  for (size_t i = 0; i < a["finalists"].size(); ++i) {
    EXPECT_EQ(a["finalists"][i]["key"], b["finalists"][i]["key"]);
    EXPECT_EQ(a["finalists"][i]["loss_after"], b["finalists"][i]["loss_after"]) << "finalist " << i + 1;
    EXPECT_EQ(a["finalists"][i]["rank_after"], b["finalists"][i]["rank_after"]);
  }
  EXPECT_EQ(a["spearman"], b["spearman"]);
}

}  // namespace
