// Subcommands over one checkpoint: init, forward, convert.
#include "cli/commands.h"
#include "cli/common_options.h"
#include "cli/format.h"
#include "common/error.h"
#include "common/output_guard.h"
#include "distill/sharded_consolidate.h"
#include "model/accounting.h"
#include "model/checkpoint_io.h"
#include "model/forward.h"
#include "model/model.h"
#include "model/safetensors.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <iostream>
#include <memory>

namespace mp::cli {
namespace {

struct InitArgs {
  std::string config, output, dtype = "bf16", max_shard = "5GB";
  uint64_t seed = 0;
  bool overwrite = false;
  ReportFlags report;
};

// The checkpoint written: {"output", ...} on stdout with --json, the "wrote" line on stderr.
void report_written(const ReportFlags& r, nlohmann::json result, const std::string& line) {
  if (r.json) std::cout << result.dump(2) << "\n";
  note(r, line);
}

// A model whose weights cannot fit this machine's memory is refused before allocating them.
void check_fits_memory(const ModelConfig& c, at::ScalarType dt, const std::string& source) {
  const double bytes = static_cast<double>(count_params(c).total()) * static_cast<double>(c10::elementSize(dt));
  const double phys = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGE_SIZE));
  if (phys > 0 && bytes > phys)
    fail_input("{}: the model's weights need {} in {}, more than this machine's {} of memory", source, gib(bytes),
               dtype_config_name(dt), gib(phys));
}

void run_init(const InitArgs& a) {
  guard_output({"--output", a.output, OutputKind::Folder}, {a.config}, a.overwrite);
  ModelConfig c = load_config(a.config);
  at::ScalarType dt = parse_dtype(a.dtype);
  uint64_t shard = parse_byte_size(a.max_shard);
  check_fits_memory(c, dt, a.config);
  Model m = make_random_model(c, a.seed, dt);
  SaveOptions so;
  so.max_shard_bytes = shard;
  save_model(m, a.output, so);
  report_written(a.report,
                 {{"output", a.output}, {"parameters", count_params(c).total()}, {"dtype", dtype_config_name(dt)},
                  {"seed", a.seed}},
                 fmt::format("wrote {} ({} parameters, {}, seed {})", a.output, billions(count_params(c).total()),
                             dtype_config_name(dt), a.seed));
}

struct ForwardArgs {
  std::string model, input, output, device = "cpu", dtype = "fp32";
  bool overwrite = false;
  ReportFlags report;
};

void run_forward(const ForwardArgs& a) {
  guard_output({"--output", a.output, OutputKind::File}, {a.model, a.input}, a.overwrite);
  at::Device dev = parse_device(a.device);
  at::ScalarType dt = parse_dtype(a.dtype);
  auto in = SafetensorsFile::open(a.input);
  if (!in->find("input_ids")) fail_input("{}: no tensor 'input_ids' (expected int64 [batch, length])", a.input);
  at::Tensor ids = in->load("input_ids");
  LoadOptions lo;
  lo.device = dev;
  lo.dtype = dt;
  Model m = load_model(a.model, lo);
  check_token_ids(ids, m.config.vocab_size, "input_ids");
  at::NoGradGuard no_grad;
  at::Tensor logits = forward_logits(m, ids.to(dev));
  write_safetensors(a.output, {{"logits", logits.cpu().contiguous()}});
  report_written(a.report, {{"output", a.output}, {"logits_shape", logits.sizes().vec()}},
                 fmt::format("wrote {}: logits [{}, {}, {}]", a.output, logits.size(0), logits.size(1), logits.size(2)));
}

struct ConvertArgs {
  std::string model, output, dtype, max_shard = "5GB";
  bool overwrite = false;
  ReportFlags report;
};

void run_convert(const ConvertArgs& a) {
  guard_output({"--output", a.output, OutputKind::Folder}, {a.model}, a.overwrite);
  uint64_t shard = parse_byte_size(a.max_shard);
  if (is_sharded_checkpoint(a.model)) {  // a sharded training step: streamed, one tensor at a time
    ConsolidateOptions co;
    if (!a.dtype.empty()) co.dtype = parse_dtype(a.dtype);
    co.max_shard_bytes = shard;
    consolidate_sharded_checkpoint(a.model, a.output, co);
    report_written(a.report, {{"output", a.output}, {"from_sharded_checkpoint", true}},
                   fmt::format("wrote {} (from sharded checkpoint {})", a.output, a.model));
    return;
  }
  LoadOptions lo;
  if (!a.dtype.empty()) lo.dtype = parse_dtype(a.dtype);
  Model m = load_model(a.model, lo);
  SaveOptions so;
  so.max_shard_bytes = shard;
  so.companions_from = a.model;
  save_model(m, a.output, so);
  report_written(a.report, {{"output", a.output}, {"dtype", dtype_config_name(m.dtype())}},
                 fmt::format("wrote {} ({})", a.output, dtype_config_name(m.dtype())));
}

}  // namespace

void register_init(CLI::App& app) {
  auto a = std::make_shared<InitArgs>();
  CLI::App* cmd = app.add_subcommand("init", "Write a randomly initialised checkpoint for a config");
  cmd->add_option("--config", a->config, "config.json (or a folder holding one)")->required();
  add_output(cmd, a->output, "Output checkpoint folder")->required();
  add_seed(cmd, a->seed, "Initialisation seed");
  add_dtype(cmd, a->dtype, "Stored dtype: fp32, bf16 or fp16")->capture_default_str();
  add_max_shard_size(cmd, a->max_shard);
  add_overwrite(cmd, a->overwrite);
  add_report_flags(cmd, a->report);
  cmd->callback([a] { run_init(*a); });
}

void register_forward(CLI::App& app) {
  auto a = std::make_shared<ForwardArgs>();
  CLI::App* cmd = app.add_subcommand("forward", "Logits for token ids (safetensors in, safetensors out)");
  add_model(cmd, a->model)->required();
  cmd->add_option("--input", a->input, "safetensors file with int64 'input_ids' [batch, length]")->required();
  add_output(cmd, a->output, "safetensors file to write 'logits' float32 [batch, length, vocab]")->required();
  add_device(cmd, a->device);
  add_dtype(cmd, a->dtype)->capture_default_str();
  add_overwrite(cmd, a->overwrite);
  add_report_flags(cmd, a->report);
  cmd->callback([a] { run_forward(*a); });
}

void register_convert(CLI::App& app) {
  auto a = std::make_shared<ConvertArgs>();
  CLI::App* cmd = app.add_subcommand("convert", "Rewrite a checkpoint (dtype, sharding) in canonical HF form");
  add_model(cmd, a->model, "Input checkpoint folder (or a sharded training step, OUTPUT/checkpoint-STEP)")->required();
  add_output(cmd, a->output, "Output checkpoint folder")->required();
  add_dtype(cmd, a->dtype, "Stored dtype: fp32, bf16 or fp16 (default: as stored; a sharded step: the run's compute dtype)");
  add_max_shard_size(cmd, a->max_shard);
  add_overwrite(cmd, a->overwrite);
  add_report_flags(cmd, a->report);
  cmd->callback([a] { run_convert(*a); });
}

}  // namespace mp::cli
