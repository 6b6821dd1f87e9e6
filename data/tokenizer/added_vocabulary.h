// Added and special tokens ("added_tokens" of tokenizer.json), matched in the text before the
// model sees it. Tokens with normalized=false are matched in the raw text; the rest of the text
// is normalized piece by piece, then tokens with normalized=true are matched (by their own
// normalized form) in it. Matching is leftmost-longest and non-overlapping; single_word, lstrip
// and rstrip behave as in Hugging Face tokenizers. Ids follow Hugging Face's rule: a token
// already in the model's vocab keeps that id, others take the next free id after the model's.
#pragma once

#include "data/tokenizer/json_fields.h"
#include "data/tokenizer/pieces.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mp::tok {

class BpeModel;
class Normalizer;

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
};

class AddedVocabulary {
 public:
  AddedVocabulary(const Node& added_tokens, const BpeModel& model, const Normalizer* normalizer);
  ~AddedVocabulary();

  // Splits `text` into added tokens and normalized text pieces (none empty).
  std::vector<Piece> extract_and_normalize(std::string_view text, const Normalizer* normalizer) const;

  int32_t token_to_id(std::string_view content) const;  // -1 if not an added token
  const AddedToken* by_id(int32_t id) const;
  bool is_special(std::string_view content) const;
  int64_t id_limit() const { return id_limit_; }  // largest added id + 1 (0 when none)
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  struct Trie;
  void find_matches(std::string_view text, const Trie& trie, std::vector<Piece>& out, const Piece& parent) const;

  std::vector<AddedToken> tokens_;  // in the order of the file
  std::unordered_map<std::string, int32_t> by_content_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unique_ptr<Trie> raw_trie_, normalized_trie_;
  int64_t id_limit_ = 0;
};

}  // namespace mp::tok
