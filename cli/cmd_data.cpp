// minipuzzle data from-text | from-jsonl | info: token data in Megatron's indexed format.
#include "cli/commands.h"
#include "cli/common_options.h"
#include "cli/format.h"
#include "common/error.h"
#include "common/output_guard.h"
#include "data/indexed_dataset.h"
#include "data/text_dataset.h"
#include "data/tokenize_corpus.h"
#include "data/tokenizer/tokenizer.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <iostream>
#include <memory>

namespace mp::cli {
namespace {

struct FromTextArgs {
  std::vector<std::string> files;
  std::string output, tokenizer, json_key = "text";
  bool overwrite = false, no_eod = false, add_special_tokens = false;
  ReportFlags report;
  int threads = 0;
};

struct DataInfoArgs {
  std::string prefix;
  ReportFlags report;
};

// Options shared by from-text and from-jsonl.
void add_corpus_options(CLI::App* cmd, FromTextArgs& a, bool tokenizer_note) {
  add_output(cmd, a.output, "Output prefix (PREFIX.bin + PREFIX.idx)")->required();
  add_tokenizer(cmd, a.tokenizer,
                tokenizer_note ? "Hugging Face tokenizer.json, or a checkpoint folder holding one (default: UTF-8 bytes, vocab 256)"
                               : "Hugging Face tokenizer.json, or a checkpoint folder holding one");
  cmd->add_flag("--no-eod", a.no_eod, "Do not append the tokenizer's EOS token to each document");
  cmd->add_flag("--add-special-tokens", a.add_special_tokens,
                "Apply the tokenizer's post-processor to each document (e.g. a leading BOS)");
  cmd->add_option("--threads", a.threads, "Tokenizer threads (0: all cores)")->capture_default_str();
  add_overwrite(cmd, a.overwrite, "Replace existing PREFIX.bin/.idx (never an input)");
  add_report_flags(cmd, a.report);
}

// PREFIX.bin and PREFIX.idx: never an input, never an existing file unless --overwrite.
void guard_token_outputs(const FromTextArgs& a) {
  std::vector<std::string> inputs = a.files;
  if (!a.tokenizer.empty()) inputs.push_back(a.tokenizer);
  for (const std::string& out : token_data_files(a.output))
    guard_output({"--output", out, OutputKind::File}, inputs, true);  // never an input
  // The writer renames PREFIX.bin into place before PREFIX.idx: a .bin alone is a run killed
  // between the two, never usable data.
  std::error_code ec;
  if (!a.overwrite && std::filesystem::exists(a.output + ".bin", ec) &&
      !std::filesystem::exists(a.output + ".idx", ec))
    fail_input("--output {}: {}.bin exists without {}.idx, an unfinished output (a run stopped as it finished); "
               "pass --overwrite to replace it",
               a.output, a.output, a.output);
  for (const std::string& out : token_data_files(a.output))
    guard_output({"--output", out, OutputKind::File}, inputs, a.overwrite);
}

CorpusOptions corpus_options(const FromTextArgs& a) {
  CorpusOptions o;
  o.append_eod = !a.no_eod;
  o.add_special_tokens = a.add_special_tokens;
  o.threads = a.threads;
  o.json_key = a.json_key;
  o.quiet = a.report.quiet;
  return o;
}

// With --json the result on stdout; the "wrote" line on stderr either way (unless --quiet).
void report_corpus(const FromTextArgs& a, const CorpusStats& s, const std::string& what) {
  if (a.report.json)
    std::cout << nlohmann::json{{"output", a.output}, {"documents", s.documents}, {"tokens", s.tokens},
                                {"dtype", s.dtype}, {"tokenizer", what}, {"text_bytes", s.bytes},
                                {"seconds", s.seconds}}.dump(2)
              << "\n";
  note(a.report, fmt::format("wrote {}.bin/.idx: {} documents, {} tokens ({}, {}), {:.1f} MB of text in {:.1f}s",
                             a.output, s.documents, s.tokens, s.dtype, what, s.bytes / 1e6, s.seconds));
}

}  // namespace

void register_data(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "Token data: build from text or JSONL, inspect");
  data->require_subcommand(1);

  auto ft = std::make_shared<FromTextArgs>();
  CLI::App* from_text = data->add_subcommand(
      "from-text", "UTF-8 text files -> token data, one document per file (byte-level ids without --tokenizer)");
  from_text->add_option("files", ft->files, "Text files (one document each)")->required();
  add_corpus_options(from_text, *ft, true);
  from_text->callback([ft] {
    guard_token_outputs(*ft);
    if (ft->tokenizer.empty()) {
      TextToTokensStats s = bytes_dataset_from_text(ft->files, ft->output);
      if (ft->report.json)
        std::cout << nlohmann::json{{"output", ft->output}, {"documents", s.documents}, {"tokens", s.tokens},
                                    {"tokenizer", "bytes"}}.dump(2)
                  << "\n";
      note(ft->report, fmt::format("wrote {}.bin/.idx: {} documents, {} tokens (bytes)", ft->output, s.documents, s.tokens));
      return;
    }
    auto tok = Tokenizer::load(ft->tokenizer);
    report_corpus(*ft, tokenize_text_files(ft->files, ft->output, *tok, corpus_options(*ft)), tok->path());
  });

  auto fj = std::make_shared<FromTextArgs>();
  CLI::App* from_jsonl = data->add_subcommand(
      "from-jsonl", "JSONL files -> token data, one document per line (byte-level ids without --tokenizer)");
  from_jsonl->add_option("files", fj->files, "JSONL files (one JSON object a line)")->required();
  from_jsonl->add_option("--json-key", fj->json_key, "Key of the document text in each object")->capture_default_str();
  add_corpus_options(from_jsonl, *fj, true);
  from_jsonl->callback([fj] {
    guard_token_outputs(*fj);
    std::shared_ptr<const Tokenizer> tok;
    if (!fj->tokenizer.empty()) tok = Tokenizer::load(fj->tokenizer);
    CorpusStats s = tokenize_jsonl_files(fj->files, fj->output, tok.get(), corpus_options(*fj));
    report_corpus(*fj, s, tok ? tok->path() : std::string("bytes"));
  });

  register_data_make_task(data);

  auto di = std::make_shared<DataInfoArgs>();
  CLI::App* info = data->add_subcommand("info", "Sequences, documents, tokens and dtype of token data");
  info->add_option("prefix", di->prefix, "Token data prefix")->required();
  add_report_flags(info, di->report);
  info->callback([di] {
    auto d = IndexedDataset::open(di->prefix);
    if (di->report.json) {
      std::cout << nlohmann::json{{"dtype", token_dtype_name(d->dtype())}, {"sequences", d->num_sequences()},
                                  {"documents", d->num_documents()}, {"tokens", d->total_tokens()},
                                  {"largest_token_id", d->max_token()}}.dump(2)
                << "\n";
      return;
    }
    std::cout << table({{"field", "value"},
                        {"dtype", token_dtype_name(d->dtype())},
                        {"sequences", std::to_string(d->num_sequences())},
                        {"documents", std::to_string(d->num_documents())},
                        {"tokens", std::to_string(d->total_tokens())},
                        {"largest token id", std::to_string(d->max_token())}});
  });
}

}  // namespace mp::cli
