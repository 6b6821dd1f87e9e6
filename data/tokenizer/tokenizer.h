// A native reader of Hugging Face tokenizer.json files: BPE models (byte-level as in GPT-2,
// Llama 3, Qwen, DeepSeek and Nemotron-H, and SentencePiece-converted with metaspace and
// byte_fallback), with their normalizers, pre-tokenizers, added/special tokens, post-processor
// and decoder. Encoding gives the ids Hugging Face `tokenizers` gives for the same file and
// text (truncation and padding settings in the file are ignored, as transformers does).
// docs/tokenizer.md lists what is supported. A loaded Tokenizer is immutable and safe to use
// from many threads at once. This header pulls in no regex, Unicode or LibTorch headers.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mp {

class Tokenizer {
 public:
  // `path` is a tokenizer.json file, or a folder (a checkpoint) that holds one. The
  // tokenizer_config.json beside it, when present, names the bos and eos tokens. Bad input
  // naming the file and field for unreadable or malformed files and for unsupported components.
  static std::shared_ptr<const Tokenizer> load(const std::string& path);
  // The same from the text of a tokenizer.json (no tokenizer_config.json: bos and eos come from
  // the post-processor); `source` names it in messages.
  static std::shared_ptr<const Tokenizer> from_json_text(const std::string& text, const std::string& source);
  ~Tokenizer();

  // Ids of `text` (UTF-8; bad input when it is not). With add_special_tokens the file's
  // post-processor adds its tokens (e.g. BOS); added tokens in the text are matched either way.
  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens = false) const;
  // Text of `ids`; ids with no token are skipped, as Hugging Face does.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const;

  // Largest id of the model's vocab, the added tokens and the post-processor's special tokens, plus
  // one: the embedding rows a model needs to accept every id this tokenizer produces.
  int64_t vocab_size() const;
  std::optional<int64_t> bos_id() const;
  std::optional<int64_t> eos_id() const;
  std::optional<int64_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int64_t id) const;
  bool is_special(int64_t id) const;

  const std::string& path() const;  // the tokenizer.json read
  std::string summary() const;      // one line: model kind, vocab size, bos/eos

 private:
  Tokenizer();
  static std::shared_ptr<Tokenizer> build(const std::string& text, const std::string& path);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Bad input unless every id the tokenizer can produce is below `model_vocab_size`; `model`
// names the model in the message (e.g. its folder).
void check_tokenizer_fits_model(const Tokenizer& tokenizer, int64_t model_vocab_size, const std::string& model);

// Byte offset of the first byte of `text` that is not valid UTF-8, if any.
std::optional<size_t> invalid_utf8_offset(std::string_view text);

}  // namespace mp
