#include "distill/shard/shard_layout.h"

#include "common/error.h"
#include "model/weights.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace mp::shard {

ShardMode parse_shard_mode(const std::string& name) {
  if (name == "none") return ShardMode::None;
  if (name == "optimizer") return ShardMode::Optimizer;
  if (name == "full") return ShardMode::Full;
  fail_usage("--shard: expected none, optimizer or full, got '{}'", name);
}

const char* shard_mode_name(ShardMode m) {
  switch (m) {
    case ShardMode::None: return "none";
    case ShardMode::Optimizer: return "optimizer";
    case ShardMode::Full: return "full";
  }
  return "?";
}

ShardLayout::ShardLayout(const Model& m, int64_t world_size, int64_t rank) : world_(world_size), rank_(rank) {
  if (world_size < 1 || rank < 0 || rank >= world_size)
    fail_runtime("shard layout: rank {} of world size {} is out of range", rank, world_size);
  auto add = [&](Unit& u, const std::string& name) {
    const at::Tensor& t = m.w(name);
    u.tensors.push_back({name, t.sizes().vec(), u.numel, t.numel()});
    u.numel += t.numel();
  };
  Unit emb;
  emb.name = "embedding";
  add(emb, kEmbeddingName);
  units_.push_back(emb);
  for (int64_t i = 0; i < m.config.num_layers(); ++i) {
    Unit u;
    u.name = "layer " + std::to_string(i);
    const std::string prefix = layer_prefix(i);
    for (auto it = m.weights.lower_bound(prefix); it != m.weights.end() && it->first.rfind(prefix, 0) == 0; ++it)
      add(u, it->first);
    units_.push_back(u);
  }
  Unit head;
  head.name = "head";
  add(head, kFinalNormName);
  add(head, kLmHeadName);
  units_.push_back(head);
  for (Unit& u : units_) {
    u.padded = (u.numel + world_ - 1) / world_ * world_;
    u.shard = u.padded / world_;
  }
}

std::vector<OwnedRange> ShardLayout::owned_ranges() const {
  std::vector<OwnedRange> out;
  for (size_t k = 0; k < units_.size(); ++k) {
    const Unit& u = units_[k];
    const int64_t lo = rank_ * u.shard, hi = lo + u.shard;
    for (const FlatTensor& t : u.tensors) {
      const int64_t a = std::clamp(lo, t.offset, t.offset + t.numel), b = std::clamp(hi, t.offset, t.offset + t.numel);
      // An empty range (the tensor lies wholly outside the shard) sits at a valid shard offset.
      out.push_back({t.name, static_cast<int64_t>(k), a - t.offset, b - t.offset, std::clamp(a - lo, int64_t{0}, u.shard)});
    }
  }
  return out;
}

at::Tensor flatten_unit(const Model& m, const Unit& u, at::ScalarType dtype) {
  at::Tensor flat = at::zeros({u.padded}, at::TensorOptions().dtype(dtype).device(m.device()));
  for (const FlatTensor& t : u.tensors) flat.narrow(0, t.offset, t.numel).copy_(m.w(t.name).detach().reshape({-1}));
  return flat;
}

std::vector<std::pair<std::string, at::Tensor>> unit_views(const at::Tensor& flat, const Unit& u) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const FlatTensor& t : u.tensors) out.emplace_back(t.name, flat.narrow(0, t.offset, t.numel).view(t.shape));
  return out;
}

}  // namespace mp::shard
