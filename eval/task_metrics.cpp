#include "eval/task_metrics.h"

#include "common/error.h"
#include "eval/python_text.h"

#include <cmath>
#include <numeric>
#include <random>
#include <tuple>

namespace mp::eval {

bool metric_higher_is_better(const std::string& m) { return m == "acc" || m == "acc_norm"; }

namespace {

int64_t first_argmax(const std::vector<double>& v) {
  int64_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[best]) best = static_cast<int64_t>(i);
  return best;
}

double sample_stddev(const std::vector<double>& v) {
  const double n = static_cast<double>(v.size());
  const double mu = std::accumulate(v.begin(), v.end(), 0.0) / n;
  double ss = 0;
  for (double x : v) ss += (x - mu) * (x - mu);
  return std::sqrt(ss / (n - 1));
}

}  // namespace

DocOutcome doc_outcome(const TaskSpec& spec, const DocRequests& doc, std::vector<double> lls, std::vector<bool> greedy) {
  DocOutcome o;
  o.loglikelihoods = std::move(lls);
  o.greedy = std::move(greedy);
  switch (spec.kind) {
    case RequestKind::MultipleChoice: {
      std::vector<double> norm(o.loglikelihoods.size());
      for (size_t i = 0; i < norm.size(); ++i)
        norm[i] = o.loglikelihoods[i] / static_cast<double>(py_len(doc.choices[i]));
      o.pred = first_argmax(o.loglikelihoods);
      o.pred_norm = first_argmax(norm);
      o.values["acc"] = o.pred == doc.gold ? 1.0 : 0.0;
      o.values["acc_norm"] = o.pred_norm == doc.gold ? 1.0 : 0.0;
      break;
    }
    case RequestKind::Loglikelihood:
      o.values["acc"] = o.greedy[0] ? 1.0 : 0.0;
      o.values["ll"] = o.loglikelihoods[0];
      break;
    case RequestKind::LoglikelihoodRolling:
      o.words = py_count_words(doc.target);
      o.bytes = static_cast<int64_t>(doc.target.size());
      o.values["ll"] = o.loglikelihoods[0];
      break;
  }
  return o;
}

namespace {

// Every metric is finish(sum of numerators / sum of weights) over its documents' items.
std::pair<double, double> item(const std::string& metric, const DocOutcome& d) {
  if (metric == "acc" || metric == "acc_norm") return {d.values.at(metric), 1.0};
  if (metric == "perplexity") return {d.values.at("ll"), 1.0};
  return {d.values.at("ll"), static_cast<double>(metric == "word_perplexity" ? d.words : d.bytes)};
}

double finish(const std::string& metric, double sum, double weight) {
  const double mean = sum / weight;
  if (metric == "acc" || metric == "acc_norm") return mean;
  if (metric == "bits_per_byte") return -mean / std::log(2.0);
  return std::exp(-mean);
}

}  // namespace

double metric_value(const std::string& metric, const std::vector<DocOutcome>& docs, const std::vector<int64_t>& idx) {
  double sum = 0, weight = 0;
  for (int64_t i : idx) {
    const auto [a, w] = item(metric, docs[i]);
    sum += a;
    weight += w;
  }
  return finish(metric, sum, weight);
}

std::vector<MetricResult> aggregate_metrics(const TaskSpec& spec, const std::vector<DocOutcome>& docs,
                                            int64_t bootstrap_iters, uint64_t seed) {
  if (docs.empty()) fail_input("task {}: no documents to evaluate", spec.name);
  std::vector<int64_t> all(docs.size());
  std::iota(all.begin(), all.end(), 0);
  const int64_t n = static_cast<int64_t>(docs.size());
  std::vector<MetricResult> out;
  for (const std::string& m : spec.metrics) {
    MetricResult r;
    r.name = m;
    r.higher_is_better = metric_higher_is_better(m);
    r.value = metric_value(m, docs, all);
    if (n > 1 && (m == "acc" || m == "acc_norm")) {
      std::vector<double> v;
      for (const DocOutcome& d : docs) v.push_back(d.values.at(m));
      r.stderr_value = sample_stddev(v) / std::sqrt(static_cast<double>(n));
      r.stderr_method = "mean";
    } else if (n > 1 && bootstrap_iters > 1) {
      std::vector<double> num(n), wt(n);
      for (int64_t i = 0; i < n; ++i) std::tie(num[i], wt[i]) = item(m, docs[i]);
      std::mt19937_64 rng(seed);
      std::vector<double> reps;
      reps.reserve(bootstrap_iters);
      for (int64_t b = 0; b < bootstrap_iters; ++b) {
        double sum = 0, weight = 0;
        for (int64_t k = 0; k < n; ++k) {
          const uint64_t i = rng() % static_cast<uint64_t>(n);
          sum += num[i];
          weight += wt[i];
        }
        reps.push_back(finish(m, sum, weight));
      }
      r.stderr_value = sample_stddev(reps);
      r.stderr_method = "bootstrap";
    }
    out.push_back(r);
  }
  return out;
}

}  // namespace mp::eval
