// Our CUDA kernels (kernels/cuda/*.cu through kernels/cuda_dispatch.h) against float64 references:
// the SSD scan forward against the sequential recurrence, its gradients and the conv1d's against
// float64 autograd through the LibTorch-ops path on the CPU, the fused RMSNorm's against float64
// autograd through a reference written in the test, and the whole model on CUDA against its CPU path. Skipped when the kernels were not built (MP_WITH_CUDA_KERNELS) or no GPU is present.
// Fresh random inputs every run (seeded from the clock); outputs NaN-poisoned before each launch.
#include "kernels/conv_norm.h"
#include "kernels/ssd_scan.h"
#include "model/forward.h"
#include "model/model.h"
#include "tests/tensor_checks.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>

#ifdef MP_WITH_CUDA_KERNELS
#include "kernels/cuda_dispatch.h"

#include <torch/csrc/autograd/autograd.h>
#endif

namespace {

#ifdef MP_WITH_CUDA_KERNELS

#define SKIP_WITHOUT_GPU() \
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device"

// A new seed every run (fresh inputs), or MP_TEST_SEED's to replay a failure's draw.
uint64_t fresh_seed() {
  if (const char* s = std::getenv("MP_TEST_SEED")) {
    char* end = nullptr;
    const uint64_t seed = std::strtoull(s, &end, 10);
    if (end == s || *end != '\0') {
      std::fprintf(stderr, "MP_TEST_SEED=%s: expected a decimal seed, as a failure message prints it\n", s);
      std::exit(2);
    }
    return seed;
  }
  return (uint64_t)std::chrono::steady_clock::now().time_since_epoch().count();
}

using mp::test::rel_err;

struct SsdCase {
  int64_t b, L, H, P, G, N, chunk;
};

struct SsdInputs {
  at::Tensor x, dt, A, B, C, D, dt_bias, s0;
  std::vector<at::Tensor*> all() { return {&x, &dt, &A, &B, &C, &D, &dt_bias, &s0}; }
};

// CPU float32 inputs; x, dt, B, C rounded to `dt` so that every path sees identical values.
SsdInputs ssd_inputs(const SsdCase& c, at::ScalarType io) {
  SsdInputs in;
  in.x = at::randn({c.b, c.L, c.H, c.P}).to(io).to(at::kFloat);
  in.dt = at::randn({c.b, c.L, c.H}).to(io).to(at::kFloat);
  in.A = -at::exp(at::randn({c.H}) * 0.5);
  in.B = at::randn({c.b, c.L, c.G, c.N}).to(io).to(at::kFloat);
  in.C = at::randn({c.b, c.L, c.G, c.N}).to(io).to(at::kFloat);
  in.D = at::randn({c.H});
  in.dt_bias = at::randn({c.H}) - 1.0;
  in.s0 = at::randn({c.b, c.H, c.P, c.N});
  return in;
}

class CudaSsd : public ::testing::TestWithParam<SsdCase> {};

TEST_P(CudaSsd, ForwardAndGradientsMatchFloat64) {
  SKIP_WITHOUT_GPU();
  const SsdCase c = GetParam();
  const uint64_t seed = fresh_seed();  // in every failure message, to replay the draw
  at::manual_seed(seed);
  mp::set_cuda_output_poison(true);
  mp::SsdOptions opt;
  opt.chunk_size = c.chunk;
  for (at::ScalarType io : {at::kFloat, at::kBFloat16}) {
    const bool bf = io == at::kBFloat16;
    for (bool with_state : {false, true}) {
      SsdInputs in = ssd_inputs(c, io);
      at::Tensor s0 = with_state ? in.s0 : at::Tensor();
      // Float64 ground truth (sequential) and float64 gradients through the exact chunked ops path.
      mp::SsdResult ref = mp::ssd_scan_sequential(in.x, in.dt, in.A, in.B, in.C, in.D, in.dt_bias, opt, s0);
      at::Tensor gy = at::randn(ref.y_BLHP.sizes(), at::kDouble), gs = at::randn(ref.final_state_BHPN.sizes(), at::kDouble);
      std::vector<at::Tensor> leaves64;
      for (at::Tensor* t : in.all()) leaves64.push_back(t->to(at::kDouble).requires_grad_(true));
      mp::SsdResult r64 = mp::ssd_scan_ops(leaves64[0], leaves64[1], leaves64[2], leaves64[3], leaves64[4], leaves64[5],
                                           leaves64[6], opt, with_state ? leaves64[7] : at::Tensor(), true);
      std::vector<at::Tensor> wrt(leaves64.begin(), leaves64.begin() + (with_state ? 8 : 7));
      auto g64 = torch::autograd::grad({r64.y_BLHP, r64.final_state_BHPN}, wrt, {gy, gs});

      // Ours: x, dt, B, C in the I/O dtype on the GPU; A, D, dt_bias, s0 fp32. Twice: the backward
      // recomputing the chunk states, and taking the forward's (SsdOptions::keep_chunk_states).
      for (bool keep : {false, true}) {
        std::vector<at::Tensor> leaves;
        for (size_t i = 0; i < 8; ++i) {
          at::Tensor t = in.all()[i]->cuda();
          if (i == 0 || i == 1 || i == 3 || i == 4) t = t.to(io);
          leaves.push_back(t.detach().requires_grad_(true));
        }
        mp::SsdOptions o = opt;
        o.keep_chunk_states = keep;
        mp::SsdResult r = mp::ssd_scan(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], leaves[5], leaves[6], o,
                                       with_state ? leaves[7] : at::Tensor(), true);
        ASSERT_EQ(r.y_BLHP.scalar_type(), io);
        const double ftol = bf ? 5e-3 : 1e-5, gtol = bf ? 2e-2 : 1e-4;
        const std::string tag = std::string(bf ? "bf16" : "fp32") + (with_state ? " +s0" : "") + " L=" +
                                std::to_string(c.L) + " P=" + std::to_string(c.P) + " N=" + std::to_string(c.N) +
                                " G=" + std::to_string(c.G) + (keep ? " kept states" : "") + " seed " +
                                std::to_string(seed);
        EXPECT_LE(rel_err(r.y_BLHP, ref.y_BLHP), ftol) << tag;
        EXPECT_LE(rel_err(r.final_state_BHPN, ref.final_state_BHPN), ftol) << tag;
        std::vector<at::Tensor> wrt_gpu(leaves.begin(), leaves.begin() + (with_state ? 8 : 7));
        auto g = torch::autograd::grad({r.y_BLHP, r.final_state_BHPN},
                                       wrt_gpu, {gy.to(r.y_BLHP.scalar_type()).cuda(), gs.to(at::kFloat).cuda()});
        const char* names[] = {"dx", "ddt", "dA", "dB", "dC", "dD", "ddt_bias", "ds0"};
        for (size_t i = 0; i < g.size(); ++i) EXPECT_LE(rel_err(g[i], g64[i]), gtol) << tag << " " << names[i];
      }
    }
  }
  mp::set_cuda_output_poison(false);
}

