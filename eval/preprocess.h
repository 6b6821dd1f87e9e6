// Document preprocessing that the harness does in Python before rendering prompts; each adds
// fields to a copy of the document:
//   hellaswag   (hellaswag/utils.py process_docs)
//               query   = clean(activity_label + ": " + ctx_a + " " + capitalize(ctx_b))
//               choices = [clean(e) for e in endings]
//               clean(t): strip; " [title]" -> ". "; remove every "[...]" (shortest match, not
//               across a newline); "  " -> " " (one left-to-right pass)
//   winogrande  (winogrande/preprocess_winogrande.py) with i = the first "_" of sentence:
//               contexts = [sentence[:i] + option1, sentence[:i] + option2]
//               suffix   = strip(sentence[i + 1:])
//   lambada     (lambada/lambada_openai.yaml) with words = text.split(" "):
//               context   = " ".join(words[:-1]),   last_word = " " + words[-1]
// A document lacking a field, or a WinoGrande sentence without "_", is bad input naming `where`.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace mp::eval {

bool is_preprocessor(const std::string& name);
std::vector<std::string> preprocessor_names();
nlohmann::json preprocess_document(const std::string& name, const nlohmann::json& doc, const std::string& where);

// HellaSwag's clean(t), exposed for tests.
std::string hellaswag_clean(const std::string& text);

}  // namespace mp::eval
