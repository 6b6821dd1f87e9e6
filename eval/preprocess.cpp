#include "eval/preprocess.h"

#include "common/error.h"
#include "common/json_file.h"
#include "eval/prompt_template.h"
#include "eval/python_text.h"

namespace mp::eval {
namespace {

// re.sub(r"\[.*?\]", "", s): at each '[' the shortest run up to a ']' that crosses no newline
// ('.' does not match one) is removed; a '[' with no such ']' stays.
std::string remove_bracketed(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '[') {
      size_t j = i + 1;
      while (j < s.size() && s[j] != ']' && s[j] != '\n') ++j;
      if (j < s.size() && s[j] == ']') {
        i = j + 1;
        continue;
      }
    }
    out += s[i++];
  }
  return out;
}

std::string text_field(const nlohmann::json& doc, const char* path, const std::string& where) {
  const nlohmann::json& v = resolve_path(doc, path, where);
  if (!v.is_string()) fail_input("{}: field '{}' is {}; expected a string", where, path, json_brief(v));
  return v.get<std::string>();
}

}  // namespace

std::string hellaswag_clean(const std::string& text) {
  std::string t = py_strip(text);
  t = py_replace(t, " [title]", ". ");
  t = remove_bracketed(t);
  return py_replace(t, "  ", " ");
}

std::vector<std::string> preprocessor_names() { return {"hellaswag", "winogrande", "lambada"}; }

bool is_preprocessor(const std::string& name) {
  for (const std::string& n : preprocessor_names())
    if (n == name) return true;
  return false;
}

nlohmann::json preprocess_document(const std::string& name, const nlohmann::json& doc, const std::string& where) {
  nlohmann::json out = doc;
  if (name == "hellaswag") {
    const std::string ctx = text_field(doc, "ctx_a", where) + " " + py_capitalize(text_field(doc, "ctx_b", where));
    out["query"] = hellaswag_clean(text_field(doc, "activity_label", where) + ": " + ctx);
    const nlohmann::json& endings = resolve_path(doc, "endings", where);
    if (!endings.is_array()) fail_input("{}: field 'endings' is {}; expected a list of strings", where, json_brief(endings));
    nlohmann::json choices = nlohmann::json::array();
    for (size_t i = 0; i < endings.size(); ++i) {
      if (!endings[i].is_string())
        fail_input("{}: field 'endings[{}]' is {}; expected a string", where, i, json_brief(endings[i]));
      choices.push_back(hellaswag_clean(endings[i].get<std::string>()));
    }
    out["choices"] = choices;
  } else if (name == "winogrande") {
    const std::string sentence = text_field(doc, "sentence", where);
    const size_t i = sentence.find('_');
    if (i == std::string::npos)
      fail_input("{}: field 'sentence' has no '_'; expected the blank that option1 / option2 fill", where);
    out["contexts"] = {sentence.substr(0, i) + text_field(doc, "option1", where),
                       sentence.substr(0, i) + text_field(doc, "option2", where)};
    out["suffix"] = py_strip(sentence.substr(i + 1));
  } else if (name == "lambada") {
    std::vector<std::string> words = py_split_on_space(text_field(doc, "text", where));
    const std::string last = words.back();
    words.pop_back();
    out["context"] = py_join(words, " ");
    out["last_word"] = " " + last;
  } else {
    fail_input("{}: unknown preprocessor '{}'", where, name);
  }
  return out;
}

}  // namespace mp::eval
