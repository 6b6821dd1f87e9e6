// Whole tensors out of a sharded checkpoint: each is gathered from the rank files by
// ShardedCheckpointReader::read, converted, and either kept (load_sharded_model) or written and
// dropped before the next one is read (consolidate_sharded_checkpoint).
#include "distill/sharded_consolidate.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "model/checkpoint_io.h"
#include "model/companion_files.h"
#include "model/weights.h"

#include <ATen/core/Tensor.h>

#include <map>
#include <vector>

namespace mp {

Model load_sharded_model(const ShardedCheckpointReader& reader, const LoadOptions& opt) {
  Model m;
  m.config = reader.config();
  const std::string where = reader.dir() + "/" + kShardManifestName;
  std::map<std::string, std::vector<int64_t>> expected;
  for (const TensorSpec& s : expected_tensors(m.config)) expected[s.name] = s.shape;
  for (const TensorSpec& t : reader.tensors()) {
    auto it = expected.find(t.name);
    if (it == expected.end())
      fail_input("{}: unexpected tensor '{}' (not implied by the config, pattern {})", where, t.name,
                 m.config.pattern());
    if (it->second != t.shape)
      fail_input("{}: tensor '{}' has shape {}, the config implies {}", where, t.name, shape_string(t.shape),
                 shape_string(it->second));
    expected.erase(it);
  }
  if (!expected.empty())
    fail_input("{}: tensor '{}' is missing; the config implies it", where, expected.begin()->first);
  for (const TensorSpec& t : reader.tensors()) {
    at::Tensor w = reader.read(t.name, kShardKindWeight);
    at::ScalarType st = opt.dtype ? *opt.dtype : w.scalar_type();
    m.weights[t.name] = w.to(opt.device, st);
  }
  if (!m.weights.empty()) m.config.dtype = dtype_config_name(m.weights.begin()->second.scalar_type());
  return m;
}

void consolidate_sharded_checkpoint(const std::string& dir, const std::string& out_dir, const ConsolidateOptions& opt) {
  ShardedCheckpointReader reader(dir);
  ModelConfig config = reader.config();
  const at::ScalarType dtype = opt.dtype ? *opt.dtype : parse_dtype(config.dtype);
  config.dtype = dtype_config_name(dtype);
  StDType st;
  if (!st_dtype_from_scalar_type(dtype, &st))
    fail_usage("{}: cannot write weights as {}", out_dir, c10::toString(dtype));

  std::vector<StTensorSpec> specs;
  for (const TensorSpec& t : reader.tensors()) specs.push_back({t.name, st, t.shape});
  AtomicDir out(out_dir);
  write_file_atomic(out.path_in_temp("config.json"), config_to_json_text(config));
  write_checkpoint_tensors_streaming(out.temp_path(), specs, opt.max_shard_bytes, [&](size_t i) {
    return reader.read(specs[i].name, kShardKindWeight).to(dtype);
  });
  copy_companion_files(opt.companions_from, out.temp_path());
  out.commit();
}

}  // namespace mp
