#include "prune/layer_source.h"

#include "common/error.h"
#include "model/checkpoint_io.h"
#include "model/model_folder.h"
#include "model/weights.h"
#include "prune/fingerprint.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <set>

namespace mp {
namespace {

class MemorySource : public LayerSource {
 public:
  explicit MemorySource(const Model& m) : m_(m) {}
  const ModelConfig& config() const override { return m_.config; }
  at::Device device() const override { return m_.device(); }
  const Model& ends() override { return m_; }
  const Model& layer(int64_t) override { return m_; }
  uint64_t fingerprint() override { return model_fingerprint(m_.weights); }

 private:
  const Model& m_;
};

class StreamingSource : public LayerSource {
 public:
  StreamingSource(const std::string& dir, at::Device device, std::optional<at::ScalarType> dtype)
      : reader_(dir), device_(device), dtype_(dtype) {
    if (!std::filesystem::is_directory(dir)) fail_input("{}: checkpoint folder not found", dir);
    config_ = load_config(dir);
    for (const std::string& n : reader_.names()) {
      std::string c = canonical_tensor_name(n);
      if (c.rfind("mtp.", 0) == 0) continue;
      if (!stored_.emplace(c, n).second) fail_input("{}: tensor '{}' is stored twice", dir, c);
    }
    std::set<std::string> expected;
    for (const TensorSpec& s : expected_tensors(config_)) {
      expected.insert(s.name);
      auto it = stored_.find(s.name);
      if (it == stored_.end())
        fail_input("{}: tensor '{}' is missing; config.json (pattern {}) implies it with shape {}", dir, s.name,
                   config_.pattern(), shape_string(s.shape));
      if (reader_.info(it->second).shape != s.shape)
        fail_input("{}: tensor '{}' has shape {}, config.json implies {}", dir, it->second,
                   shape_string(reader_.info(it->second).shape), shape_string(s.shape));
      const std::string prefix = "backbone.layers.";
      if (s.name.rfind(prefix, 0) == 0) {
        int64_t i = std::stoll(s.name.substr(prefix.size()));
        if (static_cast<int64_t>(layer_names_.size()) <= i) layer_names_.resize(i + 1);
        layer_names_[i].push_back(s.name);
      }
    }
    for (const auto& [canon, stored] : stored_)
      if (!expected.count(canon)) fail_input("{}: unexpected tensor '{}' (not implied by config.json)", dir, stored);
    ends_.config = config_;
    for (const char* n : {kEmbeddingName, kFinalNormName, kLmHeadName}) ends_.weights[n] = load(n);
    ends_.config.dtype = dtype_config_name(ends_.dtype());
    layer_.config = ends_.config;
  }

  const ModelConfig& config() const override { return ends_.config; }
  at::Device device() const override { return device_; }
  const Model& ends() override { return ends_; }
  const Model& layer(int64_t i) override {
    if (loaded_ != i) {
      layer_.weights.clear();  // frees the previous layer before the next one arrives
      for (const std::string& n : layer_names_.at(i)) layer_.weights[n] = load(n);
      loaded_ = i;
    }
    return layer_;
  }
  uint64_t fingerprint() override {
    if (per_tensor_.size() != stored_.size())
      fail_runtime("streaming fingerprint: only {} of {} tensors were loaded", per_tensor_.size(), stored_.size());
    return combine_fingerprints(per_tensor_);
  }

 private:
  // As load_model: weights are floating point and finite (a NaN would run through every score).
  at::Tensor load(const std::string& canon) {
    const std::string& stored = stored_.at(canon);
    const StDType dt = reader_.info(stored).dtype;
    if (dt != StDType::F32 && dt != StDType::BF16 && dt != StDType::F16)
      fail_input("{}: tensor '{}' has dtype {}; model weights must be F32, BF16 or F16", reader_.dir(), stored,
                 st_dtype_name(dt));
    at::Tensor t = reader_.load(stored);
    if (!all_finite(t))
      fail_input("{}: tensor '{}' holds NaN or infinite values; the checkpoint is damaged", reader_.dir(), stored);
    if (dtype_) t = t.to(*dtype_);
    t = t.to(device_);
    if (!per_tensor_.count(canon)) per_tensor_[canon] = tensor_fingerprint(canon, t);
    return t;
  }

  CheckpointReader reader_;
  at::Device device_;
  std::optional<at::ScalarType> dtype_;
  ModelConfig config_;
  std::map<std::string, std::string> stored_;  // canonical -> on-disk name
  std::vector<std::vector<std::string>> layer_names_;
  std::map<std::string, uint64_t> per_tensor_;
  Model ends_, layer_;
  int64_t loaded_ = -1;
};

}  // namespace

std::unique_ptr<LayerSource> memory_source(const Model& m) { return std::make_unique<MemorySource>(m); }

std::unique_ptr<LayerSource> streaming_source(const std::string& dir, at::Device device,
                                              std::optional<at::ScalarType> dtype) {
  return std::make_unique<StreamingSource>(dir, device, dtype);
}

}  // namespace mp
