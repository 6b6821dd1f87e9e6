// minipuzzle eval: LM loss, perplexity and next-token accuracy on token data, or on text files
// tokenized on the fly with the model's tokenizer (one document per file, EOS appended, as
// `data from-text` does).
#include "cli/commands.h"
#include "cli/common_options.h"
#include "common/error.h"
#include "common/progress.h"
#include "data/sampler.h"
#include "data/text_dataset.h"
#include "data/tokenize_corpus.h"
#include "data/tokenizer/model_text.h"
#include "model/lm_eval.h"
#include "model/model.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>

namespace mp::cli {
namespace {

struct EvalArgs {
  std::string model, data, device = "cpu", dtype = "fp32", tokenizer;
  std::vector<std::string> text;
  int64_t seq_len = 1024, samples = 64, micro_batch = 4;
  uint64_t seed = 1234;
  ReportFlags report;
};

// A private temporary folder, removed with everything in it when the evaluation ends.
struct ScratchFolder {
  std::string path;
  ScratchFolder() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "minipuzzle-eval-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) fail_runtime("cannot create a temporary folder under {}", tmpl);
    path = tmpl;
  }
  ~ScratchFolder() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// --text: the files as token data in `scratch`, through the model's tokenizer (or bytes).
std::string tokenize_text(const EvalArgs& a, int64_t vocab, const ScratchFolder& scratch) {
  ModelText text(a.model, vocab, a.tokenizer);
  const std::string prefix = scratch.path + "/text";
  if (text.is_bytes()) {
    bytes_dataset_from_text(a.text, prefix);
  } else {
    CorpusOptions co;
    co.quiet = true;
    tokenize_text_files(a.text, prefix, *text.tokenizer(), co);
  }
  note(a.report, fmt::format("eval: {} text file(s) through {}", a.text.size(), text.describe()));
  return prefix;
}

void run_eval(const EvalArgs& a) {
  at::Device dev = parse_device(a.device);
  LoadOptions lo;
  lo.device = dev;
  lo.dtype = parse_dtype(a.dtype);
  std::unique_ptr<ScratchFolder> scratch;
  std::string data = a.data;
  if (!a.text.empty()) {  // tokenized before the weights load: a bad file fails fast
    scratch = std::make_unique<ScratchFolder>();
    data = tokenize_text(a, load_config(a.model).vocab_size, *scratch);
  }
  Model m = load_model(a.model, lo);
  WindowSampler sampler(IndexedDataset::open(data), a.seq_len, a.seed, m.config.vocab_size);
  const int64_t n = std::min<int64_t>(a.samples, sampler.num_windows());
  at::Tensor windows = sampler.fixed_windows(n);
  Progress progress("eval", n * a.seq_len, "tok", a.report.quiet);
  LmStats s = lm_stats(m, windows, a.micro_batch, [&](int64_t t) { progress.advance(t); });
  progress.finish();
  const double tps = s.tokens / std::max(progress.elapsed_seconds(), 1e-9);
  if (a.report.json) {
    nlohmann::json j = {{"loss", s.loss()}, {"perplexity", s.perplexity()}, {"accuracy", s.accuracy()},
                        {"bits_per_token", s.bits_per_token()}, {"tokens", s.tokens}, {"windows", n},
                        {"seq_len", a.seq_len}, {"tokens_per_second", tps}, {"seconds", progress.elapsed_seconds()}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << fmt::format("loss {:.4f} nats ({:.4f} bits/token) | perplexity {:.3f} | accuracy {:.2f}% | "
                             "{} windows x {} tokens | {:.0f} tokens/s\n",
                             s.loss(), s.bits_per_token(), s.perplexity(), 100.0 * s.accuracy(), n, a.seq_len, tps);
  }
}

}  // namespace

void register_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "LM loss, perplexity and next-token accuracy on token data");
  add_model(cmd, a->model)->required();
  auto* data = add_data(cmd, a->data);
  auto* text = cmd->add_option("--text-files", a->text,
                               "UTF-8 text files instead of token data, tokenized with the model folder's tokenizer.json "
                               "(bytes for a byte-level model), one document per file");
  data->excludes(text);
  add_tokenizer(cmd, a->tokenizer, "tokenizer.json or a folder holding one (default: the model folder's)")->needs(text);
  add_seq_len(cmd, a->seq_len);
  cmd->add_option("--samples", a->samples, "Samples (windows) to evaluate")->capture_default_str()->check(CLI::PositiveNumber);
  add_micro_batch(cmd, a->micro_batch);
  add_seed(cmd, a->seed, "Window selection seed");
  add_device(cmd, a->device);
  add_dtype(cmd, a->dtype)->capture_default_str();
  add_report_flags(cmd, a->report);
  cmd->callback([a, data, text] {
    if (data->count() == 0 && text->count() == 0) fail_usage("eval: give --data PREFIX or --text-files FILES");
    run_eval(*a);
  });
}

}  // namespace mp::cli
