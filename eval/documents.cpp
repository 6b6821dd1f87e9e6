#include "eval/documents.h"

#include "common/error.h"
#include "common/input_file.h"
#include "common/json_file.h"
#include "eval/preprocess.h"

namespace mp::eval {

std::vector<Document> read_documents(const std::string& path, const std::string& preprocess) {
  return documents_from_text(read_regular_file(path, 0, "task data (JSONL)"), path, preprocess);
}

std::vector<Document> documents_from_text(const std::string& text, const std::string& path,
                                          const std::string& preprocess) {
  std::vector<Document> docs;
  size_t start = 0;
  int64_t line = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    ++line;
    std::string row = text.substr(start, end - start);
    start = end + 1;
    if (!row.empty() && row.back() == '\r') row.pop_back();
    if (row.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line);
    JsonLimits limits;
    limits.max_depth = 16;
    nlohmann::json j = parse_json_text(row, where, limits);
    if (!j.is_object()) fail_input("{}: expected a JSON object (one document a line), got {}", where, json_brief(j));
    Document d;
    d.fields = preprocess.empty() ? std::move(j) : preprocess_document(preprocess, j, where);
    d.line = line;
    d.where = where;
    docs.push_back(std::move(d));
  }
  if (docs.empty()) fail_input("{}: no documents; expected one JSON object a line", path);
  return docs;
}

}  // namespace mp::eval