// The shape list: L = 1, L = chunk + 1, G = 1, G = H, P in {32, 64, 128}, N from 16
// to 256; each case runs in fp32 and bf16, with and without an initial state.
const SsdCase kSsdCases[] = {
    // L = 1: 32 one-step sequences (with 8, the bf16 errors, norm-wise over so few scalars,
    // crossed the tolerances in 2-5% of draws)
    {4, 1, 8, 64, 2, 64, 128},
    // chunk + 1, G = 1 (with 4 heads, bf16 dA crossed its tolerance in ~1-2% of draws: a
    // norm-wise error of a gradient summed with cancellation, over few heads)
    {1, 129, 8, 64, 1, 128, 128},
    {2, 200, 4, 32, 4, 16, 64},     // G = H, P = 32, N = 16
    {1, 300, 8, 128, 2, 256, 256},  // P = 128, N = 256
    {1, 200, 8, 64, 2, 256, 256},   // the 56B's P and N
    {1, 257, 6, 64, 3, 48, 128},    // N = 48, odd groups
    {2, 1000, 4, 64, 2, 128, 256},
    // 12 heads per group: the dx kernel's dt tails run for a full ring of 8 heads, then for 4
    {1, 130, 24, 64, 2, 64, 128},
    // 256 (b, h) blocks: enough that the backward's state passes walk the chunks sequentially
    // (no combine): one block per head at N = 32, two (N halves) at N = 64; at N = 128 and 256,
    // the 8B's and 56B's, one block per head holding all N on wgmma (an sm_90a build), else two
    {1, 130, 256, 64, 8, 32, 128},
    {1, 130, 256, 64, 8, 64, 128},
    {2, 130, 128, 64, 8, 128, 128},
    {1, 130, 256, 64, 8, 256, 256}};
