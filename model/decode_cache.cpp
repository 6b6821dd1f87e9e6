// InferenceCache: allocation from the model's per-layer tensor shapes, its byte count, and the
// benchmark filler. Nothing here runs the model.
#include "common/error.h"
#include "model/decode.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace mp {

InferenceCache::InferenceCache(const Model& m, int64_t batch_, int64_t max_len_) : batch(batch_), max_len(max_len_) {
  if (batch < 1) fail_input("inference cache: batch must be at least 1, got {}", batch);
  if (max_len < 1) fail_input("inference cache: max_len must be at least 1, got {}", max_len);
  const ModelConfig& c = m.config;
  const auto opts = at::TensorOptions().device(m.device()).dtype(m.dtype());
  layers.resize(c.num_layers());
  for (int64_t i = 0; i < c.num_layers(); ++i) {
    LayerCache& lc = layers[i];
    lc.type = c.layers[i];
    if (lc.type == LayerType::Mamba) {
      const at::Tensor& conv_w = m.layer_w(i, "mixer.conv1d.weight");  // [C, 1, K]
      const int64_t C = conv_w.size(0), K = conv_w.size(-1);
      const int64_t H = m.layer_w(i, "mixer.A_log").size(0);
      const int64_t I = m.layer_w(i, "mixer.norm.weight").size(0);
      const int64_t N = (C - I) / (2 * c.n_groups);
      lc.conv_BCK = at::zeros({batch, C, K - 1}, opts);
      lc.ssm_BHPN = at::zeros({batch, H, I / H, N}, opts.dtype(at::kFloat));
    } else if (lc.type == LayerType::Attention) {
      const int64_t hd = c.head_dim;
      const int64_t Hkv = m.layer_w(i, "mixer.k_proj.weight").size(0) / hd;
      lc.k_BHTD = at::zeros({batch, Hkv, max_len, hd}, opts);
      lc.v_BHTD = at::zeros({batch, Hkv, max_len, hd}, opts);
    }
  }
}

uint64_t InferenceCache::bytes() const {
  uint64_t total = 0;
  for (const LayerCache& lc : layers) {
    for (const at::Tensor* t : {&lc.conv_BCK, &lc.ssm_BHPN, &lc.k_BHTD, &lc.v_BHTD}) {
      if (t->defined()) total += static_cast<uint64_t>(t->numel()) * t->element_size();
    }
  }
  return total;
}

InferenceCache gather_cache_rows(const Model& m, const InferenceCache& src, const std::vector<int64_t>& rows,
                                 int64_t max_len) {
  if (rows.empty()) fail_input("gather_cache_rows: no rows asked for");
  for (int64_t r : rows)
    if (r < 0 || r >= src.batch) fail_input("gather_cache_rows: row {} is outside the cache's batch [0, {})", r, src.batch);
  if (max_len < src.length)
    fail_input("gather_cache_rows: capacity {} is below the {} tokens the cache holds", max_len, src.length);
  InferenceCache out(m, static_cast<int64_t>(rows.size()), max_len);
  if (out.layers.size() != src.layers.size())
    fail_input("gather_cache_rows: the cache has {} layers, expected the model's {}", src.layers.size(), out.layers.size());
  const at::Tensor index = at::tensor(rows, at::kLong);
  for (size_t i = 0; i < src.layers.size(); ++i) {
    const LayerCache& s = src.layers[i];
    LayerCache& d = out.layers[i];
    if (s.type == LayerType::Mamba) {
      d.conv_BCK.copy_(s.conv_BCK.index_select(0, index.to(s.conv_BCK.device())));
      d.ssm_BHPN.copy_(s.ssm_BHPN.index_select(0, index.to(s.ssm_BHPN.device())));
    } else if (s.type == LayerType::Attention) {
      const at::Tensor idx = index.to(s.k_BHTD.device());
      d.k_BHTD.narrow(2, 0, src.length).copy_(s.k_BHTD.narrow(2, 0, src.length).index_select(0, idx));
      d.v_BHTD.narrow(2, 0, src.length).copy_(s.v_BHTD.narrow(2, 0, src.length).index_select(0, idx));
      d.length = src.length;
    }
  }
  out.length = src.length;
  return out;
}

namespace {

// dst <- N(0, 1) drawn on dst's device (a many-GiB cache on a GPU fills in milliseconds), one
// [positions, D] slab at a time so the fp32 temporary stays small.
void fill_randn(at::Tensor dst) {
  if (dst.numel() == 0) return;
  if (dst.dim() > 2) {
    for (int64_t i = 0; i < dst.size(0); ++i) fill_randn(dst.select(0, i));
    return;
  }
  dst.copy_(at::randn(dst.sizes(), at::TensorOptions().dtype(at::kFloat).device(dst.device())));
}

}  // namespace

void fill_for_benchmark(InferenceCache& cache, int64_t length, uint64_t seed) {
  if (length < 0 || length > cache.max_len)
    fail_input("fill_for_benchmark: length {} is outside the cache's capacity [0, {}]", length, cache.max_len);
  at::manual_seed(seed);  // every device's default generator: same seed, same cache on one device
  for (LayerCache& lc : cache.layers) {
    if (lc.type == LayerType::Mamba) {
      fill_randn(lc.conv_BCK);
      fill_randn(lc.ssm_BHPN);
    } else if (lc.type == LayerType::Attention) {
      fill_randn(lc.k_BHTD.narrow(2, 0, length));
      fill_randn(lc.v_BHTD.narrow(2, 0, length));
      lc.length = length;
    }
  }
  cache.length = length;
}

}  // namespace mp
