// libFuzzer target: safetensors files: the header and its tensor table, checked against the file's size.
// Accepted and refused-as-bad-input inputs return; anything else aborts (fuzz/format_readers.h).
#include "fuzz/format_readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mp::fuzz::refusal_of("safetensors", mp::fuzz::read_safetensors, data, size);
  return 0;
}