INSTANTIATE_TEST_SUITE_P(Shapes, CudaSsd, ::testing::ValuesIn(kSsdCases));

TEST(CudaSsd, BackwardKernelsTakeEveryTestedShapeAndMatchWithAClamp) {
  // The gradient tests above go through the CUDA backward only if its kernels take the shape
  // (else the Function falls back to the ops path): check that they do, for each case and dtype.
  // Then a dt clamp (time_step_limit) whose bounds cut through the values: gradients against
  // float64 autograd through the ops path, zero where the clamp is active.
  SKIP_WITHOUT_GPU();
  at::manual_seed(fresh_seed());
  for (const SsdCase& c : kSsdCases)
    for (at::ScalarType io : {at::kFloat, at::kBFloat16}) {
      SsdInputs in = ssd_inputs(c, io);
      auto dev = [&](const at::Tensor& t, bool io_dtype) { return io_dtype ? t.cuda().to(io) : t.cuda(); };
      mp::SsdOptions opt;
      opt.chunk_size = c.chunk;
      at::Tensor dy = at::randn({c.b, c.L, c.H, c.P}, at::kCUDA).to(io);
      EXPECT_FALSE(mp::ssd_scan_cuda_backward(dev(in.x, true), dev(in.dt, true), dev(in.A, false), dev(in.B, true),
                                              dev(in.C, true), dev(in.D, false), dev(in.dt_bias, false),
                                              dev(in.s0, false), opt, dy, at::Tensor())
                       .empty())
          << "L=" << c.L << " P=" << c.P << " N=" << c.N << (io == at::kFloat ? " fp32" : " bf16");
    }

  const SsdCase c{1, 300, 4, 64, 2, 64, 128};
  mp::SsdOptions opt;
  opt.dt_min = 0.2;
  opt.dt_max = 0.9;
  SsdInputs in = ssd_inputs(c, at::kFloat);
  std::vector<at::Tensor> l64, lgpu;
  for (at::Tensor* t : in.all()) {
    l64.push_back(t->to(at::kDouble).requires_grad_(true));
    lgpu.push_back(t->cuda().requires_grad_(true));
  }
  at::Tensor gy = at::randn({c.b, c.L, c.H, c.P}, at::kDouble);
  mp::SsdResult r64 = mp::ssd_scan_ops(l64[0], l64[1], l64[2], l64[3], l64[4], l64[5], l64[6], opt, l64[7]);
  auto g64 = torch::autograd::grad({r64.y_BLHP}, l64, {gy});
  mp::SsdResult r = mp::ssd_scan(lgpu[0], lgpu[1], lgpu[2], lgpu[3], lgpu[4], lgpu[5], lgpu[6], opt, lgpu[7]);
  auto g = torch::autograd::grad({r.y_BLHP}, lgpu, {gy.to(at::kFloat).cuda()});
  const char* names[] = {"dx", "ddt", "dA", "dB", "dC", "dD", "ddt_bias", "ds0"};
  for (size_t i = 0; i < g.size(); ++i) EXPECT_LE(rel_err(g[i], g64[i]), 1e-4) << "clamped " << names[i];
  // Some steps are clamped (zero raw-dt gradient there) and some are not.
  at::Tensor zero = g[1].cpu().eq(0);
  EXPECT_TRUE(zero.any().item<bool>());
  EXPECT_FALSE(zero.all().item<bool>());
}

