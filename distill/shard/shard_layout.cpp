#include "distill/shard/shard_layout.h"

#include "common/error.h"
#include "model/weights.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <map>

namespace mp::shard {

namespace {

std::vector<TensorSpec> specs_of(const Model& m) {
  std::vector<TensorSpec> out;
  for (const auto& [name, t] : m.weights) out.push_back({name, t.sizes().vec()});
  return out;
}

}  // namespace

ShardLayout::ShardLayout(const Model& m, int64_t world_size, int64_t rank)
    : ShardLayout(m.config, specs_of(m), world_size, rank) {}

ShardLayout::ShardLayout(const ModelConfig& config, const std::vector<TensorSpec>& tensors, int64_t world_size,
                         int64_t rank)
    : world_(world_size), rank_(rank) {
  if (world_size < 1 || rank < 0 || rank >= world_size)
    fail_runtime("shard layout: rank {} of world size {} is out of range", rank, world_size);
  std::map<std::string, std::vector<int64_t>> shapes;  // by name: a layer's tensors in name order
  for (const TensorSpec& t : tensors) shapes[t.name] = t.shape;
  auto add = [&](Unit& u, const std::string& name, const std::vector<int64_t>& shape) {
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    u.tensors.push_back({name, shape, u.numel, numel});
    u.numel += numel;
  };
  auto add_named = [&](Unit& u, const std::string& name) {
    auto it = shapes.find(name);
    if (it == shapes.end()) fail_runtime("shard layout: the model has no tensor '{}'", name);
    add(u, name, it->second);
  };
  Unit emb;
  emb.name = "embedding";
  add_named(emb, kEmbeddingName);
  units_.push_back(emb);
  for (int64_t i = 0; i < config.num_layers(); ++i) {
    Unit u;
    u.name = "layer " + std::to_string(i);
    const std::string prefix = layer_prefix(i);
    for (auto it = shapes.lower_bound(prefix); it != shapes.end() && it->first.rfind(prefix, 0) == 0; ++it)
      add(u, it->first, it->second);
    units_.push_back(u);
  }
  Unit head;
  head.name = "head";
  add_named(head, kFinalNormName);
  add_named(head, kLmHeadName);
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
