// libFuzzer target: Megatron .idx files, checked against the size of their .bin (the input's first 8 bytes).
// Accepted and refused-as-bad-input inputs return; anything else aborts (fuzz/format_readers.h).
#include "fuzz/format_readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mp::fuzz::refusal_of("megatron_idx", mp::fuzz::read_megatron_idx, data, size);
  return 0;
}