TEST(CudaSsd, StridedInputsFromOneProjection) {
  // The model's layout: x, B, C are narrows of one [B, L, conv_dim] tensor, dt of another.
  SKIP_WITHOUT_GPU();
  at::manual_seed(fresh_seed());
  const int64_t b = 2, L = 150, H = 8, P = 64, G = 2, N = 64, I = H * P;
  at::Tensor xBC = at::randn({b, L, I + 2 * G * N + H}, at::kCUDA).to(at::kBFloat16);
  at::Tensor x = xBC.narrow(-1, 0, I).view({b, L, H, P});
  at::Tensor Bm = xBC.narrow(-1, I, G * N).view({b, L, G, N});
  at::Tensor Cm = xBC.narrow(-1, I + G * N, G * N).view({b, L, G, N});
  at::Tensor dt = xBC.narrow(-1, I + 2 * G * N, H);
  at::Tensor A = -at::exp(at::randn({H}, at::kCUDA)), D = at::randn({H}, at::kCUDA), bias = at::randn({H}, at::kCUDA);
  mp::SsdOptions opt;
  mp::SsdResult ref = mp::ssd_scan_sequential(x.cpu(), dt.cpu(), A.cpu(), Bm.cpu(), Cm.cpu(), D.cpu(), bias.cpu(), opt);
  EXPECT_LE(rel_err(mp::ssd_scan(x, dt, A, Bm, Cm, D, bias, opt).y_BLHP, ref.y_BLHP), 5e-3);
}

TEST(CudaSsd, SegmentedScanMatchesSequential) {
  // The two-level (segmented) scan at explicit segment counts and head-dim tiles (segments 1 =
  // the single pass; 40 is more than there are chunks: clamped to one chunk per segment), with
  // and without an initial state, fp32 and bf16: y and the final state against float64.
  SKIP_WITHOUT_GPU();
  at::manual_seed(fresh_seed());
  mp::set_cuda_output_poison(true);
  const SsdCase c{2, 1000, 4, 64, 2, 64, 128};
  mp::SsdOptions opt;
  opt.chunk_size = c.chunk;
  for (at::ScalarType io : {at::kFloat, at::kBFloat16}) {
    const bool bf = io == at::kBFloat16;
    for (bool with_state : {false, true}) {
      SsdInputs in = ssd_inputs(c, io);
      at::Tensor s0 = with_state ? in.s0 : at::Tensor();
      mp::SsdResult ref = mp::ssd_scan_sequential(in.x, in.dt, in.A, in.B, in.C, in.D, in.dt_bias, opt, s0);
      auto dev = [&](const at::Tensor& t, bool io_dtype) { return io_dtype ? t.cuda().to(io) : t.cuda(); };
      const std::pair<int, int> plans[] = {{0, 1}, {0, 2}, {0, 3}, {0, 7}, {0, 40}, {16, 5}, {32, 4}};
      for (auto [pt, seg] : plans) {
        mp::SsdResult r = mp::ssd_scan_cuda_forward(dev(in.x, true), dev(in.dt, true), dev(in.A, false),
                                                    dev(in.B, true), dev(in.C, true), dev(in.D, false),
                                                    dev(in.dt_bias, false), opt,
                                                    with_state ? dev(in.s0, false) : at::Tensor(), 0, pt, seg);
        const double tol = bf ? 5e-3 : 1e-5;
        const std::string tag = std::string(bf ? "bf16" : "fp32") + (with_state ? " +s0" : "") +
                                " p_tile=" + std::to_string(pt) + " segments=" + std::to_string(seg);
        EXPECT_LE(rel_err(r.y_BLHP, ref.y_BLHP), tol) << tag;
        EXPECT_LE(rel_err(r.final_state_BHPN, ref.final_state_BHPN), tol) << tag;
      }
    }
  }
  mp::set_cuda_output_poison(false);
}

