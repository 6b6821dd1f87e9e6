#include "distill/memory_plan.h"

#include "common/error.h"
#include "model/accounting.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

namespace mp {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Scan chunk states kept for the backward: the state entering every 64 positions, e H P N each.
int64_t chunk_state_bytes(const ModelConfig& c, int64_t batch, int64_t len, int64_t e) {
  return batch * ceil_div(len, 64) * c.mamba_num_heads * c.mamba_head_dim * c.ssm_state_size * e;
}

// What autograd keeps for one block of type t over T tokens, without recomputation (header).
int64_t block_saved_bytes(const ModelConfig& c, LayerType t, int64_t T, int64_t e) {
  const int64_t d = c.hidden_size;
  const int64_t block = T * (d * e + 4);  // block input + pre-norm rstd
  const int64_t GN = c.n_groups * c.ssm_state_size, I = c.mamba_inner(), H = c.mamba_num_heads;
  const int64_t q = c.num_attention_heads * c.head_dim;
  switch (t) {
    case LayerType::Mamba: return block + T * ((d + 5 * I + 4 * GN + H) * e + 4 * c.n_groups);
    case LayerType::Attention: return block + T * ((d + 4 * q) * e + 4 * c.num_attention_heads);
    case LayerType::Mlp: return block + T * (d + 2 * c.intermediate_size) * e;
  }
  return block;
}

int64_t layer_params(const ParamCounts& p, LayerType t) {
  switch (t) {
    case LayerType::Mamba: return p.per_mamba_layer;
    case LayerType::Attention: return p.per_attention_layer;
    case LayerType::Mlp: return p.per_mlp_layer;
  }
  return 0;
}

// The largest unit ZeRO-3 gathers at once: a block, the embedding, or the LM head with norm_f.
int64_t largest_unit(const ModelConfig& c) {
  const ParamCounts p = count_params(c);
  int64_t u = std::max(p.embedding, p.lm_head + p.final_norm);
  for (LayerType t : c.layers) u = std::max(u, layer_params(p, t));
  return u;
}

// The largest single weight tensor (elements).
int64_t largest_tensor(const ModelConfig& c) {
  const int64_t d = c.hidden_size;
  int64_t m = c.vocab_size * d;
  if (c.count(LayerType::Mamba)) m = std::max({m, c.mamba_in_proj_rows() * d, c.mamba_inner() * d});
  if (c.count(LayerType::Attention)) m = std::max(m, c.num_attention_heads * c.head_dim * d);
  if (c.count(LayerType::Mlp)) m = std::max(m, c.intermediate_size * d);
  return m;
}

// Activations of one model as the trainer's backward meets them.
struct ActivationModel {
  std::vector<int64_t> saved;      // per layer, kept from the forward until its backward
  std::vector<int64_t> transient;  // per layer, extra while its backward runs
  int64_t largest_layer_no_grad = 0;  // one layer's intermediates in a no-grad forward
  int64_t total_saved() const {
    int64_t s = 0;
    for (int64_t x : saved) s += x;
    return s;
  }
  int64_t largest_transient() const {
    int64_t m = 0;
    for (int64_t x : transient) m = std::max(m, x);
    return m;
  }
};

ActivationModel activation_model(const ModelConfig& c, const PlanSettings& s, bool recompute) {
  const int64_t e = s.element_bytes, T = s.micro_batch * s.seq_len, d = c.hidden_size;
  const int64_t residual_grads = 2 * T * d * e;
  ActivationModel a;
  for (LayerType t : c.layers) {
    const int64_t full = block_saved_bytes(c, t, T, e);
    const int64_t states = t == LayerType::Mamba ? chunk_state_bytes(c, s.micro_batch, s.seq_len, e) : 0;
    a.largest_layer_no_grad = std::max(a.largest_layer_no_grad, full);
    if (recompute) {
      // Keeps its input; its backward re-runs the block with the scan states kept (model/recompute.cpp).
      a.saved.push_back(T * d * e);
      a.transient.push_back(full + states + full + residual_grads);
    } else {
      a.saved.push_back(full + (s.keep_ssd_states ? states : 0));
      a.transient.push_back(full + residual_grads);
    }
  }
  return a;
}

// The fused KD loss's workspace while its forward runs (distill/kd_loss.cpp).
int64_t loss_workspace_bytes(const ModelConfig& student, const PlanSettings& s) {
  const int64_t e = s.element_bytes, T = s.micro_batch * s.seq_len, d = student.hidden_size, V = student.vocab_size;
  const int64_t n = std::min(s.logit_slice, T);
  const int64_t nV = n * V;
  int64_t slice_peak = 0, slice_at_matmul = 0;  // bytes of [n, V] temporaries, x2 to keep halves exact
  switch (s.loss) {
    case LossKind::KL: slice_peak = s.temperature == 1.0 ? 64 : 72; slice_at_matmul = 44; break;
    case LossKind::KLPlusCE: slice_peak = s.temperature == 1.0 ? 64 : 80; slice_at_matmul = 44; break;
    case LossKind::CE: slice_peak = 36; slice_at_matmul = 20; break;
  }
  const int64_t head_grad_fp32 = 4 * V * d, head_grad_mm = V * d * e;
  return head_grad_fp32 + T * d * e + std::max({slice_peak * nV / 2, slice_at_matmul * nV / 2 + head_grad_mm, head_grad_mm});
}

}  // namespace

