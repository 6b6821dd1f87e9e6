// libFuzzer target: shape files (prune --shape, search's best.shape.json).
// Accepted and refused-as-bad-input inputs return; anything else aborts (fuzz/format_readers.h).
#include "fuzz/format_readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mp::fuzz::refusal_of("shape", mp::fuzz::read_shape, data, size);
  return 0;
}
