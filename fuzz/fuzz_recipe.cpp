// libFuzzer target: training and distillation recipes (--recipe), then the settings' checks.
// Accepted and refused-as-bad-input inputs return; anything else aborts (fuzz/format_readers.h).
#include "fuzz/format_readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mp::fuzz::refusal_of("recipe", mp::fuzz::read_recipe, data, size);
  return 0;
}
