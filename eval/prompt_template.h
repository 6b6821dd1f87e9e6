// Prompt templates: text with {{ expression }} placeholders filled from a document (one JSON
// object of a task's data file). The harness writes its prompts in Jinja; the task definitions
// here need only field access and two filters, so that is all this language has:
//   expression := path ( '|' filter )*
//   path       := name ( '.' name | '[' integer ']' )*         e.g. choices.text[0]
//   filter     := 'strip'                                      Python's str.strip()
//              |  'replace(' quoted ',' quoted ')'             str.replace(old, new)
// A field renders as its string, an integer in decimal, a boolean as True / False (as Jinja
// prints Python values); anything else is bad input naming the document and the field.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace mp::eval {

// Bad input naming `where` (e.g. "task.json: field 'prompt'") when the template does not parse.
void check_template(std::string_view tmpl, const std::string& where);
// `where` names the document (e.g. "data.jsonl:12") in errors about its fields.
std::string render_template(std::string_view tmpl, const nlohmann::json& doc, const std::string& where);
// The value at `path` in `doc`; bad input naming `where` and the path when it is absent.
const nlohmann::json& resolve_path(const nlohmann::json& doc, std::string_view path, const std::string& where);
// Bad input naming `where` unless `path` is a valid path expression.
void check_path(std::string_view path, const std::string& where);
// A field value as the template renders it.
std::string value_text(const nlohmann::json& v, std::string_view path, const std::string& where);

}  // namespace mp::eval
