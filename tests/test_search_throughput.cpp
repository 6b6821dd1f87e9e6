// The throughput model (search/throughput.h): NNLS against brute force, the fit recovering known
// costs, predictions that follow the shape, the JSON file's checks, and the --min-speedup
// constraint in search.
#include "common/atomic_output.h"
#include "common/error.h"
#include "search/nnls.h"
#include "search/search.h"
#include "search/throughput.h"
#include "tests/test_util.h"

#include <Eigen/QR>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <random>

namespace {

mp::ModelConfig cfg(const char* name) { return mp::load_config(mp::test::source_path(std::string("configs/") + name)); }

// Brute force: least squares on every subset of columns, keep the best whose solution is >= 0.
Eigen::VectorXd nnls_brute(const Eigen::MatrixXd& A, const Eigen::VectorXd& b) {
  const int n = static_cast<int>(A.cols());
  Eigen::VectorXd best = Eigen::VectorXd::Zero(n);
  double best_r = b.squaredNorm();
  for (int mask = 1; mask < (1 << n); ++mask) {
    std::vector<int> cols;
    for (int j = 0; j < n; ++j)
      if (mask & (1 << j)) cols.push_back(j);
    Eigen::MatrixXd sub(A.rows(), static_cast<Eigen::Index>(cols.size()));
    for (size_t k = 0; k < cols.size(); ++k) sub.col(static_cast<Eigen::Index>(k)) = A.col(cols[k]);
    Eigen::VectorXd s = sub.colPivHouseholderQr().solve(b);
    if ((s.array() < 0).any()) continue;
    Eigen::VectorXd x = Eigen::VectorXd::Zero(n);
    for (size_t k = 0; k < cols.size(); ++k) x(cols[k]) = s(static_cast<Eigen::Index>(k));
    const double r = (A * x - b).squaredNorm();
    if (r < best_r) best_r = r, best = x;
  }
  return best;
}

TEST(Nnls, MatchesBruteForceOnRandomProblems) {
  std::mt19937 rng(3);
  std::normal_distribution<double> g(0.0, 1.0);
  for (int trial = 0; trial < 40; ++trial) {
    const int m = 12, n = 1 + trial % 5;
    Eigen::MatrixXd A(m, n);
    Eigen::VectorXd b(m);
    for (int i = 0; i < m; ++i) {
      b(i) = g(rng);
      for (int j = 0; j < n; ++j) A(i, j) = g(rng) * (j % 2 ? 1e9 : 1.0);  // mixed units
    }
    const Eigen::VectorXd x = mp::nnls(A, b), ref = nnls_brute(A, b);
    EXPECT_TRUE((x.array() >= 0).all());
    EXPECT_NEAR((A * x - b).norm(), (A * ref - b).norm(), 1e-9 * (1 + b.norm())) << "trial " << trial;
  }
}

TEST(Nnls, RecoversAnExactNonNegativeSolution) {
  Eigen::MatrixXd A(5, 3);
  A << 1, 2e12, 0, 1, 4e12, 3e9, 1, 1e12, 1e9, 1, 8e12, 0, 1, 3e12, 7e9;
  Eigen::VectorXd truth(3);
  truth << 2e-5, 1.5e-15, 0;
  const Eigen::VectorXd x = mp::nnls(A, A * truth);
  for (int j = 0; j < 3; ++j) EXPECT_NEAR(x(j), truth(j), 1e-9 * std::max(truth(j), 1e-20) + 1e-30);
}

// A model with known costs, and samples generated from it at the shapes bench_throughput uses.
mp::ThroughputModel known_model() {
  mp::ThroughputModel m;
  m.coefficients[0] = {{{3e-5, 1.6e-15, 4e-15, 2e-12}, {2e-5, 1.5e-15, 3e-15, 1e-12}, {1e-5, 1.4e-15, 5e-13}, {4e-5, 2e-15, 1e-12}}};
  m.coefficients[1] = {{{5e-5, 2.5e-13, 4e-13}, {3e-5, 2.4e-13, 3e-13}, {2e-5, 2.3e-13}, {6e-5, 2.6e-13}}};
  return m;
}

std::vector<mp::ThroughputSample> samples_from(const mp::ThroughputModel& truth) {
  std::vector<mp::ThroughputSample> out;
  for (const char* f : {"demo/config.json", "nemotron-h-8b/config.json"}) {
    mp::ModelConfig base = cfg(f);
    for (int v = 0; v < 3; ++v) {
      mp::ModelConfig c = base;
      if (v == 1) c.intermediate_size = base.intermediate_size * 3 / 4, c.mamba_num_heads = base.mamba_num_heads / 2;
      if (v == 2) c.hidden_size = base.hidden_size * 3 / 4;
      for (mp::LayerType t : {mp::LayerType::Mamba, mp::LayerType::Attention, mp::LayerType::Mlp})
        for (int k : {1, 3}) {
          c.layers.assign(k, t);
          for (int64_t L : {256, 4096, 65536}) {
            out.push_back({c, mp::Phase::Prefill, 1, L, truth.predict(c, mp::Phase::Prefill, 1, L)});
            out.push_back({c, mp::Phase::Decode, 1, L, truth.predict(c, mp::Phase::Decode, 1, L)});
          }
        }
    }
  }
  return out;
}

TEST(Throughput, FitRecoversKnownCostsAndPredictsWholeModels) {
  for (mp::DecodeCombine combine : {mp::DecodeCombine::Sum, mp::DecodeCombine::Overlap}) {
    mp::ThroughputModel truth = known_model();
    truth.decode_combine = combine;
    const mp::ThroughputModel fit = mp::fit_throughput(samples_from(truth), combine);
    EXPECT_LT(fit.rms_rel_error[0], 1e-6);
    EXPECT_LT(fit.rms_rel_error[1], 1e-6) << "combine " << static_cast<int>(combine);
    // Whole models the fit never saw (mixed layer types) are predicted as the known costs say.
    for (const char* f : {"nemotron-h-8b/config.json", "nemotron-h-56b/config.json", "nemotron-h-47b/config.json"}) {
      const mp::ModelConfig c = cfg(f);
      const mp::Workload w;
      EXPECT_NEAR(fit.estimate(c, w).generation_s / truth.estimate(c, w).generation_s, 1.0, 1e-4) << f;
    }
  }
}

// Overlap: a decode step takes the longer of the host's launches and the device's work.
TEST(Throughput, OverlapTakesTheLongerOfHostAndDevice) {
  mp::ThroughputModel m = known_model();
  const mp::ModelConfig c = cfg("nemotron-h-8b/config.json");
  const double sum = m.predict(c, mp::Phase::Decode, 1, 4096);
  m.decode_combine = mp::DecodeCombine::Overlap;
  const double over = m.predict(c, mp::Phase::Decode, 1, 4096);
  double host = 1 * m.coefficients[1][3][0];  // the head
  for (mp::LayerType t : c.layers) host += m.coefficients[1][t == mp::LayerType::Mamba ? 0 : t == mp::LayerType::Attention ? 1 : 2][0];
  EXPECT_NEAR(over, std::max(host, sum - host), 1e-12);
  EXPECT_LT(over, sum);
}

TEST(Throughput, PredictionsFollowTheShape) {
  const mp::ThroughputModel m = known_model();
  const mp::ModelConfig p56 = cfg("nemotron-h-56b/config.json"), p47 = cfg("nemotron-h-47b/config.json");
  const mp::Workload w;
  EXPECT_DOUBLE_EQ(m.speedup(p56, p56, w), 1.0);
  EXPECT_GT(m.speedup(p56, p47, w), 1.0);  // fewer layers, fewer attention layers: faster
  // Decode at a longer context costs more only through the attention layers' KV reads.
  EXPECT_GT(m.predict(p56, mp::Phase::Decode, 1, 1 << 20), m.predict(p56, mp::Phase::Decode, 1, 1024));
  mp::ModelConfig no_attn = p56;
  no_attn.layers.erase(std::remove(no_attn.layers.begin(), no_attn.layers.end(), mp::LayerType::Attention), no_attn.layers.end());
  EXPECT_DOUBLE_EQ(m.predict(no_attn, mp::Phase::Decode, 1, 1 << 20), m.predict(no_attn, mp::Phase::Decode, 1, 1024));
  // Generation time is prefill plus output tokens decode steps at the middle context.
  const mp::GenerationEstimate e = m.estimate(p56, w);
  EXPECT_DOUBLE_EQ(e.generation_s, e.prefill_s + w.output_tokens * e.decode_s_per_token);
  EXPECT_DOUBLE_EQ(e.decode_s_per_token, m.predict(p56, mp::Phase::Decode, 1, w.prompt_tokens + w.output_tokens / 2));
}

TEST(Throughput, FileRoundTripsAndBadFilesAreNamed) {
  mp::test::ScratchDir dir;
  mp::ThroughputModel m = known_model();
  m.card = "NVIDIA H200";
  mp::write_file_atomic(dir.file("t.json"), mp::throughput_to_json(m).dump(2));
  const mp::ThroughputModel back = mp::load_throughput(dir.file("t.json"));
  EXPECT_EQ(back.card, "NVIDIA H200");
  EXPECT_EQ(back.coefficients, m.coefficients);

  nlohmann::json j = mp::throughput_to_json(m);
  j["seconds_per_unit"]["decode"]["attention"] = {1.0, -2.0, 0.0};
  mp::write_file_atomic(dir.file("neg.json"), j.dump());
  try {
    mp::load_throughput(dir.file("neg.json"));
    FAIL() << "a negative cost was accepted";
  } catch (const mp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("seconds_per_unit.decode.attention"), std::string::npos) << e.what();
  }
  j = mp::throughput_to_json(m);
  j["seconds_per_unit"]["prefill"]["mlp"] = {1.0};
  mp::write_file_atomic(dir.file("short.json"), j.dump());
  EXPECT_THROW(mp::load_throughput(dir.file("short.json")), mp::Error);
  mp::write_file_atomic(dir.file("other.json"), R"({"format": "minipuzzle-candidates"})");
  EXPECT_THROW(mp::load_throughput(dir.file("other.json")), mp::Error);
  EXPECT_THROW(mp::fit_throughput({}), mp::Error);  // nothing to fit
}

