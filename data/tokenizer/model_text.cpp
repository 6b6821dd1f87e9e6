#include "data/tokenizer/model_text.h"

#include "common/error.h"

#include <filesystem>

namespace mp {

ModelText::ModelText(const std::string& model_dir, int64_t model_vocab_size, const std::string& tokenizer) {
  namespace fs = std::filesystem;
  if (!tokenizer.empty()) {
    tok_ = Tokenizer::load(tokenizer);
  } else if (fs::exists(fs::path(model_dir) / "tokenizer.json")) {
    tok_ = Tokenizer::load(model_dir);
  } else if (model_vocab_size != 256) {
    fail_input("{}: no tokenizer.json in the model folder and the model is not byte-level (vocab_size {}, not 256); "
               "give --tokenizer FILE|DIR, or token ids",
               model_dir, model_vocab_size);
  }
  if (tok_) check_tokenizer_fits_model(*tok_, model_vocab_size, model_dir);
}

std::string ModelText::describe() const { return tok_ ? tok_->summary() : "UTF-8 bytes (vocab 256)"; }

std::vector<int64_t> ModelText::encode(std::string_view text, bool add_special_tokens) const {
  if (tok_) return tok_->encode(text, add_special_tokens);
  if (auto bad = invalid_utf8_offset(text)) fail_input("the text is not UTF-8 (first invalid byte at offset {})", *bad);
  std::vector<int64_t> ids;
  ids.reserve(text.size());
  for (unsigned char c : text) ids.push_back(c);
  return ids;
}

std::string ModelText::decode(const std::vector<int64_t>& ids) const {
  if (tok_) return tok_->decode(ids, true);
  std::string out;
  for (int64_t id : ids)
    if (id >= 0 && id < 256) out.push_back(static_cast<char>(id));
  return out;
}

}  // namespace mp
