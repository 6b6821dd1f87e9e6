// Decoders of tokenizer.json ("decoder"): ByteLevel, Metaspace, Replace, ByteFallback, Fuse,
// Strip, BPEDecoder, WordPiece and Sequence. As in Hugging Face tokenizers each turns a list of
// token strings into another list; the decoded text is the final list joined. Bytes that do not
// form UTF-8 become U+FFFD (ByteLevel: per maximal invalid subsequence; ByteFallback: per byte).
#pragma once

#include "data/tokenizer/json_fields.h"

#include <memory>
#include <string>
#include <vector>

namespace mp::tok {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual std::vector<std::string> decode_chain(std::vector<std::string> tokens) const = 0;
};

std::unique_ptr<Decoder> make_decoder(const Node& node);

}  // namespace mp::tok