TEST(Throughput, MinimumSpeedupConstrainsTheSearch) {
  const mp::ModelConfig p = cfg("nemotron-h-8b/config.json");
  const mp::SpeedPrediction sp{known_model(), mp::Workload{}};
  mp::SearchConstraints lim;
  lim.max_memory_gib = 1e9;
  const mp::SearchResult all = mp::run_search(p, mp::Budget{}, mp::default_space(p), lim, {}, sp);
  lim.min_speedup = 1.15;
  const mp::SearchResult fast = mp::run_search(p, mp::Budget{}, mp::default_space(p), lim, {}, sp);
  ASSERT_FALSE(fast.feasible.empty());
  EXPECT_LT(fast.feasible.size(), all.feasible.size());
  size_t expected = 0;
  for (const auto& c : all.feasible) expected += c.speedup >= 1.15;
  EXPECT_EQ(fast.feasible.size(), expected);
  for (const auto& c : fast.feasible) {
    EXPECT_GE(c.speedup, 1.15);
    EXPECT_NEAR(c.speedup, sp.model.speedup(p, c.config, sp.workload), 1e-12);
  }
  // Without a throughput model the constraint cannot be checked.
  EXPECT_THROW(mp::run_search(p, mp::Budget{}, mp::default_space(p), lim, {}), mp::Error);
}

