// A cheap 64-bit fingerprint of a model's weights, to tell whether an importance file belongs to
// the checkpoint being pruned. Per tensor: FNV-1a over its name, its shape and up to 64 elements
// at evenly spaced flat positions, each rounded to bfloat16 first, so the fingerprint does not
// depend on the dtype the model was loaded in (fp32 <-> bf16 storage of the same values agree)
// nor on the device. Tensors are combined in name order, so the load order does not matter.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>

namespace mp {

uint64_t fnv1a64(const void* data, size_t bytes, uint64_t h = 1469598103934665603ull);
uint64_t tensor_fingerprint(const std::string& name, const at::Tensor& t);
// Combines per-tensor fingerprints (name -> value), in name order.
uint64_t combine_fingerprints(const std::map<std::string, uint64_t>& per_tensor);
uint64_t model_fingerprint(const std::map<std::string, at::Tensor>& weights);

}  // namespace mp