TEST(CudaSsd, KeptChunkStatesAreTheRecurrenceStates) {
  // The forward's kept states (SsdOptions::keep_chunk_states): entry c is the state after the
  // first 64 c steps, against the float64 recurrence run over that prefix; single pass and
  // segmented scans, with an initial state (entry 0) and without. Where the kernel cannot keep
  // them (fp32), the output stays undefined and the backward recomputes them.
  SKIP_WITHOUT_GPU();
  at::manual_seed(fresh_seed());
  mp::set_cuda_output_poison(true);
  const SsdCase c{2, 330, 4, 64, 2, 128, 256};
  mp::SsdOptions opt;
  opt.chunk_size = c.chunk;
  for (bool with_state : {false, true}) {
    SsdInputs in = ssd_inputs(c, at::kBFloat16);
    at::Tensor s0 = with_state ? in.s0 : at::Tensor();
    auto dev = [&](const at::Tensor& t, bool io_dtype) { return io_dtype ? t.cuda().to(at::kBFloat16) : t.cuda(); };
    for (int seg : {1, 3}) {
      at::Tensor states;
      mp::ssd_scan_cuda_forward(dev(in.x, true), dev(in.dt, true), dev(in.A, false), dev(in.B, true), dev(in.C, true),
                                dev(in.D, false), dev(in.dt_bias, false), opt,
                                with_state ? dev(in.s0, false) : at::Tensor(), 0, 0, seg, &states);
      ASSERT_TRUE(states.defined());
      ASSERT_EQ(states.sizes(), at::IntArrayRef({c.b, (c.L + 63) / 64, c.H, c.P, c.N}));
      for (int64_t ch = 0; ch < states.size(1); ++ch) {
        at::Tensor want = with_state ? s0 : at::zeros({c.b, c.H, c.P, c.N});
        if (ch > 0) {
          auto pre = [&](const at::Tensor& t) { return t.narrow(1, 0, 64 * ch); };
          want = mp::ssd_scan_sequential(pre(in.x), pre(in.dt), in.A, pre(in.B), pre(in.C), in.D, in.dt_bias, opt, s0)
                     .final_state_BHPN;
        }
        EXPECT_LE(rel_err(states.select(1, ch), want), 5e-3)
            << "chunk " << ch << " segments " << seg << (with_state ? " +s0" : "");
      }
    }
  }
  at::Tensor none;
  SsdInputs in = ssd_inputs(c, at::kFloat);
  mp::ssd_scan_cuda_forward(in.x.cuda(), in.dt.cuda(), in.A.cuda(), in.B.cuda(), in.C.cuda(), in.D.cuda(),
                            in.dt_bias.cuda(), opt, at::Tensor(), 0, 0, 0, &none);
  EXPECT_FALSE(none.defined());
  mp::set_cuda_output_poison(false);
}

struct ConvCase {
  int64_t b, L, C, K;
  bool bias, silu;
  int64_t pad = 0;  // > 0: x is a narrow (offset 8) of a [b, L, C + pad] tensor, as the model passes it
};

class CudaConv : public ::testing::TestWithParam<ConvCase> {};

