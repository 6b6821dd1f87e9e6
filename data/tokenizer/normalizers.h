// Normalizers of tokenizer.json ("normalizer"): NFC, NFD, NFKC, NFKD, Lowercase, Strip,
// StripAccents, Replace, Prepend, Nmt, ByteLevel and Sequence of these. Each rewrites the text
// of one piece; any other type is refused by name when the file is loaded.
#pragma once

#include "data/tokenizer/json_fields.h"

#include <memory>
#include <string>

namespace mp::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string apply(std::string text) const = 0;
};

// nullptr for a null node.
std::unique_ptr<Normalizer> make_normalizer(const Node& node);

}  // namespace mp::tok
