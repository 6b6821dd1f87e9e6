// The chunked SSD scan against the plain sequential recurrence in float64.
#include "kernels/ssd_scan.h"
#include "tests/tensor_checks.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace {

struct ScanInputs {
  at::Tensor x, dt, A, B, C, D, dt_bias, s0;
};

ScanInputs random_inputs(int64_t b, int64_t L, int64_t H, int64_t P, int64_t G, int64_t N, uint64_t seed) {
  at::manual_seed(seed);
  ScanInputs in;
  in.x = at::randn({b, L, H, P});
  in.dt = at::randn({b, L, H});
  in.A = -at::exp(at::randn({H}) * 0.5);
  in.B = at::randn({b, L, G, N});
  in.C = at::randn({b, L, G, N});
  in.D = at::randn({H});
  in.dt_bias = at::randn({H}) - 1.0;
  in.s0 = at::randn({b, H, P, N});
  return in;
}

using mp::test::rel_err;

struct Case {
  int64_t b, L, H, P, G, N, chunk;
};

class SsdScanVsRecurrence : public ::testing::TestWithParam<Case> {};

TEST_P(SsdScanVsRecurrence, OutputAndFinalStateMatchFloat64Recurrence) {
  const Case c = GetParam();
  ScanInputs in = random_inputs(c.b, c.L, c.H, c.P, c.G, c.N, 42 + c.L + c.G);
  mp::SsdOptions opt;
  opt.chunk_size = c.chunk;
  for (bool with_state : {false, true}) {
    at::Tensor s0 = with_state ? in.s0 : at::Tensor();
    mp::SsdResult ref = mp::ssd_scan_sequential(in.x, in.dt, in.A, in.B, in.C, in.D, in.dt_bias, opt, s0);
    // The chunked path in float64 must equal the recurrence to rounding; in float32 to ~1e-5.
    auto d = [](const at::Tensor& t) { return t.to(at::kDouble); };
    mp::SsdResult r64 = mp::ssd_scan(d(in.x), d(in.dt), d(in.A), d(in.B), d(in.C), d(in.D), d(in.dt_bias), opt,
                                     with_state ? d(s0) : at::Tensor(), true);
    mp::SsdResult r32 = mp::ssd_scan(in.x, in.dt, in.A, in.B, in.C, in.D, in.dt_bias, opt, s0, true);
    EXPECT_LT(rel_err(r32.y_BLHP, ref.y_BLHP), 2e-5) << "L=" << c.L << " chunk=" << c.chunk;
    EXPECT_LT(rel_err(r32.final_state_BHPN, ref.final_state_BHPN), 2e-5);
    EXPECT_LT(rel_err(r64.y_BLHP, ref.y_BLHP), 2e-5);
    EXPECT_EQ(r32.y_BLHP.sizes(), in.x.sizes());
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, SsdScanVsRecurrence,
                         ::testing::Values(Case{2, 1, 4, 8, 2, 16, 8},     // L = 1
                                           Case{1, 5, 4, 8, 1, 8, 8},      // L < chunk, G = 1
                                           Case{2, 8, 4, 8, 4, 8, 8},      // L == chunk, G = H
                                           Case{2, 9, 4, 8, 2, 16, 8},     // chunk + 1
                                           Case{1, 37, 6, 4, 3, 8, 8},     // not a multiple, several chunks
                                           Case{2, 64, 8, 16, 2, 32, 16},  // several whole chunks
                                           Case{1, 50, 2, 32, 1, 4, 64}));  // chunk > L

TEST(SsdScan, ChunkSizeDoesNotChangeTheResult) {
  ScanInputs in = random_inputs(1, 40, 4, 8, 2, 8, 3);
  mp::SsdOptions a, b;
  a.chunk_size = 4;
  b.chunk_size = 32;
  at::Tensor ya = mp::ssd_scan(in.x, in.dt, in.A, in.B, in.C, in.D, in.dt_bias, a).y_BLHP;
  at::Tensor yb = mp::ssd_scan(in.x, in.dt, in.A, in.B, in.C, in.D, in.dt_bias, b).y_BLHP;
  EXPECT_LT(rel_err(ya, yb), 1e-5);
}

TEST(SsdScan, SplittingTheSequenceWithCarriedStateEqualsOnePass) {
  ScanInputs in = random_inputs(2, 30, 4, 8, 2, 8, 5);
  mp::SsdOptions opt;
  opt.chunk_size = 8;
  mp::SsdResult whole = mp::ssd_scan(in.x, in.dt, in.A, in.B, in.C, in.D, in.dt_bias, opt, {}, true);
  auto part = [&](const at::Tensor& t, int64_t s, int64_t n) { return t.narrow(1, s, n); };
  mp::SsdResult first = mp::ssd_scan(part(in.x, 0, 13), part(in.dt, 0, 13), in.A, part(in.B, 0, 13),
                                     part(in.C, 0, 13), in.D, in.dt_bias, opt, {}, true);
  mp::SsdResult second = mp::ssd_scan(part(in.x, 13, 17), part(in.dt, 13, 17), in.A, part(in.B, 13, 17),
                                      part(in.C, 13, 17), in.D, in.dt_bias, opt, first.final_state_BHPN, true);
  EXPECT_LT(rel_err(at::cat({first.y_BLHP, second.y_BLHP}, 1), whole.y_BLHP), 1e-5);
  EXPECT_LT(rel_err(second.final_state_BHPN, whole.final_state_BHPN), 1e-5);
}

TEST(SsdScan, DtLimitsClampAfterSoftplus) {
  ScanInputs in = random_inputs(1, 12, 2, 4, 1, 4, 9);
  mp::SsdOptions opt;
  opt.chunk_size = 4;
  opt.dt_min = 0.5;
  opt.dt_max = 0.6;
  at::Tensor dt = mp::ssd_effective_dt(in.dt, in.dt_bias, opt);
  EXPECT_GE(dt.min().item<float>(), 0.5f);
  EXPECT_LE(dt.max().item<float>(), 0.6f);
  mp::SsdResult ref = mp::ssd_scan_sequential(in.x, in.dt, in.A, in.B, in.C, in.D, in.dt_bias, opt);
  mp::SsdResult r = mp::ssd_scan(in.x, in.dt, in.A, in.B, in.C, in.D, in.dt_bias, opt);
  EXPECT_LT(rel_err(r.y_BLHP, ref.y_BLHP), 2e-5);
}

TEST(SsdScan, GradientsFlowToEveryInput) {
  for (int64_t L : {1, 10, 64}) {
    ScanInputs in = random_inputs(1, L, 2, 4, 1, 4, 11);
    std::vector<at::Tensor*> params = {&in.x, &in.dt, &in.A, &in.B, &in.C, &in.D, &in.dt_bias};
    for (at::Tensor* p : params) p->requires_grad_(true);
    mp::SsdOptions opt;
    opt.chunk_size = 16;
    mp::ssd_scan(in.x, in.dt, in.A, in.B, in.C, in.D, in.dt_bias, opt).y_BLHP.pow(2).sum().backward();
    for (at::Tensor* p : params) {
      ASSERT_TRUE(p->grad().defined());
      EXPECT_TRUE(at::isfinite(p->grad()).all().item<bool>()) << "L=" << L;
      // With one step and no initial state, y_0 = dt_0 (C_0 . B_0) x_0 + D x_0: A has no influence.
      if (L > 1 || p != &in.A) EXPECT_GT(p->grad().abs().sum().item<double>(), 0.0) << "L=" << L;
    }
  }
}

}  // namespace