TEST_P(CudaConv, ForwardAndGradientsMatchFloat64) {
  SKIP_WITHOUT_GPU();
  const ConvCase c = GetParam();
  at::manual_seed(fresh_seed());
  mp::set_cuda_output_poison(true);
  for (at::ScalarType io : {at::kFloat, at::kBFloat16}) {
    const bool bf = io == at::kBFloat16;
    at::Tensor x = at::randn({c.b, c.L, c.C}).to(io).to(at::kDouble);
    at::Tensor w = (at::randn({c.C, 1, c.K}) * 0.5).to(io).to(at::kDouble);
    at::Tensor bias = c.bias ? at::randn({c.C}).to(io).to(at::kDouble) : at::Tensor();
    at::Tensor gy = at::randn({c.b, c.L, c.C}, at::kDouble);
    std::vector<at::Tensor> ref_leaves{x.requires_grad_(true), w.requires_grad_(true)};
    if (c.bias) ref_leaves.push_back(bias.requires_grad_(true));
    at::Tensor yref = mp::causal_conv1d_ops(x, w, bias, c.silu);
    auto gref = torch::autograd::grad({yref}, ref_leaves, {gy});

    std::vector<at::Tensor> leaves;
    for (const at::Tensor& t : ref_leaves) leaves.push_back(t.detach().to(io).cuda().requires_grad_(true));
    if (c.pad > 0) {
      at::Tensor wide = at::zeros({c.b, c.L, c.C + c.pad}, leaves[0].options());
      wide.narrow(2, 8, c.C).copy_(leaves[0].detach());
      leaves[0] = wide.narrow(2, 8, c.C).detach().requires_grad_(true);
    }
    at::Tensor y = mp::causal_conv1d(leaves[0], leaves[1], c.bias ? leaves[2] : at::Tensor(), c.silu);
    const double ftol = bf ? 5e-3 : 1e-5, gtol = bf ? 2e-2 : 1e-4;
    const std::string tag = std::string(bf ? "bf16" : "fp32") + " L=" + std::to_string(c.L) + " C=" +
                            std::to_string(c.C) + " K=" + std::to_string(c.K) + " pad=" + std::to_string(c.pad);
    EXPECT_LE(rel_err(y, yref), ftol) << tag;
    auto g = torch::autograd::grad({y}, leaves, {gy.to(io).cuda()});
    const char* names[] = {"dx", "dweight", "dbias"};
    for (size_t i = 0; i < g.size(); ++i) EXPECT_LE(rel_err(g[i], gref[i]), gtol) << tag << " " << names[i];
  }
  mp::set_cuda_output_poison(false);
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaConv,
                         ::testing::Values(ConvCase{2, 1, 64, 4, true, true}, ConvCase{1, 37, 96, 2, false, true},
                                           ConvCase{2, 300, 264, 3, true, false},
                                           ConvCase{1, 129, 13, 4, true, true},  // odd channels: scalar path
                                           ConvCase{2, 1000, 1024, 4, true, true},
                                           // long L, strided rows (narrow of a wider tensor), tile tails
                                           ConvCase{2, 3001, 520, 4, true, true, 24}));

struct NormCase {
  int64_t b, L, W, groups;
  bool gated;
  int64_t z_offset = -1;  // >= 0: z is a narrow at this offset of a [b, L, W + 40] tensor, as the model passes it
};

class CudaNorm : public ::testing::TestWithParam<NormCase> {};

// Float64 reference written out here (the ops path computes in fp32): weight * g / rms(g) per group.
at::Tensor norm_reference(const at::Tensor& x, const at::Tensor& z, const at::Tensor& w, int64_t groups, double eps) {
  at::Tensor g = z.defined() ? x * z * at::sigmoid(z) : x;
  std::vector<int64_t> grouped{x.size(0), x.size(1), groups, x.size(2) / groups};
  at::Tensor gg = g.reshape(grouped);
  return w * (gg / at::sqrt(gg.pow(2).mean(-1, /*keepdim=*/true) + eps)).reshape(x.sizes());
}

