// minipuzzle tokenize: text -> ids (or ids -> text with --decode) with a Hugging Face
// tokenizer.json, for checking what a model will see.
#include "cli/commands.h"
#include "cli/common_options.h"
#include "common/atomic_output.h"
#include "common/error.h"
#include "data/tokenizer/tokenizer.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <memory>

namespace mp::cli {
namespace {

struct TokenizeArgs {
  std::string tokenizer, text, input;
  bool decode = false, add_special_tokens = false, skip_special_tokens = false;
  ReportFlags report;
};

// Ids from "1 2 3", "1,2,3" or a JSON array "[1, 2, 3]".
std::vector<int64_t> parse_ids(const std::string& s, const std::string& where, const Tokenizer& tok) {
  std::vector<int64_t> ids;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == ' ' || c == ',' || c == '\n' || c == '\r' || c == '\t' || c == '[' || c == ']') {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
    if (j == i || j - i > 10)
      fail_input("{}: expected token ids (numbers separated by spaces or commas), found {:.20}", where, s.substr(i));
    int64_t id = std::stoll(s.substr(i, j - i));
    if (!tok.id_to_token(id)) fail_input("{}: token id {} is not in {} ({} ids)", where, id, tok.path(), tok.vocab_size());
    ids.push_back(id);
    i = j;
  }
  return ids;
}

void run(const TokenizeArgs& a) {
  auto tok = Tokenizer::load(a.tokenizer);
  const std::string where = a.input.empty() ? "--text" : a.input;
  const std::string in = a.input.empty() ? a.text : read_file(a.input);
  if (a.decode) {
    std::string text = tok->decode(parse_ids(in, where, *tok), a.skip_special_tokens);
    if (a.report.json) std::cout << nlohmann::json{{"text", text}}.dump() << "\n";
    else std::cout << text << "\n";
    return;
  }
  if (auto bad = invalid_utf8_offset(in)) fail_input("{}: not valid UTF-8 at byte {}; expected UTF-8 text", where, *bad);
  std::vector<int64_t> ids = tok->encode(in, a.add_special_tokens);
  if (a.report.json) {
    nlohmann::json tokens = nlohmann::json::array();
    for (int64_t id : ids) tokens.push_back(tok->id_to_token(id).value_or(""));
    std::cout << nlohmann::json{{"ids", ids}, {"tokens", tokens}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return;
  }
  std::string line;
  for (size_t k = 0; k < ids.size(); ++k) line += (k ? " " : "") + std::to_string(ids[k]);
  std::cout << line << "\n";
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto a = std::make_shared<TokenizeArgs>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Text -> token ids (or ids -> text) with a Hugging Face tokenizer.json");
  add_tokenizer(cmd, a->tokenizer, "tokenizer.json, or a checkpoint folder holding one")->required();
  auto* text = cmd->add_option("--text", a->text, "Text to encode (or ids to decode)");
  auto* input = cmd->add_option("--input", a->input, "File whose contents to encode (or ids to decode)");
  text->excludes(input);
  cmd->add_flag("--decode", a->decode, "Input is token ids; print the text");
  cmd->add_flag("--add-special-tokens", a->add_special_tokens, "Apply the tokenizer's post-processor (e.g. BOS)");
  cmd->add_flag("--skip-special-tokens", a->skip_special_tokens, "With --decode: leave special tokens out");
  // --json prints {"ids": [...], "tokens": [...]}, or {"text": ...} with --decode.
  add_report_flags(cmd, a->report);
  cmd->callback([a, text, input] {
    if (text->count() == 0 && input->count() == 0) fail_usage("tokenize: give --text or --input");
    run(*a);
  });
}

}  // namespace mp::cli
