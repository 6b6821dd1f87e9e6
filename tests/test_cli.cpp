// The binary as a user meets it: published sizes, one-line errors with exit code 2, and no
// output left behind when an input is bad.
#include "data/indexed_dataset.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "tests/test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using mp::test::run_cli;

namespace {

const char* kTinyConfig = R"({"hybrid_override_pattern": "M*-M-", "vocab_size": 61, "hidden_size": 32,
  "intermediate_size": 48, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
  "mamba_num_heads": 4, "mamba_head_dim": 8, "ssm_state_size": 8, "n_groups": 2, "conv_kernel": 4,
  "chunk_size": 8})";

void expect_one_line_error(const mp::test::CliResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

TEST(Cli, InfoReportsPublishedSizes) {
  auto r8 = run_cli(mp::test::source_path("configs/nemotron-h-8b/config.json").insert(0, "info "));
  auto r56 = run_cli("info " + mp::test::source_path("configs/nemotron-h-56b"));
  auto r47 = run_cli("info " + mp::test::source_path("configs/nemotron-h-47b/config.json"));
  EXPECT_EQ(r8.exit_code, 0) << r8.output;
  EXPECT_NE(r8.output.find("8.10 B"), std::string::npos) << r8.output;
  EXPECT_NE(r56.output.find("56.32 B"), std::string::npos) << r56.output;
  EXPECT_NE(r47.output.find("46.79 B"), std::string::npos) << r47.output;
  auto j = run_cli("info --json " + mp::test::source_path("configs/nemotron-h-8b/config.json"));
  EXPECT_NE(j.output.find("\"total\": 8100852736"), std::string::npos) << j.output;
}

TEST(Cli, EverySubcommandHasHelp) {
  for (const char* sub : {"info", "init", "forward", "eval", "convert", "data", "data from-text", "data info"}) {
    auto r = run_cli(std::string(sub) + " --help");
    EXPECT_EQ(r.exit_code, 0) << sub;
    EXPECT_NE(r.output.find("Usage"), std::string::npos) << sub;
  }
}

class CliPipeline : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir.file("config.json")) << kTinyConfig;
    auto r = run_cli("init --config " + dir.file("config.json") + " --output " + dir.file("model") + " --dtype fp32");
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  mp::test::ScratchDir dir;
};

TEST_F(CliPipeline, ForwardWritesLogitsAndConvertRoundTrips) {
  at::Tensor ids = at::randint(0, 61, {2, 9}, at::kLong);
  mp::write_safetensors(dir.file("ids.safetensors"), {{"input_ids", ids}});
  auto r = run_cli("forward --model " + dir.file("model") + " --input " + dir.file("ids.safetensors") +
                   " --output " + dir.file("logits.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  at::Tensor logits = mp::SafetensorsFile::open(dir.file("logits.safetensors"))->load("logits");
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 9, 61}));
  r = run_cli("convert --model " + dir.file("model") + " --output " + dir.file("sharded") + " --max-shard-size 4KB");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir.file("sharded/model.safetensors.index.json")));
  r = run_cli("forward --model " + dir.file("sharded") + " --input " + dir.file("ids.safetensors") + " --output " +
              dir.file("logits2.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(at::equal(logits, mp::SafetensorsFile::open(dir.file("logits2.safetensors"))->load("logits")));
}

TEST_F(CliPipeline, TokenIdBeyondVocabularyFailsCleanly) {
  at::Tensor ids = at::zeros({1, 5}, at::kLong);
  ids[0][3] = 99;
  mp::write_safetensors(dir.file("ids.safetensors"), {{"input_ids", ids}});
  auto r = run_cli("forward --model " + dir.file("model") + " --input " + dir.file("ids.safetensors") +
                   " --output " + dir.file("out.safetensors"));
  expect_one_line_error(r, "token id 99");
  EXPECT_FALSE(fs::exists(dir.file("out.safetensors")));
}

TEST_F(CliPipeline, MissingModelFolder) {
  auto r = run_cli("convert --model " + dir.file("absent") + " --output " + dir.file("out"));
  expect_one_line_error(r, "absent");
  EXPECT_FALSE(fs::exists(dir.file("out")));
}

TEST_F(CliPipeline, TruncatedCheckpointLeavesNoOutput) {
  std::string st = dir.file("model/model.safetensors");
  fs::resize_file(st, fs::file_size(st) - 100);
  auto r = run_cli("convert --model " + dir.file("model") + " --output " + dir.file("out"));
  expect_one_line_error(r, "model.safetensors");
  EXPECT_FALSE(fs::exists(dir.file("out")));
  for (const auto& e : fs::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".out."), std::string::npos) << e.path();
}

TEST_F(CliPipeline, EvalOnTextTokensAndTruncatedIndex) {
  std::ofstream(dir.file("a.txt")) << std::string(3000, 'a') << "The quick brown fox jumps over the lazy dog.";
  auto r = run_cli("data from-text " + dir.file("a.txt") + " --output " + dir.file("tok"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Vocabulary 61 < 256 byte ids: eval must refuse the data, naming both numbers.
  r = run_cli("eval --model " + dir.file("model") + " --data " + dir.file("tok") + " --seq-len 16 --samples 4");
  expect_one_line_error(r, "61");
  fs::resize_file(dir.file("tok.idx"), fs::file_size(dir.file("tok.idx")) - 4);
  r = run_cli("eval --model " + dir.file("model") + " --data " + dir.file("tok") + " --seq-len 16 --samples 4");
  expect_one_line_error(r, "tok.idx");
}

TEST(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(run_cli("").exit_code, 2);
  EXPECT_EQ(run_cli("info").exit_code, 2);
  EXPECT_EQ(run_cli("forward --model x --input y --output z --dtype fp64").exit_code, 2);
}

}  // namespace
