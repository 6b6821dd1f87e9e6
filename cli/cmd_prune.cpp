// minipuzzle score: importance of every layer and every width axis of a parent (importance.json,
//                   layers.svg beside it, a summary on the terminal).
// minipuzzle prune: slice the parent to a target shape ranked by an importance file.
#include "cli/commands.h"
#include "cli/flag_checks.h"
#include "cli/format.h"
#include "common/atomic_output.h"
#include "common/error.h"
#include "common/output_guard.h"
#include "common/progress.h"
#include "model/accounting.h"
#include "model/checkpoint_io.h"
#include "model/model.h"
#include "prune/apply.h"
#include "prune/calibration.h"
#include "prune/fingerprint.h"
#include "prune/plan.h"
#include "prune/report.h"
#include "prune/score.h"

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>

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
  bool stream = false, quiet = false, overwrite = false;
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
  o.quiet = a.quiet;
  ScoreResult r = score_model(o);
  save_importance(r.importance, a.output);
  out_dir.keep();
  std::filesystem::path svg = svg_path;
  write_file_atomic(svg.string(), layers_svg(r.importance, metric));
  if (!a.quiet) std::cout << importance_summary(r.importance, metric);
  std::string peak = r.peak_device_bytes ? fmt::format(", peak {} memory {}", a.device, gib(*r.peak_device_bytes)) : "";
  std::cerr << fmt::format("wrote {} and {} ({}{}{})\n", a.output, svg.string(), format_duration(r.seconds),
                           a.stream ? ", streamed" : "", peak);
}

struct PruneArgs {
  std::string model, importance, output, shape, keep_layers, drop_layers, metric, dtype, max_shard = "5GB";
  int64_t hidden = 0, ffn = 0, heads = 0, mamba_heads = 0, mamba_head_dim = 0;
  bool dry_run = false, overwrite = false;
  int64_t random_seed = -1;  // >= 0: the random-indices control experiment
};

std::string shape_line(const ModelConfig& c) {
  return fmt::format("{} layers ({} mamba / {} attention / {} mlp), hidden {}, mlp {}, attention heads {}/{}, "
                     "mamba heads {} x {}",
                     c.num_layers(), c.count(LayerType::Mamba), c.count(LayerType::Attention), c.count(LayerType::Mlp),
                     c.hidden_size, c.intermediate_size, c.num_attention_heads, c.num_key_value_heads,
                     c.mamba_num_heads, c.mamba_head_dim);
}

void run_prune(const PruneArgs& a) {
  if (!a.dry_run) {
    if (a.output.empty()) fail_usage("--output is required unless --dry-run");
    guard_output({"--output", a.output, OutputKind::Folder}, {a.model, a.importance, a.shape}, a.overwrite);
  }
  Importance imp = load_importance(a.importance);
  PruneTarget t = a.shape.empty() ? PruneTarget{} : load_target(a.shape);
  auto set = [](int64_t v, std::optional<int64_t>& out) {
    if (v > 0) out = v;
  };
  set(a.hidden, t.hidden_size);
  set(a.ffn, t.intermediate_size);
  set(a.heads, t.num_attention_heads);
  set(a.mamba_heads, t.mamba_num_heads);
  set(a.mamba_head_dim, t.mamba_head_dim);
  if (!a.keep_layers.empty() && !a.drop_layers.empty()) fail_usage("give --keep-layers or --drop-layers, not both");
  if (!a.keep_layers.empty() || !a.drop_layers.empty()) {
    t.keep_layers.reset();
    t.drop_layers.reset();
    t.keep_counts.reset();
  }
  if (!a.drop_layers.empty()) t.drop_layers = parse_index_list(a.drop_layers, "--drop-layers");
  if (!a.keep_layers.empty()) {
    if (a.keep_layers.find('=') != std::string::npos)
      t.keep_counts = parse_layer_counts(a.keep_layers, "--keep-layers");
    else
      t.keep_layers = parse_index_list(a.keep_layers, "--keep-layers");
  }
  if (!a.metric.empty()) t.layer_metric = parse_layer_metric(a.metric);

  ModelConfig parent = load_config(a.model);
  // Same shape first (cheap, and names the differing field); the weights' fingerprint below.
  check_importance_matches(imp, parent, imp.fingerprint, a.importance, a.model);
  PruningPlan plan = make_plan(a.random_seed >= 0 ? randomized_importance(imp, static_cast<uint64_t>(a.random_seed)) : imp, t);
  ModelConfig child = plan_config(parent, plan);
  Model m;
  if (!a.dry_run) {
    m = load_model(a.model);
    check_importance_matches(imp, m.config, model_fingerprint(m.weights), a.importance, a.model);
  }
  const double pp = static_cast<double>(count_params(parent).total());
  const double cp = static_cast<double>(count_params(child).total());
  std::string dropped;
  for (int64_t i = 0, k = 0; i < parent.num_layers(); ++i) {
    if (k < static_cast<int64_t>(plan.kept_layers.size()) && plan.kept_layers[k] == i) {
      ++k;
      continue;
    }
    dropped += fmt::format("{}{}", dropped.empty() ? "" : ",", i);
  }
  std::cout << fmt::format("parent: {}\n        {} parameters, pattern {}\n", shape_line(parent), billions(pp),
                           parent.pattern());
  std::cout << fmt::format("child:  {}\n        {} parameters ({:.1f}% of the parent), pattern {}\n", shape_line(child),
                           billions(cp), 100.0 * cp / pp, child.pattern());
  std::cout << fmt::format("dropped layers: {} (ranked by {})\n", dropped.empty() ? "none" : dropped,
                           layer_metric_name(t.layer_metric));
  if (a.dry_run) return;
  Model out = apply_plan_consuming(std::move(m), plan);
  SaveOptions so;
  so.max_shard_bytes = parse_byte_size(a.max_shard);
  if (!a.dtype.empty()) so.dtype = parse_dtype(a.dtype);
  so.companions_from = a.model;
  save_model(out, a.output, so);
  std::cerr << fmt::format("wrote {}\n", a.output);
}

}  // namespace

