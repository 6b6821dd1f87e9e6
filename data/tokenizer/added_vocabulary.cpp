// Added-token matching (see added_vocabulary.h). The matcher is a byte trie over the token
// contents; at each position (leftmost first) it takes the longest content that starts there.
#include "data/tokenizer/added_vocabulary.h"

#include "common/error.h"
#include "data/tokenizer/bpe.h"
#include "data/tokenizer/normalizers.h"
#include "data/tokenizer/unicode.h"

#include <algorithm>
#include <array>

namespace mp::tok {

struct AddedVocabulary::Trie {
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;  // sorted by byte
    int32_t token = -1;                                        // index into tokens_
  };
  std::vector<Node> nodes = std::vector<Node>(1);
  std::array<bool, 256> first{};

  void add(std::string_view s, int32_t token) {
    if (s.empty()) return;
    int32_t n = 0;
    for (unsigned char b : s) {
      auto& ch = nodes[n].children;
      auto it = std::lower_bound(ch.begin(), ch.end(), std::make_pair(b, int32_t{-1}));
      if (it != ch.end() && it->first == b) {
        n = it->second;
      } else {
        int32_t next = static_cast<int32_t>(nodes.size());
        ch.insert(it, {b, next});
        nodes.emplace_back();
        n = next;
      }
    }
    if (nodes[n].token < 0) nodes[n].token = token;  // the first of identical contents wins
    first[static_cast<unsigned char>(s[0])] = true;
  }
  bool empty() const { return nodes[0].children.empty(); }
  // Longest match starting at `pos`: (end, token) or (0, -1).
  std::pair<size_t, int32_t> longest(std::string_view s, size_t pos) const {
    std::pair<size_t, int32_t> best{0, -1};
    int32_t n = 0;
    for (size_t i = pos; i < s.size(); ++i) {
      const auto& ch = nodes[n].children;
      unsigned char b = static_cast<unsigned char>(s[i]);
      auto it = std::lower_bound(ch.begin(), ch.end(), std::make_pair(b, int32_t{-1}));
      if (it == ch.end() || it->first != b) break;
      n = it->second;
      if (nodes[n].token >= 0) best = {i + 1, nodes[n].token};
    }
    return best;
  }
};

AddedVocabulary::AddedVocabulary(const Node& list, const BpeModel& model, const Normalizer* normalizer)
    : raw_trie_(std::make_unique<Trie>()), normalized_trie_(std::make_unique<Trie>()) {
  int64_t next_id = model.vocab_count();
  const Json& arr = list.array();
  for (size_t i = 0; i < arr.size(); ++i) {
    Node n = list.at(i);
    AddedToken t;
    t.content = n.at("content").str();
    t.single_word = n.bool_or("single_word", false);
    t.lstrip = n.bool_or("lstrip", false);
    t.rstrip = n.bool_or("rstrip", false);
    t.special = n.bool_or("special", false);
    t.normalized = n.bool_or("normalized", !t.special);
    if (auto id = n.find("id")) id->integer();  // checked for type; the id is derived below
    if (t.content.empty() || by_content_.count(t.content)) continue;
    int32_t id = model.token_to_id(t.content);
    if (id < 0) id = static_cast<int32_t>(next_id++);
    t.id = id;
    by_content_[t.content] = id;
    by_id_[id] = tokens_.size();
    id_limit_ = std::max<int64_t>(id_limit_, id + 1);
    tokens_.push_back(std::move(t));
  }
  // Special tokens first, then the others, each in file order (as the matcher's pattern order).
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t k = 0; k < tokens_.size(); ++k) {
      const AddedToken& t = tokens_[k];
      if (t.special != (pass == 0)) continue;
      if (!t.normalized) raw_trie_->add(t.content, static_cast<int32_t>(k));
      else normalized_trie_->add(normalizer ? normalizer->apply(t.content) : t.content, static_cast<int32_t>(k));
    }
  }
}

AddedVocabulary::~AddedVocabulary() = default;

int32_t AddedVocabulary::token_to_id(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? -1 : it->second;
}

const AddedToken* AddedVocabulary::by_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

bool AddedVocabulary::is_special(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  return it != by_content_.end() && tokens_[by_id_.at(it->second)].special;
}

namespace {

bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t b = s.size() - 1;
  while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  size_t i = b;
  return is_word_char(next_code_point(s, i));
}

bool starts_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0;
  return is_word_char(next_code_point(s, i));
}

// Start of the whitespace run that ends `s`.
size_t trailing_space_start(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t b = end - 1;
    while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
    size_t i = b;
    if (!is_whitespace(next_code_point(s, i))) break;
    end = b;
  }
  return end;
}

size_t leading_space_length(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    if (!is_whitespace(next_code_point(s, j))) break;
    i = j;
  }
  return i;
}

}  // namespace

void AddedVocabulary::find_matches(std::string_view text, const Trie& trie, std::vector<Piece>& out,
                                   const Piece& parent) const {
  auto emit = [&](size_t a, size_t b, int32_t id) {
    if (a >= b) return;
    Piece p;
    p.text.assign(text.substr(a, b - a));
    p.added_id = id;
    p.aligned = parent.aligned;
    if (parent.original_start < 0) p.original_start = -1;
    else if (parent.aligned) p.original_start = parent.original_start + static_cast<int64_t>(a);
    else p.original_start = a == 0 ? parent.original_start : -1;
    out.push_back(std::move(p));
  };
  if (trie.empty()) {
    emit(0, text.size(), -1);
    return;
  }
  size_t start_offset = 0, pos = 0;
  while (pos < text.size()) {
    if (!trie.first[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    auto [end, k] = trie.longest(text, pos);
    if (k < 0) {
      ++pos;
      continue;
    }
    const AddedToken& t = tokens_[k];
    size_t start = pos, stop = end;
    pos = end;  // the next search starts after this match, whether it is kept or not
    if (t.single_word) {
      bool start_space = start == 0 || !ends_with_word(text.substr(0, start));
      bool stop_space = stop == text.size() || !starts_with_word(text.substr(stop));
      if (!start_space || !stop_space) continue;
    }
    if (t.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), start_offset);
    if (t.rstrip) stop += leading_space_length(text.substr(stop));
    emit(start_offset, start, -1);
    emit(start, stop, t.id);
    start_offset = stop;
  }
  emit(start_offset, text.size(), -1);
}

std::vector<Piece> AddedVocabulary::extract_and_normalize(std::string_view text, const Normalizer* normalizer) const {
  std::vector<Piece> first;
  Piece whole;
  whole.original_start = 0;
  find_matches(text, *raw_trie_, first, whole);
  std::vector<Piece> out;
  out.reserve(first.size());
  for (Piece& p : first) {
    if (p.added_id >= 0) {
      out.push_back(std::move(p));
      continue;
    }
    if (normalizer) {
      std::string t = normalizer->apply(p.text);
      if (t != p.text) {
        p.text.swap(t);
        p.aligned = false;
      }
    }
    if (p.text.empty()) continue;
    find_matches(p.text, *normalized_trie_, out, p);
  }
  return out;
}

}  // namespace mp::tok
