// Validators for numeric flags, so that nonsense is a usage error at parse time naming the flag
// (CLI11 prints "--flag: <what>"), never a number that overflows or poisons the work later.
#pragma once

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdlib>
#include <string>

namespace mp::cli {

// The whole text as a double (denormals and out-of-range values included); false if it is not one.
inline bool parse_double(const std::string& text, double* out) {
  if (text.empty()) return false;
  char* end = nullptr;
  *out = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size();
}

// A finite number (CLI11 otherwise accepts "inf" and "nan" for floating-point options).
inline CLI::Validator finite_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double v = 0;
        if (parse_double(text, &v) && std::isfinite(v)) return "";
        return "expected a finite number, got '" + text + "'";
      },
      "FINITE");
}

// A whole number >= 1 (a count or a width).
inline CLI::Validator positive_whole() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double v = 0;
        if (parse_double(text, &v) && v >= 1) return "";
        return "expected a whole number >= 1, got '" + text + "'";
      },
      "POSITIVE");
}

}  // namespace mp::cli
