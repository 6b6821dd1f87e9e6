// Megatron indexed dataset: PREFIX.bin (concatenated token arrays, no header) and PREFIX.idx:
//   magic "MMIDIDX\0\0" (9 bytes), u64 version = 1, u8 dtype code, u64 sequence count S,
//   u64 document count D, i32 lengths[S], i64 byte pointers[S], i64 document indices[D]
// (little-endian; document i spans sequences [doc[i], doc[i+1]); doc[0] == 0 and, as Megatron
// writes it, the last entry == S).
// Both files are memory-mapped; opening validates every field against the file sizes before any
// token is read. Both must be regular files (links followed; pipes and devices refused at once),
// and float token data must hold whole, finite numbers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mp {

enum class TokenDType : uint8_t { U8 = 1, I8 = 2, I16 = 3, I32 = 4, I64 = 5, F64 = 6, F32 = 7, U16 = 8 };
int token_dtype_size(TokenDType t);
const char* token_dtype_name(TokenDType t);
// uint16 when the vocabulary fits (below 65500), else int32: Megatron's rule.
TokenDType token_dtype_for_vocab(int64_t vocab_size);

// What a .idx holds, checked against the size of its .bin without reading any token: every check
// open() makes on the index. `idx` is the whole .idx (`idx_size` bytes). Bad input naming the file
// and field.
struct MegatronIndex {
  TokenDType dtype = TokenDType::I32;
  std::vector<int64_t> lengths, pointers, doc_idx;
};
MegatronIndex parse_megatron_index(const unsigned char* idx, size_t idx_size, uint64_t bin_size,
                                   const std::string& idx_path, const std::string& bin_path);

class IndexedDataset {
 public:
  // Throws mp::Error(BadInput) naming the file and field: missing files, bad magic, version,
  // unknown dtype code, truncated idx, pointers/lengths beyond the .bin, document indices out of
  // order or out of range.
  static std::shared_ptr<IndexedDataset> open(const std::string& prefix);
  ~IndexedDataset();

  const std::string& prefix() const { return prefix_; }
  TokenDType dtype() const { return dtype_; }
  int64_t num_sequences() const { return static_cast<int64_t>(lengths_.size()); }
  int64_t num_documents() const;  // doc_idx.size() - 1
  const std::vector<int64_t>& document_indices() const { return doc_idx_; }
  int64_t sequence_length(int64_t i) const { return lengths_.at(i); }
  int64_t total_tokens() const { return total_tokens_; }
  // Tokens [offset, offset + count) of sequence i, widened to int64.
  std::vector<int64_t> read(int64_t sequence, int64_t offset, int64_t count) const;
  // Tokens [start, start + count) of the stream formed by concatenating all sequences in order.
  void read_stream(int64_t start, int64_t count, int64_t* out) const;
  // Largest token id in the whole dataset (scans once, then cached).
  int64_t max_token() const;

 private:
  IndexedDataset() = default;
  std::string prefix_;
  TokenDType dtype_ = TokenDType::I32;
  std::vector<int64_t> lengths_, pointers_, doc_idx_, seq_start_;  // seq_start_: prefix sums
  int64_t total_tokens_ = 0;
  void* bin_map_ = nullptr;
  size_t bin_size_ = 0;
  mutable int64_t max_token_ = -1;
};

// Writes PREFIX.bin/.idx atomically (both appear only on finish()).
class IndexedDatasetWriter {
 public:
  IndexedDatasetWriter(std::string prefix, TokenDType dtype);
  ~IndexedDatasetWriter();  // without finish(): temporaries removed, nothing left behind
  void add_sequence(const std::vector<int64_t>& tokens);  // bad input if a token does not fit dtype
  void end_document();                                      // closes the current document
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mp
