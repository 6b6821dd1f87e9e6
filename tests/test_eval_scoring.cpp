// Requests scored: with shared contexts against scoring every request separately and against a
// direct per-request full forward; and the metrics (acc / acc_norm rules, the standard error of a
// mean, bootstrap against the delta method). The tokenization of requests is in
// test_eval_tokens.cpp.
#include "common/error.h"
#include "eval/request_tokens.h"
#include "eval/score_requests.h"
#include "eval/task_metrics.h"
#include "model/forward.h"
#include "model/model.h"
#include "tests/test_util.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace {

using Ids = std::vector<int64_t>;
using mp::eval::TokenRequest;

mp::Model scoring_model(uint64_t seed) {
  const char* cfg = R"({"hybrid_override_pattern": "M*-M-", "vocab_size": 61, "hidden_size": 32,
    "intermediate_size": 48, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
    "mamba_num_heads": 4, "mamba_head_dim": 8, "ssm_state_size": 8, "n_groups": 2, "conv_kernel": 4, "chunk_size": 8})";
  mp::Model m = mp::make_random_model(mp::config_from_json_text(cfg, "cfg"), seed, at::kFloat);
  at::manual_seed(seed);
  for (auto& [n, t] : m.weights) t = t + 0.3 * at::randn(t.sizes());  // every layer moves the logits
  return m;
}

// Direct reference: one full forward of context + continuation[:-1] per request, batch 1.
mp::eval::TokenScore direct(const mp::Model& m, const TokenRequest& r) {
  at::NoGradGuard ng;
  Ids seq = r.context;
  seq.insert(seq.end(), r.continuation.begin(), r.continuation.end() - 1);
  const at::Tensor lp = at::log_softmax(mp::forward_logits(m, at::tensor(seq, at::kLong).unsqueeze(0))[0], -1);
  mp::eval::TokenScore s{0.0, true};
  for (size_t j = 0; j < r.continuation.size(); ++j) {
    const at::Tensor row = lp[static_cast<int64_t>(r.context.size() - 1 + j)];
    s.logprob += row[r.continuation[j]].item<double>();
    s.greedy = s.greedy && row.argmax().item<int64_t>() == r.continuation[j];
  }
  return s;
}

TEST(EvalScoring, SharedContextsGiveTheSeparateAndDirectScores) {
  const mp::Model m = scoring_model(3);
  std::mt19937_64 rng(5);
  auto ids = [&](int64_t n) {
    Ids v(n);
    for (auto& x : v) x = static_cast<int64_t>(rng() % 61);
    return v;
  };
  std::vector<TokenRequest> reqs;
  // Questions with 4 choices of 1..9 tokens; two contexts share a length (prefilled together);
  // a context of one token; singletons.
  for (int64_t len : {13, 21, 13, 1, 30}) {
    const Ids ctx = ids(len);
    for (int64_t c = 0; c < 4; ++c) reqs.push_back({ctx, ids(1 + static_cast<int64_t>(rng() % 9))});
  }
  for (int64_t len : {5, 17}) reqs.push_back({ids(len), ids(4)});
  // A greedy continuation: take the argmax three times.
  {
    TokenRequest g{ids(9), {}};
    Ids seq = g.context;
    for (int k = 0; k < 3; ++k) {
      at::NoGradGuard ng;
      const int64_t next = mp::forward_logits(m, at::tensor(seq, at::kLong).unsqueeze(0))[0][-1].argmax().item<int64_t>();
      g.continuation.push_back(next);
      seq.push_back(next);
    }
    reqs.push_back(g);
    reqs.push_back({g.context, {g.continuation[0], (g.continuation[1] + 1) % 61}});
  }
  mp::eval::ScoreOptions shared, separate;
  separate.reuse_context = false;
  shared.batch_tokens = separate.batch_tokens = 64;  // several batches each way
  mp::eval::ScoreStats st_shared, st_sep;
  const auto a = mp::eval::score_requests(m, reqs, shared, {}, &st_shared);
  const auto b = mp::eval::score_requests(m, reqs, separate, {}, &st_sep);
  for (size_t i = 0; i < reqs.size(); ++i) {
    const auto ref = direct(m, reqs[i]);
    EXPECT_NEAR(a[i].logprob, ref.logprob, 1e-5 * std::abs(ref.logprob)) << "shared, request " << i;
    EXPECT_NEAR(b[i].logprob, ref.logprob, 1e-5 * std::abs(ref.logprob)) << "separate, request " << i;
    EXPECT_EQ(a[i].greedy, ref.greedy) << i;
    EXPECT_EQ(b[i].greedy, ref.greedy) << i;
  }
  EXPECT_TRUE(a[reqs.size() - 2].greedy);
  EXPECT_FALSE(a[reqs.size() - 1].greedy);
  EXPECT_EQ(st_shared.shared_contexts, 6);  // 5 questions + the greedy context
  EXPECT_LT(st_shared.model_tokens, st_sep.model_tokens);
}

