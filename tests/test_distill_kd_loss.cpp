// The fused, sliced KD loss against the plain formula in float64 with autograd: values and
// gradients for every loss kind, temperatures != 1, token counts that are not a multiple of the
// slice, and float32 inputs.
#include "common/error.h"
#include "distill/kd_loss.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

namespace {

struct Ref {
  at::Tensor loss, kl, ce, grad_h, grad_w;
};

// loss = tau^2 KL(p_t^tau || p_s^tau) (+ CE at tau 1), token means, by autograd in float64.
Ref reference(const at::Tensor& hs0, const at::Tensor& ws0, const at::Tensor& ht, const at::Tensor& wt,
              const at::Tensor& tgt, mp::LossKind kind, double tau) {
  at::Tensor hs = hs0.to(at::kDouble).detach().set_requires_grad(true);
  at::Tensor ws = ws0.to(at::kDouble).detach().set_requires_grad(true);
  at::Tensor zs = at::mm(hs, ws.t()), zt = at::mm(ht.to(at::kDouble), wt.to(at::kDouble).t());
  at::Tensor lps = at::log_softmax(zs / tau, -1), lpt = at::log_softmax(zt / tau, -1);
  Ref r;
  r.kl = (at::exp(lpt) * (lpt - lps)).sum(-1).mean();
  r.ce = -at::log_softmax(zs, -1).gather(1, tgt.unsqueeze(1)).mean();
  r.loss = at::zeros({}, at::kDouble);
  if (kind != mp::LossKind::CE) r.loss = r.loss + r.kl * (tau * tau);
  if (kind != mp::LossKind::KL) r.loss = r.loss + r.ce;
  // A grad_output != 1 checks that backward scales by it.
  (r.loss * 0.75).backward();
  r.grad_h = hs.grad().clone();
  r.grad_w = ws.grad().clone();
  return r;
}

void check(int64_t T, int64_t d, int64_t dt, int64_t V, int64_t slice, at::ScalarType dtype, double tol) {
  at::manual_seed(T * 100 + V);
  at::Tensor hs = at::randn({T, d}, at::kDouble), ws = at::randn({V, d}, at::kDouble) * 0.7;
  at::Tensor ht = at::randn({T, dt}, at::kDouble), wt = at::randn({V, dt}, at::kDouble) * 0.7;
  at::Tensor tgt = at::randint(0, V, {T}, at::kLong);
  for (mp::LossKind kind : {mp::LossKind::KL, mp::LossKind::KLPlusCE, mp::LossKind::CE}) {
    for (double tau : {1.0, 2.5, 0.6}) {
      SCOPED_TRACE(testing::Message() << "T " << T << " V " << V << " slice " << slice << " kind "
                                      << mp::loss_kind_name(kind) << " tau " << tau << " dtype " << dtype);
      Ref ref = reference(hs, ws, ht, wt, tgt, kind, tau);
      at::Tensor h = hs.to(dtype).clone().set_requires_grad(true), w = ws.to(dtype).clone().set_requires_grad(true);
      mp::KdLossOptions o;
      o.kind = kind, o.temperature = tau, o.slice_tokens = slice;
      mp::KdLossResult got = mp::kd_loss(h, w, ht.to(dtype), wt.to(dtype), tgt, o);
      (got.loss * 0.75).backward();
      EXPECT_NEAR(got.loss.item<double>(), ref.loss.item<double>(), tol * (1 + std::fabs(ref.loss.item<double>())));
      EXPECT_NEAR(got.ce, ref.ce.item<double>(), tol * (1 + ref.ce.item<double>()));
      if (kind != mp::LossKind::CE) EXPECT_NEAR(got.kl, ref.kl.item<double>(), tol * (1 + ref.kl.item<double>()));
      ASSERT_EQ(h.grad().scalar_type(), dtype);
      ASSERT_EQ(w.grad().scalar_type(), dtype);
      const double gh_scale = ref.grad_h.abs().max().item<double>(), gw_scale = ref.grad_w.abs().max().item<double>();
      EXPECT_LE((h.grad().to(at::kDouble) - ref.grad_h).abs().max().item<double>(), tol * gh_scale);
      EXPECT_LE((w.grad().to(at::kDouble) - ref.grad_w).abs().max().item<double>(), tol * gw_scale);
    }
  }
}

TEST(DistillKdLoss, MatchesFloat64ReferenceAcrossShapesKindsAndTemperatures) {
  check(7, 5, 4, 11, 3, at::kDouble, 1e-10);    // T not a multiple of the slice; teacher narrower
  check(16, 8, 8, 33, 16, at::kDouble, 1e-10);  // one slice exactly
  check(37, 6, 9, 50, 8, at::kDouble, 1e-10);   // several slices and a short tail; teacher wider
  check(1, 4, 4, 7, 1024, at::kDouble, 1e-10);  // a single token
  check(37, 6, 9, 50, 8, at::kFloat, 2e-5);     // float32 inputs against the float64 formula
}

TEST(DistillKdLoss, IdenticalLogitsGiveExactlyZeroKlAndGradient) {
  at::manual_seed(3);
  at::Tensor h = at::randn({19, 6}), w = at::randn({23, 6});
  at::Tensor hs = h.clone().set_requires_grad(true), ws = w.clone().set_requires_grad(true);
  mp::KdLossOptions o;
  o.slice_tokens = 5;
  mp::KdLossResult r = mp::kd_loss(hs, ws, h, w, at::Tensor(), o);
  r.loss.backward();
  EXPECT_EQ(r.kl, 0.0);
  EXPECT_EQ(r.loss.item<double>(), 0.0);
  EXPECT_EQ(hs.grad().abs().max().item<float>(), 0.0f);
  EXPECT_EQ(ws.grad().abs().max().item<float>(), 0.0f);
}

TEST(DistillKdLoss, RefusesMismatchedVocabulariesAndMissingInputs) {
  at::Tensor h = at::randn({4, 6}), w = at::randn({10, 6}), w2 = at::randn({12, 6});
  mp::KdLossOptions o;
  try {
    mp::kd_loss(h, w, h, w2, at::Tensor(), o);
    FAIL() << "no error";
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.kind(), mp::ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find("vocabulary 12"), std::string::npos) << e.what();
  }
  o.kind = mp::LossKind::CE;
  EXPECT_THROW(mp::kd_loss(h, w, {}, {}, at::Tensor(), o), mp::Error);  // CE needs targets
  EXPECT_THROW(mp::parse_loss_kind("mse"), mp::Error);
}

}  // namespace
