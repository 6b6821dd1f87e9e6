// libFuzzer target: importance.json (score's output, prune's and search's input).
// Accepted and refused-as-bad-input inputs return; anything else aborts (fuzz/format_readers.h).
#include "fuzz/format_readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mp::fuzz::refusal_of("importance", mp::fuzz::read_importance, data, size);
  return 0;
}
