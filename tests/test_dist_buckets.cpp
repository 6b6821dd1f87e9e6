// Gradient buckets alone (grad_buckets.h), with ranks as threads and an in-process
// communicator: the layout rule, buckets starting in order while the backward still runs, and
// the averaged gradients equal to a plain (sum over ranks) / W of each rank's accumulated grads.
#include "distill/dist/grad_buckets.h"
#include "tests/dist_test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

namespace {

using mp::dist::GradBuckets;
using mp::dist::plan_buckets;

// Registration order: an unused vector, then a 3-layer MLP (W1 b1 W2 b2 W3).
std::vector<at::Tensor> make_params() {
  at::manual_seed(7);
  std::vector<at::Tensor> p = {at::randn({3}), at::randn({8, 6}), at::randn({6}), at::randn({6, 5}),
                               at::randn({5}), at::randn({5, 1})};
  for (at::Tensor& t : p) t.set_requires_grad(true);
  return p;
}
std::vector<at::Tensor> clone_params(const std::vector<at::Tensor>& p) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& t : p) out.push_back(t.detach().clone().set_requires_grad(true));
  return out;
}

at::Tensor loss_of(const std::vector<at::Tensor>& p, const at::Tensor& x) {
  at::Tensor h = at::tanh(at::matmul(x, p[1]) + p[2]);
  h = at::tanh(at::matmul(h, p[3]) + p[4]);
  return at::matmul(h, p[5]).pow(2).mean();
}

std::vector<at::Tensor> grads_of(const std::vector<at::Tensor>& p) {
  std::vector<at::Tensor> g;
  for (const at::Tensor& t : p) g.push_back(t.grad().defined() ? t.grad() : at::zeros_like(t));
  return g;
}

TEST(DistBuckets, LayoutIsReverseOrderCappedAndSplitByDtype) {
  std::vector<at::Tensor> p = make_params();
  // 120 bytes: W3+b2 (40 B) | W2 (120 B) | b1 (24 B) | W1 (192 B, over the cap alone) + unused
  EXPECT_EQ(plan_buckets(p, 120), (std::vector<std::vector<size_t>>{{5, 4}, {3}, {2}, {1}, {0}}));
  EXPECT_EQ(plan_buckets(p, 1 << 20), (std::vector<std::vector<size_t>>{{5, 4, 3, 2, 1, 0}}));
  p[2] = at::zeros({6}, at::kDouble);
  EXPECT_EQ(plan_buckets(p, 1 << 20), (std::vector<std::vector<size_t>>{{5, 4, 3}, {2}, {1, 0}}));
}

TEST(DistBuckets, AverageOverRanksEqualsThePlainSumAndOverlapsTheBackward) {
  const int64_t W = 3, micro = 2, steps = 2;
  const std::vector<at::Tensor> init = make_params();
  std::vector<std::vector<std::vector<at::Tensor>>> inputs(steps);  // [step][rank][micro]
  for (auto& per_rank : inputs)
    for (int64_t r = 0; r < W; ++r) {
      per_rank.emplace_back();
      for (int64_t m = 0; m < micro; ++m) per_rank.back().push_back(at::randn({4, 8}));
    }

  // The reference: each rank's accumulated gradients without hooks, (sum in rank order) / W.
  std::vector<std::vector<at::Tensor>> expected(steps);
  for (int64_t s = 0; s < steps; ++s) {
    for (int64_t r = 0; r < W; ++r) {
      std::vector<at::Tensor> p = clone_params(init);
      for (int64_t m = 0; m < micro; ++m) (loss_of(p, inputs[s][r][m]) * 0.5).backward();
      std::vector<at::Tensor> g = grads_of(p);
      if (r == 0) for (const at::Tensor& t : g) expected[s].push_back(t.clone());
      else for (size_t i = 0; i < g.size(); ++i) expected[s][i].add_(g[i]);
    }
    for (at::Tensor& t : expected[s]) t.div_(static_cast<double>(W));
  }

  mp::test::LocalGroup group(W);
  std::vector<std::vector<std::string>> logs(W);
  std::vector<std::vector<std::vector<at::Tensor>>> got(W);  // [rank][step]
  std::vector<std::thread> threads;
  for (int64_t r = 0; r < W; ++r)
    threads.emplace_back([&, r] {
      std::vector<at::Tensor> p = clone_params(init);
      mp::test::LocalComm comm(group, r, &logs[r]);
      GradBuckets buckets(p, 120, comm);
      for (size_t i = 0; i < p.size(); ++i)  // after the buckets' hooks: records when each fired
        p[i].register_hook([&, r, i](const at::Tensor&) { logs[r].push_back("grad " + std::to_string(i)); });
      for (int64_t s = 0; s < steps; ++s) {
        for (int64_t m = 0; m < micro; ++m) {
          if (m + 1 == micro) buckets.arm();
          (loss_of(p, inputs[s][r][m]) * 0.5).backward();
        }
        std::vector<at::Tensor> g = grads_of(p);
        buckets.finish(g);
        got[r].push_back(g);
        for (at::Tensor& t : p) t.mutable_grad() = at::Tensor();
      }
    });
  for (auto& t : threads) t.join();

  for (int64_t r = 0; r < W; ++r) {
    for (int64_t s = 0; s < steps; ++s)
      for (size_t i = 0; i < init.size(); ++i)
        EXPECT_TRUE(at::equal(got[r][s][i], expected[s][i])) << "rank " << r << " step " << s << " param " << i;
    // Five buckets per step, started in order with their sizes; the first before the backward
    // reached W1 (so its all-reduce overlapped the rest of the backward); the bucket holding the
    // unused parameter last, from finish().
    std::vector<std::string> launches;
    for (const std::string& e : logs[r])
      if (e.rfind("launch", 0) == 0) launches.push_back(e);
    EXPECT_EQ(launches, (std::vector<std::string>{"launch 0 numel 10", "launch 1 numel 30", "launch 2 numel 6",
                                                  "launch 3 numel 48", "launch 4 numel 3", "launch 5 numel 10",
                                                  "launch 6 numel 30", "launch 7 numel 6", "launch 8 numel 48",
                                                  "launch 9 numel 3"}));
    const auto& log = logs[r];
    const auto first = std::find(log.begin(), log.end(), "launch 0 numel 10");
    const auto last = std::find(first, log.end(), "launch 4 numel 3");
    EXPECT_NE(std::find(first, last, "grad 1"), last) << "bucket 0 should start before the backward reaches W1";
  }
}

}  // namespace
