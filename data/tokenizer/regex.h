// Regular expressions of tokenizer.json through PCRE2 (UTF + UCP, JIT when available).
// Hugging Face compiles these patterns with Oniguruma (Ruby syntax); the few escapes whose
// meaning differs between the two engines are rewritten before compiling: \s and \S mean the
// White_Space property, \w and \W Unicode word characters, \h a hex digit; ^ and $ match at line
// boundaries. find_all reports matches the way the Rust onig crate iterates them: after an empty
// match the search resumes one character later, and an empty match right where the previous
// match ended is skipped. A compiled Regex is immutable and shared between threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mp::tok {

class Regex {
 public:
  // `what` names the pattern in errors (file and JSON field): bad input when it does not compile.
  Regex(const std::string& pattern, const std::string& what);
  // A pattern that matches `literal` exactly.
  static std::unique_ptr<Regex> literal(const std::string& literal, const std::string& what);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // All matches in `text` (valid UTF-8) as byte ranges [first, second).
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The pattern with the Oniguruma-specific escapes rewritten (exposed for tests).
std::string onig_to_pcre2(const std::string& pattern);

}  // namespace mp::tok
