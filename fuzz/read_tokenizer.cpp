#include "fuzz/format_readers.h"

#include "data/tokenizer/tokenizer.h"

namespace mp::fuzz {

void read_tokenizer(const uint8_t* data, size_t size) {
  const auto tok = Tokenizer::from_json_text(text_of(data, size), "tokenizer.json");
  // ASCII, spaces and tabs, digits, punctuation, accents (composed and not), CJK, an emoji, a
  // zero-width joiner, and text that looks like special tokens.
  static const std::string kText =
      "Hello, world! It's 2024: the quick brown fox.\n\t  caf\xC3\xA9 cafe\xCC\x81 \xE4\xBD\xA0\xE5\xA5\xBD "
      "\xF0\x9F\x98\x80\xE2\x80\x8D <s></s><|endoftext|><unk> \xE2\x96\x81x  ";
  for (bool special : {false, true}) {
    const std::vector<int64_t> ids = tok->encode(kText, special);
    for (int64_t id : ids) require(id >= 0 && id < tok->vocab_size(), "id outside the vocabulary");
    tok->decode(ids, special);
  }
  tok->summary();
}

}  // namespace mp::fuzz
