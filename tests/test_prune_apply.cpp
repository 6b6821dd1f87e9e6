// apply_plan: what slicing must preserve exactly.
// - Keeping everything gives the parent bit for bit; dropping layer i gives exactly the parent run
//   with skip_layer[i].
// - MLP neurons and attention query heads whose output columns are zero are inert: pruning them
//   leaves the logits unchanged up to fp32 rounding (the matmul sums just lose zero terms).
// - Mamba heads / head channels: zeroing out_proj columns is NOT enough, because the gated
//   RMSNorm mixes all channels of a group (its mean of squares). What is exact: zero the z rows of
//   in_proj for the pruned channels, so g = y * silu(0) = 0 there and they add nothing to the
//   group's sum of squares (and, through out_proj, nothing to the output). The mean then divides
//   by a smaller group size n', so the child equals the parent only after its gated-norm weight is
//   scaled by sqrt(n/n') -- exactly so when eps is negligible against mean(g^2).
// - Hidden channels: the same holds for RMSNorm over d: zero the channels in the embedding and in
//   every mixer's output rows (the residual stream is then zero there); with negligible eps the
//   child equals the parent once every RMSNorm weight is scaled by sqrt(d/d').
#include "common/error.h"
#include "model/forward.h"
#include "model/weights.h"
#include "prune/apply.h"
#include "prune/plan.h"
#include "tests/prune_fixtures.h"
#include "tests/tensor_checks.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <cmath>

namespace {

using mp::PruningPlan;

using mp::test::rel_err;

std::vector<int64_t> except(int64_t n, std::vector<int64_t> removed) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < n; ++i)
    if (std::find(removed.begin(), removed.end(), i) == removed.end()) v.push_back(i);
  return v;
}

TEST(PruneApply, KeepingEverythingIsBitIdentical) {
  at::NoGradGuard ng;
  mp::Model m = mp::test::prune_model(1);
  mp::Model child = mp::apply_plan(m, mp::identity_plan(m.config));
  EXPECT_TRUE(child.config == m.config);
  at::Tensor ids = mp::test::prune_ids(2, 19, 1);
  EXPECT_TRUE(at::equal(mp::forward_logits(child, ids), mp::forward_logits(m, ids)));
}

TEST(PruneApply, DroppingALayerEqualsSkippingIt) {
  at::NoGradGuard ng;
  mp::Model m = mp::test::prune_model(2);
  at::Tensor ids = mp::test::prune_ids(2, 13, 2);
  for (int64_t i = 0; i < m.config.num_layers(); ++i) {
    PruningPlan p = mp::identity_plan(m.config);
    p.kept_layers = except(m.config.num_layers(), {i});
    mp::Model child = mp::apply_plan(m, p);
    EXPECT_EQ(child.config.num_layers(), m.config.num_layers() - 1);
    mp::ForwardOptions fo;
    fo.skip_layer.assign(m.config.num_layers(), false);
    fo.skip_layer[i] = true;
    EXPECT_TRUE(at::equal(mp::forward_logits(child, ids), mp::forward_logits(m, ids, fo))) << "layer " << i;
  }
}

TEST(PruneApply, InertMlpNeuronsAndQueryHeadsPruneExactly) {
  at::NoGradGuard ng;
  mp::Model m = mp::test::prune_model(3);
  const std::vector<int64_t> neurons = {0, 5, 17, 30, 47};
  const std::vector<int64_t> heads = {0, 3};  // one query head of each kv group (heads 0,1 | 2,3)
  const int64_t hd = m.config.head_dim;
  for (int64_t i = 0; i < m.config.num_layers(); ++i) {
    if (m.config.layers[i] == mp::LayerType::Mlp) {
      at::Tensor w = m.layer_w(i, "mixer.down_proj.weight").clone();
      for (int64_t k : neurons) w.select(1, k).zero_();
      m.weights[mp::layer_tensor(i, "mixer.down_proj.weight")] = w;
    }
    if (m.config.layers[i] == mp::LayerType::Attention) {
      at::Tensor w = m.layer_w(i, "mixer.o_proj.weight").clone();
      for (int64_t h : heads) w.narrow(1, h * hd, hd).zero_();
      m.weights[mp::layer_tensor(i, "mixer.o_proj.weight")] = w;
    }
  }
  PruningPlan p = mp::identity_plan(m.config);
  for (int64_t i = 0; i < m.config.num_layers(); ++i) {
    if (m.config.layers[i] == mp::LayerType::Mlp) p.mlp[i] = except(48, neurons);
    if (m.config.layers[i] == mp::LayerType::Attention) p.attention[i] = except(4, heads);
  }
  mp::Model child = mp::apply_plan(m, p);
  EXPECT_EQ(child.config.intermediate_size, 43);
  EXPECT_EQ(child.config.num_attention_heads, 2);
  at::Tensor ids = mp::test::prune_ids(2, 17, 3);
  EXPECT_LT(rel_err(mp::forward_logits(child, ids), mp::forward_logits(m, ids)), 1e-6);
}