RankMemory plan_rank_memory(const ModelConfig& student, const ModelConfig* teacher, const PlanSettings& s) {
  if (s.seq_len < 1 || s.micro_batch < 1 || s.global_batch < 1 || s.world_size < 1 || s.logit_slice < 1)
    fail_usage("memory plan: sequence length, micro batch, global batch, world size and logit slice must be >= 1");
  if (s.element_bytes != 2 && s.element_bytes != 4)
    fail_usage("memory plan: compute dtype must be 2 or 4 bytes, got {}", s.element_bytes);
  const int64_t e = s.element_bytes, W = s.world_size, T = s.micro_batch * s.seq_len;
  const bool sharded = s.shard != ShardMode::None;
  const int64_t owners = sharded ? W : 1;
  const int64_t accum = std::max<int64_t>(1, s.global_batch / (s.micro_batch * W));
  const ParamCounts ps = count_params(student);
  const int64_t Ps = ps.total(), Pt = teacher ? count_params(*teacher).total() : 0;
  const int64_t ds = student.hidden_size, V = student.vocab_size, dt = teacher ? teacher->hidden_size : 0;

  RankMemory r;
  // State.
  const bool shares_masters = e == 4 && s.shard == ShardMode::None;  // fp32 compute: the model is the masters
  r.weights = shares_masters ? 0 : s.shard == ShardMode::Full ? ceil_div(Ps * e, W) : Ps * e;
  r.gradients = ceil_div(Ps * e, owners);
  r.masters = ceil_div(4 * Ps, owners);
  r.moments = ceil_div(8 * Ps, owners);
  r.teacher = s.shard == ShardMode::Full ? ceil_div(Pt * e, W) : Pt * e;
  if (W > 1) {
    switch (s.shard) {
      case ShardMode::None: r.communication = Ps * e; break;  // DDP's flat buckets hold every gradient
      case ShardMode::Optimizer: r.communication = 4 * s.bucket_bytes + largest_tensor(student) * e; break;
      case ShardMode::Full:
        r.communication = 3 * std::max(largest_unit(student), teacher ? largest_unit(*teacher) : 0) * e;
        break;
    }
    r.communication += kNcclBufferBytes;
  }
  const int64_t state = r.weights + r.masters + r.moments + r.teacher + r.communication + (sharded ? r.gradients : 0);

  // Activations at both settings, and the run's.
  const int64_t after_blocks = T * (2 * ds * e + 4) + (teacher ? (1 + s.hidden_pairs) * T * dt * e : 0);
  const ActivationModel a0 = activation_model(student, s, false), a1 = activation_model(student, s, true);
  r.activations_no_recompute = a0.total_saved() + after_blocks + a0.largest_transient();
  r.activations_recompute = a1.total_saved() + after_blocks + a1.largest_transient();
  r.activations = s.recompute ? r.activations_recompute : r.activations_no_recompute;
  const ActivationModel& a = s.recompute ? a1 : a0;
  r.loss_workspace = loss_workspace_bytes(student, s);
  const int64_t teacher_layer = teacher ? activation_model(*teacher, s, false).largest_layer_no_grad : 0;

  // The four moments.
  const int64_t all_grads = sharded ? 0 : Ps * e;  // full-size .grad (the shards are in `state`)
  const int64_t grads_in_forward = accum > 1 ? all_grads : 0;
  const int64_t load = state + ceil_div(4 * Ps, owners);
  const int64_t forward = state + grads_in_forward + a.total_saved() + after_blocks +
                          std::max(r.loss_workspace, teacher_layer);
  // Backward: the loss node first (its saved d_h, d_W and their scaled copies), then layer by
  // layer from the last, gradients growing as activations are freed.
  const int64_t head_grads = sharded ? 0 : (ps.lm_head + ps.final_norm) * e;
  int64_t made = accum > 1 ? all_grads : head_grads;
  int64_t remaining = a.total_saved() + after_blocks;
  int64_t backward = state + grads_in_forward + remaining + 2 * (T * ds * e + V * ds * e);
  for (int64_t k = student.num_layers() - 1; k >= 0; --k) {
    if (accum == 1 && !sharded) made += layer_params(ps, student.layers[k]) * e;
    backward = std::max(backward, state + made + remaining + a.transient[k]);
    remaining -= a.saved[k];
  }
  const int64_t optimizer = state + all_grads + 3 * 4 * ceil_div(largest_tensor(student), owners);

  int64_t top = load;
  r.peak_phase = "load";
  for (auto [bytes, name] : {std::pair<int64_t, const char*>{forward, "forward"}, {backward, "backward"},
                             {optimizer, "optimizer"}})
    if (bytes > top) top = bytes, r.peak_phase = name;
  top += kFixedWorkspaceBytes;
  const int64_t slack = static_cast<int64_t>(std::ceil(kAllocatorSlack * static_cast<double>(top)));
  r.workspace = kFixedWorkspaceBytes + slack;
  r.peak = top + slack;
  return r;
}

