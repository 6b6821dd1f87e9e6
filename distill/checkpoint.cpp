#include "distill/checkpoint.h"

#include "distill/sharded_checkpoint.h"
#include "common/atomic_output.h"
#include "common/error.h"
#include "common/input_file.h"
#include "common/json_file.h"
#include "common/output_guard.h"
#include "model/checkpoint_io.h"
#include "model/companion_files.h"
#include "model/config.h"
#include "model/safetensors.h"

#include <filesystem>

namespace fs = std::filesystem;

namespace mp {

std::string checkpoint_dir_name(int64_t step) { return "checkpoint-" + std::to_string(step); }

nlohmann::json trainer_state_to_json(const TrainerState& s) {
  return {{"step", s.step},
          {"tokens", s.tokens},
          {"sampler_position", s.sampler_position},
          {"optimizer_steps", s.optimizer_steps},
          {"rng", "none (training draws no random numbers; data order is the sampler's)"},
          {"config", s.config}};
}

TrainerState trainer_state_from_json(const nlohmann::json& j, const std::string& path) {
  if (!j.is_object()) fail_input("{}: not a JSON object", path);
  TrainerState s;
  for (const char* k : {"step", "tokens", "sampler_position", "optimizer_steps", "config"})
    if (!j.contains(k)) fail_input("{}: field '{}' is missing", path, k);
  for (const char* k : {"step", "tokens", "sampler_position", "optimizer_steps"})
    if (!j[k].is_number_integer() || j[k].get<int64_t>() < 0)
      fail_input("{}: field '{}' must be a whole number >= 0, got {}", path, k, json_brief(j[k]));
  s.step = j["step"].get<int64_t>();
  s.tokens = j["tokens"].get<int64_t>();
  s.sampler_position = j["sampler_position"].get<uint64_t>();
  s.optimizer_steps = j["optimizer_steps"].get<int64_t>();
  s.config = j["config"];
  return s;
}

void save_training_checkpoint(const std::string& output, const Model& student, const AdamW& opt,
                              const TrainerState& state, const std::string& companions_from) {
  const std::string final_dir = output + "/" + checkpoint_dir_name(state.step);
  {
    AtomicDir dir(final_dir);
    write_file_atomic(dir.path_in_temp("config.json"), config_to_json_text(student.config));
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (auto& [n, t] : student.ordered()) tensors.emplace_back(n, t.detach());
    write_checkpoint_tensors(dir.temp_path(), tensors, 0);
    write_safetensors(dir.path_in_temp("optimizer.safetensors"), opt.state_tensors(),
                      {{"optimizer", "adamw"}, {"steps", std::to_string(opt.steps_taken())}});
    write_file_atomic(dir.path_in_temp("trainer_state.json"), trainer_state_to_json(state).dump(2) + "\n");
    copy_companion_files(companions_from, dir.temp_path());
    dir.commit();
  }
  write_file_atomic(output + "/latest", checkpoint_dir_name(state.step) + "\n");
}

std::optional<std::string> latest_checkpoint(const std::string& output) {
  const std::string pointer = output + "/latest";
  if (!fs::exists(pointer)) return std::nullopt;
  std::string name = read_regular_file(pointer, 4096, "latest checkpoint pointer");
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  if (name.empty() || name.find('/') != std::string::npos)
    fail_input("{}: expected the name of a checkpoint folder, found '{}'", pointer, name);
  const std::string dir = output + "/" + name;
  if (is_sharded_checkpoint(dir)) return dir;
  if (!fs::exists(dir + "/trainer_state.json") || !fs::exists(dir + "/optimizer.safetensors"))
    fail_input("{}: names {}, which is missing or incomplete (no trainer_state.json / optimizer.safetensors)", pointer,
               dir);
  return dir;
}

TrainerState read_trainer_state(const std::string& checkpoint_dir) {
  if (is_sharded_checkpoint(checkpoint_dir)) {
    const std::string path = checkpoint_dir + "/" + kShardManifestName;
    const nlohmann::json j = read_json_file(path);
    if (!j.is_object() || !j.contains("trainer_state"))
      fail_input("{}: not a JSON object with a 'trainer_state' (truncated or corrupt)", path);
    return trainer_state_from_json(j["trainer_state"], path + " (trainer_state)");
  }
  const std::string path = checkpoint_dir + "/trainer_state.json";
  return trainer_state_from_json(read_json_file(path), path);
}

void load_optimizer_state(const std::string& checkpoint_dir, AdamW& opt, int64_t optimizer_steps) {
  if (is_sharded_checkpoint(checkpoint_dir)) {
    ShardedCheckpointReader r(checkpoint_dir);
    std::map<std::string, at::Tensor> state;
    for (const std::string& n : opt.names()) {
      state["master." + n] = r.read(n, kShardKindWeight).to(at::kFloat);
      state["exp_avg." + n] = r.read(n, kShardKindExpAvg);
      state["exp_avg_sq." + n] = r.read(n, kShardKindExpAvgSq);
    }
    opt.load_state(state, optimizer_steps, checkpoint_dir + "/" + kShardManifestName);
    return;
  }
  const std::string path = checkpoint_dir + "/optimizer.safetensors";
  auto f = SafetensorsFile::open(path);
  std::map<std::string, at::Tensor> state;
  for (const StTensorInfo& t : f->tensors()) {
    if (t.dtype != StDType::F32) fail_input("{}: tensor '{}' is {}, optimizer state must be F32", path, t.name,
                                            st_dtype_name(t.dtype));
    state[t.name] = f->load(t.name);
  }
  opt.load_state(state, optimizer_steps, path);
}

void remove_partial_checkpoints(const std::string& output) {
  std::error_code ec;
  if (!fs::is_directory(output)) return;
  std::vector<fs::path> doomed;
  for (const auto& e : fs::directory_iterator(output, ec)) {
    const std::string name = e.path().filename().string();
    const bool temp = name.find(".partial-") != std::string::npos || name.find(".old-") != std::string::npos;
    if (name.rfind('.', 0) == 0 && temp) doomed.push_back(e.path());
  }
  for (const fs::path& p : doomed) fs::remove_all(p, ec);
}

namespace {
bool is_nonempty_dir(const std::string& p) {
  std::error_code ec;
  return fs::is_directory(p, ec) && !fs::is_empty(p, ec);
}
}  // namespace

std::optional<std::string> run_folder_start(const std::string& output, bool resume, bool overwrite,
                                            const std::vector<std::string>& inputs, bool check_occupied) {
  if (resume && overwrite) fail_usage("--resume continues the run in --output and --overwrite replaces it; give one");
  // The overlap checks only: whether the folder may be written is decided below.
  guard_output({"--output", output, OutputKind::Folder}, inputs, true);
  if (!is_nonempty_dir(output) || overwrite) return std::nullopt;
  if (!check_occupied) return resume ? latest_checkpoint(output) : std::nullopt;  // rank 0 decides the rest
  const bool finished = fs::exists(output + "/final"), summarised = fs::exists(output + "/summary.json");
  if (finished && summarised)
    fail_input("--output {}: already holds a finished run (final/, summary.json); pass --overwrite to replace it or "
               "choose another --output", output);
  const std::optional<std::string> latest = latest_checkpoint(output);
  const bool run_folder = latest || finished || fs::exists(output + "/train_config.json");
  if (!run_folder)
    fail_input("--output {}: exists, is not empty and holds no training run; pass --overwrite to replace it or "
               "choose another --output", output);
  if (!resume)
    fail_input("--output {}: already holds an unfinished run{}; pass --resume to continue it, --overwrite to start "
               "over, or choose another --output",
               output, latest ? " (latest " + *latest + ")" : std::string());
  return latest;
}

void clear_run_folder(const std::string& output) {
  std::error_code ec;
  if (!fs::is_directory(output, ec)) return;
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(output, ec)) entries.push_back(e.path());
  for (const fs::path& p : entries) {
    fs::remove_all(p, ec);
    if (ec) fail_runtime("{}: cannot remove {} (--overwrite): {}", output, p.string(), ec.message());
  }
}

}  // namespace mp
