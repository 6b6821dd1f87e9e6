// minipuzzle generate: a prompt in (text through the model's tokenizer, or token ids), the
// continuation out, with prefill and decode speed reported separately (model/generate.h does the
// work). Greedy at temperature 0. Text output stops at the tokenizer's EOS.
#include "cli/commands.h"
#include "cli/common_options.h"
#include "common/error.h"
#include "cli/flag_checks.h"
#include "data/tokenizer/model_text.h"
#include "model/generate.h"
#include "model/model.h"

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <optional>
#include <iostream>
#include <memory>
#include <vector>

namespace mp::cli {
namespace {

constexpr int64_t kMaxNewTokens = int64_t{1} << 24;

// 0 (greedy) or a finite temperature in [1e-6, 1e6]: smaller ones overflow logits / T.
CLI::Validator temperature_check() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double t = 0;
        if (!parse_double(text, &t)) return "expected a number, got '" + text + "'";
        if (t == 0.0 || (std::isfinite(t) && t >= 1e-6 && t <= 1e6)) return "";
        return "expected 0 (greedy) or a temperature in [1e-6, 1e6], got " + text;
      },
      "0 or [1e-6, 1e6]");
}

struct GenerateArgs {
  std::string model, device = "cpu", dtype = "fp32", text, tokenizer;
  std::vector<int64_t> prompt;
  GenerateOptions opt;
  ReportFlags report;
};

void run_generate(const GenerateArgs& a) {
  LoadOptions lo;
  lo.device = parse_device(a.device);
  lo.dtype = parse_dtype(a.dtype);
  // The tokenizer is checked before the weights load.
  std::unique_ptr<ModelText> text;
  if (!a.text.empty()) text = std::make_unique<ModelText>(a.model, load_config(a.model).vocab_size, a.tokenizer);
  std::vector<int64_t> prompt_ids = text ? text->encode(a.text, true) : a.prompt;
  if (prompt_ids.empty()) fail_usage("--prompt: the text gives no tokens");
  Model m = load_model(a.model, lo);
  at::Tensor prompt = at::tensor(prompt_ids, at::kLong).unsqueeze(0);
  GenerateResult r = generate(m, prompt, a.opt);
  at::Tensor t = r.tokens_BN.select(0, 0).contiguous();
  std::vector<int64_t> ids(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  std::string continuation;
  if (text) {  // up to the first EOS
    std::vector<int64_t> kept = ids;
    if (auto eos = text->tokenizer() ? text->tokenizer()->eos_id() : std::nullopt)
      for (size_t i = 0; i < kept.size(); ++i)
        if (kept[i] == *eos) {
          kept.resize(i);
          break;
        }
    continuation = text->decode(kept);
  }
  if (a.report.json) {
    nlohmann::json j = {{"prompt_ids", prompt_ids},
                        {"generated_ids", ids},
                        {"prefill", {{"tokens", r.prefill_tokens}, {"seconds", r.prefill_seconds},
                                     {"tokens_per_second", r.prefill_tokens_per_second()}}},
                        {"decode", {{"tokens", r.decode_tokens}, {"seconds", r.decode_seconds},
                                    {"tokens_per_second", r.decode_tokens_per_second()}}}};
    if (text) j["prompt"] = a.text, j["continuation"] = continuation;
    // A byte-level model can emit bytes that are not UTF-8: replaced, never a throw.
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else if (text) {
    std::cout << a.text << continuation << "\n";
  } else {
    std::cout << fmt::format("{}\n", fmt::join(ids, ","));
    note(a.report, fmt::format("prefill {} tokens in {:.4f} s ({:.1f} tokens/s) | decode {} tokens in {:.4f} s ({:.1f} tokens/s)",
                               r.prefill_tokens, r.prefill_seconds, r.prefill_tokens_per_second(), r.decode_tokens,
                               r.decode_seconds, r.decode_tokens_per_second()));
  }
}

}  // namespace

void register_generate(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate token ids after a prompt (prefill, then one token a step)");
  add_model(cmd, a->model)->required();
  auto* text = cmd->add_option("--prompt", a->text, "Prompt text, through the model folder's tokenizer.json (UTF-8 bytes for a "
                               "byte-level model); prints the prompt and its continuation");
  auto* ids = cmd->add_option("--prompt-ids", a->prompt, "Prompt token ids, comma-separated (e.g. 1,2,3)")->delimiter(',');
  text->excludes(ids);
  add_tokenizer(cmd, a->tokenizer, "tokenizer.json or a folder holding one (default: the model folder's)")->needs(text);
  cmd->add_option("--max-new-tokens", a->opt.max_new_tokens, "Tokens to generate")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, kMaxNewTokens));
  cmd->add_option("--temperature", a->opt.temperature, "0: greedy; > 0: sample from softmax(logits / T)")
      ->capture_default_str()->check(temperature_check());
  add_seed(cmd, a->opt.seed, "Sampling seed");
  add_device(cmd, a->device);
  add_dtype(cmd, a->dtype)->capture_default_str();
  add_report_flags(cmd, a->report);
  cmd->callback([a, text, ids] {
    if (text->count() == 0 && ids->count() == 0) fail_usage("generate: give --prompt TEXT or --prompt-ids IDS");
    run_generate(*a);
  });
}

}  // namespace mp::cli
