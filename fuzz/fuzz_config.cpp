// libFuzzer target: config.json, and what is written back from it.
// Accepted and refused-as-bad-input inputs return; anything else aborts (fuzz/format_readers.h).
#include "fuzz/format_readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mp::fuzz::refusal_of("config", mp::fuzz::read_config, data, size);
  return 0;
}
