// The one way JSON enters the tool. Every document is bounded before it is parsed: a size cap
// (the file is a regular file, see input_file.h), a nesting-depth cap checked by a scan of the
// text before the parser runs (so deeply nested input can never exhaust the stack), and duplicate
// object keys are refused at any depth (which of two values was meant is ambiguous). Errors are bad
// input naming the file (`source`) and, for fields, the field and the JSON type expected.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <string>

namespace mp {

struct JsonLimits {
  uint64_t max_bytes = uint64_t{256} << 20;  // 256 MiB: far above any config, recipe or importance file
  int max_depth = 64;                         // real files nest at most 5 levels
};

// The deepest nesting of arrays and objects in `text` (strings skipped); stops counting at `cap`+1.
int json_nesting_depth(const std::string& text, int cap);

nlohmann::json parse_json_text(const std::string& text, const std::string& source, const JsonLimits& limits = {});
nlohmann::json read_json_file(const std::string& path, const JsonLimits& limits = {});

// Typed access. `field` is the name printed (e.g. "settings.seed"); every failure is bad input
// "SOURCE: field 'FIELD' must be ..., got ..." with the value shown shortened and escaped.
const nlohmann::json& json_required(const nlohmann::json& obj, const std::string& key, const std::string& source);
// nullptr when the key is absent or null.
const nlohmann::json* json_optional(const nlohmann::json& obj, const std::string& key);
int64_t json_int(const nlohmann::json& v, const std::string& field, const std::string& source,
                 int64_t lo = std::numeric_limits<int64_t>::min(), int64_t hi = std::numeric_limits<int64_t>::max());
uint64_t json_uint(const nlohmann::json& v, const std::string& field, const std::string& source);
// A finite number (integers accepted) within [lo, hi].
double json_number(const nlohmann::json& v, const std::string& field, const std::string& source,
                   double lo = -std::numeric_limits<double>::max(), double hi = std::numeric_limits<double>::max());
std::string json_string(const nlohmann::json& v, const std::string& field, const std::string& source);
bool json_bool(const nlohmann::json& v, const std::string& field, const std::string& source);
// A value for a message: dumped, at most ~60 characters, non-ASCII escaped.
std::string json_brief(const nlohmann::json& v);

[[noreturn]] void throw_json_error(const std::string& source, const nlohmann::json::exception& e);

// Runs f(); a nlohmann exception escaping it (a conversion not yet guarded by the accessors above)
// becomes bad input naming `source`, never a raw library error.
template <typename F>
auto with_json_source(const std::string& source, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const nlohmann::json::exception& e) {
    throw_json_error(source, e);
  }
}

}  // namespace mp
