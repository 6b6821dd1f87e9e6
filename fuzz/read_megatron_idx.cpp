#include "fuzz/format_readers.h"

#include "data/indexed_dataset.h"

#include <cstring>

namespace mp::fuzz {

void read_megatron_idx(const uint8_t* data, size_t size) {
  if (size < 8) return;
  uint64_t bin_size = 0;
  std::memcpy(&bin_size, data, 8);
  const MegatronIndex ix = parse_megatron_index(data + 8, size - 8, bin_size, "tokens.idx", "tokens.bin");
  // Accepted: every sequence lies inside the .bin and the document indices are ordered sequence indices.
  const uint64_t item = static_cast<uint64_t>(token_dtype_size(ix.dtype));
  require(ix.lengths.size() == ix.pointers.size(), "lengths and pointers differ in count");
  for (size_t i = 0; i < ix.lengths.size(); ++i)
    require(ix.lengths[i] >= 0 && ix.pointers[i] >= 0 &&
                static_cast<uint64_t>(ix.pointers[i]) + static_cast<uint64_t>(ix.lengths[i]) * item <= bin_size,
            "sequence " + std::to_string(i) + " outside the .bin");
  require(!ix.doc_idx.empty() && ix.doc_idx[0] == 0, "doc_idx[0]");
  for (size_t i = 1; i < ix.doc_idx.size(); ++i)
    require(ix.doc_idx[i] >= ix.doc_idx[i - 1] && static_cast<size_t>(ix.doc_idx[i]) <= ix.lengths.size(),
            "doc_idx order");
}

}  // namespace mp::fuzz
