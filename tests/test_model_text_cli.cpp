// Text through a model's own tokenizer: `generate --prompt` and `eval --text-files`, with a
// tokenizer.json in the model folder (the hand-checked tiny byte-level BPE of
// tokenizer_fixtures.h), bytes for a byte-level model without one, and the refusals.
#include "data/tokenizer/tokenizer.h"
#include "model/model.h"
#include "tests/distill_fixture.h"
#include "tests/test_util.h"
#include "tests/tokenizer_fixtures.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

using mp::test::run_cli;

namespace {

class ModelTextCli : public ::testing::Test {
 protected:
  // DIR/NAME: a tiny random checkpoint of vocabulary `vocab`, with the tiny tokenizer when asked.
  std::string model(const std::string& name, int vocab, bool with_tokenizer) {
    std::string cfg = mp::test::kDistillTinyConfig;
    cfg.replace(cfg.find("\"vocab_size\": 61"), 16, "\"vocab_size\": " + std::to_string(vocab));
    std::ofstream(dir.file(name + ".json")) << cfg;
    auto r = run_cli("init --config " + dir.file(name + ".json") + " --output " + dir.file(name) + " --seed 3");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    if (with_tokenizer) {
      std::ofstream(dir.file(name + "/tokenizer.json")) << mp::test::tiny_byte_level_tokenizer().dump();
      std::ofstream(dir.file(name + "/tokenizer_config.json")) << R"({"eos_token": "<|eos|>"})";
    }
    return dir.file(name);
  }
  static nlohmann::json json_of(const mp::test::CliResult& r) {
    return nlohmann::json::parse(r.output.substr(r.output.find('{')));
  }
  mp::test::ScratchDir dir;
};

// "a the" is 'a' (97), then " the" merged to "Ġthe" (258) by the fixture's merges.
TEST_F(ModelTextCli, GeneratePromptUsesTheModelFoldersTokenizer) {
  const std::string m = model("bpe", 261, true);
  auto text = run_cli("generate --model " + m + " --prompt 'a the' --max-new-tokens 6 --json");
  ASSERT_EQ(text.exit_code, 0) << text.output;
  const nlohmann::json j = json_of(text);
  EXPECT_EQ(j["prompt_ids"], nlohmann::json({97, 258}));
  // The same generation from the ids, and its decoding by the tokenizer itself.
  auto ids = run_cli("generate --model " + m + " --prompt-ids 97,258 --max-new-tokens 6 --json");
  ASSERT_EQ(ids.exit_code, 0) << ids.output;
  EXPECT_EQ(j["generated_ids"], json_of(ids)["generated_ids"]);
  auto tok = mp::Tokenizer::load(m);
  EXPECT_EQ(j["continuation"], tok->decode(j["generated_ids"].get<std::vector<int64_t>>(), true));
  EXPECT_EQ(j["prompt"], "a the");
}

TEST_F(ModelTextCli, GeneratePromptIsBytesForAByteLevelModel) {
  const std::string m = model("bytes", 256, false);
  auto r = run_cli("generate --model " + m + " --prompt 'ab' --max-new-tokens 3 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(json_of(r)["prompt_ids"], nlohmann::json({97, 98}));
  auto plain = run_cli("generate --model " + m + " --prompt 'ab' --max-new-tokens 3");
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  EXPECT_EQ(plain.output.rfind("ab", 0), 0u) << "text output starts with the prompt: " << plain.output;
}

TEST_F(ModelTextCli, EvalTextEqualsEvalOnTheSameTextTokenizedByDataFromText) {
  const std::string m = model("bpe", 261, true);
  std::string text;
  for (int i = 0; i < 30; ++i) text += "the theme of the aardvark: a the, aa the. ";
  std::ofstream(dir.file("doc.txt")) << text;
  auto d = run_cli("data from-text " + dir.file("doc.txt") + " --tokenizer " + m + " --output " + dir.file("tok"));
  ASSERT_EQ(d.exit_code, 0) << d.output;
  const std::string common = " --model " + m + " --seq-len 16 --samples 8 --json --quiet";
  auto by_data = run_cli("eval --data " + dir.file("tok") + common);
  auto by_text = run_cli("eval --text-files " + dir.file("doc.txt") + common);
  ASSERT_EQ(by_data.exit_code, 0) << by_data.output;
  ASSERT_EQ(by_text.exit_code, 0) << by_text.output;
  EXPECT_EQ(json_of(by_data)["loss"], json_of(by_text)["loss"]);
  EXPECT_EQ(json_of(by_data)["tokens"], json_of(by_text)["tokens"]);
}

TEST_F(ModelTextCli, TextWithoutAFittingTokenizerIsRefusedInOneLine) {
  const std::string no_tok = model("notok", 300, false);
  auto r = run_cli("generate --model " + no_tok + " --prompt hi");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("no tokenizer.json in the model folder and the model is not byte-level"), std::string::npos)
      << r.output;
  // The fixture's ids go up to 260: too many for a 256-token model.
  const std::string small = model("small", 256, false);
  std::ofstream(dir.file("tokenizer.json")) << mp::test::tiny_byte_level_tokenizer().dump();
  r = run_cli("eval --model " + small + " --text-files " + dir.file("tokenizer.json") + " --tokenizer " +
              dir.file("tokenizer.json"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("tokenizer ids go up to 260 but model"), std::string::npos) << r.output;
  r = run_cli("generate --model " + small + " --prompt hi --prompt-ids 1,2");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = run_cli("eval --model " + small);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("give --data PREFIX or --text-files FILES"), std::string::npos) << r.output;
}

}  // namespace
