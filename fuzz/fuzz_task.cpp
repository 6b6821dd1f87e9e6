// libFuzzer target: benchmark task files (the task JSON on the first line, its documents JSONL
// after it) rendered into requests and tokenized, then their metrics.
// Accepted and refused-as-bad-input inputs return; anything else aborts (fuzz/format_readers.h).
#include "fuzz/format_readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mp::fuzz::refusal_of("task", mp::fuzz::read_task, data, size);
  return 0;
}
