#include "kernels/ssd_scan.h"

#ifdef MP_WITH_CUDA_KERNELS
#include "kernels/cuda_dispatch.h"
#endif

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

namespace mp {

at::Tensor ssd_effective_dt(const at::Tensor& dt_BLH, const at::Tensor& dt_bias_H, const SsdOptions& opt) {
  at::Tensor dt = dt_BLH.to(at::kFloat);
  if (dt_bias_H.defined()) dt = dt + dt_bias_H.to(at::kFloat);
  if (opt.dt_softplus) dt = at::softplus(dt);
  if (opt.dt_min > 0.0 || std::isfinite(opt.dt_max)) {
    dt = at::clamp(dt, opt.dt_min, std::isfinite(opt.dt_max) ? opt.dt_max : 3.0e38);
  }
  return dt;
}

namespace {

// segsum[..., l, s] = sum_{k=s+1..l} a[..., k] for l >= s, -inf above the diagonal.
// Built from a masked cumulative sum rather than a difference of cumulative sums, which
// would cancel catastrophically once the running sum grows large.
at::Tensor segment_sum(const at::Tensor& a_Q) {
  const int64_t Q = a_Q.size(-1);
  auto opts = a_Q.options().dtype(at::kBool);
  at::Tensor strict = at::ones({Q, Q}, opts).tril(-1);
  at::Tensor rep = a_Q.unsqueeze(-1).expand({-1, -1, -1, -1, Q});  // rep[..., l, s] = a[l]
  at::Tensor seg = at::cumsum(rep.masked_fill(strict.logical_not(), 0.0), -2);
  at::Tensor lower = at::ones({Q, Q}, opts).tril(0);
  return seg.masked_fill(lower.logical_not(), -std::numeric_limits<float>::infinity());
}

}  // namespace

namespace {
thread_local bool t_keep_chunk_states = false;
}  // namespace

SsdKeepChunkStates::SsdKeepChunkStates() : prev_(t_keep_chunk_states) { t_keep_chunk_states = true; }
SsdKeepChunkStates::~SsdKeepChunkStates() { t_keep_chunk_states = prev_; }
bool SsdKeepChunkStates::active() { return t_keep_chunk_states; }

SsdResult ssd_scan(const at::Tensor& x_BLHP, const at::Tensor& dt_BLH, const at::Tensor& A_H,
                   const at::Tensor& B_BLGN, const at::Tensor& C_BLGN, const at::Tensor& D_H,
                   const at::Tensor& dt_bias_H, const SsdOptions& opt,
                   const at::Tensor& initial_state_BHPN, bool return_final_state) {
#ifdef MP_WITH_CUDA_KERNELS
  if (x_BLHP.is_cuda() && ssd_scan_cuda_supported(x_BLHP, dt_BLH, B_BLGN, C_BLGN)) {
    return ssd_scan_cuda(x_BLHP, dt_BLH, A_H, B_BLGN, C_BLGN, D_H, dt_bias_H, opt, initial_state_BHPN,
                         return_final_state);
  }
#endif
  return ssd_scan_ops(x_BLHP, dt_BLH, A_H, B_BLGN, C_BLGN, D_H, dt_bias_H, opt, initial_state_BHPN,
                      return_final_state);
}

SsdResult ssd_scan_ops(const at::Tensor& x_BLHP, const at::Tensor& dt_BLH, const at::Tensor& A_H,
                       const at::Tensor& B_BLGN, const at::Tensor& C_BLGN, const at::Tensor& D_H,
                       const at::Tensor& dt_bias_H, const SsdOptions& opt,
                       const at::Tensor& initial_state_BHPN, bool return_final_state) {
  const int64_t b = x_BLHP.size(0), L = x_BLHP.size(1), H = x_BLHP.size(2), P = x_BLHP.size(3);
  const int64_t G = B_BLGN.size(2), N = B_BLGN.size(3), Hg = H / G;
  const int64_t Q = opt.chunk_size;
  const int64_t pad = (Q - L % Q) % Q, Lp = L + pad, nc = Lp / Q;

  // Zero padding at the end: dt = 0 there, so padded steps neither decay nor feed the state.
  auto pad_L = [&](const at::Tensor& t) {
    if (pad == 0) return t;
    std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    shape[1] = pad;
    return at::cat({t, at::zeros(shape, t.options())}, 1);
  };
  at::Tensor dt = pad_L(ssd_effective_dt(dt_BLH, dt_bias_H, opt));          // [b,Lp,H]
  at::Tensor x = pad_L(x_BLHP.to(at::kFloat));                                // [b,Lp,H,P]
  at::Tensor Bm = pad_L(B_BLGN.to(at::kFloat));                               // [b,Lp,G,N]
  at::Tensor Cm = pad_L(C_BLGN.to(at::kFloat));
  at::Tensor A = A_H.to(at::kFloat);

  // Chunked views, heads split as [G, Hg] so that group sharing is a broadcast, not a copy.
  at::Tensor x_c = x.view({b, nc, Q, G, Hg, P}).permute({0, 1, 3, 4, 2, 5});   // [b,c,G,Hg,Q,P]
  at::Tensor dt_c = dt.view({b, nc, Q, G, Hg}).permute({0, 1, 3, 4, 2});       // [b,c,G,Hg,Q]
  at::Tensor B_c = Bm.view({b, nc, Q, G, N}).permute({0, 1, 3, 2, 4}).unsqueeze(3);  // [b,c,G,1,Q,N]
  at::Tensor C_c = Cm.view({b, nc, Q, G, N}).permute({0, 1, 3, 2, 4}).unsqueeze(3);  // [b,c,G,1,Q,N]
  at::Tensor A_dt = dt_c * A.view({1, 1, G, Hg, 1});                           // [b,c,G,Hg,Q]
  at::Tensor A_cs = at::cumsum(A_dt, -1);

  // 1. Intra-chunk outputs: y[l] = sum_{s<=l} (C_l . B_s) exp(A_cs[l] - A_cs[s]) dt_s x_s.
  at::Tensor CB = at::matmul(C_c, B_c.transpose(-1, -2));                      // [b,c,G,1,Q,Q]
  at::Tensor decay = at::exp(segment_sum(A_dt.reshape({b * nc, G, Hg, Q}))).view({b, nc, G, Hg, Q, Q});
  at::Tensor W = CB * decay * dt_c.unsqueeze(-2);                              // [b,c,G,Hg,Q,Q]
  at::Tensor y = at::matmul(W, x_c);                                           // [b,c,G,Hg,Q,P]

  // 2. Each chunk's own contribution to the state at its end.
  at::Tensor to_end = at::exp(A_cs.narrow(-1, Q - 1, 1) - A_cs) * dt_c;        // [b,c,G,Hg,Q]
  at::Tensor states = at::matmul((x_c * to_end.unsqueeze(-1)).transpose(-1, -2), B_c);  // [b,c,G,Hg,P,N]

  // 3. The exact recurrence between chunks: S_c = exp(sum A_dt over chunk c) S_{c-1} + states_c.
  at::Tensor chunk_decay = at::exp(A_cs.select(-1, Q - 1));                    // [b,c,G,Hg]
  at::Tensor S = initial_state_BHPN.defined()
                     ? initial_state_BHPN.to(at::kFloat).view({b, G, Hg, P, N})
                     : at::zeros({b, G, Hg, P, N}, x.options());
  std::vector<at::Tensor> entering;
  entering.reserve(nc);
  for (int64_t c = 0; c < nc; ++c) {
    entering.push_back(S);
    S = chunk_decay.select(1, c).unsqueeze(-1).unsqueeze(-1) * S + states.select(1, c);
  }
  at::Tensor S_in = at::stack(entering, 1);                                   // [b,c,G,Hg,P,N]

  // 4. What the state entering each chunk contributes: y[l] += exp(A_cs[l]) C_l S_in.
  y = y + at::matmul(C_c, S_in.transpose(-1, -2)) * at::exp(A_cs).unsqueeze(-1);

  at::Tensor y_BLHP = y.permute({0, 1, 4, 2, 3, 5}).reshape({b, Lp, H, P}).narrow(1, 0, L);
  y_BLHP = y_BLHP + x_BLHP.to(at::kFloat) * D_H.to(at::kFloat).view({1, 1, H, 1});
  SsdResult r;
  r.y_BLHP = y_BLHP.to(x_BLHP.scalar_type());
  if (return_final_state) r.final_state_BHPN = S.reshape({b, H, P, N});
  return r;
}

SsdResult ssd_scan_sequential(const at::Tensor& x_BLHP, const at::Tensor& dt_BLH, const at::Tensor& A_H,
                              const at::Tensor& B_BLGN, const at::Tensor& C_BLGN, const at::Tensor& D_H,
                              const at::Tensor& dt_bias_H, const SsdOptions& opt,
                              const at::Tensor& initial_state_BHPN) {
  const int64_t b = x_BLHP.size(0), L = x_BLHP.size(1), H = x_BLHP.size(2), P = x_BLHP.size(3);
  const int64_t G = B_BLGN.size(2), N = B_BLGN.size(3);
  auto f64 = [](const at::Tensor& t) { return t.to(at::kDouble); };
  at::Tensor dt = ssd_effective_dt(f64(dt_BLH), dt_bias_H.defined() ? f64(dt_bias_H) : dt_bias_H, opt).to(at::kDouble);
  at::Tensor x = f64(x_BLHP), A = f64(A_H), D = f64(D_H);
  // Expand groups to heads once: head h reads group h / (H / G).
  at::Tensor Bh = f64(B_BLGN).repeat_interleave(H / G, 2);  // [b,L,H,N]
  at::Tensor Ch = f64(C_BLGN).repeat_interleave(H / G, 2);
  at::Tensor S = initial_state_BHPN.defined() ? f64(initial_state_BHPN).clone()
                                              : at::zeros({b, H, P, N}, x.options());
  std::vector<at::Tensor> ys;
  for (int64_t t = 0; t < L; ++t) {
    at::Tensor dt_t = dt.select(1, t);                                   // [b,H]
    at::Tensor x_t = x.select(1, t);                                     // [b,H,P]
    at::Tensor decay = at::exp(dt_t * A).view({b, H, 1, 1});
    S = decay * S + (dt_t.unsqueeze(-1) * x_t).unsqueeze(-1) * Bh.select(1, t).unsqueeze(2);
    at::Tensor y_t = at::matmul(S, Ch.select(1, t).unsqueeze(-1)).squeeze(-1) + D.view({1, H, 1}) * x_t;
    ys.push_back(y_t);
  }
  SsdResult r;
  r.y_BLHP = at::stack(ys, 1);
  r.final_state_BHPN = S;
  (void)G;
  return r;
}

}  // namespace mp
