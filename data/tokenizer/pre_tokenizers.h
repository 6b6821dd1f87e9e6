// Pre-tokenizers of tokenizer.json ("pre_tokenizer"): ByteLevel, Split, Digits, Metaspace,
// Whitespace, WhitespaceSplit, Punctuation, CharDelimiterSplit, BertPreTokenizer and Sequence.
// Each splits the pieces that are not added tokens into smaller pieces (and ByteLevel maps
// their bytes to GPT-2's printable characters); any other type is refused by name.
#pragma once

#include "data/tokenizer/json_fields.h"
#include "data/tokenizer/pieces.h"

#include <memory>
#include <vector>

namespace mp::tok {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their splits; pieces with an added_id pass through unchanged.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

// nullptr for a null node.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Node& node);

}  // namespace mp::tok
