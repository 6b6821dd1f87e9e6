#include "eval/python_text.h"

#include "data/tokenizer/unicode.h"

namespace mp::eval {

bool py_isspace(char32_t c) { return tok::is_whitespace(c) || (c >= 0x1C && c <= 0x1F); }

namespace {

// Byte offset just past the last non-space character.
size_t end_of_text(std::string_view s) {
  size_t i = 0, end = 0;
  while (i < s.size()) {
    const char32_t c = tok::next_code_point(s, i);
    if (!py_isspace(c)) end = i;
  }
  return end;
}

size_t start_of_text(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t at = i;
    if (!py_isspace(tok::next_code_point(s, i))) return at;
  }
  return s.size();
}

}  // namespace

std::string py_rstrip(std::string_view s) { return std::string(s.substr(0, end_of_text(s))); }

std::string py_strip(std::string_view s) {
  const size_t b = start_of_text(s);
  if (b == s.size()) return "";
  return std::string(s.substr(b, end_of_text(s) - b));
}

std::string py_capitalize(std::string_view s) {
  if (s.empty()) return "";
  size_t i = 0;
  const char32_t first = tok::next_code_point(s, i);
  std::string out;
  tok::append_utf8(out, tok::titlecase(first));
  out += tok::lowercase(s.substr(i));
  return out;
}

int64_t py_len(std::string_view s) {
  int64_t n = 0;
  for (unsigned char b : s) n += (b & 0xC0) != 0x80;
  return n;
}

int64_t py_count_words(std::string_view s) {
  int64_t runs = 0;
  bool in_space = false;
  size_t i = 0;
  while (i < s.size()) {
    const bool space = py_isspace(tok::next_code_point(s, i));
    if (space && !in_space) ++runs;
    in_space = space;
  }
  return runs + 1;
}

std::vector<std::string> py_split_on_space(std::string_view s) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    const size_t sp = s.find(' ', start);
    if (sp == std::string_view::npos) {
      parts.emplace_back(s.substr(start));
      return parts;
    }
    parts.emplace_back(s.substr(start, sp - start));
    start = sp + 1;
  }
}

std::string py_join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

bool py_startswith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

std::string py_replace(const std::string& s, const std::string& from, const std::string& to) {
  std::string out;
  size_t i = 0;
  for (;;) {
    const size_t at = s.find(from, i);
    if (at == std::string::npos) return out + s.substr(i);
    out += s.substr(i, at - i) + to;
    i = at + from.size();
  }
}

}  // namespace mp::eval
