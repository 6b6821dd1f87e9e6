// minipuzzle eval-tasks: benchmark tasks (MMLU, ARC, HellaSwag, WinoGrande, PIQA, BoolQ, LAMBADA,
// rolling perplexity, or a task file) scored with the lm-evaluation-harness's conventions
// (docs/eval_tasks.md); results JSON, a table, and per-sample records with --log-samples.
#include "cli/commands.h"
#include "cli/common_options.h"
#include "cli/flag_checks.h"
#include "cli/format.h"
#include "common/atomic_output.h"
#include "common/error.h"
#include "common/output_guard.h"
#include "common/progress.h"
#include "eval/run_tasks.h"
#include "model/config.h"
#include "model/model.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>

namespace mp::cli {
namespace {

constexpr int64_t kMaxCount = int64_t{1} << 40;

struct EvalTasksArgs {
  std::string model, output, tokenizer, device = "cpu", dtype = "fp32";
  std::vector<std::string> tasks, fewshot_data;
  int64_t limit = -1, num_fewshot = -1, batch_tokens = 4096, max_length = 0, bootstrap_iters = 100000,
          prefix_token_id = -1;
  uint64_t seed = 1234;
  bool log_samples = false, overwrite = false, no_context_reuse = false;
  ReportFlags report;
};

// results.json -> results.samples.jsonl (beside it).
std::string samples_path(const std::string& output) {
  const std::string ext = ".json";
  if (output.size() > ext.size() && output.compare(output.size() - ext.size(), ext.size(), ext) == 0)
    return output.substr(0, output.size() - ext.size()) + ".samples.jsonl";
  return output + ".samples.jsonl";
}

std::string number(double v) {
  if (!std::isfinite(v)) return fmt::format("{}", v);
  return std::abs(v) >= 1000 ? fmt::format("{:.1f}", v) : fmt::format("{:.4f}", v);
}

void run(const EvalTasksArgs& a) {
  std::vector<eval::TaskSpec> specs;
  for (const std::string& t : a.tasks) {
    specs.push_back(eval::resolve_task_argument(t));
    for (size_t i = 0; i + 1 < specs.size(); ++i)
      if (specs[i].name == specs.back().name)
        fail_usage("--tasks: task {} is given twice; expected each task once (a task file can rename one)",
                   specs.back().name);
  }
  std::map<std::string, std::string> fewshot;
  for (const std::string& f : a.fewshot_data) {
    const size_t eq = f.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == f.size())
      fail_usage("--fewshot-data {}: expected TASK=PATH.jsonl", f);
    fewshot[f.substr(0, eq)] = f.substr(eq + 1);
  }
  for (const auto& [name, path] : fewshot) {
    bool known = false;
    for (const auto& s : specs) known = known || s.name == name;
    if (!known) fail_usage("--fewshot-data {}={}: no task named {} among --tasks", name, path, name);
  }
  {
    std::vector<std::string> inputs = {a.model, a.tokenizer};
    for (const auto& s : specs) {
      inputs.push_back(s.data);
      if (s.source.rfind("built-in ", 0) != 0) inputs.push_back(s.source);
      if (!s.fewshot.data.empty()) inputs.push_back(s.fewshot.data);
    }
    for (const auto& [n, p] : fewshot) inputs.push_back(p);
    guard_output({"--output", a.output, OutputKind::File}, inputs, a.overwrite);
    if (a.log_samples) guard_output({"--output", samples_path(a.output), OutputKind::File}, inputs, a.overwrite);
  }

  // Everything that can be wrong with the inputs is found before the weights load.
  const ModelConfig config = load_config(a.model);
  const std::optional<int64_t> prefix = a.prefix_token_id >= 0 ? std::optional<int64_t>(a.prefix_token_id) : std::nullopt;
  const eval::TextEncoder enc = eval::encoder_for_model(a.model, config.vocab_size, a.tokenizer, prefix);
  const int64_t max_length = a.max_length > 0 ? a.max_length : eval::default_max_length(a.model);
  std::vector<eval::PreparedTask> prepared;
  int64_t total_requests = 0;
  for (const auto& s : specs) {
    eval::BuildOptions b;
    b.limit = a.limit;
    if (a.num_fewshot >= 0) b.num_fewshot = a.num_fewshot;
    b.seed = a.seed;
    if (auto it = fewshot.find(s.name); it != fewshot.end()) b.fewshot_data = it->second;
    prepared.push_back(eval::prepare_task(s, b, enc, max_length));
    total_requests += static_cast<int64_t>(prepared.back().tokens.size());
  }

