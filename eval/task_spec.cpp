#include "eval/task_spec.h"

#include "common/error.h"
#include "common/input_file.h"
#include "common/json_file.h"
#include "eval/preprocess.h"
#include "eval/prompt_template.h"
#include "eval/python_text.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <set>

namespace mp::eval {

const char* request_kind_name(RequestKind k) {
  switch (k) {
    case RequestKind::MultipleChoice: return "multiple_choice";
    case RequestKind::Loglikelihood: return "loglikelihood";
    case RequestKind::LoglikelihoodRolling: return "loglikelihood_rolling";
  }
  return "?";
}

std::vector<std::string> metrics_for(RequestKind k) {
  switch (k) {
    case RequestKind::MultipleChoice: return {"acc", "acc_norm"};
    case RequestKind::Loglikelihood: return {"perplexity", "acc"};
    case RequestKind::LoglikelihoodRolling: return {"word_perplexity", "byte_perplexity", "bits_per_byte"};
  }
  return {};
}

namespace {

std::string field_where(const std::string& source, const std::string& field) {
  return source + ": field '" + field + "'";
}

std::string template_field(const nlohmann::json& j, const char* key, const std::string& source) {
  std::string t = json_string(json_required(j, key, source), key, source);
  check_template(t, field_where(source, key));
  return t;
}

GoldSpec parse_gold(const nlohmann::json& g, const std::string& source) {
  GoldSpec s;
  if (g.is_string()) {
    s.field = g.get<std::string>();
  } else if (g.is_object()) {
    for (const auto& [k, v] : g.items())
      if (k != "field" && k != "index_in" && k != "map")
        fail_input("{}: field 'gold.{}' is not known; expected field, index_in or map", source, k);
    s.field = json_string(json_required(g, "field", source), "gold.field", source);
    if (const auto* in = json_optional(g, "index_in")) s.index_in = json_string(*in, "gold.index_in", source);
    if (const auto* m = json_optional(g, "map")) {
      if (!m->is_object() || m->empty())
        fail_input("{}: field 'gold.map' must be a non-empty object from values to choice indices, got {}", source,
                   json_brief(*m));
      for (const auto& [k, v] : m->items()) s.map[k] = json_int(v, "gold.map." + k, source, 0, 1 << 20);
    }
    if (!s.index_in.empty() && !s.map.empty())
      fail_input("{}: field 'gold' has both index_in and map; expected at most one", source);
    if (!s.index_in.empty()) check_path(s.index_in, field_where(source, "gold.index_in"));
  } else {
    fail_input("{}: field 'gold' must be a field path or an object {{\"field\": ...}}, got {}", source, json_brief(g));
  }
  check_path(s.field, field_where(source, "gold.field"));
  return s;
}

FewshotSpec parse_fewshot(const nlohmann::json& f, const std::string& source, const std::string& base_dir) {
  if (!f.is_object()) fail_input("{}: field 'fewshot' must be an object, got {}", source, json_brief(f));
  FewshotSpec s;
  for (const auto& [k, v] : f.items()) {
    if (k == "data") {
      s.data = json_string(v, "fewshot.data", source);
      if (!base_dir.empty() && !s.data.empty() && s.data[0] != '/') s.data = base_dir + "/" + s.data;
    } else if (k == "sampler") {
      s.sampler = json_string(v, "fewshot.sampler", source);
      if (s.sampler != "random" && s.sampler != "first_n")
        fail_input("{}: field 'fewshot.sampler' is '{}'; expected random or first_n", source, s.sampler);
    } else if (k == "seed") {
      s.seed = json_uint(v, "fewshot.seed", source);
    } else if (k == "same_field") {
      s.same_field = json_string(v, "fewshot.same_field", source);
      check_path(s.same_field, field_where(source, "fewshot.same_field"));
    } else {
      fail_input("{}: field 'fewshot.{}' is not known; expected data, sampler, seed or same_field", source, k);
    }
  }
  return s;
}

const std::set<std::string> kKeys = {"name", "kind", "data", "preprocess", "description", "prompt", "choices",
                                     "choices_are_contexts", "target", "gold", "target_delimiter",
                                     "fewshot_delimiter", "fewshot", "num_fewshot", "metrics"};

}  // namespace

TaskSpec parse_task(const nlohmann::json& j, const std::string& source, const std::string& base_dir) {
  if (!j.is_object()) fail_input("{}: expected a JSON object (a task definition), got {}", source, json_brief(j));
  for (const auto& [k, v] : j.items())
    if (!kKeys.count(k))
      fail_input("{}: field '{}' is not known; expected name, kind, data, prompt, choices, gold, target, ... "
                 "(docs/eval_tasks.md)",
                 source, k);
  TaskSpec t;
  t.source = source;
  t.name = json_string(json_required(j, "name", source), "name", source);
  if (t.name.empty() || t.name.find_first_of(" \t\n/=") != std::string::npos)
    fail_input("{}: field 'name' is '{}'; expected a non-empty name without spaces, '/' or '='", source, t.name);
  const std::string kind = json_string(json_required(j, "kind", source), "kind", source);
  if (kind == "multiple_choice") t.kind = RequestKind::MultipleChoice;
  else if (kind == "loglikelihood") t.kind = RequestKind::Loglikelihood;
  else if (kind == "loglikelihood_rolling") t.kind = RequestKind::LoglikelihoodRolling;
  else
    fail_input("{}: field 'kind' is '{}'; expected multiple_choice, loglikelihood or loglikelihood_rolling", source,
               kind);
  if (const auto* d = json_optional(j, "data")) {
    t.data = json_string(*d, "data", source);
    if (!base_dir.empty() && !t.data.empty() && t.data[0] != '/') t.data = base_dir + "/" + t.data;
  }
  if (const auto* p = json_optional(j, "preprocess")) {
    t.preprocess = json_string(*p, "preprocess", source);
    if (!is_preprocessor(t.preprocess))
      fail_input("{}: field 'preprocess' is '{}'; expected one of {}", source, t.preprocess,
                 py_join(preprocessor_names(), ", "));
  }
  if (j.contains("description")) t.description = template_field(j, "description", source);
  if (const auto* d = json_optional(j, "target_delimiter")) t.target_delimiter = json_string(*d, "target_delimiter", source);
  if (const auto* d = json_optional(j, "fewshot_delimiter")) t.fewshot_delimiter = json_string(*d, "fewshot_delimiter", source);
  if (const auto* f = json_optional(j, "fewshot")) t.fewshot = parse_fewshot(*f, source, base_dir);
  if (const auto* n = json_optional(j, "num_fewshot")) t.num_fewshot = json_int(*n, "num_fewshot", source, 0, 1000);

  const bool mc = t.kind == RequestKind::MultipleChoice;
  if (mc) {
    if (const auto* b = json_optional(j, "choices_are_contexts")) t.choices_are_contexts = json_bool(*b, "choices_are_contexts", source);
  }
  if (t.kind != RequestKind::LoglikelihoodRolling && !t.choices_are_contexts) {
    t.prompt = template_field(j, "prompt", source);
  } else if (j.contains("prompt")) {
    fail_input("{}: field 'prompt' is not used by {} (the choices are the contexts, or the target is scored alone)",
               source, t.choices_are_contexts ? "a task whose choices_are_contexts" : "loglikelihood_rolling tasks");
  }
  if (mc) {
    const nlohmann::json& c = json_required(j, "choices", source);
    if (c.is_array()) {
      if (c.empty()) fail_input("{}: field 'choices' is empty; expected at least one choice", source);
      for (size_t i = 0; i < c.size(); ++i) {
        const std::string f = "choices[" + std::to_string(i) + "]";
        t.choices.push_back(json_string(c[i], f, source));
        check_template(t.choices.back(), field_where(source, f));
      }
    } else if (c.is_object() && c.size() == 1 && c.contains("field")) {
      t.choices_field = json_string(c["field"], "choices.field", source);
      check_path(t.choices_field, field_where(source, "choices.field"));
    } else {
      fail_input("{}: field 'choices' must be a list of templates or {{\"field\": PATH}}, got {}", source, json_brief(c));
    }
    t.gold = parse_gold(json_required(j, "gold", source), source);
  } else {
    for (const char* k : {"choices", "gold", "choices_are_contexts"})
      if (j.contains(k)) fail_input("{}: field '{}' is only for multiple_choice tasks", source, k);
  }
  const bool needs_target = !mc || t.choices_are_contexts;
  if (needs_target) {
    t.target = template_field(j, "target", source);
  } else if (j.contains("target")) {
    fail_input("{}: field 'target' is not used by multiple_choice tasks unless choices_are_contexts is true", source);
  }
  if (t.kind == RequestKind::LoglikelihoodRolling && t.num_fewshot > 0)
    fail_input("{}: field 'num_fewshot' must be 0 for loglikelihood_rolling tasks", source);

  const std::vector<std::string> allowed = metrics_for(t.kind);
  if (const auto* m = json_optional(j, "metrics")) {
    if (!m->is_array() || m->empty())
      fail_input("{}: field 'metrics' must be a non-empty list, got {}", source, json_brief(*m));
    for (size_t i = 0; i < m->size(); ++i) {
      const std::string name = json_string((*m)[i], "metrics[" + std::to_string(i) + "]", source);
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end())
        fail_input("{}: field 'metrics[{}]' is '{}'; a {} task reports {}", source, i, name,
                   request_kind_name(t.kind), py_join(allowed, ", "));
      if (std::find(t.metrics.begin(), t.metrics.end(), name) == t.metrics.end()) t.metrics.push_back(name);
    }
  } else {
    t.metrics = allowed;
  }
  return t;
}

