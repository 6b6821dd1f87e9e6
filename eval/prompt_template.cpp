#include "eval/prompt_template.h"

#include "common/error.h"
#include "common/json_file.h"
#include "eval/python_text.h"

#include <cctype>
#include <vector>

namespace mp::eval {
namespace {

struct Filter {
  std::string name;             // "strip" or "replace"
  std::string from, to;         // replace's arguments
};

struct Expression {
  std::string path;
  std::vector<Filter> filters;
};

std::string trim_ascii(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

// Splits a path into steps: names and [integer] indices. Empty on a syntax error.
bool path_steps(std::string_view path, std::vector<std::string>* names, std::vector<int64_t>* indices) {
  size_t i = 0;
  bool expect_name = true;
  if (path.empty()) return false;
  while (i < path.size()) {
    if (expect_name) {
      size_t j = i;
      while (j < path.size() && (std::isalnum(static_cast<unsigned char>(path[j])) || path[j] == '_')) ++j;
      if (j == i || std::isdigit(static_cast<unsigned char>(path[i]))) return false;
      names->emplace_back(path.substr(i, j - i));
      indices->push_back(-1);
      i = j;
      expect_name = false;
    } else if (path[i] == '.') {
      ++i;
      expect_name = true;
    } else if (path[i] == '[') {
      size_t j = i + 1;
      while (j < path.size() && std::isdigit(static_cast<unsigned char>(path[j]))) ++j;
      if (j == i + 1 || j >= path.size() || path[j] != ']' || j - i > 10) return false;
      names->emplace_back();
      indices->push_back(std::stoll(std::string(path.substr(i + 1, j - i - 1))));
      i = j + 1;
    } else {
      return false;
    }
  }
  return !expect_name;
}

// One quoted argument ('...' or "..."; no escapes) starting at s[i]; advances i past it.
bool quoted(std::string_view s, size_t& i, std::string* out) {
  while (i < s.size() && s[i] == ' ') ++i;
  if (i >= s.size() || (s[i] != '\'' && s[i] != '"')) return false;
  const char q = s[i];
  const size_t end = s.find(q, i + 1);
  if (end == std::string_view::npos) return false;
  *out = std::string(s.substr(i + 1, end - i - 1));
  i = end + 1;
  while (i < s.size() && s[i] == ' ') ++i;
  return true;
}

bool parse_filter(const std::string& text, Filter* f) {
  if (text == "strip") {
    f->name = "strip";
    return true;
  }
  const std::string head = "replace(";
  if (text.compare(0, head.size(), head) != 0 || text.back() != ')') return false;
  std::string_view args(text);
  args = args.substr(head.size(), args.size() - head.size() - 1);
  size_t i = 0;
  if (!quoted(args, i, &f->from) || i >= args.size() || args[i] != ',') return false;
  ++i;
  if (!quoted(args, i, &f->to) || i != args.size() || f->from.empty()) return false;
  f->name = "replace";
  return true;
}

Expression parse_expression(std::string_view inner, const std::string& where) {
  Expression e;
  std::vector<std::string> parts;
  size_t start = 0;
  // '|' inside a quoted filter argument belongs to the argument.
  char quote = 0;
  for (size_t i = 0; i <= inner.size(); ++i) {
    if (i < inner.size() && quote) {
      if (inner[i] == quote) quote = 0;
      continue;
    }
    if (i < inner.size() && (inner[i] == '\'' || inner[i] == '"')) {
      quote = inner[i];
      continue;
    }
    if (i == inner.size() || inner[i] == '|') {
      parts.push_back(trim_ascii(inner.substr(start, i - start)));
      start = i + 1;
    }
  }
  e.path = parts[0];
  check_path(e.path, where);
  for (size_t k = 1; k < parts.size(); ++k) {
    Filter f;
    if (!parse_filter(parts[k], &f))
      fail_input("{}: unknown filter '{}' in {{{{ {} }}}}; expected strip or replace('old', 'new')", where, parts[k],
                 trim_ascii(inner));
    e.filters.push_back(f);
  }
  return e;
}

// Calls f(literal) and g(expression) in order over the template.
template <typename Literal, typename Placeholder>
void walk(std::string_view tmpl, const std::string& where, Literal f, Placeholder g) {
  size_t i = 0;
  while (i < tmpl.size()) {
    const size_t open = tmpl.find("{{", i);
    if (open == std::string_view::npos) {
      f(tmpl.substr(i));
      return;
    }
    f(tmpl.substr(i, open - i));
    const size_t close = tmpl.find("}}", open + 2);
    if (close == std::string_view::npos)
      fail_input("{}: '{{{{' at character {} has no closing '}}}}'", where, open);
    g(parse_expression(tmpl.substr(open + 2, close - open - 2), where));
    i = close + 2;
  }
}

}  // namespace

void check_path(std::string_view path, const std::string& where) {
  std::vector<std::string> names;
  std::vector<int64_t> idx;
  if (!path_steps(path, &names, &idx))
    fail_input("{}: '{}' is not a field path; expected names joined by '.' with [index] steps, e.g. choices.text[0]",
               where, std::string(path));
}

const nlohmann::json& resolve_path(const nlohmann::json& doc, std::string_view path, const std::string& where) {
  std::vector<std::string> names;
  std::vector<int64_t> idx;
  if (!path_steps(path, &names, &idx)) check_path(path, where);
  const nlohmann::json* v = &doc;
  std::string walked;
  for (size_t s = 0; s < names.size(); ++s) {
    if (idx[s] < 0) {
      walked += (walked.empty() ? "" : ".") + names[s];
      if (!v->is_object() || !v->contains(names[s]))
        fail_input("{}: field '{}' is missing; expected it in every document", where, walked);
      v = &(*v)[names[s]];
    } else {
      walked += "[" + std::to_string(idx[s]) + "]";
      if (!v->is_array() || idx[s] >= static_cast<int64_t>(v->size()))
        fail_input("{}: field '{}' is missing; expected a list with at least {} items there", where, walked,
                   idx[s] + 1);
      v = &(*v)[static_cast<size_t>(idx[s])];
    }
  }
  return *v;
}

std::string value_text(const nlohmann::json& v, std::string_view path, const std::string& where) {
  if (v.is_string()) return v.get<std::string>();
  // Unsigned first: an integer above INT64_MAX is stored unsigned and would render negative.
  if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  fail_input("{}: field '{}' is {}; expected text (a string, an integer or a boolean)", where, std::string(path),
             json_brief(v));
}

void check_template(std::string_view tmpl, const std::string& where) {
  walk(tmpl, where, [](std::string_view) {}, [](const Expression&) {});
}

std::string render_template(std::string_view tmpl, const nlohmann::json& doc, const std::string& where) {
  std::string out;
  walk(
      tmpl, where, [&](std::string_view lit) { out += lit; },
      [&](const Expression& e) {
        std::string text = value_text(resolve_path(doc, e.path, where), e.path, where);
        for (const Filter& f : e.filters) text = f.name == "strip" ? py_strip(text) : py_replace(text, f.from, f.to);
        out += text;
      });
  return out;
}

}  // namespace mp::eval