// Zeroes the z rows of in_proj for every (head, channel) pair the predicate selects.
template <typename Pred>
void silence_mamba(mp::Model& m, Pred removed) {
  const int64_t H = m.config.mamba_num_heads, P = m.config.mamba_head_dim;
  for (int64_t i = 0; i < m.config.num_layers(); ++i) {
    if (m.config.layers[i] != mp::LayerType::Mamba) continue;
    at::Tensor w = m.layer_w(i, "mixer.in_proj.weight").clone();
    for (int64_t h = 0; h < H; ++h)
      for (int64_t c = 0; c < P; ++c)
        if (removed(h, c)) w.select(0, h * P + c).zero_();  // z rows come first
    m.weights[mp::layer_tensor(i, "mixer.in_proj.weight")] = w;
  }
}

void scale_weights(mp::Model& m, const std::string& suffix, double factor) {
  for (auto& [n, t] : m.weights)
    if (n.size() >= suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) t = t * factor;
}

TEST(PruneApply, SilencedMambaHeadsAndChannelsPruneExactlyUpToTheGroupSizeRescale) {
  at::NoGradGuard ng;
  // Heads 1 (group 0) and 2 (group 1) go, and channels 2 and 5 of every kept head.
  auto removed = [](int64_t h, int64_t c) { return h == 1 || h == 2 || c == 2 || c == 5; };
  mp::Model m = mp::test::prune_model(4, /*eps=*/1e-30);
  silence_mamba(m, removed);
  PruningPlan p = mp::identity_plan(m.config);
  for (int64_t i = 0; i < m.config.num_layers(); ++i)
    if (m.config.layers[i] == mp::LayerType::Mamba) {
      p.mamba_heads[i] = {0, 3};
      p.mamba_channels[i] = except(8, {2, 5});
    }
  mp::Model child = mp::apply_plan(m, p);
  EXPECT_EQ(child.config.mamba_num_heads, 2);
  EXPECT_EQ(child.config.mamba_head_dim, 6);
  at::Tensor ids = mp::test::prune_ids(2, 21, 4);
  at::Tensor ref = mp::forward_logits(m, ids);
  // Group size 2 x 8 = 16 channels in the parent, 1 x 6 = 6 in the child.
  const double unscaled = rel_err(mp::forward_logits(child, ids), ref);
  scale_weights(child, "mixer.norm.weight", std::sqrt(16.0 / 6.0));
  EXPECT_LT(rel_err(mp::forward_logits(child, ids), ref), 1e-6);
  EXPECT_GT(unscaled, 1e-3);  // the rescale is really needed: the group mean changed
}

TEST(PruneApply, MambaHeadsKeepTheirGroupsWhenEachGroupKeepsTheSameNumber) {
  at::NoGradGuard ng;
  // Keep heads 1 and 3 (one of each group): group-aware slicing must give child head 1 group 1's
  // B/C and norm group; a silenced-head model that keeps them proves it.
  mp::Model m = mp::test::prune_model(5, 1e-30);
  silence_mamba(m, [](int64_t h, int64_t) { return h == 0 || h == 2; });
  PruningPlan p = mp::identity_plan(m.config);
  for (int64_t i = 0; i < m.config.num_layers(); ++i)
    if (m.config.layers[i] == mp::LayerType::Mamba) p.mamba_heads[i] = {1, 3};
  mp::Model child = mp::apply_plan(m, p);
  scale_weights(child, "mixer.norm.weight", std::sqrt(2.0));
  at::Tensor ids = mp::test::prune_ids(1, 25, 5);
  EXPECT_LT(rel_err(mp::forward_logits(child, ids), mp::forward_logits(m, ids)), 1e-6);
}

