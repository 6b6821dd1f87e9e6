// config.json in every accepted form, the canonical form out, and clear refusals.
#include "common/error.h"
#include "model/accounting.h"
#include "model/config.h"
#include "tests/test_util.h"

#include <gtest/gtest.h>

#include <cmath>

namespace {

const char* kBase = R"({
  "model_type": "nemotron_h", "vocab_size": 256, "hidden_size": 64, "intermediate_size": 128,
  "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
  "mamba_num_heads": 8, "mamba_head_dim": 8, "ssm_state_size": 16, "n_groups": 2,
  "conv_kernel": 4, "chunk_size": 16, "layer_norm_epsilon": 1e-5 %s })";

std::string with(const std::string& extra) {
  std::string s = kBase;
  return s.replace(s.find("%s"), 2, extra);
}

void expect_bad_input(const std::string& text, const std::string& needle) {
  try {
    mp::config_from_json_text(text, "cfg.json");
    FAIL() << "accepted: " << text;
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.kind(), mp::ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
  }
}

TEST(Config, PatternAndListFormsAgree) {
  auto a = mp::config_from_json_text(with(R"(, "hybrid_override_pattern": "M*-M-", "num_hidden_layers": 5)"), "a");
  auto b = mp::config_from_json_text(
      with(R"(, "layers_block_type": ["mamba", "attention", "mlp", "mamba", "mlp"])"), "b");
  auto c = mp::config_from_json_text(
      with(R"(, "layers_block_type": ["linear_attention", "full_attention", "mlp", "linear_attention", "mlp"])"), "c");
  EXPECT_EQ(a.pattern(), "M*-M-");
  EXPECT_EQ(b.pattern(), "M*-M-");
  EXPECT_EQ(c.pattern(), "M*-M-");
}

TEST(Config, ListWinsOverPattern) {
  auto c = mp::config_from_json_text(
      with(R"(, "hybrid_override_pattern": "MMMM", "layers_block_type": ["mlp", "mamba"])"), "x");
  EXPECT_EQ(c.pattern(), "-M");
}

TEST(Config, LegacyNamesAndInfinity) {
  std::string legacy = R"({"hybrid_override_pattern": "M-", "vocab_size": 10, "hidden_size": 8,
    "intermediate_size": 16, "num_attention_heads": 2, "attention_head_dim": 4, "mamba_num_heads": 4,
    "mamba_head_dim": 2, "ssm_state_size": 4, "mamba_n_groups": 2, "mamba_d_conv": 3, "mamba_chunk_size": 8,
    "time_step_limit": [0.0, Infinity]})";
  auto c = mp::config_from_json_text(legacy, "legacy");
  EXPECT_EQ(c.head_dim, 4);
  EXPECT_EQ(c.n_groups, 2);
  EXPECT_EQ(c.conv_kernel, 3);
  EXPECT_EQ(c.chunk_size, 8);
  EXPECT_EQ(c.num_key_value_heads, 2);  // defaults to the query heads
  EXPECT_TRUE(std::isinf(c.time_step_limit_hi));
  auto d = mp::config_from_json_text(with(R"(, "hybrid_override_pattern": "M", "time_step_limit": [0.0, {"__float__": "Infinity"}])"), "d");
  EXPECT_TRUE(std::isinf(d.time_step_limit_hi));
}

TEST(Config, WrittenFormReadsBackEqual) {
  auto c = mp::config_from_json_text(with(R"(, "hybrid_override_pattern": "M*-M-")"), "a");
  auto back = mp::config_from_json_text(mp::config_to_json_text(c), "b");
  EXPECT_TRUE(c == back);
  std::string text = mp::config_to_json_text(c);
  EXPECT_NE(text.find("\"NemotronHForCausalLM\""), std::string::npos);
  EXPECT_NE(text.find("\"head_dim\""), std::string::npos);
  EXPECT_EQ(text.find("auto_map"), std::string::npos);
}

TEST(Config, RefusesWhatItCannotRun) {
  expect_bad_input(with(R"(, "hybrid_override_pattern": "ME-")"), "MoE");
  expect_bad_input(with(R"(, "hybrid_override_pattern": "MX")"), "'X'");
  expect_bad_input(with(R"(, "hybrid_override_pattern": "M-", "num_hidden_layers": 3)"), "num_hidden_layers");
  expect_bad_input(with(R"(, "hybrid_override_pattern": "M-", "n_groups": 3)"), "n_groups");
  expect_bad_input(with(R"(, "hybrid_override_pattern": "*-", "num_key_value_heads": 3)"), "num_key_value_heads");
  expect_bad_input(with(R"(, "hybrid_override_pattern": "M-", "hidden_size": 0)"), "hidden_size");
  expect_bad_input(with(R"(, "hybrid_override_pattern": "M-", "tie_word_embeddings": true)"), "tie_word_embeddings");
  expect_bad_input(with(R"(, "hybrid_override_pattern": "M-", "mlp_hidden_act": "gelu")"), "mlp_hidden_act");
  expect_bad_input(with(""), "hybrid_override_pattern");
  expect_bad_input("{ not json", "not valid JSON");
  expect_bad_input(with(R"(, "layers_block_type": ["mamba", "moe"])"), "moe");
}

TEST(Config, MissingFileNamesThePath) {
  try {
    mp::load_config("/nonexistent/folder");
    FAIL();
  } catch (const mp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/folder"), std::string::npos);
  }
}

// The published sizes (docs/method.md; arXiv 2504.03624): 8.10 B, 56.32 B, 46.79 B parameters.
TEST(Accounting, PublishedParameterCounts) {
  auto p8 = mp::count_params(mp::load_config(mp::test::source_path("configs/nemotron-h-8b/config.json")));
  auto p56 = mp::count_params(mp::load_config(mp::test::source_path("configs/nemotron-h-56b/config.json")));
  auto p47 = mp::count_params(mp::load_config(mp::test::source_path("configs/nemotron-h-47b/config.json")));
  EXPECT_NEAR(p8.total() / 1e9, 8.10, 0.005);
  EXPECT_NEAR(p56.total() / 1e9, 56.32, 0.005);
  EXPECT_NEAR(p47.total() / 1e9, 46.79, 0.01);
  // Per-layer figures quoted for the 56B: Mamba 438.4 M, attention 151.0 M, MLP 537 M (503 M at 30720).
  EXPECT_NEAR(p56.per_mamba_layer / 1e6, 438.4, 0.1);
  EXPECT_NEAR(p56.per_attention_layer / 1e6, 151.0, 0.1);
  EXPECT_NEAR(p56.per_mlp_layer / 1e6, 537.0, 0.5);
  EXPECT_NEAR(p47.per_mlp_layer / 1e6, 503.0, 0.5);
}

TEST(Accounting, StateSizesFollowTheFormulas) {
  auto c = mp::load_config(mp::test::source_path("configs/nemotron-h-56b/config.json"));
  auto s = mp::state_sizes(c);
  EXPECT_EQ(s.kv_per_token, 10 * 2 * 8 * 128);
  EXPECT_EQ(s.mamba_conv_per_seq, 54 * (256 * 64 + 2 * 8 * 256) * 3);
  EXPECT_EQ(s.mamba_ssm_per_seq, 54 * 256 * 64 * 256);
}

}  // namespace
