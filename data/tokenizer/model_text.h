// Text in and out of a model: the tokenizer that goes with it (its checkpoint folder's
// tokenizer.json, or one named explicitly), checked against the model's vocabulary; or, for a
// byte-level model (vocab 256) that has none, UTF-8 bytes as ids.
#pragma once

#include "data/tokenizer/tokenizer.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mp {

class ModelText {
 public:
  // `tokenizer`: a tokenizer.json or a folder holding one; empty: the model folder's own. Bad
  // input when no tokenizer is found and the model is not byte-level (naming both and how to
  // give one), or when the tokenizer's ids exceed the model's vocabulary.
  ModelText(const std::string& model_dir, int64_t model_vocab_size, const std::string& tokenizer = "");

  bool is_bytes() const { return !tok_; }
  const Tokenizer* tokenizer() const { return tok_.get(); }
  std::string describe() const;  // "tokenizer.json (BPE, 50257 tokens)" or "UTF-8 bytes"

  // With add_special_tokens the tokenizer's post-processor runs (e.g. a leading BOS).
  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens) const;
  // Bytes: ids above 255 cannot occur in a byte-level model and are skipped.
  std::string decode(const std::vector<int64_t>& ids) const;

 private:
  std::shared_ptr<const Tokenizer> tok_;
};

}  // namespace mp
