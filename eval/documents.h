// A task's documents: one JSON object per non-blank line of a JSONL file (the layout Hugging Face
// datasets export), each remembered with its line so that every error names FILE:LINE.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mp::eval {

struct Document {
  nlohmann::json fields;  // after the task's preprocessing, if any
  int64_t line = 0;       // 1-based line in the file
  std::string where;      // "FILE:LINE", for messages
};

// Every document of `path`, preprocessed by `preprocess` (preprocess.h; "" for none). Bad input
// naming the file (and line) when it is unreadable, empty, not UTF-8 JSON, or a line is not an
// object.
std::vector<Document> read_documents(const std::string& path, const std::string& preprocess);
// The same from the file's text; `path` names it in messages.
std::vector<Document> documents_from_text(const std::string& text, const std::string& path,
                                          const std::string& preprocess);

}  // namespace mp::eval