TEST(PruneApply, ZeroHiddenChannelsPruneExactlyUpToTheNormRescale) {
  at::NoGradGuard ng;
  mp::Model m = mp::test::prune_model(6, 1e-30);
  const std::vector<int64_t> gone = {1, 4, 9, 10, 22, 31};
  auto zero = [&](const std::string& name, int64_t dim) {
    at::Tensor w = m.w(name).clone();
    for (int64_t k : gone) w.select(dim, k).zero_();
    m.weights[name] = w;
  };
  zero(mp::kEmbeddingName, 1);
  for (int64_t i = 0; i < m.config.num_layers(); ++i)
    for (const char* s : {"mixer.out_proj.weight", "mixer.o_proj.weight", "mixer.down_proj.weight"})
      if (m.weights.count(mp::layer_tensor(i, s))) zero(mp::layer_tensor(i, s), 0);
  PruningPlan p = mp::identity_plan(m.config);
  p.hidden = except(32, gone);
  mp::Model child = mp::apply_plan(m, p);
  EXPECT_EQ(child.config.hidden_size, 26);
  for (const auto& [n, t] : child.weights)
    if (n.find("norm") != std::string::npos && n.find("mixer.norm") == std::string::npos)
      child.weights[n] = t * std::sqrt(32.0 / 26.0);  // every RMSNorm over d
  at::Tensor ids = mp::test::prune_ids(2, 15, 6);
  EXPECT_LT(rel_err(mp::forward_logits(child, ids), mp::forward_logits(m, ids)), 1e-6);
}

TEST(PruneApply, EveryAxisAtOnceGivesAValidCheckpointShape) {
  at::NoGradGuard ng;
  mp::Model m = mp::test::prune_model(7);
  PruningPlan p = mp::identity_plan(m.config);
  p.kept_layers = {0, 1, 2, 4};
  p.hidden = except(32, {0, 1, 2, 3, 4, 5, 6, 7});
  for (int64_t i = 0; i < m.config.num_layers(); ++i) {
    p.mlp[i] = except(48, {3, 4, 5, 6, 7, 8, 9, 10});
    p.attention[i] = {1, 2};
    p.mamba_heads[i] = {0, 2};
    p.mamba_channels[i] = {0, 1, 2, 3};
  }
  mp::Model child = mp::apply_plan(m, p);
  EXPECT_EQ(child.config.pattern(), "M*--");
  for (const mp::TensorSpec& s : mp::expected_tensors(child.config))
    EXPECT_EQ(child.w(s.name).sizes(), at::IntArrayRef(s.shape)) << s.name;
  EXPECT_EQ(child.weights.size(), mp::expected_tensors(child.config).size());
  at::Tensor logits = mp::forward_logits(child, mp::test::prune_ids(1, 9, 7));
  EXPECT_TRUE(at::isfinite(logits).all().item<bool>());
}

TEST(PruneApply, InvalidPlansAreRefused) {
  mp::Model m = mp::test::prune_model(8);
  auto refused = [&](const PruningPlan& p, const std::string& needle) {
    try {
      mp::apply_plan(m, p);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const mp::Error& e) {
      EXPECT_EQ(e.kind(), mp::ErrorKind::BadInput);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  PruningPlan p = mp::identity_plan(m.config);
  p.mamba_heads[0] = {0, 1, 2};  // group 0 keeps 2, group 1 keeps 1
  refused(p, "every group must keep the same number");
  p = mp::identity_plan(m.config);
  p.mlp[2] = except(48, {1});
  refused(p, "homogeneous");
  p = mp::identity_plan(m.config);
  p.hidden = {3, 2};
  refused(p, "ascending");
  p = mp::identity_plan(m.config);
  p.kept_layers = {0, 9};
  refused(p, "outside");
}

}  // namespace
