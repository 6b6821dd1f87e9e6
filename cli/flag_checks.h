// Validators for numeric flags, so that nonsense is a usage error at parse time naming the flag
// (CLI11 prints "--flag: <what>"), never a number that overflows or poisons the work later.
#pragma once

#include <CLI/CLI.hpp>

#include <cmath>
#include <string>

namespace mp::cli {

// A finite number (CLI11 otherwise accepts "inf" and "nan" for floating-point options).
inline CLI::Validator finite_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        try {
          size_t used = 0;
          const double v = std::stod(text, &used);
          if (used == text.size() && std::isfinite(v)) return "";
        } catch (const std::exception&) {
        }
        return "expected a finite number, got '" + text + "'";
      },
      "FINITE");
}

}  // namespace mp::cli