std::optional<int64_t> smallest_world_size(const ModelConfig& student, const ModelConfig* teacher, PlanSettings s,
                                           int64_t usable_bytes, int64_t max_world) {
  for (int64_t w = 1; w <= max_world; ++w) {
    s.world_size = w;
    if (plan_rank_memory(student, teacher, s).peak <= usable_bytes) return w;
  }
  return std::nullopt;
}

int64_t parse_memory_size(const std::string& text, const std::string& flag) {
  const char* begin = text.c_str();
  char* end = nullptr;
  const double value = std::strtod(begin, &end);
  std::string unit(end);
  unit.erase(std::remove_if(unit.begin(), unit.end(), [](unsigned char ch) { return std::isspace(ch); }), unit.end());
  for (char& ch : unit) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  double scale = 0.0;
  if (unit.empty() || unit == "gib" || unit == "g") scale = static_cast<double>(kGiB);
  else if (unit == "mib" || unit == "m") scale = static_cast<double>(kMiB);
  else if (unit == "tib" || unit == "t") scale = static_cast<double>(kGiB) * 1024.0;
  else if (unit == "b") scale = 1.0;
  else if (unit == "gb") scale = 1e9;
  else if (unit == "mb") scale = 1e6;
  else if (unit == "tb") scale = 1e12;
  if (end == begin || scale == 0.0 || !(value > 0.0) || !std::isfinite(value))
    fail_usage("{}: expected a memory size such as 80GiB, 141GB or 512MiB, got '{}'", flag, text);
  return static_cast<int64_t>(std::llround(value * scale));
}

}  // namespace mp
