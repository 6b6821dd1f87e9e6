// The BPE model of tokenizer.json ("model": {"type": "BPE", ...}): vocab, ranked merges, and
// the options Hugging Face supports (unk_token, fuse_unk, byte_fallback, continuing_subword_
// prefix, end_of_word_suffix, ignore_merges). A word is split into characters, then the
// adjacent pair with the lowest merge rank (leftmost on ties) is merged until none applies.
// Results for words shorter than 256 bytes are cached, keyed by the word; the cache is sharded
// under mutexes so that one model serves many threads.
#pragma once

#include "data/tokenizer/hash_tables.h"
#include "data/tokenizer/json_fields.h"

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mp::tok {

class BpeModel {
 public:
  explicit BpeModel(const Node& model);  // bad input naming the field on any inconsistency
  ~BpeModel();

  // Appends the ids of `word` (non-empty, valid UTF-8) to `out`.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  int32_t token_to_id(std::string_view token) const { return vocab_.find(token); }  // -1 if absent
  const std::string* id_to_token(int32_t id) const;
  int64_t vocab_count() const { return static_cast<int64_t>(vocab_.size()); }
  int64_t id_limit() const { return static_cast<int64_t>(vocab_r_.size()); }  // largest id + 1
  bool byte_fallback() const { return byte_fallback_; }

 private:
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;
  int32_t char_id(std::string_view ch, char32_t c) const;

  StringIdTable vocab_;
  std::vector<std::string> vocab_r_;
  std::vector<uint8_t> has_token_;
  PairTable merges_;
  std::vector<int32_t> small_char_ids_;  // id of the token that is exactly code point c < 0x800
  std::string unk_token_, prefix_, suffix_;
  int32_t unk_id_ = -1;
  bool has_unk_ = false, fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  std::array<int32_t, 256> byte_fallback_ids_{};  // ids of <0xXX>, -1 when absent

  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>> map;
  };
  static constexpr size_t kShards = 64, kShardCapacity = 8192, kMaxCachedLength = 256;
  mutable std::array<Shard, kShards> cache_;
};

}  // namespace mp::tok
