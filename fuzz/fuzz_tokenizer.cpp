// libFuzzer target: tokenizer.json, then encoding and decoding a fixed text.
// Accepted and refused-as-bad-input inputs return; anything else aborts (fuzz/format_readers.h).
#include "fuzz/format_readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mp::fuzz::refusal_of("tokenizer", mp::fuzz::read_tokenizer, data, size);
  return 0;
}
