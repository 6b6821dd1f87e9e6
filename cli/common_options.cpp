#include "cli/common_options.h"

#include "cli/flag_checks.h"

#include <iostream>

namespace mp::cli {

void add_report_flags(CLI::App* cmd, ReportFlags& r) {
  cmd->add_flag("--json", r.json, "Print the result as JSON on stdout (progress stays on stderr)");
  cmd->add_flag("--quiet", r.quiet, "No progress or \"wrote\" lines on stderr");
}

void note(const ReportFlags& r, const std::string& line) {
  if (!r.quiet) std::cerr << line << "\n";
}

CLI::Option* add_model(CLI::App* cmd, std::string& dir, const std::string& help) {
  return cmd->add_option("--model", dir, help);
}

CLI::Option* add_data(CLI::App* cmd, std::string& prefix, const std::string& help) {
  return cmd->add_option("--data", prefix, help);
}

CLI::Option* add_output(CLI::App* cmd, std::string& path, const std::string& help) {
  return cmd->add_option("--output", path, help);
}

CLI::Option* add_overwrite(CLI::App* cmd, bool& overwrite, const std::string& help) {
  return cmd->add_flag("--overwrite", overwrite, help);
}

CLI::Option* add_tokenizer(CLI::App* cmd, std::string& path, const std::string& help) {
  return cmd->add_option("--tokenizer", path, help);
}

CLI::Option* add_device(CLI::App* cmd, std::string& device) {
  return cmd->add_option("--device", device, "cpu or cuda[:i]")->capture_default_str();
}

CLI::Option* add_dtype(CLI::App* cmd, std::string& dtype, const std::string& help) {
  return cmd->add_option("--dtype", dtype, help);
}

CLI::Option* add_seed(CLI::App* cmd, uint64_t& seed, const std::string& help) {
  return cmd->add_option("--seed", seed, help)->capture_default_str();
}

CLI::Option* add_seq_len(CLI::App* cmd, int64_t& tokens, const std::string& help) {
  return cmd->add_option("--seq-len", tokens, help)->capture_default_str()->check(positive_whole());
}

CLI::Option* add_micro_batch(CLI::App* cmd, int64_t& windows, const std::string& help) {
  return cmd->add_option("--micro-batch", windows, help)->capture_default_str()->check(positive_whole());
}

CLI::Option* add_max_shard_size(CLI::App* cmd, std::string& size) {
  return cmd->add_option("--max-shard-size", size, "Largest safetensors shard, e.g. 5GB or 20KB")->capture_default_str();
}

const std::vector<WidthFlag>& width_flags() {
  static const std::vector<WidthFlag> flags = {
      {"--hidden-size", "hidden_size", "hidden (embedding) channels"},
      {"--ffn-hidden-size", "intermediate_size", "MLP neurons (every MLP layer)"},
      {"--num-attention-heads", "num_attention_heads", "query heads (a multiple of the kv heads)"},
      {"--mamba-num-heads", "mamba_num_heads", "Mamba heads (a multiple of n_groups)"},
      {"--mamba-head-dim", "mamba_head_dim", "Mamba head channels"},
  };
  return flags;
}

}  // namespace mp::cli