  LoadOptions lo;
  lo.device = parse_device(a.device);
  lo.dtype = parse_dtype(a.dtype);
  const Model m = load_model(a.model, lo);
  eval::EvaluateOptions eo;
  eo.score.batch_tokens = a.batch_tokens;
  eo.score.reuse_context = !a.no_context_reuse;
  eo.bootstrap_iters = a.bootstrap_iters;
  eo.seed = a.seed;
  Progress progress("eval-tasks", total_requests, "requests", a.report.quiet);
  nlohmann::json results = nlohmann::json::object();
  std::string samples;
  std::vector<std::vector<std::string>> rows = {{"task", "docs", "shots", "metric", "value", "stderr"}};
  for (const eval::PreparedTask& p : prepared) {
    const eval::TaskOutcome out = eval::evaluate_task(m, p, eo, [&](int64_t n) { progress.advance(n); });
    results[p.requests.spec.name] = eval::task_result_json(p, out);
    if (a.log_samples)
      for (const nlohmann::json& r : eval::sample_records(p, out)) samples += r.dump() + "\n";
    for (const eval::MetricResult& r : out.metrics)
      rows.push_back({p.requests.spec.name, std::to_string(p.requests.docs.size()), std::to_string(p.requests.num_fewshot),
                      r.name + (r.higher_is_better ? " ^" : " v"), number(r.value),
                      r.stderr_value ? "+/- " + number(*r.stderr_value) : "n/a"});
  }
  progress.finish();
  const nlohmann::json doc = {
      {"model", a.model},
      {"tokenizer", enc.name()},
      {"device", a.device},
      {"dtype", dtype_config_name(lo.dtype.value())},
      {"max_length", max_length},
      {"limit", a.limit < 0 ? nlohmann::json(nullptr) : nlohmann::json(a.limit)},
      {"num_fewshot", a.num_fewshot < 0 ? nlohmann::json(nullptr) : nlohmann::json(a.num_fewshot)},
      {"seed", a.seed},
      {"batch_tokens", a.batch_tokens},
      {"context_reuse", !a.no_context_reuse},
      {"bootstrap_iters", a.bootstrap_iters},
      {"seconds", progress.elapsed_seconds()},
      {"results", results}};
  if (a.log_samples) {
    AtomicFile sf(samples_path(a.output));
    AtomicFile rf(a.output);
    std::ofstream(sf.temp_path()) << samples;
    std::ofstream(rf.temp_path()) << doc.dump(2) << "\n";
    sf.commit();
    rf.commit();
  } else {
    write_file_atomic(a.output, doc.dump(2) + "\n");
  }
  if (a.report.json)
    std::cout << doc.dump(2) << "\n";
  else
    std::cout << table(rows);
  note(a.report, fmt::format("wrote {}{} ({} requests in {:.1f} s)", a.output,
                             a.log_samples ? " and " + samples_path(a.output) : std::string(), total_requests,
                             progress.elapsed_seconds()));
}

}  // namespace

void register_eval_tasks(CLI::App& app) {
  auto a = std::make_shared<EvalTasksArgs>();
  CLI::App* cmd = app.add_subcommand(
      "eval-tasks", "Benchmark tasks (MMLU, ARC, HellaSwag, WinoGrande, PIQA, BoolQ, LAMBADA, task files) scored as "
                    "the lm-evaluation-harness does");
  add_model(cmd, a->model)->required();
  cmd->add_option("--tasks", a->tasks,
                  "NAME=DATA.jsonl for a built-in task (arc_easy, arc_challenge, hellaswag, winogrande, piqa, boolq, "
                  "mmlu, lambada_openai, lambada_standard, perplexity), or a task file (docs/eval_tasks.md)")
      ->required();
  add_output(cmd, a->output, "Results JSON file")->required();
  cmd->add_option("--fewshot-data", a->fewshot_data, "TASK=PATH.jsonl: the few-shot pool of a task (e.g. its train split)");
  cmd->add_option("--limit", a->limit, "Evaluate the first N documents of each task")
      ->check(CLI::Range(int64_t{1}, kMaxCount));
  cmd->add_option("--num-fewshot", a->num_fewshot, "Few-shot examples per prompt (default: the task's, 0 for built-ins)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000}));
  add_seed(cmd, a->seed, "Few-shot sampling seed (the harness's default) and bootstrap seed");
  cmd->add_option("--batch-tokens", a->batch_tokens, "Tokens per forward pass")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, kMaxCount));
  cmd->add_option("--max-length", a->max_length,
                  "Longest sequence scored; longer requests lose context from the left (default: config.json's "
                  "max_position_embeddings, else 4096)")
      ->check(CLI::Range(int64_t{2}, kMaxCount));
  add_tokenizer(cmd, a->tokenizer,
                "tokenizer.json or a folder holding one (default: the checkpoint's; UTF-8 bytes when it has none)");
  cmd->add_option("--prefix-token-id", a->prefix_token_id,
                  "Token that empty contexts and rolling windows start from (default: BOS, else EOS; '\\n' for bytes)")
      ->check(CLI::Range(int64_t{0}, kMaxCount));
  cmd->add_option("--bootstrap-iters", a->bootstrap_iters, "Resamples for perplexity-type standard errors (0: none)")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{10000000}));
  cmd->add_flag("--no-context-reuse", a->no_context_reuse,
                "Score every context + continuation as its own sequence (the harness's way; slower, same numbers)");
  cmd->add_flag("--log-samples", a->log_samples, "Also write per-sample records (OUTPUT stem + .samples.jsonl)");
  add_device(cmd, a->device);
  add_dtype(cmd, a->dtype)->capture_default_str();
  add_overwrite(cmd, a->overwrite);
  add_report_flags(cmd, a->report);
  cmd->callback([a] { run(*a); });
}

}  // namespace mp::cli
