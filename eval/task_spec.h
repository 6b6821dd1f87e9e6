// What a benchmark task is: where its documents come from, how a document becomes requests
// (prompt, choices or target, delimiters, few-shot examples) and which metrics it reports. The
// fields mirror the lm-evaluation-harness's task configuration (doc_to_text -> prompt,
// doc_to_choice -> choices, doc_to_target -> gold / target, target_delimiter, fewshot_delimiter,
// description, fewshot_config); docs/eval_tasks.md gives the file format and the mapping.
// A task file is JSON; the built-in tasks (builtin_tasks.cpp) are written in the same format.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mp::eval {

// The harness's output types.
enum class RequestKind { MultipleChoice, Loglikelihood, LoglikelihoodRolling };
const char* request_kind_name(RequestKind k);  // "multiple_choice", "loglikelihood", "loglikelihood_rolling"

// Which choice is right: the field's value as an index (an integer or a string of digits), its
// position in the list at `index_in` (ARC's answerKey among choices.label), or `map`ped
// (WinoGrande's "1" / "2").
struct GoldSpec {
  std::string field;
  std::string index_in;
  std::map<std::string, int64_t> map;
};

struct FewshotSpec {
  std::string data;        // JSONL of the few-shot pool; empty: the evaluated documents themselves
  std::string sampler = "random";  // "random" (the harness's default) or "first_n"
  std::optional<uint64_t> seed;    // default: eval-tasks --seed
  std::string same_field;  // only pool documents whose field equals the evaluated one's (MMLU's subject)
};

struct TaskSpec {
  std::string name;
  std::string source;  // the task file, or "built-in NAME"
  RequestKind kind = RequestKind::MultipleChoice;
  std::string data;    // the evaluated documents (JSONL)
  std::string preprocess;  // "", "hellaswag", "winogrande" or "lambada" (preprocess.h)
  std::string description;  // template, before the few-shot examples
  std::string prompt;       // template: the context (multiple choice, loglikelihood)
  std::vector<std::string> choices;  // templates, or empty when choices_field is set
  std::string choices_field;         // path to a list of strings
  bool choices_are_contexts = false;  // each choice completes the context; `target` is scored
  std::string target;                 // template: the scored continuation (loglikelihood, rolling)
  GoldSpec gold;
  std::string target_delimiter = " ";
  std::string fewshot_delimiter = "\n\n";
  FewshotSpec fewshot;
  int64_t num_fewshot = 0;
  std::vector<std::string> metrics;
};

// Metrics a kind can report, the default first.
std::vector<std::string> metrics_for(RequestKind k);

// A task definition document; `source` names it in errors and `base_dir` resolves relative data
// paths. Unknown keys, missing required fields, templates that do not parse and metrics the kind
// cannot report are bad input naming the source and field.
TaskSpec parse_task(const nlohmann::json& j, const std::string& source, const std::string& base_dir);
// A task file: its text as read from `path` (which names it in errors and resolves its relative
// data paths); bad input also when it names no data.
TaskSpec task_from_json_text(const std::string& text, const std::string& path);
TaskSpec load_task_file(const std::string& path);

std::vector<std::string> builtin_task_names();
// The built-in definition (without data), or nullopt.
std::optional<TaskSpec> builtin_task(const std::string& name);
// Its JSON text, as a task file would hold it.
std::string builtin_task_json(const std::string& name);

// One --tasks argument: NAME=DATA.jsonl (a built-in task reading DATA) or a task file.
TaskSpec resolve_task_argument(const std::string& arg);

}  // namespace mp::eval