void register_score(CLI::App& app) {
  auto a = std::make_shared<ScoreArgs>();
  CLI::App* cmd = app.add_subcommand("score", "Importance of layers, hidden channels, MLP neurons, attention and Mamba heads");
  cmd->add_option("--model", a->model, "Parent checkpoint folder")->required();
  cmd->add_option("--data", a->data, "Calibration token data prefix (PREFIX.bin + PREFIX.idx)")->required();
  cmd->add_option("--output", a->output, "importance.json to write (layers.svg is written beside it)")->required();
  cmd->add_option("--samples", a->samples, "Windows for the width axes")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--layer-samples", a->layer_samples, "Windows for layer removal (the first of --samples)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seq-len", a->seq_len, "Tokens per window")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a->seed, "Window selection seed")->capture_default_str();
  cmd->add_option("--device", a->device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--dtype", a->dtype, "Compute dtype: fp32, bf16 or fp16")->capture_default_str();
  cmd->add_option("--aggregate-seq", a->agg_seq, "Over the sequence: mean (of |a|), l2 or var")->capture_default_str();
  cmd->add_option("--aggregate-batch", a->agg_batch, "Over the windows: mean, l2 or var")->capture_default_str();
  cmd->add_option("--micro-batch", a->micro_batch,
                  "Windows per forward call (layer removal keeps one residual stream per layer for each)")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--stream", a->stream, "Read the checkpoint one layer at a time (peak memory: one layer + activations)");
  cmd->add_option("--stream-windows", a->stream_windows, "With --stream: windows per layer read in calibration")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--layer-metric", a->metric,
                  "Metric for the summary and layers.svg: mse_hidden, mse_normed, kl, loss_delta, agreement, block_influence")
      ->capture_default_str();
  cmd->add_flag("--quiet", a->quiet, "No progress lines and no summary");
  cmd->add_flag("--overwrite", a->overwrite, "Replace an existing --output file and the layers.svg beside it");
  cmd->callback([a] { run_score(*a); });
}

void register_prune(CLI::App& app) {
  auto a = std::make_shared<PruneArgs>();
  CLI::App* cmd = app.add_subcommand("prune", "Slice a parent to a target shape using an importance file");
  cmd->add_option("--model", a->model, "Parent checkpoint folder")->required();
  cmd->add_option("--importance", a->importance, "importance.json from `minipuzzle score` on this parent")->required();
  cmd->add_option("--output", a->output, "Output checkpoint folder");
  cmd->add_option("--shape", a->shape, "Target shape JSON (flags below override its fields)");
  cmd->add_option("--hidden-size", a->hidden, "Hidden (embedding) channels to keep")->check(positive_whole());
  cmd->add_option("--ffn-hidden-size", a->ffn, "MLP neurons to keep (every MLP layer)")->check(positive_whole());
  cmd->add_option("--num-attention-heads", a->heads, "Query heads to keep (a multiple of the kv heads)")
      ->check(positive_whole());
  cmd->add_option("--mamba-num-heads", a->mamba_heads, "Mamba heads to keep (a multiple of n_groups)")
      ->check(positive_whole());
  cmd->add_option("--mamba-head-dim", a->mamba_head_dim, "Mamba head channels to keep")->check(positive_whole());
  cmd->add_option("--drop-layers", a->drop_layers, "Layers to remove, e.g. 3,17,40");
  cmd->add_option("--keep-layers", a->keep_layers,
                  "Most important layers to keep per type, e.g. mamba=45,attention=5,mlp=48 (or indices 0,1,5)");
  cmd->add_option("--layer-metric", a->metric,
                  "Ranks layers for --keep-layers counts: mse_normed (default), mse_hidden, kl, loss_delta, agreement, "
                  "block_influence");
  cmd->add_option("--dtype", a->dtype, "Output dtype: fp32, bf16 or fp16 (default: as stored)");
  cmd->add_option("--max-shard-size", a->max_shard, "Largest shard, e.g. 5GB")->capture_default_str();
  cmd->add_flag("--dry-run", a->dry_run, "Print the resulting shape and parameter count; write nothing");
  cmd->add_flag("--overwrite", a->overwrite, "Replace an existing --output folder (never one holding an input)");
  cmd->add_option("--random-seed", a->random_seed,
                  "Control experiment: keep random indices and layers of the same shape instead of the most important");
  cmd->callback([a] { run_prune(*a); });
}

}  // namespace mp::cli
