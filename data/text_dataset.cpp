// Text files to byte-level token data: file k becomes document k, one sequence whose tokens are
// the file's bytes (0..255) stored as uint16. The output appears whole or not at all.
#include "data/text_dataset.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "data/indexed_dataset.h"

#include <filesystem>

namespace fs = std::filesystem;

namespace mp {

TextToTokensStats bytes_dataset_from_text(const std::vector<std::string>& files,
                                          const std::string& prefix) {
  if (files.empty())
    fail_input("{}: no input text files given; expected at least one", prefix);
  // Check every input before writing anything, so a typo in the last name fails fast.
  for (const std::string& f : files) {
    std::error_code ec;
    if (!fs::exists(f, ec)) fail_input("{}: text file not found", f);
    if (!fs::is_regular_file(f, ec)) fail_input("{}: not a regular file; expected a text file", f);
  }
  TextToTokensStats stats;
  IndexedDatasetWriter writer(prefix, TokenDType::U16);
  std::vector<int64_t> tokens;
  for (const std::string& f : files) {
    const std::string bytes = read_file(f);
    tokens.resize(bytes.size());
    for (size_t i = 0; i < bytes.size(); ++i) tokens[i] = static_cast<unsigned char>(bytes[i]);
    writer.add_sequence(tokens);
    writer.end_document();
    stats.files += 1;
    stats.documents += 1;
    stats.tokens += static_cast<int64_t>(bytes.size());
  }
  writer.finish();
  return stats;
}

}  // namespace mp
