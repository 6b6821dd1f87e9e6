// The pieces of sharded training alone: the flat-unit layout (padding, every element owned by
// exactly one rank), sharded AdamW against the whole-tensor AdamW, and the sharded student's
// forward, backward and update with ranks as threads (an in-process communicator) against an
// unsharded model computing the data-parallel mean of the same batches.
#include "distill/dist/data_parallel.h"
#include "distill/optim.h"
#include "distill/shard/shard_layout.h"
#include "distill/shard/sharded_adamw.h"
#include "distill/shard/sharded_model.h"
#include "model/forward.h"
#include "model/weights.h"
#include "tests/dist_test_util.h"
#include "tests/distill_fixture.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <thread>

namespace {

using namespace mp::shard;

mp::Model tiny_model(uint64_t seed) { return mp::make_random_model(mp::test::distill_tiny_config(), seed, at::kFloat); }

TEST(ShardLayout, UnitsArePaddedAndEveryElementHasOneOwner) {
  const mp::Model m = tiny_model(3);
  for (int64_t W : {1, 2, 3, 4}) {
    std::map<std::string, std::vector<int>> owners;
    for (const auto& [n, t] : m.weights) owners[n].assign(static_cast<size_t>(t.numel()), 0);
    for (int64_t r = 0; r < W; ++r) {
      ShardLayout lay(m, W, r);
      ASSERT_EQ(lay.num_units(), m.config.num_layers() + 2);
      EXPECT_EQ(lay.units().front().tensors.front().name, mp::kEmbeddingName);
      EXPECT_EQ(lay.units().back().tensors.back().name, mp::kLmHeadName);
      for (const Unit& u : lay.units()) {
        EXPECT_EQ(u.padded % W, 0);
        EXPECT_LT(u.padded - u.numel, W);
        EXPECT_EQ(u.shard * W, u.padded);
      }
      for (const OwnedRange& o : lay.owned_ranges())
        for (int64_t i = o.begin; i < o.end; ++i) ++owners[o.name][static_cast<size_t>(i)];
    }
    for (const auto& [n, v] : owners)
      for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(v[i], 1) << n << " element " << i << " at W=" << W;
  }
}

TEST(ShardLayout, FlattenAndViewsRoundTrip) {
  const mp::Model m = tiny_model(4);
  ShardLayout lay(m, 3, 0);
  for (const Unit& u : lay.units()) {
    at::Tensor flat = flatten_unit(m, u, at::kFloat);
    EXPECT_EQ(flat.numel(), u.padded);
    EXPECT_EQ(flat.narrow(0, u.numel, u.padded - u.numel).abs().sum().item<double>(), 0.0);
    for (const auto& [n, v] : unit_views(flat, u)) EXPECT_TRUE(at::equal(v, m.w(n))) << n;
  }
}

// Three steps of AdamW: each rank's shard updated from its slice of the same gradients equals
// the whole-tensor update (the same elementwise operations), decay on matrices only included.
TEST(ShardAdamW, ShardsEqualTheWholeTensorUpdate) {
  const mp::Model m = tiny_model(5);
  const int64_t W = 3;
  mp::AdamWOptions ao;
  ao.weight_decay = 0.3;
  std::vector<std::pair<std::string, at::Tensor>> params = m.ordered();
  mp::AdamW whole(params, ao);
  std::vector<std::unique_ptr<ShardLayout>> lays;
  std::vector<std::unique_ptr<ShardedAdamW>> shards;
  for (int64_t r = 0; r < W; ++r) {
    lays.push_back(std::make_unique<ShardLayout>(m, W, r));
    std::vector<at::Tensor> own;
    for (const Unit& u : lays.back()->units())
      own.push_back(flatten_unit(m, u, at::kFloat).narrow(0, r * u.shard, u.shard).clone());
    shards.push_back(std::make_unique<ShardedAdamW>(*lays.back(), own, ao));
  }
  at::manual_seed(11);
  for (int step = 0; step < 3; ++step) {
    mp::Model g;
    g.config = m.config;
    std::vector<at::Tensor> grads;
    for (const auto& [n, t] : params) grads.push_back(g.weights[n] = at::randn_like(t));
    whole.step(grads, 1e-2);
    for (int64_t r = 0; r < W; ++r) {
      const auto& units = lays[r]->units();
      for (size_t k = 0; k < units.size(); ++k)
        shards[r]->grads()[k].copy_(flatten_unit(g, units[k], at::kFloat).narrow(0, r * units[k].shard, units[k].shard));
      shards[r]->step(1e-2);
    }
  }
  std::map<std::string, at::Tensor> want;
  for (auto& [n, t] : whole.state_tensors()) want[n] = t;
  for (int64_t r = 0; r < W; ++r)
    for (const OwnedState& s : shards[r]->owned_state()) {
      const int64_t n = s.range.end - s.range.begin;
      if (n == 0) continue;
      auto slice = [&](const std::string& key) { return want.at(key + s.range.name).reshape({-1}).narrow(0, s.range.begin, n); };
      EXPECT_TRUE(at::allclose(s.master, slice("master."), 1e-6, 1e-7)) << s.range.name << " rank " << r;
      EXPECT_TRUE(at::allclose(s.exp_avg, slice("exp_avg."), 1e-6, 1e-7)) << s.range.name;
      EXPECT_TRUE(at::allclose(s.exp_avg_sq, slice("exp_avg_sq."), 1e-6, 1e-9)) << s.range.name;
    }
}

// One training step through ShardedStudent with ranks as threads: rank r runs rows r, r + W of
// the batch; the gradient shards, the gathered optimizer state and the updated model equal an
// unsharded model's step on the mean gradient. Both modes, with the hidden-residual observer on.
void expect_step_matches(ShardMode mode, int64_t W) {
  const mp::Model m = tiny_model(6);
  const mp::ModelConfig cfg = m.config;
  at::manual_seed(12);
  const int64_t B = 2 * W, L = 8;
  at::Tensor ids = at::randint(cfg.vocab_size, {B, L + 1}, at::kLong);
  mp::AdamWOptions ao;

  // Reference: every rank's rows, loss mean over ranks of rank losses.
  std::vector<std::pair<std::string, at::Tensor>> params = m.ordered();
  mp::AdamW ref_opt(params, ao);
  mp::Model ref;
  ref.config = cfg;
  for (size_t i = 0; i < params.size(); ++i) ref.weights[params[i].first] = ref_opt.masters()[i].clone().requires_grad_(true);
  auto rank_loss = [&](const mp::Model& mm, int64_t r) {
    at::Tensor rows = ids.slice(0, r, B, W);
    at::Tensor logits = mp::forward_logits(mm, rows.narrow(1, 0, L));
    return at::cross_entropy_loss(logits.reshape({-1, cfg.vocab_size}), rows.narrow(1, 1, L).reshape({-1}));
  };
  for (int64_t r = 0; r < W; ++r) (rank_loss(ref, r) / static_cast<double>(W)).backward();
  std::vector<at::Tensor> ref_grads;
  for (const auto& [n, t] : params) ref_grads.push_back(ref.weights.at(n).grad().clone());
  ref_opt.step(ref_grads, 1e-2);

  mp::test::LocalGroup group(W);
  std::vector<mp::Model> got(W);
  std::vector<std::unique_ptr<mp::AdamW>> got_opt(W);
  std::vector<double> norms(W);
  std::vector<std::thread> threads;
  for (int64_t r = 0; r < W; ++r)
    threads.emplace_back([&, r] {
      mp::test::LocalComm comm(group, r);
      mp::AdamW full(params, ao);
      ShardedStudent s(*mp::shard::optimizer_source(full, cfg), mode, at::kFloat, ao, comm, at::kCPU);
      s.begin_micro();
      at::Tensor rows = ids.slice(0, r, B, W);
      std::vector<at::Tensor> seen;
      mp::Observer obs = [&](int64_t, mp::Site, const at::Tensor& h) { seen.push_back(h); };
      at::Tensor h = s.runner().forward_hidden(rows.narrow(1, 0, L), &obs, false, false);
      EXPECT_EQ(seen.size(), static_cast<size_t>(cfg.num_layers() + 1));
      at::Tensor loss = s.runner().head(h, [&](const mp::Model& v, const at::Tensor& x) {
        at::Tensor logits = mp::lm_head_logits(v, mp::apply_final_norm(v, x));
        return at::cross_entropy_loss(logits.reshape({-1, cfg.vocab_size}), rows.narrow(1, 1, L).reshape({-1}));
      });
      loss.backward();
      s.finish_grads();
      norms[r] = s.clip(0.0);
      s.step(1e-2);
      got[r] = s.gather_model(r == 0);
      got_opt[r] = s.gather_optimizer(r == 0);
    });
  for (auto& t : threads) t.join();
  EXPECT_NEAR(norms[0], mp::global_grad_norm(ref_grads), 1e-5 * mp::global_grad_norm(ref_grads));
  for (int64_t r = 1; r < W; ++r) EXPECT_EQ(norms[r], norms[0]);
  std::map<std::string, at::Tensor> want, have;
  for (auto& [n, t] : ref_opt.state_tensors()) want[n] = t;
  for (auto& [n, t] : got_opt[0]->state_tensors()) have[n] = t;
  for (const auto& [n, t] : want) EXPECT_TRUE(at::allclose(have.at(n), t, 1e-5, 1e-6)) << n;
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_TRUE(at::allclose(got[0].w(params[i].first), ref_opt.masters()[i], 1e-5, 1e-6)) << params[i].first;
}

// Ranks started with different --shard settings are refused at the rendezvous (the fingerprint).
TEST(ShardLayout, TheShardModeIsPartOfTheSettingsFingerprint) {
  mp::TrainConfig a = mp::default_train_config("train"), b = a;
  b.shard = "full";
  EXPECT_NE(mp::dist::job_fingerprint(a), mp::dist::job_fingerprint(b));
}

TEST(ShardStudent, OptimizerShardingStepEqualsTheUnshardedStep) { expect_step_matches(ShardMode::Optimizer, 3); }
TEST(ShardStudent, FullShardingStepEqualsTheUnshardedStep) { expect_step_matches(ShardMode::Full, 3); }
TEST(ShardStudent, FullShardingAtOneRankEqualsTheUnshardedStep) { expect_step_matches(ShardMode::Full, 1); }

}  // namespace
