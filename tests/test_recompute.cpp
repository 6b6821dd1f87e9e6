// Activation recomputation (model/recompute.h): the same values and gradients as the plain
// forward, for every weight of every layer type, and the observer combination refused.
#include "common/error.h"
#include "model/forward.h"
#include "model/model.h"
#include "tests/distill_fixture.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace {

std::map<std::string, at::Tensor> grads_of(const mp::Model& m, const at::Tensor& ids, bool recompute, at::Tensor* out) {
  for (auto& [n, t] : m.weights) t.mutable_grad() = at::Tensor();
  mp::ForwardOptions o;
  o.recompute = recompute;
  at::Tensor h = mp::forward_hidden(m, ids, o);
  *out = h.detach().clone();
  // A loss that weighs every position and channel differently, so no gradient is trivially zero.
  at::Tensor w = at::linspace(-1, 1, h.numel()).reshape(h.sizes());
  (h * w).sum().backward();
  std::map<std::string, at::Tensor> g;
  for (const auto& [n, t] : m.weights) g[n] = t.grad().defined() ? t.grad().clone() : at::Tensor();
  return g;
}

TEST(Recompute, SameValuesAndGradientsAsThePlainForward) {
  mp::Model m = mp::make_random_model(mp::test::distill_tiny_config(), 5, at::kFloat);
  for (auto& [n, t] : m.weights) t.set_requires_grad(true);
  at::manual_seed(1);
  const at::Tensor ids = at::randint(0, m.config.vocab_size, {2, 19}, at::TensorOptions().dtype(at::kLong));
  at::Tensor h_plain, h_re;
  const auto plain = grads_of(m, ids, false, &h_plain);
  const auto re = grads_of(m, ids, true, &h_re);
  EXPECT_TRUE(at::equal(h_plain, h_re));
  int compared = 0;
  for (const auto& [n, g] : plain) {
    ASSERT_EQ(g.defined(), re.at(n).defined()) << n;
    if (!g.defined()) continue;  // final norm and LM head: not part of forward_hidden
    ++compared;
    const double err = (re.at(n) - g).abs().max().item<double>() / (g.abs().max().item<double>() + 1e-30);
    EXPECT_LT(err, 1e-5) << n;
  }
  EXPECT_EQ(compared, static_cast<int>(m.weights.size()) - 2);
}

TEST(Recompute, RefusesAnObserver) {
  mp::Model m = mp::make_random_model(mp::test::distill_tiny_config(), 5, at::kFloat);
  mp::Observer obs = [](int64_t, mp::Site, const at::Tensor&) {};
  mp::ForwardOptions o;
  o.recompute = true;
  o.observer = &obs;
  EXPECT_THROW(mp::forward_hidden(m, at::zeros({1, 4}, at::kLong), o), mp::Error);
}

}  // namespace
