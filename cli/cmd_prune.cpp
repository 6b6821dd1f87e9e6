// minipuzzle score: importance of every layer and every width axis of a parent (importance.json,
//                   layers.svg beside it, a summary on the terminal).
// minipuzzle prune: slice the parent to a target shape ranked by an importance file.
#include "cli/commands.h"
#include "cli/common_options.h"
#include "cli/flag_checks.h"
#include "cli/format.h"
#include "common/atomic_output.h"
#include "common/error.h"
#include "common/output_guard.h"
#include "common/progress.h"
#include "model/accounting.h"
#include "model/checkpoint_io.h"
#include "model/model.h"
#include "prune/calibration.h"
#include "prune/plan.h"
#include "prune/prune_job.h"
#include "prune/report.h"
#include "prune/score.h"

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <iostream>
#include <memory>

namespace mp::cli {
namespace {

struct ScoreArgs {
  std::string model, data, output, device = "cpu", dtype = "fp32", agg_seq = "mean", agg_batch = "l2";
  std::string metric = "mse_normed";
  int64_t samples = 1024, layer_samples = 128, seq_len = 1024, micro_batch = 4, stream_windows = 32;
  uint64_t seed = 1234;
  bool stream = false, overwrite = false;
  ReportFlags report;
};

void run_score(const ScoreArgs& a) {
  // Both outputs are checked, and their folder made, before the long work; a folder made here is
  // removed again when the work fails.
  const std::string svg_path = (std::filesystem::path(a.output).parent_path() / "layers.svg").string();
  std::vector<std::string> inputs = token_data_files(a.data);
  inputs.push_back(a.model);
  guard_output({"--output", a.output, OutputKind::File}, inputs, a.overwrite);
  guard_output({"--output (layers.svg beside it)", svg_path, OutputKind::File}, inputs, a.overwrite);
  NewFolders out_dir(std::filesystem::path(a.output).parent_path().string());
  ScoreOptions o;
  o.model = a.model;
  o.data = a.data;
  o.device = parse_device(a.device);
  parse_dtype(a.dtype);
  parse_seq_agg(a.agg_seq);
  parse_batch_agg(a.agg_batch);
  const LayerMetric metric = parse_layer_metric(a.metric);
  o.settings.samples = a.samples;
  o.settings.layer_samples = a.layer_samples;
  o.settings.seq_len = a.seq_len;
  o.settings.seed = a.seed;
  o.settings.aggregate_seq = a.agg_seq;
  o.settings.aggregate_batch = a.agg_batch;
  o.settings.dtype = a.dtype;
  o.settings.stream = a.stream;
  o.micro_batch = a.micro_batch;
  o.stream_windows = a.stream_windows;
  o.quiet = a.report.quiet;
  ScoreResult r = score_model(o);
  save_importance(r.importance, a.output);
  out_dir.keep();
  std::filesystem::path svg = svg_path;
  write_file_atomic(svg.string(), layers_svg(r.importance, metric));
  if (a.report.json) {
    nlohmann::json j = {{"importance", a.output},        {"layers_svg", svg.string()},
                        {"seconds", r.seconds},          {"streamed", a.stream},
                        {"layer_metric", layer_metric_name(metric)}};
    j["peak_device_bytes"] = r.peak_device_bytes ? nlohmann::json(*r.peak_device_bytes) : nlohmann::json(nullptr);
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << importance_summary(r.importance, metric);
  }
  std::string peak = r.peak_device_bytes ? fmt::format(", peak {} memory {}", a.device, gib(*r.peak_device_bytes)) : "";
  note(a.report, fmt::format("wrote {} and {} ({}{}{})", a.output, svg.string(), format_duration(r.seconds),
                             a.stream ? ", streamed" : "", peak));
}

struct PruneArgs {
  TargetRequest target;
  std::vector<int64_t> widths = std::vector<int64_t>(width_flags().size(), 0);  // 0: not given
  std::string model, importance, output, dtype, max_shard = "5GB";
  bool dry_run = false, overwrite = false;
  int64_t random_indices = -1;  // >= 0: the random-indices control experiment, with this seed
  ReportFlags report;
};

std::string shape_line(const ModelConfig& c) {
  return fmt::format("{} layers ({} mamba / {} attention / {} mlp), hidden {}, mlp {}, attention heads {}/{}, "
                     "mamba heads {} x {}",
                     c.num_layers(), c.count(LayerType::Mamba), c.count(LayerType::Attention), c.count(LayerType::Mlp),
                     c.hidden_size, c.intermediate_size, c.num_attention_heads, c.num_key_value_heads,
                     c.mamba_num_heads, c.mamba_head_dim);
}

nlohmann::json prune_json(const PruneOutcome& o, const std::string& output) {
  return {{"parent", config_to_json(o.parent)},
          {"child", config_to_json(o.child)},
          {"parent_parameters", o.parent_params},
          {"child_parameters", o.child_params},
          {"dropped_layers", o.dropped_layers},
          {"layer_metric", layer_metric_name(o.layer_metric)},
          {"output", output.empty() ? nlohmann::json(nullptr) : nlohmann::json(output)}};
}

void print_prune(const PruneOutcome& o) {
  const double pp = static_cast<double>(o.parent_params), cp = static_cast<double>(o.child_params);
  std::string dropped;
  for (int64_t i : o.dropped_layers) dropped += fmt::format("{}{}", dropped.empty() ? "" : ",", i);
  std::cout << fmt::format("parent: {}\n        {} parameters, pattern {}\n", shape_line(o.parent), billions(pp),
                           o.parent.pattern());
  std::cout << fmt::format("child:  {}\n        {} parameters ({:.1f}% of the parent), pattern {}\n",
                           shape_line(o.child), billions(cp), 100.0 * cp / pp, o.child.pattern());
  std::cout << fmt::format("dropped layers: {} (ranked by {})\n", dropped.empty() ? "none" : dropped,
                           layer_metric_name(o.layer_metric));
}

void run_prune(PruneArgs a) {
  if (!a.dry_run && a.output.empty()) fail_usage("--output is required unless --dry-run");
  std::optional<int64_t>* fields[] = {&a.target.hidden_size, &a.target.intermediate_size,
                                      &a.target.num_attention_heads, &a.target.mamba_num_heads,
                                      &a.target.mamba_head_dim};
  for (size_t i = 0; i < a.widths.size(); ++i)
    if (a.widths[i] > 0) *fields[i] = a.widths[i];
  PruneJob job;
  job.model = a.model;
  job.importance = a.importance;
  job.shape_file = a.target.shape_file;
  job.output = a.dry_run ? "" : a.output;
  job.target = resolve_target(a.target);
  if (a.random_indices >= 0) job.random_indices_seed = static_cast<uint64_t>(a.random_indices);
  if (!a.dtype.empty()) job.dtype = parse_dtype(a.dtype);
  job.max_shard_bytes = parse_byte_size(a.max_shard);
  job.overwrite = a.overwrite;
  const PruneOutcome o = run_prune_job(job);
  if (a.report.json)
    std::cout << prune_json(o, job.output).dump(2) << "\n";
  else
    print_prune(o);
  if (!job.output.empty()) note(a.report, fmt::format("wrote {}", job.output));
}

}  // namespace

void register_score(CLI::App& app) {
  auto a = std::make_shared<ScoreArgs>();
  CLI::App* cmd = app.add_subcommand("score", "Importance of layers, hidden channels, MLP neurons, attention and Mamba heads");
  add_model(cmd, a->model, "Parent checkpoint folder")->required();
  add_data(cmd, a->data, "Calibration token data prefix (PREFIX.bin + PREFIX.idx)")->required();
  add_output(cmd, a->output, "importance.json to write (layers.svg is written beside it)")->required();
  cmd->add_option("--samples", a->samples, "Samples (windows) for the width axes")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--layer-samples", a->layer_samples, "Windows for layer removal (the first of --samples)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  add_seq_len(cmd, a->seq_len);
  add_seed(cmd, a->seed, "Window selection seed");
  add_device(cmd, a->device);
  add_dtype(cmd, a->dtype)->capture_default_str();
  cmd->add_option("--aggregate-seq", a->agg_seq, "Over the sequence: mean (of |a|), l2 or var")->capture_default_str();
  cmd->add_option("--aggregate-batch", a->agg_batch, "Over the windows: mean, l2 or var")->capture_default_str();
  add_micro_batch(cmd, a->micro_batch, "Windows per forward pass (layer removal keeps one residual stream per layer for each)");
  cmd->add_flag("--stream", a->stream, "Read the checkpoint one layer at a time (peak memory: one layer + activations)");
  cmd->add_option("--stream-windows", a->stream_windows, "With --stream: windows per layer read in calibration")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--layer-metric", a->metric,
                  "Metric for the summary and layers.svg: mse_hidden, mse_normed, kl, loss_delta, agreement, block_influence")
      ->capture_default_str();
  add_overwrite(cmd, a->overwrite, "Replace an existing --output file and the layers.svg beside it");
  add_report_flags(cmd, a->report);
  cmd->callback([a] { run_score(*a); });
}

