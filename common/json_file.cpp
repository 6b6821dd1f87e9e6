#include "common/json_file.h"

#include "common/error.h"
#include "common/input_file.h"
#include "common/printable.h"

#include <cmath>
#include <set>
#include <vector>

namespace mp {

using nlohmann::json;

int json_nesting_depth(const std::string& text, int cap) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > deepest && (deepest = depth) > cap) return deepest;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

json parse_json_text(const std::string& text, const std::string& source, const JsonLimits& limits) {
  if (limits.max_bytes && text.size() > limits.max_bytes)
    fail_input("{}: {} bytes of JSON, more than the {} allowed", source, text.size(), limits.max_bytes);
  if (json_nesting_depth(text, limits.max_depth) > limits.max_depth)
    fail_input("{}: JSON nests deeper than {} levels; not a file this tool writes or reads", source, limits.max_depth);
  std::vector<std::set<std::string>> keys;  // the keys seen in each open object
  std::string duplicate;
  json j;
  try {
    j = json::parse(text, [&](int, json::parse_event_t ev, json& parsed) {
      switch (ev) {
        case json::parse_event_t::object_start: keys.emplace_back(); break;
        case json::parse_event_t::object_end:
          if (!keys.empty()) keys.pop_back();
          break;
        case json::parse_event_t::key:
          if (!keys.empty() && !keys.back().insert(parsed.get_ref<const std::string&>()).second && duplicate.empty())
            duplicate = parsed.get_ref<const std::string&>();
          break;
        default: break;
      }
      return true;
    });
  } catch (const json::exception& e) {
    fail_input("{}: not valid JSON ({})", source, e.what());
  }
  if (!duplicate.empty())
    fail_input("{}: key \"{}\" appears twice in one object; which value is meant is ambiguous", source, duplicate);
  return j;
}

json read_json_file(const std::string& path, const JsonLimits& limits) {
  return parse_json_text(read_regular_file(path, limits.max_bytes, "JSON"), path, limits);
}

std::string json_brief(const json& v) {
  std::string s;
  try {
    s = v.dump(-1, ' ', true, json::error_handler_t::replace);
  } catch (const json::exception&) {
    s = v.type_name();
  }
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return printable(s);
}

const json& json_required(const json& obj, const std::string& key, const std::string& source) {
  if (!obj.is_object()) fail_input("{}: expected a JSON object, found {}", source, obj.type_name());
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) fail_input("{}: field '{}' is missing", source, key);
  return *it;
}

const json* json_optional(const json& obj, const std::string& key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

int64_t json_int(const json& v, const std::string& field, const std::string& source, int64_t lo, int64_t hi) {
  if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)))
    fail_input("{}: field '{}' must be a whole number, got {}", source, field, json_brief(v));
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) fail_input("{}: field '{}' must be in [{}, {}], got {}", source, field, lo, hi, x);
  return x;
}

uint64_t json_uint(const json& v, const std::string& field, const std::string& source) {
  if (!v.is_number_unsigned())
    fail_input("{}: field '{}' must be a whole number >= 0, got {}", source, field, json_brief(v));
  return v.get<uint64_t>();
}

double json_number(const json& v, const std::string& field, const std::string& source, double lo, double hi) {
  if (!v.is_number()) fail_input("{}: field '{}' must be a number, got {}", source, field, json_brief(v));
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    fail_input("{}: field '{}' must be a finite number in [{:g}, {:g}], got {}", source, field, lo, hi, x);
  return x;
}

std::string json_string(const json& v, const std::string& field, const std::string& source) {
  if (!v.is_string()) fail_input("{}: field '{}' must be a string, got {}", source, field, json_brief(v));
  return v.get<std::string>();
}

bool json_bool(const json& v, const std::string& field, const std::string& source) {
  if (!v.is_boolean()) fail_input("{}: field '{}' must be true or false, got {}", source, field, json_brief(v));
  return v.get<bool>();
}

void throw_json_error(const std::string& source, const json::exception& e) {
  std::string what = e.what();
  // "[json.exception.type_error.302] type must be number, but is string" -> the part after "] ".
  const size_t p = what.find("] ");
  if (p != std::string::npos) what = what.substr(p + 2);
  fail_input("{}: unexpected JSON value: {}", source, what);
}

}  // namespace mp
