// libFuzzer target: model.safetensors.index.json (the shard list of a sharded checkpoint).
// Accepted and refused-as-bad-input inputs return; anything else aborts (fuzz/format_readers.h).
#include "fuzz/format_readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mp::fuzz::refusal_of("shard_index", mp::fuzz::read_shard_index, data, size);
  return 0;
}
