// Split behaviours over a covering of matches (see pieces.h).
#include "data/tokenizer/pieces.h"

#include "common/error.h"

#include <algorithm>

namespace mp::tok {

SplitBehavior parse_split_behavior(const std::string& name, const std::string& what) {
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  fail_input("{}: unknown split behavior \"{}\"; expected Removed, Isolated, MergedWithPrevious, "
             "MergedWithNext or Contiguous", what, name);
}

void covering_from_ranges(const std::vector<std::pair<size_t, size_t>>& ranges, size_t size, Matches& out) {
  out.clear();
  if (size == 0) {
    out.push_back({{0, 0}, false});
    return;
  }
  size_t prev = 0;
  for (const auto& r : ranges) {
    if (prev != r.first) out.push_back({{prev, r.first}, false});
    out.push_back({r, true});
    prev = r.second;
  }
  if (prev != size) out.push_back({{prev, size}, false});
}

void split_piece(const Piece& piece, const Matches& in, SplitBehavior behavior, bool invert,
                 std::vector<Piece>& out) {
  // (range, remove) after applying the behaviour.
  std::vector<std::pair<std::pair<size_t, size_t>, bool>> splits;
  splits.reserve(in.size());
  auto flag = [&](size_t k) { return in[k].second != invert; };
  switch (behavior) {
    case SplitBehavior::Isolated:
      for (size_t k = 0; k < in.size(); ++k) splits.push_back({in[k].first, false});
      break;
    case SplitBehavior::Removed:
      for (size_t k = 0; k < in.size(); ++k) splits.push_back({in[k].first, flag(k)});
      break;
    case SplitBehavior::Contiguous: {
      bool previous = false;
      for (size_t k = 0; k < in.size(); ++k) {
        bool m = flag(k);
        if (m == previous && !splits.empty()) splits.back().first.second = in[k].first.second;
        else splits.push_back({in[k].first, false});
        previous = m;
      }
      break;
    }
    case SplitBehavior::MergedWithPrevious: {
      bool previous = false;
      for (size_t k = 0; k < in.size(); ++k) {
        bool m = flag(k);
        if (m && !previous && !splits.empty()) splits.back().first.second = in[k].first.second;
        else splits.push_back({in[k].first, false});
        previous = m;
      }
      break;
    }
    case SplitBehavior::MergedWithNext: {
      bool previous = false;
      for (size_t kk = in.size(); kk-- > 0;) {
        bool m = flag(kk);
        if (m && !previous && !splits.empty()) splits.back().first.first = in[kk].first.first;
        else splits.push_back({in[kk].first, false});
        previous = m;
      }
      std::reverse(splits.begin(), splits.end());
      break;
    }
  }
  for (const auto& s : splits) {
    if (s.second) continue;
    size_t a = s.first.first, b = s.first.second;
    if (a >= b) continue;
    Piece p;
    p.text.assign(piece.text, a, b - a);
    p.aligned = piece.aligned;
    if (piece.original_start < 0) p.original_start = -1;
    else if (piece.aligned) p.original_start = piece.original_start + static_cast<int64_t>(a);
    else p.original_start = a == 0 ? piece.original_start : -1;
    out.push_back(std::move(p));
  }
}

}  // namespace mp::tok
