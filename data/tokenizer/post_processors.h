// Post-processors of tokenizer.json ("post_processor"), applied when special tokens are asked
// for: TemplateProcessing (the "single" template), BertProcessing, RobertaProcessing, ByteLevel
// (no change to ids) and Sequence. Any other type is refused by name.
#pragma once

#include "data/tokenizer/json_fields.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace mp::tok {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual std::vector<int32_t> process(std::vector<int32_t> ids) const = 0;
  // Ids the processor puts before / after the sequence (for bos/eos defaults).
  virtual std::vector<int32_t> prefix() const { return {}; }
  virtual std::vector<int32_t> suffix() const { return {}; }
};

std::unique_ptr<PostProcessor> make_post_processor(const Node& node);

}  // namespace mp::tok
