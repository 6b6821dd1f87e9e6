// Real text to token data before a BPE tokenizer exists: UTF-8 bytes as ids (vocab 256).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mp {

struct TextToTokensStats {
  int64_t files = 0, documents = 0, tokens = 0;
};

// Each input file becomes one document of one sequence whose tokens are the file's bytes.
// Writes PREFIX.bin/.idx atomically with uint16 tokens (Megatron's rule for a vocab below 65500).
// Bad input when a file is missing or unreadable, or when no file is given.
TextToTokensStats bytes_dataset_from_text(const std::vector<std::string>& files,
                                          const std::string& prefix);

}  // namespace mp
