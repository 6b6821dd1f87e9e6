// minipuzzle info MODEL_OR_CONFIG: pattern, parameters by component, weight bytes, inference state.
#include "cli/commands.h"
#include "cli/common_options.h"
#include "cli/format.h"
#include "model/accounting.h"
#include "model/config.h"
#include "common/error.h"
#include "search/cost_model.h"
#include "search/throughput.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <memory>
#include <optional>

namespace mp::cli {
namespace {

struct InfoArgs {
  std::string path;
  ReportFlags report;
  int64_t context = 8192;
  int64_t batch = 1;
  std::string budget;
  bool predict_speed = false;
  std::string throughput_model;  // empty: configs/throughput/h200-bf16.json
  int64_t prompt_tokens = 65536, output_tokens = 1024;
};

// Predicted generation time on the card the throughput model was measured on (search/throughput.h).
ThroughputModel read_speed_model(const InfoArgs& a) {
  const std::string path = a.throughput_model.empty() ? default_throughput_path() : a.throughput_model;
  if (path.empty())
    fail_input("--predict-speed: configs/throughput/h200-bf16.json is not in this source tree; give --throughput-model FILE");
  return load_throughput(path);
}

void print_speed(const ModelConfig& c, const InfoArgs& a, const ThroughputModel& m) {
  const Workload w{a.batch, a.prompt_tokens, a.output_tokens};
  const GenerationEstimate e = m.estimate(c, w);
  std::cout << "\n"
            << table({{fmt::format("predicted on {} ({}, {})", m.card, m.dtype, m.date), "seconds"},
                      {fmt::format("prefill, {} x {} tokens", w.batch, w.prompt_tokens), fmt::format("{:.3f}", e.prefill_s)},
                      {fmt::format("decode step at context {}", w.prompt_tokens + w.output_tokens / 2),
                       fmt::format("{:.5f}", e.decode_s_per_token)},
                      {fmt::format("generation, {} new tokens", w.output_tokens), fmt::format("{:.3f}", e.generation_s)}});
}

// The deployment memory of the shape under a budget file (search's cost model).
void print_budget(const ModelConfig& c, const Budget& b, bool json) {
  MemoryBreakdown m = deployment_memory(c, b);
  const bool fits = to_gib(m.total()) <= b.memory_limit_gib;
  if (json) {
    nlohmann::json j = {{"budget", b.name}, {"weights_gib", to_gib(m.weights)}, {"kv_cache_gib", to_gib(m.kv_cache)},
                        {"mamba_conv_gib", to_gib(m.mamba_conv)}, {"mamba_ssm_gib", to_gib(m.mamba_ssm)},
                        {"workspace_gib", to_gib(m.workspace)}, {"total_gib", to_gib(m.total())},
                        {"limit_gib", b.memory_limit_gib}, {"fits", fits}};
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << "\n"
            << table({{fmt::format("deployment under {}", b.name), "GiB"},
                      {fmt::format("weights ({}{})", number_format_name(b.weights), b.embeddings_bf16 ? ", embeddings bf16" : ""),
                       fmt::format("{:.2f}", to_gib(m.weights))},
                      {fmt::format("KV cache ({}, {} tokens x {})", number_format_name(b.kv_cache), b.context_tokens, b.batch),
                       fmt::format("{:.2f}", to_gib(m.kv_cache))},
                      {fmt::format("Mamba conv state ({})", number_format_name(b.mamba_conv_state)), fmt::format("{:.3f}", to_gib(m.mamba_conv))},
                      {fmt::format("Mamba SSM state ({})", number_format_name(b.mamba_ssm_state)), fmt::format("{:.3f}", to_gib(m.mamba_ssm))},
                      {fmt::format("activation workspace ({} tokens)", b.prefill_chunk_tokens), fmt::format("{:.3f}", to_gib(m.workspace))},
                      {"total", fmt::format("{:.2f}", to_gib(m.total()))},
                      {"limit", fmt::format("{:.2f}", b.memory_limit_gib)}});
  std::cout << (fits ? "fits the budget\n" : fmt::format("does NOT fit: {:.2f} GiB over\n", to_gib(m.total()) - b.memory_limit_gib));
}

void run_info(const InfoArgs& a) {
  ModelConfig c = load_config(a.path);
  // Every file is read before anything is printed, so a bad one ends in one line.
  const std::optional<Budget> budget = a.budget.empty() ? std::nullopt : std::optional<Budget>(load_budget(a.budget));
  const std::optional<ThroughputModel> speed =
      a.predict_speed || !a.throughput_model.empty() ? std::optional<ThroughputModel>(read_speed_model(a)) : std::nullopt;
  if (budget && a.report.json) {
    print_budget(c, *budget, true);
    return;
  }
  ParamCounts p = count_params(c);
  StateSizes s = state_sizes(c);
  const double total = static_cast<double>(p.total());
  const double kv_bytes_token = 2.0 * s.kv_per_token;                     // bf16 cache
  const double conv_bytes_seq = 2.0 * s.mamba_conv_per_seq;               // bf16
  const double ssm_bytes_seq = 4.0 * s.mamba_ssm_per_seq;                 // fp32 (mamba_ssm_cache_dtype)
  const double state_total = a.batch * (kv_bytes_token * a.context + conv_bytes_seq + ssm_bytes_seq);
  if (a.report.json) {
    nlohmann::json j;
    j["pattern"] = c.pattern();
    j["layers"] = {{"total", c.num_layers()}, {"mamba", c.count(LayerType::Mamba)},
                   {"attention", c.count(LayerType::Attention)}, {"mlp", c.count(LayerType::Mlp)}};
    j["parameters"] = {{"embedding", p.embedding}, {"lm_head", p.lm_head}, {"final_norm", p.final_norm},
                       {"mamba", p.mamba}, {"attention", p.attention}, {"mlp", p.mlp}, {"total", p.total()},
                       {"per_mamba_layer", p.per_mamba_layer}, {"per_attention_layer", p.per_attention_layer},
                       {"per_mlp_layer", p.per_mlp_layer}};
    j["weight_bytes"] = {{"bf16", 2 * p.total()}, {"fp8", p.total()}, {"fp4", p.total() / 2}};
    j["state"] = {{"kv_bytes_per_token_bf16", kv_bytes_token}, {"mamba_conv_bytes_per_sequence_bf16", conv_bytes_seq},
                  {"mamba_ssm_bytes_per_sequence_fp32", ssm_bytes_seq}, {"context", a.context}, {"batch", a.batch},
                  {"total_bytes", state_total}};
    j["forward_flops_per_token"] = forward_flops_per_token(c, a.context);
    if (speed) {
      const Workload w{a.batch, a.prompt_tokens, a.output_tokens};
      const GenerationEstimate e = speed->estimate(c, w);
      j["predicted_speed"] = {{"card", speed->card}, {"dtype", speed->dtype}, {"batch", w.batch},
                              {"prompt_tokens", w.prompt_tokens}, {"output_tokens", w.output_tokens},
                              {"prefill_s", e.prefill_s}, {"decode_s_per_token", e.decode_s_per_token},
                              {"generation_s", e.generation_s}};
    }
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << fmt::format("pattern  {}\nlayers   {} (mamba {}, attention {}, mlp {})\n", c.pattern(),
                           c.num_layers(), c.count(LayerType::Mamba), c.count(LayerType::Attention),
                           c.count(LayerType::Mlp));
  std::cout << fmt::format("widths   hidden {}, mlp {}, attention {}x{} (kv {}), mamba {}x{} state {} groups {}\n\n",
                           c.hidden_size, c.intermediate_size, c.num_attention_heads, c.head_dim,
                           c.num_key_value_heads, c.mamba_num_heads, c.mamba_head_dim, c.ssm_state_size, c.n_groups);
  auto pct = [&](int64_t v) { return fmt::format("{:.1f}%", 100.0 * v / total); };
  std::cout << table({{"component", "parameters", "share"},
                      {"embedding", billions(p.embedding), pct(p.embedding)},
                      {"mamba layers", billions(p.mamba), pct(p.mamba)},
                      {"attention layers", billions(p.attention), pct(p.attention)},
                      {"mlp layers", billions(p.mlp), pct(p.mlp)},
                      {"final norm", billions(p.final_norm), pct(p.final_norm)},
                      {"lm head", billions(p.lm_head), pct(p.lm_head)},
                      {"total", billions(total), "100%"}});
  std::cout << "\n"
            << table({{"weights", "bytes"},
                      {"bf16", gib(2.0 * total)},
                      {"fp8", gib(total)},
                      {"fp4 (no scales)", gib(total / 2.0)}});
  std::cout << "\n"
            << table({{"inference state", "bytes"},
                      {"KV cache per token (bf16)", gib(kv_bytes_token)},
                      {fmt::format("KV cache at {} tokens", a.context), gib(kv_bytes_token * a.context)},
                      {"Mamba conv state per sequence (bf16)", gib(conv_bytes_seq)},
                      {"Mamba SSM state per sequence (fp32)", gib(ssm_bytes_seq)},
                      {fmt::format("total, batch {} x {} tokens", a.batch, a.context), gib(state_total)}});
  if (budget) print_budget(c, *budget, false);
  if (speed) print_speed(c, a, *speed);
}

}  // namespace

void register_info(CLI::App& app) {
  auto args = std::make_shared<InfoArgs>();
  CLI::App* cmd = app.add_subcommand("info", "Layer pattern, parameters by component, weight and state bytes");
  cmd->add_option("model", args->path, "Checkpoint folder or config.json")->required();
  cmd->add_option("--context", args->context, "Context length for the KV-cache figures")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  cmd->add_option("--batch", args->batch, "Sequences for the state figures")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd->add_option("--budget", args->budget, "Deployment budget JSON: memory breakdown and whether it fits");
  cmd->add_flag("--predict-speed", args->predict_speed,
                "Predicted generation time from a throughput model (--throughput-model)");
  cmd->add_option("--throughput-model", args->throughput_model,
                  "Throughput model JSON (bench/bench_throughput) that predicts generation speed; implies "
                  "--predict-speed [default: configs/throughput/h200-bf16.json]");
  cmd->add_option("--prompt-tokens", args->prompt_tokens, "Generation workload for predicted speed: prompt tokens")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  cmd->add_option("--output-tokens", args->output_tokens, "Generation workload for predicted speed: new tokens")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  add_report_flags(cmd, args->report);
  cmd->callback([args] { run_info(*args); });
}

}  // namespace mp::cli
