#include "prune/apply.h"

#include "model/weights.h"

#include <ATen/ATen.h>

namespace mp {
namespace {

at::Tensor idx(const std::vector<int64_t>& v, at::Device dev) { return at::tensor(v, at::kLong).to(dev); }

// Rows (units of `unit` consecutive rows each) -> flat row indices.
std::vector<int64_t> expand(const std::vector<int64_t>& units, int64_t unit, int64_t offset = 0) {
  std::vector<int64_t> out;
  out.reserve(units.size() * unit);
  for (int64_t u : units)
    for (int64_t k = 0; k < unit; ++k) out.push_back(offset + u * unit + k);
  return out;
}

}  // namespace

namespace {

Model apply(Model& parent, const PruningPlan& plan, bool release) {
  const ModelConfig pc = parent.config;
  Model child;
  child.config = plan_config(pc, plan);  // validates the plan
  const at::Device dev = parent.device();
  const at::Tensor hid = idx(plan.hidden, dev);
  auto cols = [&](const at::Tensor& t, const at::Tensor& i) { return t.index_select(1, i); };
  auto rows = [&](const at::Tensor& t, const at::Tensor& i) { return t.index_select(0, i); };

  child.weights[kEmbeddingName] = cols(parent.w(kEmbeddingName), hid);
  child.weights[kLmHeadName] = cols(parent.w(kLmHeadName), hid);
  child.weights[kFinalNormName] = rows(parent.w(kFinalNormName), hid);

  for (size_t j = 0; j < plan.kept_layers.size(); ++j) {
    const int64_t i = plan.kept_layers[j];
    auto src = [&](const char* s) -> const at::Tensor& { return parent.layer_w(i, s); };
    auto put = [&](const char* s, at::Tensor t) { child.weights[layer_tensor(j, s)] = t.contiguous(); };
    put("norm.weight", rows(src("norm.weight"), hid));
    auto done = [&] {  // this parent layer is sliced: let its tensors go
      if (!release) return;
      for (auto it = parent.weights.lower_bound(layer_prefix(i)); it != parent.weights.end() &&
                                                                     it->first.rfind(layer_prefix(i), 0) == 0;)
        it = parent.weights.erase(it);
    };
    switch (pc.layers[i]) {
      case LayerType::Mlp: {
        const at::Tensor f = idx(plan.mlp[i], dev);
        put("mixer.up_proj.weight", cols(rows(src("mixer.up_proj.weight"), f), hid));
        put("mixer.down_proj.weight", cols(rows(src("mixer.down_proj.weight"), hid), f));
        break;
      }
      case LayerType::Attention: {
        const at::Tensor q = idx(expand(plan.attention[i], pc.head_dim), dev);
        put("mixer.q_proj.weight", cols(rows(src("mixer.q_proj.weight"), q), hid));
        put("mixer.k_proj.weight", cols(src("mixer.k_proj.weight"), hid));
        put("mixer.v_proj.weight", cols(src("mixer.v_proj.weight"), hid));
        put("mixer.o_proj.weight", cols(rows(src("mixer.o_proj.weight"), hid), q));
        break;
      }
      case LayerType::Mamba: {
        const int64_t P = pc.mamba_head_dim, I = pc.mamba_inner(), GN = pc.n_groups * pc.ssm_state_size;
        // Flat channel indices of the kept (head, channel) pairs, head-major like the layout.
        std::vector<int64_t> inner;
        for (int64_t h : plan.mamba_heads[i])
          for (int64_t c : plan.mamba_channels[i]) inner.push_back(h * P + c);
        // in_proj rows: [z: I][x: I][B: GN][C: GN][dt: H].
        std::vector<int64_t> r;
        for (int64_t k : inner) r.push_back(k);                             // z
        for (int64_t k : inner) r.push_back(I + k);                         // x
        for (int64_t k = 0; k < 2 * GN; ++k) r.push_back(2 * I + k);        // B, C
        for (int64_t h : plan.mamba_heads[i]) r.push_back(2 * I + 2 * GN + h);  // dt
        // conv1d channels: [x: I][B: GN][C: GN].
        std::vector<int64_t> conv(inner);
        for (int64_t k = 0; k < 2 * GN; ++k) conv.push_back(I + k);
        const at::Tensor ri = idx(r, dev), ci = idx(conv, dev), ii = idx(inner, dev);
        const at::Tensor hi = idx(plan.mamba_heads[i], dev);
        put("mixer.in_proj.weight", cols(rows(src("mixer.in_proj.weight"), ri), hid));
        put("mixer.conv1d.weight", rows(src("mixer.conv1d.weight"), ci));
        if (pc.use_conv_bias) put("mixer.conv1d.bias", rows(src("mixer.conv1d.bias"), ci));
        put("mixer.dt_bias", rows(src("mixer.dt_bias"), hi));
        put("mixer.A_log", rows(src("mixer.A_log"), hi));
        put("mixer.D", rows(src("mixer.D"), hi));
        put("mixer.norm.weight", rows(src("mixer.norm.weight"), ii));
        put("mixer.out_proj.weight", cols(rows(src("mixer.out_proj.weight"), hid), ii));
        break;
      }
    }
    done();
  }
  for (auto& [n, t] : child.weights) t = t.contiguous();
  if (release) parent.weights.clear();
  return child;
}

}  // namespace

Model apply_plan(const Model& parent, const PruningPlan& plan) {
  return apply(const_cast<Model&>(parent), plan, /*release=*/false);  // never modified when not releasing
}

Model apply_plan_consuming(Model&& parent, const PruningPlan& plan) {
  Model owned = std::move(parent);
  return apply(owned, plan, /*release=*/true);
}

}  // namespace mp