TaskSpec task_from_json_text(const std::string& text, const std::string& path) {
  const nlohmann::json j = parse_json_text(text, path);
  std::string base = std::filesystem::path(path).parent_path().string();
  if (base.empty()) base = ".";
  TaskSpec t = parse_task(j, path, base);
  if (t.data.empty()) fail_input("{}: field 'data' is missing; expected the JSONL file of the task's documents", path);
  return t;
}

TaskSpec load_task_file(const std::string& path) {
  return task_from_json_text(read_regular_file(path, JsonLimits{}.max_bytes, "JSON"), path);
}

TaskSpec resolve_task_argument(const std::string& arg) {
  const size_t eq = arg.find('=');
  if (eq != std::string::npos) {
    const std::string name = arg.substr(0, eq), data = arg.substr(eq + 1);
    if (std::optional<TaskSpec> t = builtin_task(name)) {
      if (data.empty()) fail_usage("--tasks {}: expected {}=PATH.jsonl (the documents to evaluate)", arg, name);
      t->data = data;
      return *t;
    }
    if (!std::filesystem::exists(arg))
      fail_usage("--tasks {}: '{}' is not a built-in task; expected one of {} (as NAME=PATH.jsonl) or a task file",
                 arg, name, py_join(builtin_task_names(), ", "));
  }
  if (builtin_task(arg))
    fail_usage("--tasks {}: a built-in task reads the documents you give it; expected {}=PATH.jsonl", arg, arg);
  return load_task_file(arg);
}

}  // namespace mp::eval
