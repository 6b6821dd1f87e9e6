// Every input format the tool reads, fed from bytes: what the fuzz targets (fuzz_*.cpp) run on
// each input and what tests/test_fuzz_regressions.cpp runs on the inputs that once broke them.
// Each reader goes through the functions the commands use and then checks properties the result
// must have (a safetensors header's tensors tile its buffer; a config.json written back reads the
// same; a task's token requests fit max_length; ...). Bad input throws mp::Error, as in the
// commands; a broken property throws std::logic_error; any other exception escaping is a bug as
// well.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace mp::fuzz {

using Reader = void (*)(const uint8_t* data, size_t size);

// safetensors: the whole file (the header and its tensor table against the file's size).
void read_safetensors(const uint8_t* data, size_t size);
// config.json.
void read_config(const uint8_t* data, size_t size);
// model.safetensors.index.json.
void read_shard_index(const uint8_t* data, size_t size);
// Megatron .idx: the first 8 bytes are the size of its .bin (u64 little-endian), the rest the .idx.
void read_megatron_idx(const uint8_t* data, size_t size);
// importance.json.
void read_importance(const uint8_t* data, size_t size);
// Shape files (prune --shape, search's best.shape.json).
void read_shape(const uint8_t* data, size_t size);
// Recipes (train / distill --recipe), then the settings' own checks.
void read_recipe(const uint8_t* data, size_t size);
// Deployment budgets (search / info --budget).
void read_budget(const uint8_t* data, size_t size);
// tokenizer.json, then encoding and decoding a fixed text that touches every kind of character.
void read_tokenizer(const uint8_t* data, size_t size);
// Benchmark task files (eval-tasks --tasks): the task JSON on the first line, its documents
// (JSONL) after it, standing also for the few-shot pool file when the task names one; then the
// requests rendered, tokenized (UTF-8 bytes, and a tokenizer with a BOS) and their metrics.
void read_task(const uint8_t* data, size_t size);

// Runs `read` on the input with the refusal checked: "" when the input is accepted, else the
// message of the mp::Error refusing it, which must be bad input or a usage error (exit code 2) and
// say something. A refusal of another kind throws std::logic_error naming `format`; other
// exceptions pass through.
std::string refusal_of(const char* format, Reader read, const uint8_t* data, size_t size);

// The formats by name (as the fuzz targets fuzz_NAME and the regression folders are named) and
// their readers.
struct Format {
  const char* name;
  Reader read;
};
const std::vector<Format>& formats();

inline std::string text_of(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

inline void require(bool property, const std::string& what) {
  if (!property) throw std::logic_error("property broken: " + what);
}

}  // namespace mp::fuzz
