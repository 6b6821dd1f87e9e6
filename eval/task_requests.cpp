#include "eval/task_requests.h"

#include "common/error.h"
#include "common/json_file.h"
#include "eval/prompt_template.h"
#include "eval/python_random.h"

namespace mp::eval {
namespace {

std::vector<std::string> choice_texts(const TaskSpec& t, const Document& d) {
  std::vector<std::string> out;
  if (!t.choices_field.empty()) {
    const nlohmann::json& list = resolve_path(d.fields, t.choices_field, d.where);
    if (!list.is_array())
      fail_input("{}: field '{}' is {}; expected a list of choices", d.where, t.choices_field, json_brief(list));
    if (list.empty()) fail_input("{}: field '{}' is an empty list; expected at least one choice", d.where, t.choices_field);
    for (size_t i = 0; i < list.size(); ++i) {
      if (!list[i].is_string())
        fail_input("{}: field '{}[{}]' is {}; expected a string", d.where, t.choices_field, i, json_brief(list[i]));
      out.push_back(list[i].get<std::string>());
    }
  } else {
    for (const std::string& c : t.choices) out.push_back(render_template(c, d.fields, d.where));
  }
  return out;
}

int64_t gold_index(const TaskSpec& t, const Document& d, int64_t num_choices) {
  const GoldSpec& g = t.gold;
  const nlohmann::json& v = resolve_path(d.fields, g.field, d.where);
  int64_t gold = -1;
  std::string shown = json_brief(v);
  if (!g.index_in.empty()) {
    const nlohmann::json& list = resolve_path(d.fields, g.index_in, d.where);
    if (!list.is_array()) fail_input("{}: field '{}' is {}; expected a list", d.where, g.index_in, json_brief(list));
    for (size_t i = 0; i < list.size() && gold < 0; ++i)
      if (list[i] == v) gold = static_cast<int64_t>(i);
    if (gold < 0) fail_input("{}: field '{}' is {}, which is not in '{}'; expected one of its values", d.where, g.field, shown, g.index_in);
  } else if (!g.map.empty()) {
    const std::string key = value_text(v, g.field, d.where);
    auto it = g.map.find(key);
    if (it == g.map.end()) fail_input("{}: field '{}' is {}; expected one of the task's gold.map keys", d.where, g.field, shown);
    gold = it->second;
  } else if (v.is_number_integer()) {
    gold = v.get<int64_t>();
  } else if (v.is_string() && !v.get<std::string>().empty() && v.get<std::string>().size() < 10 &&
             v.get<std::string>().find_first_not_of("0123456789") == std::string::npos) {
    gold = std::stoll(v.get<std::string>());
  } else if (v.is_boolean()) {
    gold = v.get<bool>() ? 1 : 0;
  } else {
    fail_input("{}: field '{}' is {}; expected the index of the right choice (an integer)", d.where, g.field, shown);
  }
  // An unsigned integer above INT64_MAX reads as negative: the message shows the value as written.
  if (gold < 0 || gold >= num_choices)
    fail_input("{}: field '{}' gives gold index {}, outside the {} choices [0, {})", d.where, g.field,
               v.is_number_integer() ? shown : std::to_string(gold), num_choices, num_choices);
  return gold;
}

// What a few-shot example shows after its question: (question, answer).
std::pair<std::string, std::string> example_turn(const TaskSpec& t, const Document& ex) {
  if (t.kind == RequestKind::MultipleChoice) {
    const std::vector<std::string> c = choice_texts(t, ex);
    const int64_t g = gold_index(t, ex, static_cast<int64_t>(c.size()));
    if (t.choices_are_contexts) return {c[g], render_template(t.target, ex.fields, ex.where)};
    return {render_template(t.prompt, ex.fields, ex.where), c[g]};
  }
  return {render_template(t.prompt, ex.fields, ex.where), render_template(t.target, ex.fields, ex.where)};
}

// The few-shot examples per prompt; a usage error for a rolling task given some.
int64_t fewshot_count(const TaskSpec& spec, const BuildOptions& o) {
  const int64_t k = o.num_fewshot.value_or(spec.num_fewshot);
  if (k > 0 && spec.kind == RequestKind::LoglikelihoodRolling)
    fail_usage("--num-fewshot {}: task {} is loglikelihood_rolling (each document is scored alone); expected 0", k,
               spec.name);
  return k;
}

}  // namespace

DocRequests render_document(const TaskSpec& t, const Document& d, const std::vector<const Document*>& examples) {
  DocRequests r;
  r.where = d.where;
  if (t.kind == RequestKind::LoglikelihoodRolling) {
    r.target = render_template(t.target, d.fields, d.where);
    if (r.target.empty()) fail_input("{}: the target is empty; expected text to score", d.where);
    r.requests.push_back({"", r.target});
    return r;
  }
  std::string prefix = render_template(t.description, d.fields, d.where);
  for (const Document* ex : examples) {
    auto [q, a] = example_turn(t, *ex);
    // build_qa_turn: the question's delimiter is target_delimiter when there is an answer.
    prefix += q + (a.empty() ? "" : t.target_delimiter) + a + t.fewshot_delimiter;
  }
  if (t.kind == RequestKind::Loglikelihood) {
    r.target = render_template(t.target, d.fields, d.where);
    if (r.target.empty()) fail_input("{}: the target is empty; expected text to score", d.where);
    r.requests.push_back({prefix + render_template(t.prompt, d.fields, d.where), r.target});
    return r;
  }
  r.choices = choice_texts(t, d);
  r.gold = gold_index(t, d, static_cast<int64_t>(r.choices.size()));
  if (t.choices_are_contexts) {
    const std::string cont = t.target_delimiter + render_template(t.target, d.fields, d.where);
    for (const std::string& c : r.choices) r.requests.push_back({prefix + c, cont});
  } else {
    const std::string ctx = prefix + render_template(t.prompt, d.fields, d.where);
    for (const std::string& c : r.choices) r.requests.push_back({ctx, t.target_delimiter + c});
  }
  for (const Request& q : r.requests)
    if (q.continuation.empty())
      fail_input("{}: a choice is empty and target_delimiter is \"\"; expected text to score", d.where);
  return r;
}

TaskRequests build_task_requests(const TaskSpec& spec, const BuildOptions& o) {
  const int64_t k = fewshot_count(spec, o);
  const std::vector<Document> docs = read_documents(spec.data, spec.preprocess);
  const std::string pool_file = o.fewshot_data.empty() ? spec.fewshot.data : o.fewshot_data;
  std::vector<Document> pool_docs;
  const bool pool_is_eval = pool_file.empty();
  if (k > 0 && !pool_is_eval) pool_docs = read_documents(pool_file, spec.preprocess);
  return requests_from_documents(spec, o, docs, pool_is_eval ? nullptr : &pool_docs, pool_file);
}

TaskRequests requests_from_documents(const TaskSpec& spec, const BuildOptions& o, const std::vector<Document>& docs,
                                     const std::vector<Document>* pool_docs, const std::string& pool_file) {
  TaskRequests out;
  out.spec = spec;
  out.num_fewshot = fewshot_count(spec, o);
  out.seed = spec.fewshot.seed.value_or(o.seed);
  out.documents_in_file = static_cast<int64_t>(docs.size());
  const int64_t n = o.limit < 0 ? out.documents_in_file : std::min(o.limit, out.documents_in_file);

  const bool pool_is_eval = pool_docs == nullptr;
  const std::vector<Document>& pool = pool_is_eval ? docs : *pool_docs;
  const std::string pool_name = pool_is_eval ? spec.data : pool_file;
  PyRandom rng(out.seed);

  for (int64_t i = 0; i < n; ++i) {
    const Document& d = docs[i];
    std::vector<const Document*> examples;
    if (out.num_fewshot > 0) {
      std::vector<const Document*> candidates;
      std::string subset;
      if (!spec.fewshot.same_field.empty()) {
        const nlohmann::json& key = resolve_path(d.fields, spec.fewshot.same_field, d.where);
        subset = fmt::format(" with {} = {}", spec.fewshot.same_field, json_brief(key));
        for (const Document& p : pool)
          if (resolve_path(p.fields, spec.fewshot.same_field, p.where) == key) candidates.push_back(&p);
      } else {
        for (const Document& p : pool) candidates.push_back(&p);
      }
      const int64_t k = out.num_fewshot;
      auto not_self = [&](const Document* p) { return !(pool_is_eval && p->fields == d.fields); };
      if (spec.fewshot.sampler == "first_n") {
        for (const Document* p : candidates)
          if (static_cast<int64_t>(examples.size()) < k && not_self(p)) examples.push_back(p);
        if (static_cast<int64_t>(examples.size()) < k)
          fail_input("--num-fewshot {}: task {} has {} few-shot documents in {}{}; expected at least {}", k, spec.name,
                     examples.size(), pool_name, subset, k);
      } else {
        const int64_t draw = pool_is_eval ? k + 1 : k;
        if (static_cast<int64_t>(candidates.size()) < draw)
          fail_input("--num-fewshot {}: task {} draws {} from the {} few-shot documents in {}{}; expected at least {}", k,
                     spec.name, draw, candidates.size(), pool_name, subset, draw);
        for (int64_t j : rng.sample(static_cast<int64_t>(candidates.size()), draw))
          if (static_cast<int64_t>(examples.size()) < k && not_self(candidates[j])) examples.push_back(candidates[j]);
      }
    }
    DocRequests r = render_document(spec, d, examples);
    r.index = i;
    out.docs.push_back(std::move(r));
  }
  return out;
}

}  // namespace mp::eval
