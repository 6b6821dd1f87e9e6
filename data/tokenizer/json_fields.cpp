// Field access with located errors (see json_fields.h).
#include "data/tokenizer/json_fields.h"

#include "common/error.h"

namespace mp::tok {

namespace {
// The root node's `where` is the file name alone; members below it read "FILE: a.b[2].c".
std::string child(const std::string& where, const std::string& key) {
  return where.find(": ") == std::string::npos ? where + ": " + key : where + "." + key;
}
}  // namespace

void Node::fail(const std::string& expected) const {
  std::string found = json.is_null() ? "null" : json.is_string() ? "a string" : json.is_boolean() ? "a boolean"
                      : json.is_number() ? "a number" : json.is_array() ? "an array" : "an object";
  fail_input("{}: expected {}, found {}", where, expected, found);
}

Node Node::at(const std::string& key) const {
  if (!json.is_object()) fail("an object");
  auto it = json.find(key);
  if (it == json.end()) fail_input("{}: missing field \"{}\"", where, key);
  return Node{*it, child(where, key)};
}

std::optional<Node> Node::find(const std::string& key) const {
  if (!json.is_object()) fail("an object");
  auto it = json.find(key);
  if (it == json.end() || it->is_null()) return std::nullopt;
  return Node{*it, child(where, key)};
}

Node Node::at(size_t index) const {
  if (!json.is_array()) fail("an array");
  return Node{json.at(index), where.find(": ") == std::string::npos ? where + ": [" + std::to_string(index) + "]" : where + "[" + std::to_string(index) + "]"};
}

std::string Node::str() const {
  if (!json.is_string()) fail("a string");
  return json.get<std::string>();
}

bool Node::boolean() const {
  if (!json.is_boolean()) fail("true or false");
  return json.get<bool>();
}

int64_t Node::integer() const {
  if (!json.is_number_integer()) fail("an integer");
  return json.get<int64_t>();
}

const Json& Node::array() const {
  if (!json.is_array()) fail("an array");
  return json;
}

const Json& Node::object() const {
  if (!json.is_object()) fail("an object");
  return json;
}

std::string Node::str_or(const std::string& key, const std::string& fallback) const {
  auto n = find(key);
  return n ? n->str() : fallback;
}

bool Node::bool_or(const std::string& key, bool fallback) const {
  auto n = find(key);
  return n ? n->boolean() : fallback;
}

std::string Node::type() const { return at("type").str(); }

}  // namespace mp::tok
