// Checkpoints in and out, validation against the config, and invariants of the forward pass.
#include "common/error.h"
#include "model/checkpoint_io.h"
#include "model/forward.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "tests/test_util.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace {

mp::ModelConfig tiny_config() {
  return mp::config_from_json_text(R"({"hybrid_override_pattern": "M*-M-", "vocab_size": 61, "hidden_size": 32,
    "intermediate_size": 48, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
    "mamba_num_heads": 4, "mamba_head_dim": 8, "ssm_state_size": 8, "n_groups": 2, "conv_kernel": 4,
    "chunk_size": 8})", "tiny");
}

void expect_error(const std::function<void()>& f, const std::vector<std::string>& needles) {
  try {
    f();
    FAIL() << "no error";
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.kind(), mp::ErrorKind::BadInput) << e.what();
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

TEST(Model, SaveLoadRoundTripIsExact) {
  mp::test::ScratchDir dir;
  mp::Model m = mp::make_random_model(tiny_config(), 3, at::kFloat);
  for (uint64_t shard : {0ull, 4000ull}) {
    std::string out = dir.file("ckpt" + std::to_string(shard));
    mp::SaveOptions so;
    so.max_shard_bytes = shard;
    mp::save_model(m, out, so);
    EXPECT_EQ(fs::exists(out + "/model.safetensors.index.json"), shard != 0);
    mp::Model back = mp::load_model(out);
    EXPECT_TRUE(back.config == m.config);
    for (const auto& [n, t] : m.weights) EXPECT_TRUE(at::equal(t, back.w(n))) << n;
  }
}

TEST(Model, InitIsDeterministicAndFollowsTransformersConventions) {
  auto c = tiny_config();
  mp::Model a = mp::make_random_model(c, 7, at::kFloat), b = mp::make_random_model(c, 7, at::kFloat);
  mp::Model other = mp::make_random_model(c, 8, at::kFloat);
  for (const auto& [n, t] : a.weights) EXPECT_TRUE(at::equal(t, b.w(n))) << n;
  EXPECT_FALSE(at::equal(a.w(mp::kEmbeddingName), other.w(mp::kEmbeddingName)));
  EXPECT_TRUE(at::allclose(a.layer_w(0, "mixer.A_log"), at::log(at::arange(1, 5, at::kFloat))));
  EXPECT_TRUE(at::equal(a.layer_w(0, "mixer.D"), at::ones({4})));
  at::Tensor dt = at::softplus(a.layer_w(0, "mixer.dt_bias"));
  EXPECT_GE(dt.min().item<float>(), 1e-3f * 0.999f);
  EXPECT_LE(dt.max().item<float>(), 0.1f * 1.001f);
  EXPECT_NEAR(a.w(mp::kEmbeddingName).std().item<float>(), 0.02f, 0.003f);
}

TEST(Model, ForwardIsCausal) {
  at::NoGradGuard ng;
  mp::Model m = mp::make_random_model(tiny_config(), 1, at::kFloat);
  at::Tensor ids = at::randint(0, 61, {2, 21}, at::kLong);
  at::Tensor full = mp::forward_logits(m, ids);
  at::Tensor prefix = mp::forward_logits(m, ids.narrow(1, 0, 11));
  EXPECT_EQ(full.sizes(), (std::vector<int64_t>{2, 21, 61}));
  EXPECT_TRUE(at::allclose(full.narrow(1, 0, 11), prefix, 1e-4, 1e-5));
}

TEST(Model, SkippingALayerEqualsRemovingIt) {
  at::NoGradGuard ng;
  mp::Model m = mp::make_random_model(tiny_config(), 2, at::kFloat);
  // Remove layer 1 (attention) by hand: layers 2.. shift down by one.
  mp::Model cut;
  cut.config = m.config;
  cut.config.layers.erase(cut.config.layers.begin() + 1);
  for (const auto& [n, t] : m.weights) {
    if (n.rfind("backbone.layers.", 0) != 0) { cut.weights[n] = t; continue; }
    int64_t i = std::stoll(n.substr(16));
    std::string rest = n.substr(n.find('.', 16) + 1);
    if (i == 1) continue;
    cut.weights[mp::layer_tensor(i > 1 ? i - 1 : i, rest)] = t;
  }
  at::Tensor ids = at::randint(0, 61, {1, 17}, at::kLong);
  mp::ForwardOptions skip;
  skip.skip_layer = {false, true, false, false, false};
  EXPECT_TRUE(at::equal(mp::forward_logits(m, ids, skip), mp::forward_logits(cut, ids)));
}

TEST(Model, TokenIdOutsideVocabularyIsRefused) {
  mp::Model m = mp::make_random_model(tiny_config(), 1, at::kFloat);
  at::Tensor ids = at::zeros({1, 4}, at::kLong);
  ids[0][2] = 61;
  expect_error([&] { mp::forward_logits(m, ids); }, {"61", "[0, 2]", "vocabulary"});
}

class BadCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    mp::Model m = mp::make_random_model(tiny_config(), 5, at::kFloat);
    ckpt = dir.file("ckpt");
    mp::save_model(m, ckpt);
    tensors = m.ordered();
  }
  void rewrite_tensors(const std::vector<std::pair<std::string, at::Tensor>>& t) {
    mp::write_safetensors(ckpt + "/model.safetensors", t);
  }
  void rewrite_config(const std::string& from, const std::string& to) {
    std::string text = mp::config_to_json_text(tiny_config());
    text.replace(text.find(from), from.size(), to);
    std::ofstream(ckpt + "/config.json") << text;
  }
  mp::test::ScratchDir dir;
  std::string ckpt;
  std::vector<std::pair<std::string, at::Tensor>> tensors;
};

