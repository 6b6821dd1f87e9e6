// A multiple-choice task made offline from real text, for models and text that no published
// benchmark fits (a byte-level demo model, a held-out corpus): each sample is a passage from one
// document, its true continuation, and K-1 continuations of similar length taken from other
// documents; the model should find the true one. Samples are drawn with a fixed seed (a 64-bit
// Mersenne Twister), so the same files, options and seed give the same task, byte for byte.
// Whitespace runs are collapsed to one space. With split "word" passages end and continuations
// start at word boundaries (the task's target delimiter is the space between them); with split
// "char" they split at any character and every choice has exactly continuation_chars characters
// (target delimiter ""): the first characters of a choice then continue a word in progress, which
// even a small byte-level model can tell from a fragment of another document.
// Written as TASK_DIR/task.json (the task file format of task_spec.h) and TASK_DIR/data.jsonl.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mp::eval {

struct MakeTaskOptions {
  std::vector<std::string> files;  // UTF-8 text, one document each
  std::string output;              // the task folder
  int64_t choices = 4;             // K >= 2
  uint64_t seed = 1234;
  int64_t context_chars = 400;       // passage length at most (characters)
  int64_t continuation_chars = 100;  // choice length at most (characters; at least one word)
  int64_t samples = 200;
  std::string split = "word";  // "word" or "char"
};

struct MakeTaskStats {
  int64_t documents = 0, samples = 0;
};

// Bad input when a file is unreadable or not UTF-8, or fewer than two documents hold words.
MakeTaskStats make_task(const MakeTaskOptions& options);

}  // namespace mp::eval
