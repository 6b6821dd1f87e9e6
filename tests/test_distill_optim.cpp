// Learning-rate schedule values, AdamW against a hand-computed update, the weight-decay set,
// gradient clipping and the optimizer state round trip.
#include "distill/optim.h"
#include "distill/schedule.h"
#include "model/config.h"
#include "model/weights.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

namespace {

TEST(DistillSchedule, WarmupThenCosineToMinLr) {
  mp::LrSchedule s{1.0, 0.1, 4, 14};
  EXPECT_DOUBLE_EQ(s.at(0), 0.25);
  EXPECT_DOUBLE_EQ(s.at(1), 0.5);
  EXPECT_DOUBLE_EQ(s.at(3), 1.0);
  EXPECT_DOUBLE_EQ(s.at(4), 1.0);                                              // q = 0
  EXPECT_NEAR(s.at(9), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.5)), 1e-15);  // q = 1/2
  EXPECT_NEAR(s.at(13), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.9)), 1e-15);  // last step
  EXPECT_DOUBLE_EQ(s.at(14), 0.1);
  mp::LrSchedule none{2.0, 0.0, 0, 3};
  EXPECT_DOUBLE_EQ(none.at(0), 2.0);
  for (int64_t i = 1; i < 14; ++i) EXPECT_LE(s.at(i + 4), s.at(i + 3));  // monotone after warmup
}

TEST(DistillAdamW, TwoStepsMatchHandComputedUpdate) {
  const double lr = 0.1, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
  mp::AdamWOptions o{b1, b2, eps, wd};
  // A [1, 2] matrix (decayed) and a 1-D vector (not decayed), same numbers.
  at::Tensor p0 = at::tensor({1.0f, -2.0f});
  mp::AdamW opt({{"w", p0.view({1, 2})}, {"norm.weight", p0}}, o);
  const double g1[2] = {0.5, -1.0}, g2[2] = {0.2, 0.3};
  opt.step({at::tensor({0.5f, -1.0f}).view({1, 2}), at::tensor({0.5f, -1.0f})}, lr);
  opt.step({at::tensor({0.2f, 0.3f}).view({1, 2}), at::tensor({0.2f, 0.3f})}, lr);
  for (int decay = 0; decay < 2; ++decay) {
    for (int i = 0; i < 2; ++i) {
      double p = i == 0 ? 1.0 : -2.0, m = 0, v = 0;
      for (int t = 1; t <= 2; ++t) {
        const double g = t == 1 ? g1[i] : g2[i];
        if (decay) p *= 1 - lr * wd;
        m = b1 * m + (1 - b1) * g;
        v = b2 * v + (1 - b2) * g * g;
        const double mh = m / (1 - std::pow(b1, t)), vh = v / (1 - std::pow(b2, t));
        p -= lr * mh / (std::sqrt(vh) + eps);
      }
      const at::Tensor& got = opt.masters()[decay ? 0 : 1];
      EXPECT_NEAR(got.reshape({2})[i].item<float>(), p, 1e-6) << "decay " << decay << " element " << i;
    }
  }
  EXPECT_EQ(opt.steps_taken(), 2);
  EXPECT_EQ(p0[0].item<float>(), 1.0f);  // the caller's tensor is never aliased
}

TEST(DistillAdamW, DecaysMatricesButNotNormsBiasesOrSsmParameters) {
  auto c = mp::config_from_json_text(R"({"hybrid_override_pattern": "M*-", "vocab_size": 16, "hidden_size": 8,
    "intermediate_size": 8, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4,
    "mamba_num_heads": 2, "mamba_head_dim": 4, "ssm_state_size": 4, "n_groups": 1, "chunk_size": 4})", "t");
  int decayed = 0, kept = 0;
  for (const auto& [name, t] : mp::init_weights(c, 0, at::kFloat)) {
    const bool no_decay = name.find("norm") != std::string::npos || name.find("bias") != std::string::npos ||
                          name.find("A_log") != std::string::npos || name.find(".D") != std::string::npos;
    EXPECT_EQ(mp::applies_weight_decay(name, t), !no_decay) << name;
    (no_decay ? kept : decayed) += 1;
  }
  EXPECT_EQ(kept, 3 + 5 + 1);  // 3 block norms; A_log, D, dt_bias, conv1d bias, gated norm; norm_f
  EXPECT_GT(decayed, 8);
}

TEST(DistillAdamW, ClipsTheGlobalNormAndKeepsSmallGradients) {
  at::Tensor a = at::tensor({3.0f}), b = at::tensor({4.0f});
  EXPECT_NEAR(mp::clip_grad_norm({a, b}, 1.0), 5.0, 1e-6);
  EXPECT_NEAR(a.item<float>(), 0.6f, 1e-6);
  EXPECT_NEAR(b.item<float>(), 0.8f, 1e-6);
  EXPECT_NEAR(mp::clip_grad_norm({a, b}, 10.0), 1.0, 1e-5);
  EXPECT_NEAR(a.item<float>(), 0.6f, 1e-6);  // unchanged below the limit
  at::Tensor n = at::tensor({NAN});
  EXPECT_TRUE(std::isnan(mp::clip_grad_norm({a, n}, 1.0)));
}

TEST(DistillAdamW, StateRoundTripContinuesExactly) {
  at::manual_seed(0);
  at::Tensor w = at::randn({3, 4}), g1 = at::randn({3, 4}), g2 = at::randn({3, 4});
  mp::AdamWOptions o;
  mp::AdamW a({{"w", w}}, o), b({{"w", at::zeros({3, 4})}}, o);
  a.step({g1}, 0.01);
  std::map<std::string, at::Tensor> st;
  for (auto& [n, t] : a.state_tensors()) st[n] = t.clone();
  b.load_state(st, a.steps_taken(), "test");
  a.step({g2}, 0.02);
  b.step({g2}, 0.02);
  EXPECT_TRUE(at::equal(a.masters()[0], b.masters()[0]));
  st.erase("exp_avg.w");
  EXPECT_THROW(b.load_state(st, 1, "test"), std::exception);
}

}  // namespace
