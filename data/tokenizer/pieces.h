// The unit the encoding pipeline works on: a piece of (possibly normalized) text, or an added
// token already resolved to its id. Pre-tokenizers split pieces; splitting follows Hugging
// Face's split behaviours over a list of (range, is_match) that covers the piece.
// Invariants: pieces are never empty; a piece with an id is never split or normalized again.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mp::tok {

struct Piece {
  std::string text;
  int32_t added_id = -1;  // >= 0: an added token, passed to the output as is
  // Byte offset of the piece's first character in the original input, or -1 when it is known
  // only to be past the start (text changed by a normalizer and split away from its start).
  int64_t original_start = 0;
  bool aligned = true;  // text is an unchanged slice of the original input
};

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Parses "Removed", "Isolated", ...; bad input naming `what` otherwise.
SplitBehavior parse_split_behavior(const std::string& name, const std::string& what);

// A covering of [0, size) by ordered ranges, each flagged as a match of the pattern or not.
using Matches = std::vector<std::pair<std::pair<size_t, size_t>, bool>>;

// Covering from the match ranges of a regex (as Hugging Face's Pattern for regexes).
void covering_from_ranges(const std::vector<std::pair<size_t, size_t>>& ranges, size_t size, Matches& out);
// Covering where each character for which pred(c) holds is a match of its own.
template <typename Pred>
void covering_from_chars(std::string_view s, Pred pred, Matches& out);

// Appends to `out` the sub-pieces of `piece` that `behavior` gives over `matches` (empty ones
// dropped); `invert` flips the match flags first.
void split_piece(const Piece& piece, const Matches& matches, SplitBehavior behavior, bool invert,
                 std::vector<Piece>& out);

}  // namespace mp::tok

#include "data/tokenizer/unicode.h"

namespace mp::tok {

template <typename Pred>
void covering_from_chars(std::string_view s, Pred pred, Matches& out) {
  out.clear();
  size_t last = 0, i = 0;
  while (i < s.size()) {
    size_t b = i;
    char32_t c = next_code_point(s, i);
    if (pred(c)) {
      if (last < b) out.push_back({{last, b}, false});
      out.push_back({{b, i}, true});
      last = i;
    }
  }
  if (last < s.size()) out.push_back({{last, s.size()}, false});
}

}  // namespace mp::tok
