// The files a checkpoint folder carries beside its weights: tokenizer.json, tokenizer_config.json,
// special_tokens_map.json, generation_config.json, chat templates, README, licence, remote code.
// Every command that writes a checkpoint derived from another (prune, convert, the checkpoints of
// train and distill, search finalists) copies them, so that the result loads with transformers'
// AutoTokenizer and AutoModelForCausalLM exactly as the parent did.
//
// What counts as a companion: a regular file (links followed, as in the Hugging Face cache) at the
// top of the folder that is neither the weights (*.safetensors, *.bin, *.pt, *.pth, *.ckpt, *.h5,
// *.msgpack, *.gguf, *.onnx and their *.index.json), nor config.json (always written anew), nor a
// hidden or temporary file. Sub-folders are not copied.
#pragma once

#include <string>
#include <vector>

namespace mp {

// The companions of `dir`, by file name, sorted. Empty when `dir` is empty or has none.
std::vector<std::string> companion_files(const std::string& dir);

// Copies the companions of `from` into `to` (an existing folder, typically an AtomicDir's
// temporary), each file written atomically. Files `to` already holds are kept. Returns the names
// copied. Bad input naming the file when one cannot be read.
std::vector<std::string> copy_companion_files(const std::string& from, const std::string& to);

}  // namespace mp