TEST_P(CudaNorm, ForwardAndGradientsMatchFloat64) {
  SKIP_WITHOUT_GPU();
  const NormCase c = GetParam();
  const double eps = 1e-5;
  at::manual_seed(fresh_seed());
  mp::set_cuda_output_poison(true);
  for (at::ScalarType io : {at::kFloat, at::kBFloat16}) {
    const bool bf = io == at::kBFloat16;
    at::Tensor x = (at::randn({c.b, c.L, c.W}) * 2.0).to(io).to(at::kDouble).requires_grad_(true);
    at::Tensor z = c.gated ? at::randn({c.b, c.L, c.W}).to(io).to(at::kDouble).requires_grad_(true) : at::Tensor();
    at::Tensor w = (1.0 + 0.3 * at::randn({c.W})).to(io).to(at::kDouble).requires_grad_(true);
    at::Tensor gy = at::randn({c.b, c.L, c.W}, at::kDouble);
    std::vector<at::Tensor> ref_leaves{x, w};
    if (c.gated) ref_leaves.push_back(z);
    at::Tensor ref = norm_reference(x, z, w, c.groups, eps);
    auto gref = torch::autograd::grad({ref}, ref_leaves, {gy});

    at::Tensor xc = x.detach().to(io).cuda().requires_grad_(true), wc = w.detach().to(io).cuda().requires_grad_(true);
    at::Tensor zc;
    if (c.gated) {
      zc = z.detach().to(io).cuda();
      if (c.z_offset >= 0) {
        at::Tensor wide = at::zeros({c.b, c.L, c.W + 40}, zc.options());
        wide.narrow(2, c.z_offset, c.W).copy_(zc);
        zc = wide.narrow(2, c.z_offset, c.W);
      }
      zc = zc.detach().requires_grad_(true);
    }
    const bool kernel = mp::rms_norm_cuda_supported(xc, zc, wc, c.groups);
    at::Tensor y = c.gated ? mp::gated_rms_norm(xc, zc, wc, c.groups, eps) : mp::rms_norm(xc, wc, eps);
    const std::string tag = std::string(bf ? "bf16" : "fp32") + " W=" + std::to_string(c.W) + " G=" +
                            std::to_string(c.groups) + (c.gated ? " gated" : "") + (kernel ? " (kernel)" : " (ops)");
    // Every case but fp32 at W = 16384 (4096 vectors a row) and widths off the 16-byte vector
    // runs our kernel; those take the ops path, whose answer must agree all the same.
    const bool expect_kernel = c.W % c.groups == 0 && (c.W / c.groups) % (bf ? 8 : 4) == 0 && c.W / (bf ? 8 : 4) <= 2048;
    EXPECT_EQ(kernel, expect_kernel) << tag;
    EXPECT_LE(rel_err(y, ref), bf ? 5e-3 : 1e-5) << tag;
    std::vector<at::Tensor> leaves{xc, wc};
    if (c.gated) leaves.push_back(zc);
    auto g = torch::autograd::grad({y}, leaves, {gy.to(io).cuda()});
    const char* names[] = {"dx", "dweight", "dz"};
    for (size_t i = 0; i < g.size(); ++i) EXPECT_LE(rel_err(g[i], gref[i]), bf ? 2e-2 : 1e-4) << tag << " " << names[i];
  }
  mp::set_cuda_output_poison(false);
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaNorm,
                         ::testing::Values(NormCase{2, 37, 64, 1, false},        // 1 warp a row
                                           NormCase{1, 50, 1024, 8, true, 8},    // gated, z narrowed
                                           NormCase{2, 33, 4096, 1, false},      // 2-4 vectors a thread
                                           NormCase{3, 5, 192, 3, true, 1},      // odd groups; z misaligned: copied
                                           NormCase{4, 1, 2048, 8, true},        // one step (decoding)
                                           NormCase{1, 9, 16384, 8, true, 0},    // the 56B gated width
                                           NormCase{2, 7, 40, 1, false},         // 5 or 10 vectors a row (padding)
                                           NormCase{1, 3, 100, 2, true}));       // 50-wide groups: the ops path

