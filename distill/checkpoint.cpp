#include "distill/checkpoint.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "model/checkpoint_io.h"
#include "model/companion_files.h"
#include "model/config.h"
#include "model/safetensors.h"

#include <filesystem>

namespace fs = std::filesystem;

namespace mp {

std::string checkpoint_dir_name(int64_t step) { return "checkpoint-" + std::to_string(step); }

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
    nlohmann::json j = {{"step", state.step},
                        {"tokens", state.tokens},
                        {"sampler_position", state.sampler_position},
                        {"optimizer_steps", state.optimizer_steps},
                        {"rng", "none (training draws no random numbers; data order is the sampler's)"},
                        {"config", state.config}};
    write_file_atomic(dir.path_in_temp("trainer_state.json"), j.dump(2) + "\n");
    copy_companion_files(companions_from, dir.temp_path());
    dir.commit();
  }
  write_file_atomic(output + "/latest", checkpoint_dir_name(state.step) + "\n");
}

std::optional<std::string> latest_checkpoint(const std::string& output) {
  const std::string pointer = output + "/latest";
  if (!fs::exists(pointer)) return std::nullopt;
  std::string name = read_file(pointer);
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  if (name.empty() || name.find('/') != std::string::npos)
    fail_input("{}: expected the name of a checkpoint folder, found '{}'", pointer, name);
  const std::string dir = output + "/" + name;
  if (!fs::exists(dir + "/trainer_state.json") || !fs::exists(dir + "/optimizer.safetensors"))
    fail_input("{}: names {}, which is missing or incomplete (no trainer_state.json / optimizer.safetensors)", pointer,
               dir);
  return dir;
}

TrainerState read_trainer_state(const std::string& checkpoint_dir) {
  const std::string path = checkpoint_dir + "/trainer_state.json";
  nlohmann::json j = nlohmann::json::parse(read_file(path), nullptr, false);
  if (j.is_discarded() || !j.is_object()) fail_input("{}: not a JSON object", path);
  TrainerState s;
  for (const char* k : {"step", "tokens", "sampler_position", "optimizer_steps", "config"})
    if (!j.contains(k)) fail_input("{}: field '{}' is missing", path, k);
  for (const char* k : {"step", "tokens", "sampler_position", "optimizer_steps"})
    if (!j[k].is_number_integer() || j[k].get<int64_t>() < 0)
      fail_input("{}: field '{}' must be a whole number >= 0, got {}", path, k, j[k].dump());
  s.step = j["step"].get<int64_t>();
  s.tokens = j["tokens"].get<int64_t>();
  s.sampler_position = j["sampler_position"].get<uint64_t>();
  s.optimizer_steps = j["optimizer_steps"].get<int64_t>();
  s.config = j["config"];
  return s;
}

void load_optimizer_state(const std::string& checkpoint_dir, AdamW& opt, int64_t optimizer_steps) {
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
  for (const auto& e : fs::directory_iterator(output, ec)) {
    const std::string name = e.path().filename().string();
    const bool temp = name.find(".partial-") != std::string::npos || name.find(".old-") != std::string::npos;
    if (name.rfind(".checkpoint-", 0) == 0 && temp) fs::remove_all(e.path(), ec);
  }
}

}  // namespace mp
