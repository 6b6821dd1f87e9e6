#include "distill/shard/shard_source.h"

#include "common/error.h"
#include "distill/sharded_checkpoint.h"
#include "model/model_folder.h"
#include "model/safetensors.h"

#include <ATen/ATen.h>

#include <map>
#include <utility>

namespace mp::shard {
namespace {

// Tensors held whole in memory, by "KIND/NAME".
class InMemorySource : public ShardSource {
 public:
  InMemorySource(ModelConfig config, std::vector<TensorSpec> tensors, std::map<std::string, at::Tensor> by_key,
                 bool moments, int64_t steps)
      : config_(std::move(config)), tensors_(std::move(tensors)), by_key_(std::move(by_key)), moments_(moments),
        steps_(steps) {}
  const ModelConfig& config() const override { return config_; }
  const std::vector<TensorSpec>& tensors() const override { return tensors_; }
  bool has_moments() const override { return moments_; }
  int64_t optimizer_steps() const override { return steps_; }
  at::Tensor read(const std::string& name, const std::string& kind, int64_t begin, int64_t end) const override {
    auto it = by_key_.find(kind + "/" + name);
    if (it == by_key_.end()) fail_runtime("shard source: no '{}' of tensor '{}'", kind, name);
    return it->second.reshape({-1}).slice(0, begin, end).cpu().clone();
  }

 private:
  ModelConfig config_;
  std::vector<TensorSpec> tensors_;
  std::map<std::string, at::Tensor> by_key_;
  bool moments_;
  int64_t steps_;
};

class ModelFolderSource : public ShardSource {
 public:
  explicit ModelFolderSource(const std::string& dir) : folder_(dir) {}
  const ModelConfig& config() const override { return folder_.config(); }
  const std::vector<TensorSpec>& tensors() const override { return folder_.tensors(); }
  bool has_moments() const override { return false; }
  int64_t optimizer_steps() const override { return 0; }
  at::Tensor read(const std::string& name, const std::string& kind, int64_t begin, int64_t end) const override {
    if (kind != kShardKindWeight) fail_runtime("{}: a model folder holds no '{}'", folder_.dir(), kind);
    return folder_.read_range(name, begin, end);
  }

 private:
  ModelFolder folder_;
};

// checkpoint-STEP/ of an unsharded run: optimizer.safetensors holds "master.", "exp_avg." and
// "exp_avg_sq." + NAME in fp32.
class WholeCheckpointSource : public ShardSource {
 public:
  WholeCheckpointSource(const std::string& dir, int64_t steps) : steps_(steps) {
    config_ = load_config(dir);
    tensors_ = expected_tensors(config_);
    file_ = SafetensorsFile::open(dir + "/optimizer.safetensors");
    for (const TensorSpec& t : tensors_)
      for (const char* prefix : {"master.", "exp_avg.", "exp_avg_sq."}) {
        const StTensorInfo* info = file_->find(prefix + t.name);
        if (!info)
          fail_input("{}: tensor '{}{}' is missing; config.json implies it with shape {}", file_->path(), prefix, t.name,
                     shape_string(t.shape));
        if (info->shape != t.shape || info->dtype != StDType::F32)
          fail_input("{}: tensor '{}{}' is {} {}, expected F32 {}", file_->path(), prefix, t.name,
                     st_dtype_name(info->dtype), shape_string(info->shape), shape_string(t.shape));
      }
  }
  const ModelConfig& config() const override { return config_; }
  const std::vector<TensorSpec>& tensors() const override { return tensors_; }
  bool has_moments() const override { return true; }
  int64_t optimizer_steps() const override { return steps_; }
  at::Tensor read(const std::string& name, const std::string& kind, int64_t begin, int64_t end) const override {
    const std::string key = (kind == kShardKindWeight ? std::string("master") : kind) + "." + name;
    at::Tensor t = file_->load_range(key, begin, end);
    if (!all_finite(t)) fail_input("{}: tensor '{}' holds NaN or infinite values", file_->path(), key);
    return t;
  }

 private:
  ModelConfig config_;
  std::vector<TensorSpec> tensors_;
  std::shared_ptr<SafetensorsFile> file_;
  int64_t steps_;
};

class ShardedCheckpointSource : public ShardSource {
 public:
  explicit ShardedCheckpointSource(const std::string& dir) : reader_(dir) {
    moments_ = !reader_.tensors().empty() && reader_.has(reader_.tensors().front().name, kShardKindExpAvg);
  }
  const ModelConfig& config() const override { return reader_.config(); }
  const std::vector<TensorSpec>& tensors() const override { return reader_.tensors(); }
  bool has_moments() const override { return moments_; }
  int64_t optimizer_steps() const override { return reader_.state().optimizer_steps; }
  at::Tensor read(const std::string& name, const std::string& kind, int64_t begin, int64_t end) const override {
    at::Tensor t = reader_.read_range(name, kind, begin, end);
    if (!all_finite(t)) fail_input("{}: '{}' of tensor '{}' holds NaN or infinite values", reader_.dir(), kind, name);
    return t;
  }

 private:
  ShardedCheckpointReader reader_;
  bool moments_ = false;
};

}  // namespace

std::unique_ptr<ShardSource> model_source(const Model& m) {
  std::map<std::string, at::Tensor> by_key;
  for (const auto& [n, t] : m.weights) by_key[std::string(kShardKindWeight) + "/" + n] = t.detach();
  return std::make_unique<InMemorySource>(m.config, expected_tensors(m.config), std::move(by_key), false, 0);
}

std::unique_ptr<ShardSource> optimizer_source(const AdamW& opt, const ModelConfig& config) {
  std::map<std::string, at::Tensor> by_key;
  for (auto& [key, t] : opt.state_tensors()) {  // "master.NAME", "exp_avg.NAME", "exp_avg_sq.NAME"
    const size_t dot = key.find('.');
    const std::string kind = key.substr(0, dot), name = key.substr(dot + 1);
    by_key[(kind == "master" ? std::string(kShardKindWeight) : kind) + "/" + name] = t;
  }
  return std::make_unique<InMemorySource>(config, expected_tensors(config), std::move(by_key), opt.steps_taken() > 0,
                                          opt.steps_taken());
}

std::unique_ptr<ShardSource> model_folder_source(const std::string& dir) {
  return std::make_unique<ModelFolderSource>(dir);
}

std::unique_ptr<ShardSource> checkpoint_source(const std::string& dir, int64_t optimizer_steps) {
  if (is_sharded_checkpoint(dir)) return std::make_unique<ShardedCheckpointSource>(dir);
  return std::make_unique<WholeCheckpointSource>(dir, optimizer_steps);
}

std::vector<at::Tensor> read_shards(const ShardSource& src, const ShardLayout& layout, const std::string& kind,
                                    at::ScalarType dtype, at::Device device) {
  std::vector<at::Tensor> out;
  for (const Unit& u : layout.units())
    out.push_back(at::zeros({u.shard}, at::TensorOptions().dtype(dtype).device(device)));
  for (const OwnedRange& r : layout.owned_ranges())
    if (r.end > r.begin)
      out[r.unit].narrow(0, r.shard_offset, r.end - r.begin).copy_(src.read(r.name, kind, r.begin, r.end).to(dtype));
  return out;
}

}  // namespace mp::shard
