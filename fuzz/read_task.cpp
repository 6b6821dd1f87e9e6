#include "fuzz/format_readers.h"

#include "data/tokenizer/tokenizer.h"
#include "eval/prepare_task.h"
#include "eval/task_metrics.h"

#include <nlohmann/json.hpp>

namespace mp::fuzz {
namespace {

// A SentencePiece-style tokenizer (metaspace, byte fallback, a BOS from its template), so that
// requests are also encoded the way a real tokenizer with a prefix token encodes them.
std::shared_ptr<const Tokenizer> bos_tokenizer() {
  static const std::shared_ptr<const Tokenizer> tok = [] {
    nlohmann::json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
    const char* hex = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) vocab[std::string("<0x") + hex[b / 16] + hex[b % 16] + ">"] = 3 + b;
    vocab["\xE2\x96\x81"] = 259, vocab["a"] = 260, vocab["\xE2\x96\x81" "a"] = 261;
    auto special = [](int id, const char* s) {
      return nlohmann::json{{"id", id}, {"content", s}, {"single_word", false}, {"lstrip", false},
                            {"rstrip", false}, {"normalized", false}, {"special", true}};
    };
    const nlohmann::json j = {
        {"version", "1.0"},
        {"added_tokens", {special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")}},
        {"normalizer", {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}},
        {"post_processor", {{"type", "TemplateProcessing"},
                            {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                            {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
        {"decoder", {{"type", "ByteFallback"}}},
        {"model", {{"type", "BPE"}, {"unk_token", "<unk>"}, {"byte_fallback", true}, {"vocab", vocab},
                   {"merges", {"\xE2\x96\x81 a"}}}}};
    return Tokenizer::from_json_text(j.dump(), "bos tokenizer.json");
  }();
  return tok;
}

// What the model would be given: every request non-empty and within max_length + 1 tokens, every
// id in the vocabulary, and a rolling text's windows predicting each of its tokens once.
void check_prepared(const eval::PreparedTask& p, const eval::TextEncoder& enc, int64_t vocab, int64_t max_length) {
  const eval::TaskRequests& r = p.requests;
  require(p.span.size() == r.docs.size(), "one span list per document");
  for (const eval::TokenRequest& t : p.tokens) {
    require(!t.context.empty() && !t.continuation.empty(), "a token request with an empty side");
    require(static_cast<int64_t>(t.continuation.size()) <= max_length &&
                static_cast<int64_t>(t.context.size() + t.continuation.size()) <= max_length + 1,
            "a token request longer than max_length + 1");
    for (const auto* side : {&t.context, &t.continuation})
      for (int64_t id : *side) require(id >= 0 && id < vocab, "a token id outside the vocabulary");
  }
  for (size_t d = 0; d < r.docs.size(); ++d) {
    const eval::DocRequests& doc = r.docs[d];
    require(p.span[d].size() == doc.requests.size(), "one span per request");
    if (r.spec.kind == eval::RequestKind::MultipleChoice) {
      require(doc.requests.size() == doc.choices.size(), "one request per choice");
      require(doc.gold >= 0 && doc.gold < static_cast<int64_t>(doc.choices.size()), "gold outside the choices");
    }
    if (r.spec.kind != eval::RequestKind::LoglikelihoodRolling) continue;
    std::vector<int64_t> predicted;
    for (int64_t i = p.span[d][0].first; i < p.span[d][0].second; ++i)
      predicted.insert(predicted.end(), p.tokens[i].continuation.begin(), p.tokens[i].continuation.end());
    require(predicted == enc.encode(doc.target), "rolling windows do not predict every token once");
  }
}

}  // namespace

void read_task(const uint8_t* data, size_t size) {
  const std::string text = text_of(data, size);
  const size_t eol = text.find('\n');
  const std::string task_text = text.substr(0, eol);
  const std::string docs_text = eol == std::string::npos ? "" : text.substr(eol + 1);
  const eval::TaskSpec spec = eval::task_from_json_text(task_text, "task.json");
  // As build_task_requests reads them, with the input's documents standing for every file named.
  const eval::BuildOptions build;
  const std::vector<eval::Document> docs = eval::documents_from_text(docs_text, spec.data, spec.preprocess);
  std::vector<eval::Document> pool;
  if (spec.num_fewshot > 0 && !spec.fewshot.data.empty())
    pool = eval::documents_from_text(docs_text, spec.fewshot.data, spec.preprocess);
  const eval::TaskRequests requests = eval::requests_from_documents(
      spec, build, docs, spec.fewshot.data.empty() ? nullptr : &pool, spec.fewshot.data);

  // A checkpoint without tokenizer.json (UTF-8 bytes) and one with a BOS, at a short max_length
  // so that contexts are truncated and rolling texts span several windows.
  constexpr int64_t kMaxLength = 64;
  const eval::TextEncoder bytes(nullptr, std::nullopt), bos(bos_tokenizer(), std::nullopt);
  for (const auto& [enc, vocab] : {std::pair{&bytes, int64_t{256}}, std::pair{&bos, bos_tokenizer()->vocab_size()}}) {
    const eval::PreparedTask p = eval::tokenize_requests(requests, *enc, kMaxLength);
    check_prepared(p, *enc, vocab, kMaxLength);
  }

  // The metrics of the rendered documents, as if every request scored -1.
  std::vector<eval::DocOutcome> outcomes;
  for (const eval::DocRequests& d : requests.docs)
    outcomes.push_back(eval::doc_outcome(spec, d, std::vector<double>(d.requests.size(), -1.0),
                                         std::vector<bool>(d.requests.size(), false)));
  eval::aggregate_metrics(spec, outcomes, 0, build.seed);
}

}  // namespace mp::fuzz
