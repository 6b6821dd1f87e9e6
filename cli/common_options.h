// The options several subcommands share, declared once so that a concept has one flag name and one
// meaning everywhere: the model folder, token data, output, device, dtype, seed, sequence length,
// micro-batch, --overwrite, and --json / --quiet. Model widths are named after the Hugging Face
// config.json fields they set (width_flags()); search takes a list or range where prune takes one
// value. train and distill take the same names from their settings table (distill/train_config.h).
//
// Streams: a command's result (a table, or JSON with --json) goes to stdout; progress lines and
// "wrote PATH" lines go to stderr, and --quiet silences them.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mp::cli {

// --json and --quiet, on every command that reports a result.
struct ReportFlags {
  bool json = false, quiet = false;
};
void add_report_flags(CLI::App* cmd, ReportFlags& r);
// A progress or "wrote PATH" line on stderr, unless --quiet.
void note(const ReportFlags& r, const std::string& line);

CLI::Option* add_model(CLI::App* cmd, std::string& dir, const std::string& help = "Checkpoint folder");
CLI::Option* add_data(CLI::App* cmd, std::string& prefix,
                      const std::string& help = "Token data prefix (PREFIX.bin + PREFIX.idx)");
CLI::Option* add_output(CLI::App* cmd, std::string& path, const std::string& help);
CLI::Option* add_overwrite(CLI::App* cmd, bool& overwrite,
                           const std::string& help = "Replace an existing --output (never one holding an input)");
CLI::Option* add_tokenizer(CLI::App* cmd, std::string& path, const std::string& help);
CLI::Option* add_device(CLI::App* cmd, std::string& device);
CLI::Option* add_dtype(CLI::App* cmd, std::string& dtype, const std::string& help = "Compute dtype: fp32, bf16 or fp16");
CLI::Option* add_seed(CLI::App* cmd, uint64_t& seed, const std::string& help);
CLI::Option* add_seq_len(CLI::App* cmd, int64_t& tokens, const std::string& help = "Tokens per window");
CLI::Option* add_micro_batch(CLI::App* cmd, int64_t& windows, const std::string& help = "Windows per forward pass");
CLI::Option* add_max_shard_size(CLI::App* cmd, std::string& size);

// The model widths, each flag the config.json field it sets (--ffn-hidden-size sets
// intermediate_size, the name Megatron and the Nemotron-H paper use).
struct WidthFlag {
  const char* flag;   // "--hidden-size"
  const char* field;  // "hidden_size"
  const char* what;   // "hidden (embedding) channels"
};
const std::vector<WidthFlag>& width_flags();

}  // namespace mp::cli
