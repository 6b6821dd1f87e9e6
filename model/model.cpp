#include "model/model.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "model/checkpoint_io.h"
#include "model/companion_files.h"
#include "model/weights.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <filesystem>
#include <set>

namespace mp {

const at::Tensor& Model::w(const std::string& name) const {
  auto it = weights.find(name);
  if (it == weights.end()) fail_runtime("model has no tensor '{}'", name);
  return it->second;
}

const at::Tensor& Model::layer_w(int64_t layer, const char* suffix) const { return w(layer_tensor(layer, suffix)); }

at::Device Model::device() const { return w(kEmbeddingName).device(); }
at::ScalarType Model::dtype() const { return w(kEmbeddingName).scalar_type(); }

Model Model::to(at::Device device, at::ScalarType dtype) const {
  Model out;
  out.config = config;
  out.config.dtype = dtype_config_name(dtype);
  for (const auto& [name, t] : weights) out.weights[name] = t.to(device, dtype);
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> Model::ordered() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const TensorSpec& s : expected_tensors(config)) out.emplace_back(s.name, w(s.name));
  return out;
}


// Checked in slices while the tensor is still in the CPU cache after its copy out of the file (one
// extra read pass; the temporary is at most 16 MB).
bool all_finite(const at::Tensor& t) {
  if (!c10::isFloatingType(t.scalar_type())) return true;
  const at::Tensor flat = t.reshape({-1});
  const int64_t n = flat.numel();
  constexpr int64_t kSlice = int64_t{1} << 24;
  for (int64_t i = 0; i < n; i += kSlice)
    if (!at::isfinite(flat.slice(0, i, std::min(n, i + kSlice))).all().item<bool>()) return false;
  return true;
}


Model load_model(const std::string& dir, const LoadOptions& opt) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) fail_input("{}: checkpoint folder not found", dir);
  Model m;
  m.config = load_config(dir);
  CheckpointReader reader(dir);

  std::map<std::string, std::string> on_disk;  // canonical -> stored name
  for (const std::string& n : reader.names()) {
    std::string c = canonical_tensor_name(n);
    if (c.rfind("mtp.", 0) == 0) continue;  // multi-token-prediction heads: not part of the model
    if (!on_disk.emplace(c, n).second)
      fail_input("{}: tensor '{}' is stored twice (as '{}' and '{}')", dir, c, on_disk[c], n);
  }
  std::set<std::string> expected;
  for (const TensorSpec& spec : expected_tensors(m.config)) {
    expected.insert(spec.name);
    auto it = on_disk.find(spec.name);
    if (it == on_disk.end())
      fail_input("{}: tensor '{}' is missing; config.json ({} layers, pattern {}) implies it with shape {}", dir,
                 spec.name, m.config.num_layers(), m.config.pattern(), shape_string(spec.shape));
    const StTensorInfo& info = reader.info(it->second);
    if (info.shape != spec.shape)
      fail_input("{}: tensor '{}' has shape {}, config.json implies {}", dir, it->second, shape_string(info.shape),
                 shape_string(spec.shape));
    if (info.dtype != StDType::F32 && info.dtype != StDType::BF16 && info.dtype != StDType::F16)
      fail_input("{}: tensor '{}' has dtype {}; model weights must be F32, BF16 or F16", dir, it->second,
                 st_dtype_name(info.dtype));
  }
  for (const auto& [canon, stored] : on_disk)
    if (!expected.count(canon))
      fail_input("{}: unexpected tensor '{}' (not implied by config.json, pattern {})", dir, stored,
                 m.config.pattern());
  for (const TensorSpec& spec : expected_tensors(m.config)) {
    at::Tensor t = reader.load(on_disk[spec.name]);
    if (!all_finite(t))
      fail_input("{}: tensor '{}' holds NaN or infinite values; the checkpoint is damaged", dir, on_disk[spec.name]);
    if (opt.dtype) t = t.to(*opt.dtype);
    m.weights[spec.name] = t.to(opt.device);
  }
  m.config.dtype = dtype_config_name(m.dtype());
  return m;
}

void save_model(const Model& m, const std::string& dir, const SaveOptions& opt) {
  AtomicDir out(dir);
  ModelConfig c = m.config;
  auto tensors = m.ordered();
  if (opt.dtype) {
    for (auto& [n, t] : tensors) t = t.to(*opt.dtype);
    c.dtype = dtype_config_name(*opt.dtype);
  } else {
    c.dtype = dtype_config_name(m.dtype());
  }
  write_file_atomic(out.path_in_temp("config.json"), config_to_json_text(c));
  write_checkpoint_tensors(out.temp_path(), tensors, opt.max_shard_bytes);
  copy_companion_files(opt.companions_from, out.temp_path());
  out.commit();
}

Model make_random_model(const ModelConfig& c, uint64_t seed, at::ScalarType dtype) {
  Model m;
  m.config = c;
  m.config.dtype = dtype_config_name(dtype);
  for (auto& [n, t] : init_weights(c, seed, dtype)) m.weights[n] = t;
  return m;
}

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "fp32" || name == "float32" || name == "f32") return at::kFloat;
  if (name == "bf16" || name == "bfloat16") return at::kBFloat16;
  if (name == "fp16" || name == "float16" || name == "f16") return at::kHalf;
  fail_usage("unknown dtype '{}'; expected fp32, bf16 or fp16", name);
}

std::string dtype_config_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    default: fail_runtime("unsupported model dtype {}", c10::toString(t));
  }
}

at::Device parse_device(const std::string& name) {
  if (name == "cpu") return at::kCPU;
  if (name.rfind("cuda", 0) == 0) {
    if (!at::hasCUDA()) fail_usage("--device {}: this build of LibTorch has no CUDA, or no GPU is visible", name);
    try {
      return at::Device(name);
    } catch (...) {
      fail_usage("--device {}: expected cpu, cuda or cuda:N", name);
    }
  }
  fail_usage("--device {}: expected cpu, cuda or cuda:N", name);
}

}  // namespace mp
