// The few Python string operations that the lm-evaluation-harness's prompts and metrics are
// defined with, so that a prompt rendered here is the string the harness renders:
//   str.isspace / strip / rstrip   whitespace is what str.isspace() accepts (the Unicode
//                                  White_Space property plus U+001C..U+001F)
//   str.capitalize                 first character title-cased, the rest lower-cased
//   len(str)                       code points, not bytes (acc_norm divides by it)
//   re.split(r"\s+", s)            the word count of word_perplexity (\s is str.isspace)
//   str.split(" ")                 single spaces only, empty pieces kept (LAMBADA's last word)
// Inputs are valid UTF-8 (documents are checked when read).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mp::eval {

bool py_isspace(char32_t c);
std::string py_strip(std::string_view s);
// str.replace(from, to) for a non-empty `from`.
std::string py_replace(const std::string& s, const std::string& from, const std::string& to);
std::string py_rstrip(std::string_view s);
std::string py_capitalize(std::string_view s);
int64_t py_len(std::string_view s);
// Pieces of re.split(r"\s+", s): 1 + the number of maximal whitespace runs (leading and trailing
// runs give empty pieces, which Python counts).
int64_t py_count_words(std::string_view s);
std::vector<std::string> py_split_on_space(std::string_view s);
std::string py_join(const std::vector<std::string>& parts, std::string_view sep);
bool py_startswith(std::string_view s, std::string_view prefix);

}  // namespace mp::eval
