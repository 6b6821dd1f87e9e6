// Reading tokenizer.json fields with errors that name the file and the JSON path
// ("tokenizer.json: pre_tokenizer.pretokenizers[1].pattern: expected a string").
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace mp::tok {

using Json = nlohmann::json;

// A JSON node with its location, for error messages.
struct Node {
  const Json& json;
  std::string where;  // "FILE: path.to.node"

  Node at(const std::string& key) const;        // required member; bad input when missing
  std::optional<Node> find(const std::string& key) const;  // missing or null -> nullopt
  Node at(size_t index) const;
  bool is_null() const { return json.is_null(); }

  std::string str() const;
  bool boolean() const;
  int64_t integer() const;
  const Json& array() const;
  const Json& object() const;

  // Optional members with defaults (null counts as missing).
  std::string str_or(const std::string& key, const std::string& fallback) const;
  bool bool_or(const std::string& key, bool fallback) const;
  std::string type() const;  // the "type" member
  [[noreturn]] void fail(const std::string& expected) const;
};

}  // namespace mp::tok
