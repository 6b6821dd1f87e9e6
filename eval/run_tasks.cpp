#include "eval/run_tasks.h"

#include "common/error.h"
#include "common/json_file.h"
#include "data/tokenizer/tokenizer.h"

#include <chrono>
#include <filesystem>

namespace mp::eval {

TextEncoder encoder_for_model(const std::string& model_dir, int64_t vocab_size, const std::string& tokenizer,
                              std::optional<int64_t> prefix_token) {
  std::string path = tokenizer;
  if (path.empty() && std::filesystem::exists(model_dir + "/tokenizer.json")) path = model_dir;
  std::shared_ptr<const Tokenizer> tok;
  if (!path.empty()) {
    tok = Tokenizer::load(path);
    check_tokenizer_fits_model(*tok, vocab_size, model_dir);
  } else if (vocab_size < 256) {
    fail_input("{}: no tokenizer.json and vocab_size {} < 256; expected a tokenizer (--tokenizer) or a byte-level "
               "model (vocab_size >= 256)",
               model_dir, vocab_size);
  }
  TextEncoder enc(tok, prefix_token);
  if (prefix_token && (*prefix_token < 0 || *prefix_token >= vocab_size))
    fail_usage("--prefix-token-id {}: outside the model's vocabulary [0, {})", *prefix_token, vocab_size);
  return enc;
}

int64_t default_max_length(const std::string& model_dir) {
  const std::string cfg = std::filesystem::is_directory(model_dir) ? model_dir + "/config.json" : model_dir;
  const nlohmann::json j = read_json_file(cfg);
  if (const auto* v = json_optional(j, "max_position_embeddings"))
    return json_int(*v, "max_position_embeddings", cfg, 2, int64_t{1} << 30);
  return 4096;
}

TaskOutcome evaluate_task(const Model& m, const PreparedTask& task, const EvaluateOptions& o,
                          const std::function<void(int64_t)>& on_requests) {
  TaskOutcome out;
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<TokenScore> s = score_requests(m, task.tokens, o.score, on_requests, &out.stats);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (size_t d = 0; d < task.requests.docs.size(); ++d) {
    std::vector<double> lls;
    std::vector<bool> greedy;
    for (const auto& [b, e] : task.span[d]) {
      double ll = 0;
      bool g = true;
      for (int64_t i = b; i < e; ++i) {
        ll += s[i].logprob;
        g = g && s[i].greedy;
      }
      lls.push_back(ll);
      greedy.push_back(g);
    }
    out.docs.push_back(doc_outcome(task.requests.spec, task.requests.docs[d], std::move(lls), std::move(greedy)));
  }
  out.metrics = aggregate_metrics(task.requests.spec, out.docs, o.bootstrap_iters, o.seed);
  return out;
}

nlohmann::json task_result_json(const PreparedTask& task, const TaskOutcome& out) {
  const TaskRequests& r = task.requests;
  nlohmann::json metrics = nlohmann::json::object();
  for (const MetricResult& m : out.metrics) {
    metrics[m.name] = {{"value", m.value},
                       {"stderr", m.stderr_value ? nlohmann::json(*m.stderr_value) : nlohmann::json(nullptr)},
                       {"stderr_method", m.stderr_method.empty() ? nlohmann::json(nullptr) : nlohmann::json(m.stderr_method)},
                       {"higher_is_better", m.higher_is_better}};
  }
  int64_t tokens = 0;
  for (const TokenRequest& t : task.tokens) tokens += static_cast<int64_t>(t.context.size() + t.continuation.size());
  return {{"task", r.spec.name},
          {"kind", request_kind_name(r.spec.kind)},
          {"source", r.spec.source},
          {"data", r.spec.data},
          {"documents", static_cast<int64_t>(r.docs.size())},
          {"documents_in_file", r.documents_in_file},
          {"num_fewshot", r.num_fewshot},
          {"fewshot_seed", r.seed},
          {"requests", static_cast<int64_t>(task.tokens.size())},
          {"request_tokens", tokens},
          {"model_tokens", out.stats.model_tokens},
          {"shared_contexts", out.stats.shared_contexts},
          {"seconds", out.seconds},
          {"metrics", metrics}};
}

std::vector<nlohmann::json> sample_records(const PreparedTask& task, const TaskOutcome& out) {
  std::vector<nlohmann::json> recs;
  const TaskRequests& tr = task.requests;
  for (size_t d = 0; d < tr.docs.size(); ++d) {
    const DocRequests& doc = tr.docs[d];
    const DocOutcome& o = out.docs[d];
    nlohmann::json reqs = nlohmann::json::array();
    for (size_t r = 0; r < doc.requests.size(); ++r) {
      nlohmann::json q = {{"context", doc.requests[r].context},
                          {"continuation", doc.requests[r].continuation},
                          {"loglikelihood", o.loglikelihoods[r]},
                          {"is_greedy", static_cast<bool>(o.greedy[r])}};
      const auto [b, e] = task.span[d][r];
      if (tr.spec.kind == RequestKind::LoglikelihoodRolling) {
        std::vector<int64_t> ids;
        for (int64_t i = b; i < e; ++i)
          ids.insert(ids.end(), task.tokens[i].continuation.begin(), task.tokens[i].continuation.end());
        q["token_ids"] = ids;
        q["windows"] = e - b;
      } else {
        q["context_ids"] = task.tokens[b].context;
        q["continuation_ids"] = task.tokens[b].continuation;
      }
      reqs.push_back(std::move(q));
    }
    nlohmann::json rec = {{"task", tr.spec.name}, {"doc_index", doc.index}, {"where", doc.where}, {"requests", reqs}};
    if (tr.spec.kind == RequestKind::MultipleChoice) {
      rec["choices"] = doc.choices;
      rec["gold"] = doc.gold;
      rec["pred"] = o.pred;
      rec["pred_norm"] = o.pred_norm;
    } else {
      rec["target"] = doc.target;
    }
    if (tr.spec.kind == RequestKind::LoglikelihoodRolling) {
      rec["words"] = o.words;
      rec["bytes"] = o.bytes;
    }
    nlohmann::json vals = nlohmann::json::object();
    for (const auto& [k, v] : o.values) vals[k] = v;
    rec["metrics"] = vals;
    recs.push_back(std::move(rec));
  }
  return recs;
}

}  // namespace mp::eval
