// BPE model (see bpe.h). The merge loop keeps symbols in a doubly linked list over an array and
// candidate merges in a min-heap ordered by (rank, position); stale heap entries are skipped
// when popped, so each step merges the lowest-ranked adjacent pair, leftmost first.
#include "data/tokenizer/bpe.h"

#include "common/error.h"
#include "data/tokenizer/unicode.h"

#include <algorithm>
#include <fmt/format.h>

namespace mp::tok {

namespace {

struct Symbol {
  int32_t id;
  int32_t prev, next;
  uint32_t len;  // bytes of the word covered; 0 once merged into its left neighbour
};

struct Candidate {
  int32_t rank, pos, new_id;
  bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

}  // namespace

BpeModel::BpeModel(const Node& model) {
  const std::string type = model.str_or("type", "BPE");
  if (type != "BPE")
    fail_input("{}: unsupported model type \"{}\" (supported: BPE)", model.where, type);
  if (auto d = model.find("dropout")) {
    if (!d->json.is_number()) d->fail("a number or null");
    if (d->json.get<double>() != 0.0)
      fail_input("{}: BPE dropout {} is not supported (encoding must be deterministic); expected null",
                 d->where, d->json.get<double>());
  }
  if (auto u = model.find("unk_token")) {
    unk_token_ = u->str();
    has_unk_ = true;
  }
  prefix_ = model.str_or("continuing_subword_prefix", "");
  suffix_ = model.str_or("end_of_word_suffix", "");
  fuse_unk_ = model.bool_or("fuse_unk", false);
  byte_fallback_ = model.bool_or("byte_fallback", false);
  ignore_merges_ = model.bool_or("ignore_merges", false);

  Node vocab = model.at("vocab");
  const Json& v = vocab.object();
  vocab_.reserve(v.size());
  int64_t limit = 0;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() >= (1ll << 31) - 1)
      fail_input("{}: token {} has id {}; expected an integer in [0, 2^31 - 1)", vocab.where,
                 quote_for_message(it.key()), it.value().dump());
    limit = std::max<int64_t>(limit, it.value().get<int64_t>() + 1);
  }
  vocab_r_.assign(static_cast<size_t>(limit), std::string());
  has_token_.assign(static_cast<size_t>(limit), 0);
  small_char_ids_.assign(0x800, -1);
  for (auto it = v.begin(); it != v.end(); ++it) {
    const int32_t id = static_cast<int32_t>(it.value().get<int64_t>());
    const std::string& key = it.key();
    vocab_.insert(key, id);
    vocab_r_[id] = key;
    has_token_[id] = 1;
    if (!key.empty() && !first_invalid_utf8(key)) {
      size_t i = 0;
      char32_t c = next_code_point(key, i);
      if (i == key.size() && c < 0x800) small_char_ids_[c] = id;
    }
  }
  if (has_unk_) {
    unk_id_ = vocab_.find(unk_token_);
    if (unk_id_ < 0) fail_input("{}: unk_token {} is not in the vocab", model.where, quote_for_message(unk_token_));
  }
  for (int b = 0; b < 256; ++b) byte_fallback_ids_[b] = vocab_.find(fmt::format("<0x{:02X}>", b));

  Node merges = model.at("merges");
  const Json& m = merges.array();
  merges_.reserve(m.size());
  std::string a, b;
  for (size_t r = 0; r < m.size(); ++r) {
    const Json& e = m[r];
    if (e.is_string()) {
      const std::string& line = e.get_ref<const std::string&>();
      size_t sp = line.find(' ');
      if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
        fail_input("{}[{}]: merge {} is not two tokens separated by one space", merges.where, r, quote_for_message(line));
      a = line.substr(0, sp);
      b = line.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      fail_input("{}[{}]: expected \"A B\" or [\"A\", \"B\"]", merges.where, r);
    }
    int32_t ia = vocab_.find(a), ib = vocab_.find(b);
    if (ia < 0 || ib < 0)
      fail_input("{}[{}]: merge token {} is not in the vocab", merges.where, r, quote_for_message(ia < 0 ? a : b));
    std::string merged = a + (b.size() >= prefix_.size() ? b.substr(prefix_.size()) : std::string());
    int32_t im = vocab_.find(merged);
    if (im < 0)
      fail_input("{}[{}]: merged token {} is not in the vocab", merges.where, r, quote_for_message(merged));
    merges_.insert(ia, ib, MergeInfo{static_cast<int32_t>(r), im});
  }
}

