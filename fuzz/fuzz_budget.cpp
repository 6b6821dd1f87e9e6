// libFuzzer target: deployment budgets (search / info --budget).
// Accepted and refused-as-bad-input inputs return; anything else aborts (fuzz/format_readers.h).
#include "fuzz/format_readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mp::fuzz::refusal_of("budget", mp::fuzz::read_budget, data, size);
  return 0;
}