TEST(EvalScoring, BadRequestsAreBadInput) {
  const mp::Model m = scoring_model(4);
  for (const TokenRequest& r : {TokenRequest{{}, {1}}, TokenRequest{{1}, {}}, TokenRequest{{1}, {61}}}) {
    try {
      mp::eval::score_requests(m, {r}, {});
      ADD_FAILURE() << "no error";
    } catch (const mp::Error& e) {
      EXPECT_EQ(e.kind(), mp::ErrorKind::BadInput) << e.what();
    }
  }
}

TEST(EvalMetrics, AccAccNormAndTheirStandardErrors) {
  mp::eval::TaskSpec mc;
  mc.kind = mp::eval::RequestKind::MultipleChoice;
  mc.metrics = {"acc", "acc_norm"};
  mp::eval::DocRequests d;
  d.choices = {"ab", "abcdef", "x\xC3\xA9"};  // 2, 6 and 2 characters
  d.gold = 1;
  // ll / len: -1.5, -0.5, -1.5: acc picks choice 0 (first of the two -3), acc_norm choice 1.
  auto o1 = mp::eval::doc_outcome(mc, d, {-3.0, -3.0, -3.0}, {false, false, false});
  EXPECT_EQ(o1.pred, 0);
  EXPECT_EQ(o1.pred_norm, 1);
  d.gold = 0;
  auto o2 = mp::eval::doc_outcome(mc, d, {-1.0, -3.0, -4.0}, {true, false, false});
  auto o3 = mp::eval::doc_outcome(mc, d, {-5.0, -3.0, -1.0}, {false, false, true});
  const auto r = mp::eval::aggregate_metrics(mc, {o1, o2, o3}, 0, 1);
  // acc: 0, 1, 0 -> 1/3, sample sd sqrt(1/3), stderr sqrt(1/3)/sqrt(3) = 1/3.
  EXPECT_DOUBLE_EQ(r[0].value, 1.0 / 3.0);
  EXPECT_NEAR(r[0].stderr_value.value(), 1.0 / 3.0, 1e-12);
  // acc_norm: o1 pred_norm 1 vs gold 1 -> 1; o2: -0.5,-0.5,-2 -> 0 == 0 -> 1; o3: -2.5,-0.5,-0.5 -> 1 != 0 -> 0.
  EXPECT_DOUBLE_EQ(r[1].value, 2.0 / 3.0);
  EXPECT_EQ(r[0].stderr_method, "mean");
}

// The bootstrap standard error of perplexity = exp(-mean ll) against the delta method,
// exp(-mean) * sd(ll) / sqrt(n), on 400 documents: within 10%.
TEST(EvalMetrics, BootstrapAgreesWithTheDeltaMethod) {
  mp::eval::TaskSpec ll;
  ll.kind = mp::eval::RequestKind::Loglikelihood;
  ll.metrics = {"perplexity"};
  std::mt19937_64 rng(9);
  std::normal_distribution<double> nd(-3.0, 0.8);
  std::vector<mp::eval::DocOutcome> docs;
  std::vector<double> v;
  mp::eval::DocRequests d;
  for (int i = 0; i < 400; ++i) {
    v.push_back(nd(rng));
    docs.push_back(mp::eval::doc_outcome(ll, d, {v.back()}, {true}));
  }
  double mean = 0, ss = 0;
  for (double x : v) mean += x / v.size();
  for (double x : v) ss += (x - mean) * (x - mean);
  const double delta = std::exp(-mean) * std::sqrt(ss / (v.size() - 1)) / std::sqrt(static_cast<double>(v.size()));
  const auto r = mp::eval::aggregate_metrics(ll, docs, 2000, 1);
  EXPECT_NEAR(r[0].value, std::exp(-mean), 1e-9);
  EXPECT_EQ(r[0].stderr_method, "bootstrap");
  EXPECT_NEAR(r[0].stderr_value.value() / delta, 1.0, 0.1);
}

}  // namespace