BpeModel::~BpeModel() = default;

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || id >= static_cast<int32_t>(vocab_r_.size()) || !has_token_[id]) return nullptr;
  return &vocab_r_[id];
}

int32_t BpeModel::char_id(std::string_view ch, char32_t c) const {
  if (c < 0x800) return small_char_ids_[c];
  return vocab_.find(ch);
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    int32_t id = vocab_.find(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  if (word.size() >= kMaxCachedLength) {
    merge_word(word, out);
    return;
  }
  Shard& shard = cache_[hash_bytes(word) % kShards];
  std::string key(word);
  {
    std::lock_guard<std::mutex> lock(shard.mutex);
    auto it = shard.map.find(key);
    if (it != shard.map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t before = out.size();
  merge_word(word, out);
  std::vector<int32_t> ids(out.begin() + static_cast<std::ptrdiff_t>(before), out.end());
  std::lock_guard<std::mutex> lock(shard.mutex);
  if (shard.map.size() >= kShardCapacity) shard.map.clear();
  shard.map.emplace(std::move(key), std::move(ids));
}

void BpeModel::merge_word(std::string_view w, std::vector<int32_t>& out) const {
  std::vector<Symbol> sym;
  sym.reserve(w.size());
  auto add = [&](int32_t id, uint32_t len) {
    int32_t n = static_cast<int32_t>(sym.size());
    sym.push_back(Symbol{id, n - 1, -1, len});
    if (n > 0) sym[n - 1].next = n;
  };
  const bool plain = prefix_.empty() && suffix_.empty();
  bool unk_pending = false;
  uint32_t unk_len = 0;
  std::string s;
  size_t i = 0;
  while (i < w.size()) {
    const size_t start = i;
    const char32_t c = next_code_point(w, i);
    const uint32_t byte_len = static_cast<uint32_t>(i - start);
    int32_t id;
    std::string_view piece = w.substr(start, byte_len);
    if (plain) {
      id = char_id(piece, c);
    } else {
      s.assign(piece);
      if (start > 0) s.insert(0, prefix_);
      if (i == w.size()) s += suffix_;
      piece = s;
      id = vocab_.find(piece);
    }
    if (id >= 0) {
      if (unk_pending) {
        add(unk_id_, unk_len);
        unk_pending = false;
      }
      add(id, byte_len);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : piece) all = all && byte_fallback_ids_[b] >= 0;
      if (all) {
        for (unsigned char b : piece) add(byte_fallback_ids_[b], 1);
        continue;
      }
    }
    if (has_unk_) {
      if (unk_pending && fuse_unk_) {
        unk_len += byte_len;
      } else {
        if (unk_pending) add(unk_id_, unk_len);
        unk_pending = true;
        unk_len = byte_len;
      }
    }
  }
  if (unk_pending) add(unk_id_, unk_len);

  std::vector<Candidate> heap;
  heap.reserve(sym.size());
  auto push = [&](int32_t pos) {
    int32_t nx = sym[pos].next;
    if (nx < 0) return;
    MergeInfo m = merges_.find(sym[pos].id, sym[nx].id);
    if (m.rank < 0) return;
    heap.push_back(Candidate{m.rank, pos, m.new_id});
    std::push_heap(heap.begin(), heap.end(), std::greater<Candidate>());
  };
  for (int32_t p = 0; p + 1 < static_cast<int32_t>(sym.size()); ++p) push(p);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<Candidate>());
    Candidate top = heap.back();
    heap.pop_back();
    Symbol& left = sym[top.pos];
    if (left.len == 0 || left.next < 0) continue;
    const int32_t right_pos = left.next;
    Symbol& right = sym[right_pos];
    MergeInfo m = merges_.find(left.id, right.id);
    if (m.rank < 0 || m.new_id != top.new_id) continue;
    left.id = top.new_id;
    left.len += right.len;
    left.next = right.next;
    right.len = 0;
    if (right.next >= 0) sym[right.next].prev = top.pos;
    if (left.prev >= 0) push(left.prev);
    push(top.pos);
  }
  for (const Symbol& x : sym)
    if (x.len != 0) out.push_back(x.id);
}

}  // namespace mp::tok
