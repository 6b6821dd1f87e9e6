// Text corpora to token data with a Hugging Face tokenizer, following Megatron's
// preprocess_data.py: one document per text file or per JSONL line, the tokenizer's EOS
// appended to each non-empty document unless append_eod is off, uint16 ids when the vocab fits
// (below 65500) else int32, one sequence per document, document boundaries in the .idx.
// Documents are tokenized by a pool of threads in batches and written in input order, so the
// output is byte-identical whatever the thread count. Every input is checked (readable, UTF-8,
// JSON with a string under the key) and a failure names the file and line; the output appears
// whole or not at all.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mp {

class Tokenizer;

struct CorpusOptions {
  bool append_eod = true;
  bool add_special_tokens = false;  // the tokenizer's post-processor (e.g. BOS) per document
  int threads = 0;                  // 0: all cores
  std::string json_key = "text";
  bool quiet = false;               // no progress lines
};

struct CorpusStats {
  int64_t files = 0, documents = 0, tokens = 0, bytes = 0;
  double seconds = 0;
  std::string dtype;
};

// Text files, one document each.
CorpusStats tokenize_text_files(const std::vector<std::string>& files, const std::string& prefix,
                                const Tokenizer& tokenizer, const CorpusOptions& options);
// JSONL files, one document per non-blank line (the string under options.json_key).
// Without a tokenizer (nullptr) the UTF-8 bytes are the ids (vocab 256, no EOS).
CorpusStats tokenize_jsonl_files(const std::vector<std::string>& files, const std::string& prefix,
                                 const Tokenizer* tokenizer, const CorpusOptions& options);

}  // namespace mp
