// From documents to the strings the model scores, by the harness's rules (lm_eval/api/task.py:
// fewshot_context, build_qa_turn, construct_requests):
//   context  = description + example_1 + ... + example_K + prompt(doc)
//   example  = prompt(ex) + target_delimiter + answer(ex) + fewshot_delimiter
//   multiple choice:        one request per choice: (context, target_delimiter + choice)
//   choices_are_contexts:   one per choice: (description + examples + choice, target_delimiter + target)
//                           (an example shows the right choice, then target_delimiter and its target)
//   loglikelihood:          (context, target)               (no delimiter: LAMBADA's target has its space)
//   loglikelihood_rolling:  ("", target)
// The answer of an example is its gold choice (multiple choice) or its target. Few-shot examples
// come from the task's few-shot pool: "first_n" takes the first K, "random" draws K with Python's
// random.Random(seed).sample, one generator per task consumed document after document in file
// order, exactly as the harness's sampler is. When the pool is the evaluated file itself, K + 1
// are drawn and the document itself is dropped from them (then the first K kept).
#pragma once

#include "eval/documents.h"
#include "eval/task_spec.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mp::eval {

struct Request {
  std::string context, continuation;
};

struct DocRequests {
  int64_t index = 0;  // position among the file's documents
  std::string where;  // FILE:LINE
  std::vector<Request> requests;
  std::vector<std::string> choices;  // multiple choice: the choice texts (acc_norm divides by their length)
  int64_t gold = -1;                 // multiple choice
  std::string target;                // loglikelihood / rolling: the scored text
};

struct TaskRequests {
  TaskSpec spec;
  int64_t num_fewshot = 0;
  uint64_t seed = 0;            // few-shot sampling seed used
  int64_t documents_in_file = 0;
  std::vector<DocRequests> docs;
};

struct BuildOptions {
  int64_t limit = -1;                  // first N documents (-1: all)
  std::optional<int64_t> num_fewshot;  // default: the task's
  uint64_t seed = 1234;                // few-shot seed unless the task file names one (the harness's default)
  std::string fewshot_data;            // overrides the task's few-shot pool file
};

TaskRequests build_task_requests(const TaskSpec& spec, const BuildOptions& options);
// The same from documents already read: `docs` from spec.data, `pool` the few-shot pool read from
// `pool_file` (options.fewshot_data, else spec.fewshot.data), or null when the pool is `docs`.
TaskRequests requests_from_documents(const TaskSpec& spec, const BuildOptions& options,
                                     const std::vector<Document>& docs, const std::vector<Document>* pool,
                                     const std::string& pool_file);

// One document's requests given its few-shot examples (already chosen), for tests and tools.
DocRequests render_document(const TaskSpec& spec, const Document& doc, const std::vector<const Document*>& examples);

}  // namespace mp::eval