TEST(Throughput, SearchCliReportsPredictedSpeedAndRefusesAnImpossibleSpeedup) {
  mp::test::ScratchDir dir;
  mp::ThroughputModel m = known_model();
  m.card = "test card";
  mp::write_file_atomic(dir.file("t.json"), mp::throughput_to_json(m).dump(2));
  const std::string base = "search --config " + mp::test::source_path("configs/nemotron-h-8b/config.json") +
                           " --throughput-model " + dir.file("t.json") + " --max-memory-gib 1000 --quiet";
  auto r = mp::test::run_cli(base + " --output " + dir.file("out"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("speed predicted for test card"), std::string::npos) << r.output;
  const nlohmann::json doc = nlohmann::json::parse(mp::read_file(dir.file("out/candidates.json")));
  ASSERT_TRUE(doc["candidates"][0].contains("predicted_speed"));
  EXPECT_GE(doc["candidates"][0]["predicted_speed"]["speedup"].get<double>(), 1.0);
  EXPECT_NE(mp::read_file(dir.file("out/candidates.csv")).find(",speedup,"), std::string::npos);

  r = mp::test::run_cli(base + " --min-speedup 100 --output " + dir.file("none"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("predicted speed-up >= 100"), std::string::npos) << r.output;
  r = mp::test::run_cli("search --config " + mp::test::source_path("configs/nemotron-h-8b/config.json") +
                        " --no-predict-speed --min-speedup 1.1 --output " + dir.file("none2"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("throughput model"), std::string::npos) << r.output;
}

}  // namespace