TEST_F(BadCheckpoint, MissingFolder) { expect_error([&] { mp::load_model(dir.file("nope")); }, {"nope", "not found"}); }

TEST_F(BadCheckpoint, MissingConfig) {
  fs::remove(ckpt + "/config.json");
  expect_error([&] { mp::load_model(ckpt); }, {"config.json"});
}

TEST_F(BadCheckpoint, MissingTensor) {
  tensors.erase(tensors.begin() + 3);
  std::string gone = mp::expected_tensors(tiny_config())[3].name;
  rewrite_tensors(tensors);
  expect_error([&] { mp::load_model(ckpt); }, {gone, "missing"});
}

TEST_F(BadCheckpoint, ShapeDisagreesWithConfig) {
  for (auto& [n, t] : tensors)
    if (n == "backbone.layers.2.mixer.up_proj.weight") t = at::zeros({40, 32});
  rewrite_tensors(tensors);
  expect_error([&] { mp::load_model(ckpt); }, {"backbone.layers.2.mixer.up_proj.weight", "[40, 32]", "[48, 32]"});
}

TEST_F(BadCheckpoint, UnexpectedTensor) {
  tensors.emplace_back("backbone.layers.9.mixer.up_proj.weight", at::zeros({2}));
  rewrite_tensors(tensors);
  expect_error([&] { mp::load_model(ckpt); }, {"backbone.layers.9.mixer.up_proj.weight", "unexpected"});
}

TEST_F(BadCheckpoint, ConfigPatternLengthDisagrees) {
  rewrite_config("\"num_hidden_layers\": 5", "\"num_hidden_layers\": 6");
  expect_error([&] { mp::load_model(ckpt); }, {"config.json", "num_hidden_layers"});
}

TEST_F(BadCheckpoint, ConfigHeadsNotDivisibleByGroups) {
  rewrite_config("\"n_groups\": 2", "\"n_groups\": 3");
  expect_error([&] { mp::load_model(ckpt); }, {"config.json", "n_groups"});
}

TEST_F(BadCheckpoint, UnsupportedWeightDtype) {
  for (auto& [n, t] : tensors)
    if (n == "backbone.norm_f.weight") t = t.to(at::kInt);
  rewrite_tensors(tensors);
  expect_error([&] { mp::load_model(ckpt); }, {"backbone.norm_f.weight", "I32"});
}

TEST_F(BadCheckpoint, AcceptsTransformersPrefix) {
  for (auto& [n, t] : tensors)
    if (n.rfind("backbone.", 0) == 0) n = "model." + n.substr(9);
  rewrite_tensors(tensors);
  mp::Model m = mp::load_model(ckpt);
  EXPECT_EQ(m.weights.size(), tensors.size());
}

}  // namespace