// A contiguous input whose data starts 2 bytes past a 16-byte boundary (an odd storage offset):
// the layer copies it for the kernel, and the answer equals that of an aligned copy.
TEST(CudaNorm, ContiguousInputAtAnOddOffsetIsCopied) {
  SKIP_WITHOUT_GPU();
  at::manual_seed(fresh_seed());
  auto bf = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  at::Tensor flat = at::randn({1 + 2 * 5 * 64}, bf);
  at::Tensor x = flat.narrow(0, 1, 2 * 5 * 64).view({2, 5, 64}), w = at::randn({64}, bf);
  ASSERT_NE(reinterpret_cast<uintptr_t>(x.data_ptr()) % 16, 0u);
  at::Tensor y = mp::rms_norm(x, w, 1e-5), ref = mp::rms_norm(x.clone(), w, 1e-5);
  EXPECT_TRUE(at::equal(y, ref));
}

TEST(CudaModel, ForwardOnCudaMatchesCpu) {
  SKIP_WITHOUT_GPU();
  mp::ModelConfig cfg = mp::config_from_json_text(
      R"({"hybrid_override_pattern": "M*-M-", "vocab_size": 97, "hidden_size": 64,
    "intermediate_size": 96, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
    "mamba_num_heads": 4, "mamba_head_dim": 32, "ssm_state_size": 32, "n_groups": 2, "conv_kernel": 4,
    "chunk_size": 64})", "tiny-cuda");
  mp::Model m = mp::make_random_model(cfg, fresh_seed() % 100000, at::kFloat);
  at::Tensor ids = at::randint(0, 97, {2, 150}, at::kLong);
  at::Tensor cpu = mp::forward_logits(m, ids);
  at::Tensor gpu = mp::forward_logits(m.to(at::Device(at::kCUDA), at::kFloat), ids.cuda());
  EXPECT_LE(rel_err(gpu, cpu), 1e-4);
}

TEST(CudaModel, RecomputedBlocksGiveThePlainGradients) {
  // Activation recomputation on CUDA, where each recomputed Mamba block's scan keeps its chunk
  // states for its backward (model/recompute.cpp): the weights' gradients against the plain
  // forward's, which recomputes the states in the backward. bf16, shapes the mma kernels take.
  SKIP_WITHOUT_GPU();
  mp::ModelConfig cfg = mp::config_from_json_text(
      R"({"hybrid_override_pattern": "M-M*", "vocab_size": 97, "hidden_size": 128,
    "intermediate_size": 96, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
    "mamba_num_heads": 4, "mamba_head_dim": 64, "ssm_state_size": 64, "n_groups": 2, "conv_kernel": 4,
    "chunk_size": 128})", "tiny-cuda-bf16");
  mp::Model m = mp::make_random_model(cfg, fresh_seed() % 100000, at::kFloat).to(at::Device(at::kCUDA), at::kBFloat16);
  for (auto& [n, t] : m.weights) t.set_requires_grad(true);
  at::Tensor ids = at::randint(0, 97, {2, 200}, at::kLong).cuda();
  at::Tensor w = at::randn({2, 200, 128}, at::kCUDA);
  auto grads = [&](bool recompute) {
    for (auto& [n, t] : m.weights) t.mutable_grad() = at::Tensor();
    mp::ForwardOptions o;
    o.recompute = recompute;
    (mp::forward_hidden(m, ids, o).to(at::kFloat) * w).sum().backward();
    std::map<std::string, at::Tensor> g;
    for (const auto& [n, t] : m.weights)
      if (t.grad().defined()) g[n] = t.grad().clone();
    return g;
  };
  const auto plain = grads(false), re = grads(true);
  ASSERT_EQ(plain.size(), re.size());
  for (const auto& [n, g] : plain) EXPECT_LE(rel_err(re.at(n), g), 2e-2) << n;
}

#else

TEST(CudaKernels, NotBuilt) { GTEST_SKIP() << "built without MP_WITH_CUDA_KERNELS (no nvcc or CPU-only LibTorch)"; }

#endif

}  // namespace
