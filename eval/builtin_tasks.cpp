// The built-in tasks, written as task files (docs/eval_tasks.md) without their data: the user
// names the documents, in the layout of the Hugging Face dataset the harness reads. Each
// definition restates the facts of the harness's task configuration (lm_eval/tasks/...): prompt,
// choices, gold, metrics and few-shot sampler; preprocessing that the harness does in Python
// (HellaSwag, WinoGrande, LAMBADA) is in preprocess.cpp.
#include "eval/task_spec.h"

#include <nlohmann/json.hpp>

#include <utility>
#include <vector>

namespace mp::eval {
namespace {

const std::vector<std::pair<const char*, const char*>>& builtins() {
  static const std::vector<std::pair<const char*, const char*>> b = {
      // allenai/ai2_arc (ARC-Easy): question, choices {text, label}, answerKey; arc/arc_easy.yaml.
      {"arc_easy", R"({"name": "arc_easy", "kind": "multiple_choice",
        "prompt": "Question: {{question}}\nAnswer:", "choices": {"field": "choices.text"},
        "gold": {"field": "answerKey", "index_in": "choices.label"}, "metrics": ["acc", "acc_norm"]})"},
      // The same layout and prompt (arc/arc_challenge.yaml includes arc_easy.yaml).
      {"arc_challenge", R"({"name": "arc_challenge", "kind": "multiple_choice",
        "prompt": "Question: {{question}}\nAnswer:", "choices": {"field": "choices.text"},
        "gold": {"field": "answerKey", "index_in": "choices.label"}, "metrics": ["acc", "acc_norm"]})"},
      // Rowan/hellaswag: activity_label, ctx_a, ctx_b, endings, label; hellaswag/hellaswag.yaml and
      // its utils.process_docs (query and choices made by the "hellaswag" preprocessor).
      {"hellaswag", R"({"name": "hellaswag", "kind": "multiple_choice", "preprocess": "hellaswag",
        "prompt": "{{query}}", "choices": {"field": "choices"}, "gold": "label", "metrics": ["acc", "acc_norm"]})"},
      // allenai/winogrande: sentence (with one "_"), option1, option2, answer ("1" / "2");
      // winogrande/default.yaml: partial evaluation, each option completes the context and the
      // rest of the sentence is scored.
      {"winogrande", R"({"name": "winogrande", "kind": "multiple_choice", "preprocess": "winogrande",
        "choices": {"field": "contexts"}, "choices_are_contexts": true, "target": "{{suffix}}",
        "gold": {"field": "answer", "map": {"1": 0, "2": 1}}, "metrics": ["acc"]})"},
      // baber/piqa (the harness's PIQA source): goal, sol1, sol2, label; piqa/piqa.yaml.
      {"piqa", R"({"name": "piqa", "kind": "multiple_choice", "prompt": "Question: {{goal}}\nAnswer:",
        "choices": ["{{sol1}}", "{{sol2}}"], "gold": "label", "metrics": ["acc", "acc_norm"]})"},
      // aps/super_glue boolq: passage, question, label (0 no, 1 yes); super_glue/boolq/default.yaml.
      {"boolq", R"({"name": "boolq", "kind": "multiple_choice",
        "prompt": "{{passage}}\nQuestion: {{question}}?\nAnswer:", "choices": ["no", "yes"], "gold": "label",
        "metrics": ["acc"]})"},
      // cais/mmlu: question, subject, choices (4), answer (0-3); mmlu/default/_default_template_yaml
      // and the per-subject description of _generate_configs.py; few-shot: the first K of the dev
      // split of the same subject.
      {"mmlu", R"({"name": "mmlu", "kind": "multiple_choice",
        "description": "The following are multiple choice questions (with answers) about {{subject|replace('_', ' ')}}.\n\n",
        "prompt": "{{question|strip}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:",
        "choices": ["A", "B", "C", "D"], "gold": "answer", "metrics": ["acc"],
        "fewshot": {"sampler": "first_n", "same_field": "subject"}})"},
      // EleutherAI/lambada_openai: text; lambada/lambada_openai.yaml: the context is the text
      // without its last space-separated word, the target that word with its space.
      {"lambada_openai", R"({"name": "lambada_openai", "kind": "loglikelihood", "preprocess": "lambada",
        "prompt": "{{context}}", "target": "{{last_word}}", "metrics": ["perplexity", "acc"]})"},
      // cimec/lambada: text; lambada/lambada_standard.yaml (the same requests).
      {"lambada_standard", R"({"name": "lambada_standard", "kind": "loglikelihood", "preprocess": "lambada",
        "prompt": "{{context}}", "target": "{{last_word}}", "metrics": ["perplexity", "acc"]})"},
      // Any JSONL with a "text" field: rolling log-likelihood of each document (the harness's
      // perplexity tasks, e.g. wikitext, without their detokenizers).
      {"perplexity", R"({"name": "perplexity", "kind": "loglikelihood_rolling", "target": "{{text}}",
        "metrics": ["word_perplexity", "byte_perplexity", "bits_per_byte"]})"},
  };
  return b;
}

}  // namespace

std::vector<std::string> builtin_task_names() {
  std::vector<std::string> names;
  for (const auto& [n, j] : builtins()) names.emplace_back(n);
  return names;
}

std::string builtin_task_json(const std::string& name) {
  for (const auto& [n, j] : builtins())
    if (name == n) return j;
  return "";
}

std::optional<TaskSpec> builtin_task(const std::string& name) {
  const std::string text = builtin_task_json(name);
  if (text.empty()) return std::nullopt;
  return parse_task(nlohmann::json::parse(text), "built-in " + name, "");
}

}  // namespace mp::eval