void register_prune(CLI::App& app) {
  auto a = std::make_shared<PruneArgs>();
  CLI::App* cmd = app.add_subcommand("prune", "Slice a parent to a target shape using an importance file");
  add_model(cmd, a->model, "Parent checkpoint folder")->required();
  cmd->add_option("--importance", a->importance, "importance.json from `minipuzzle score` on this parent")->required();
  add_output(cmd, a->output, "Output checkpoint folder");
  cmd->add_option("--shape", a->target.shape_file, "Target shape JSON (flags below override its fields)");
  for (size_t i = 0; i < width_flags().size(); ++i)
    cmd->add_option(width_flags()[i].flag, a->widths[i], std::string("Keep this many ") + width_flags()[i].what)
        ->check(positive_whole());
  cmd->add_option("--drop-layers", a->target.drop_layers, "Layers to remove, e.g. 3,17,40");
  cmd->add_option("--keep-layers", a->target.keep_layers,
                  "Most important layers to keep per type, e.g. mamba=45,attention=5,mlp=48 (or indices 0,1,5)");
  cmd->add_option("--layer-metric", a->target.layer_metric,
                  "Ranks layers for --keep-layers counts: mse_normed (default), mse_hidden, kl, loss_delta, agreement, "
                  "block_influence");
  add_dtype(cmd, a->dtype, "Output dtype: fp32, bf16 or fp16 (default: as stored)");
  add_max_shard_size(cmd, a->max_shard);
  cmd->add_flag("--dry-run", a->dry_run, "Print the resulting shape and parameter count; write nothing");
  add_overwrite(cmd, a->overwrite);
  cmd->add_option("--random-indices", a->random_indices,
                  "Control experiment: keep random indices and layers of the same shape (drawn with this seed) "
                  "instead of the most important")
      ->check(CLI::NonNegativeNumber);
  add_report_flags(cmd, a->report);
  cmd->callback([a] { run_prune(*a); });
}

}  // namespace mp::cli
