// Corpus tokenization (see tokenize_corpus.h). The main thread reads inputs into batches of
// documents (up to ~32 MB of text); worker threads take documents by index and tokenize them;
// the main thread then checks the batch's results in order (the first failure, by position,
// is the one reported) and appends them to the writer.
#include "data/tokenize_corpus.h"

#include "common/error.h"
#include "common/progress.h"
#include "data/indexed_dataset.h"
#include "data/tokenizer/tokenizer.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

namespace fs = std::filesystem;

namespace mp {

namespace {

struct Document {
  std::string text;    // file contents or one JSONL line
  std::string where;   // "FILE" or "FILE:LINE" for messages
  bool json = false;
  std::vector<int64_t> ids;
  std::string error;   // non-empty: bad input found by the worker
};

constexpr size_t kBatchBytes = 32u << 20;

int thread_count(int requested) {
  if (requested < 0) fail_usage("--threads: expected a number of threads >= 0 (0: all cores), got {}", requested);
  if (requested > 0) return requested;
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

size_t line_of(const std::string& text, size_t offset) {
  size_t line = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) line += text[i] == '\n';
  return line;
}

void tokenize_one(Document& d, const Tokenizer* tok, const CorpusOptions& o) {
  try {
    std::string_view text = d.text;
    std::string value;
    if (d.json) {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(d.text);
      } catch (const nlohmann::json::exception& e) {
        std::string msg = e.what();
        for (char& c : msg)
          if (c == '\n' || c == '\r') c = ' ';
        d.error = fmt::format("{}: not valid JSON ({})", d.where, msg);
        return;
      }
      if (!j.is_object() || !j.contains(o.json_key)) {
        d.error = fmt::format("{}: no \"{}\" key; expected a JSON object with the document text under \"{}\" (see --json-key)",
                              d.where, o.json_key, o.json_key);
        return;
      }
      const auto& v = j[o.json_key];
      if (!v.is_string()) {
        d.error = fmt::format("{}: \"{}\" is not a string", d.where, o.json_key);
        return;
      }
      value = v.get<std::string>();
      text = value;
    } else if (auto bad = invalid_utf8_offset(text)) {
      d.error = fmt::format("{}: not valid UTF-8 at byte {} (line {}); expected UTF-8 text", d.where, *bad, line_of(d.text, *bad));
      return;
    }
    if (tok) {
      d.ids = tok->encode(text, o.add_special_tokens);
      if (o.append_eod && !d.ids.empty()) d.ids.push_back(*tok->eos_id());
    } else {
      d.ids.assign(text.begin(), text.end());
      for (auto& x : d.ids) x &= 0xFF;
    }
  } catch (const std::exception& e) {
    d.error = fmt::format("{}: {}", d.where, e.what());
  }
  std::string().swap(d.text);
}

class CorpusWriter {
 public:
  CorpusWriter(const std::string& prefix, const Tokenizer* tok, const CorpusOptions& o, int64_t total_bytes)
      : tok_(tok), o_(o), threads_(thread_count(o.threads)),
        dtype_(token_dtype_for_vocab(tok ? tok->vocab_size() : 256)), writer_(prefix, dtype_),
        progress_("tokenize", total_bytes, "B", o.quiet) {
    if (tok && o.append_eod && !tok->eos_id())
      fail_input("{}: the tokenizer names no EOS token (no eos_token in tokenizer_config.json); pass --no-eod", tok->path());
  }
  void add(Document d) {
    batch_bytes_ += d.text.size();
    batch_.push_back(std::move(d));
    if (batch_bytes_ >= kBatchBytes) flush();
  }
  CorpusStats finish(int64_t files) {
    flush();
    writer_.finish();
    stats_.files = files;
    stats_.seconds = progress_.elapsed_seconds();
    stats_.dtype = token_dtype_name(dtype_);
    progress_.finish(rate());
    return stats_;
  }

 private:
  std::string rate() const {
    double s = progress_.elapsed_seconds();
    return fmt::format("{:.1f} MB/s, {} tokens", s > 0 ? stats_.bytes / 1e6 / s : 0.0, stats_.tokens);
  }
  void flush() {
    if (batch_.empty()) return;
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t i; (i = next.fetch_add(1)) < batch_.size();) tokenize_one(batch_[i], tok_, o_);
    };
    const int n = std::min<int>(threads_, static_cast<int>(batch_.size()));
    std::vector<std::thread> pool;
    for (int t = 1; t < n; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    for (Document& d : batch_) {
      if (!d.error.empty()) fail_input("{}", d.error);
      writer_.add_sequence(d.ids);
      writer_.end_document();
      stats_.documents += 1;
      stats_.tokens += static_cast<int64_t>(d.ids.size());
    }
    stats_.bytes += static_cast<int64_t>(batch_bytes_);
    progress_.advance(static_cast<int64_t>(batch_bytes_), rate());
    batch_.clear();
    batch_bytes_ = 0;
  }

  const Tokenizer* tok_;
  const CorpusOptions& o_;
  int threads_;
  TokenDType dtype_;
  IndexedDatasetWriter writer_;
  Progress progress_;
  std::vector<Document> batch_;
  size_t batch_bytes_ = 0;
  CorpusStats stats_;
};

int64_t check_inputs(const std::vector<std::string>& files, const std::string& prefix, const char* kind) {
  if (files.empty()) fail_input("{}: no input {} files given; expected at least one", prefix, kind);
  int64_t total = 0;
  for (const std::string& f : files) {
    std::error_code ec;
    if (!fs::exists(f, ec)) fail_input("{}: {} file not found", f, kind);
    if (!fs::is_regular_file(f, ec)) fail_input("{}: not a regular file; expected a {} file", f, kind);
    total += static_cast<int64_t>(fs::file_size(f, ec));
  }
  return total;
}

std::string read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_input("{}: cannot open for reading", path);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail_input("{}: read failed", path);
  return s;
}

}  // namespace

CorpusStats tokenize_text_files(const std::vector<std::string>& files, const std::string& prefix,
                                const Tokenizer& tokenizer, const CorpusOptions& o) {
  const int64_t total = check_inputs(files, prefix, "text");
  CorpusWriter w(prefix, &tokenizer, o, total);
  for (const std::string& f : files) w.add(Document{read_whole(f), f, false, {}, {}});
  return w.finish(static_cast<int64_t>(files.size()));
}

CorpusStats tokenize_jsonl_files(const std::vector<std::string>& files, const std::string& prefix,
                                 const Tokenizer* tokenizer, const CorpusOptions& o) {
  const int64_t total = check_inputs(files, prefix, "JSONL");
  CorpusOptions opts = o;
  if (!tokenizer) opts.append_eod = false;
  CorpusWriter w(prefix, tokenizer, opts, total);
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) fail_input("{}: cannot open for reading", f);
    std::string line;
    int64_t n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      w.add(Document{std::move(line), fmt::format("{}:{}", f, n), true, {}, {}});
      line = std::string();
    }
    if (in.bad()) fail_input("{}: read failed", f);
  }
  return w.finish(static_cast<int64_t>(files.size()));
}

}  // namespace mp
