// Generation (model/generate.h) and `minipuzzle generate`: greedy tokens equal repeated argmax of
// the full forward over the growing sequence; sampling is deterministic in its seed; bad ids are
// one clear error line.
#include "model/forward.h"
#include "model/generate.h"
#include "model/model.h"
#include "tests/test_util.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>

namespace {

const char* kConfig = R"({"hybrid_override_pattern": "M*-M-", "vocab_size": 61, "hidden_size": 32,
  "intermediate_size": 48, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
  "mamba_num_heads": 4, "mamba_head_dim": 8, "ssm_state_size": 8, "n_groups": 2, "conv_kernel": 4,
  "chunk_size": 8})";

// Greedy continuation by the full forward: append argmax of the last position, n times.
at::Tensor greedy_by_forward(const mp::Model& m, at::Tensor ids, int64_t n) {
  at::NoGradGuard ng;
  const int64_t L = ids.size(1);
  for (int64_t j = 0; j < n; ++j) {
    at::Tensor last = mp::forward_logits(m, ids).select(1, ids.size(1) - 1);
    ids = at::cat({ids, last.argmax(-1, /*keepdim=*/true)}, 1);
  }
  return ids.narrow(1, L, n);
}

mp::Model generate_model() {
  mp::Model m = mp::make_random_model(mp::config_from_json_text(kConfig, "tiny"), 21, at::kFloat);
  at::manual_seed(21);
  for (auto& [n, t] : m.weights) t = t + 0.3 * at::randn(t.sizes());  // peaked, varied logits
  return m;
}

TEST(Generate, GreedyEqualsArgmaxOfTheFullForward) {
  mp::Model m = generate_model();
  at::manual_seed(4);
  at::Tensor prompt = at::randint(0, 61, {2, 5}, at::kLong);
  mp::GenerateOptions opt;
  opt.max_new_tokens = 12;
  mp::GenerateResult r = mp::generate(m, prompt, opt);
  EXPECT_TRUE(at::equal(r.tokens_BN, greedy_by_forward(m, prompt, 12)));
  EXPECT_EQ(r.prefill_tokens, 10);
  EXPECT_EQ(r.decode_tokens, 22);
  EXPECT_GT(r.decode_tokens_per_second(), 0.0);
}

TEST(Generate, SamplingIsDeterministicInItsSeed) {
  mp::Model m = generate_model();
  at::Tensor prompt = at::tensor(std::vector<int64_t>{1, 2, 3}, at::kLong).unsqueeze(0);
  mp::GenerateOptions opt;
  opt.max_new_tokens = 16;
  opt.temperature = 2.0;
  opt.seed = 5;
  at::Tensor a = mp::generate(m, prompt, opt).tokens_BN, b = mp::generate(m, prompt, opt).tokens_BN;
  opt.seed = 6;
  at::Tensor c = mp::generate(m, prompt, opt).tokens_BN;
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_FALSE(at::equal(a, c));
}

TEST(GenerateCli, PrintsGreedyIdsAndSpeeds) {
  mp::test::ScratchDir dir;
  mp::save_model(generate_model(), dir.file("model"));
  auto r = mp::test::run_cli("generate --model " + dir.file("model") + " --prompt-ids 1,2,3 --max-new-tokens 6 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json j = nlohmann::json::parse(r.output);
  std::vector<int64_t> got = j["generated_ids"];
  at::Tensor want = greedy_by_forward(mp::load_model(dir.file("model")),
                                      at::tensor(std::vector<int64_t>{1, 2, 3}, at::kLong).unsqueeze(0), 6);
  EXPECT_TRUE(at::equal(at::tensor(got, at::kLong).unsqueeze(0), want)) << r.output;
  EXPECT_EQ(j["prefill"]["tokens"], 3);
  EXPECT_EQ(j["decode"]["tokens"], 5);
  EXPECT_GT(j["decode"]["tokens_per_second"].get<double>(), 0.0);

  r = mp::test::run_cli("generate --model " + dir.file("model") + " --prompt-ids 1,2,3 --max-new-tokens 4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("tokens/s"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("decode 3 tokens"), std::string::npos) << r.output;

  r = mp::test::run_cli("generate --model " + dir.file("model") + " --prompt-ids 1,99 --max-new-tokens 4");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("token id 99"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  r = mp::test::run_cli("generate --model " + dir.file("model") + " --prompt-ids 1 --max-new-tokens 0");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = mp::test::run_cli("generate --help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("--prompt-ids"), std::string::npos) << r.output;
}

}  // namespace
