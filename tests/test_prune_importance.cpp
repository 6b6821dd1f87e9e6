// Calibration statistics and layer-removal scores against direct, independent computations on a
// tiny model; streaming equals in-memory bit for bit; importance files round-trip exactly and
// refuse other models.
#include "common/error.h"
#include "model/forward.h"
#include "model/weights.h"
#include "prune/calibration.h"
#include "prune/fingerprint.h"
#include "prune/importance.h"
#include "prune/layer_importance.h"
#include "prune/layer_source.h"
#include "tests/prune_fixtures.h"
#include "tests/test_util.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <map>

namespace {

at::Tensor windows(int64_t n, int64_t len, uint64_t seed) { return mp::test::prune_ids(n, len + 1, seed); }

// Everything the observer reports, for all windows at once (one plain forward pass).
struct Recorded {
  std::map<std::pair<int64_t, mp::Site>, at::Tensor> t;
};
Recorded record(const mp::Model& m, const at::Tensor& ids) {
  Recorded r;
  mp::Observer obs = [&](int64_t i, mp::Site s, const at::Tensor& v) { r.t[{i, s}] = v.clone(); };
  mp::ForwardOptions fo;
  fo.observer = &obs;
  mp::forward_hidden(m, ids, fo);
  return r;
}

// Direct statistic: per window over the sequence, then over windows, written out longhand.
at::Tensor direct(const at::Tensor& a_NLX, const std::string& seq, const std::string& batch) {
  at::Tensor a = a_NLX.to(at::kDouble), s;
  if (seq == "mean") s = a.abs().sum(1) / a.size(1);
  if (seq == "l2") s = a.mul(a).sum(1).sqrt();
  if (seq == "var") s = (a - a.sum(1, true) / a.size(1)).pow(2).sum(1) / a.size(1);
  if (batch == "mean") return s.sum(0) / s.size(0);
  if (batch == "l2") return s.mul(s).sum(0).sqrt();
  at::Tensor mu = s.sum(0) / s.size(0);
  return (s - mu).pow(2).sum(0) / s.size(0);
}

void expect_close(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  ASSERT_EQ(got.numel(), want.numel()) << what;
  EXPECT_TRUE(at::allclose(got.to(at::kDouble).reshape({-1}), want.to(at::kDouble).reshape({-1}), 1e-4, 1e-6))
      << what << "\n" << got << "\n" << want;
}

TEST(PruneCalibration, StatisticsMatchADirectComputation) {
  at::NoGradGuard ng;
  mp::Model m = mp::test::prune_model(11);
  at::Tensor w = windows(7, 12, 11);
  at::Tensor ids = w.narrow(1, 0, 12);
  Recorded r = record(m, ids);
  auto src = mp::memory_source(m);
  for (auto [seq, batch] : std::vector<std::pair<std::string, std::string>>{{"mean", "l2"}, {"l2", "mean"}, {"var", "var"}}) {
    mp::CalibrationOptions o;
    o.seq = mp::parse_seq_agg(seq);
    o.batch = mp::parse_batch_agg(batch);
    o.micro_batch = 3;  // 3 + 3 + 1: sums carried across uneven micro-batches
    mp::CalibrationScores s = mp::calibrate(*src, w, o);
    const std::string tag = seq + "/" + batch;
    for (int64_t i = 0; i < m.config.num_layers(); ++i) {
      expect_close(s.mixer_input[i], direct(r.t[{i, mp::Site::MixerInput}], seq, batch), tag + " mixer input");
      switch (m.config.layers[i]) {
        case mp::LayerType::Mlp:
          expect_close(s.mlp[i], direct(r.t[{i, mp::Site::MlpActivation}], seq, batch), tag + " mlp");
          break;
        case mp::LayerType::Attention: {
          at::Tensor heads = r.t[{i, mp::Site::AttnHeads}];  // [N, L, Hq, hd] -> per-head L2 over hd
          expect_close(s.attn_heads[i], direct(heads.mul(heads).sum(-1).sqrt(), seq, batch), tag + " attention");
          break;
        }
        case mp::LayerType::Mamba: {
          at::Tensor x = r.t[{i, mp::Site::MambaX}];  // [N, L, H, P]
          EXPECT_EQ(s.mamba[i].sizes(), (std::vector<int64_t>{4, 8}));
          expect_close(s.mamba[i], direct(x.reshape({7, 12, 32}), seq, batch), tag + " mamba");
          break;
        }
      }
    }
  }
  // Block influence: 1 - cos between consecutive block inputs, averaged over tokens.
  mp::CalibrationScores s = mp::calibrate(*src, w, {});
  for (int64_t i = 0; i < m.config.num_layers(); ++i) {
    at::Tensor a = r.t[{i, mp::Site::BlockInput}].to(at::kDouble);
    at::Tensor b = (i + 1 < m.config.num_layers() ? r.t[{i + 1, mp::Site::BlockInput}]
                                                  : r.t[{m.config.num_layers(), mp::Site::FinalHidden}]).to(at::kDouble);
    double want = (1.0 - (a * b).sum(-1) / (a.norm(2, {-1}) * b.norm(2, {-1}))).mean().item<double>();
    EXPECT_NEAR(s.block_influence[i], want, 1e-5) << "layer " << i;
  }
}

TEST(PruneLayerImportance, MatchesRunningTheModelWithoutEachLayer) {
  at::NoGradGuard ng;
  mp::Model m = mp::test::prune_model(12);
  const int64_t N = 5, L = 10;
  at::Tensor w = windows(N, L, 12);
  at::Tensor ids = w.narrow(1, 0, L), tgt = w.narrow(1, 1, L);
  auto src = mp::memory_source(m);
  mp::LayerImportanceOptions o;
  o.micro_batch = 2;
  o.slice_tokens = 7;  // slices cross window boundaries
  mp::LayerDropScores s = mp::layer_importance(*src, w, o);
  at::Tensor hf = mp::forward_hidden(m, ids).to(at::kDouble);
  at::Tensor lf = mp::forward_logits(m, ids).to(at::kDouble).log_softmax(-1);
  double full_loss = -lf.gather(2, tgt.unsqueeze(2)).mean().item<double>();
  EXPECT_NEAR(s.full_loss, full_loss, 1e-5);
  for (int64_t i = 0; i < m.config.num_layers(); ++i) {
    mp::ForwardOptions fo;
    fo.skip_layer.assign(m.config.num_layers(), false);
    fo.skip_layer[i] = true;
    at::Tensor hd = mp::forward_hidden(m, ids, fo);
    at::Tensor ld = mp::lm_head_logits(m, mp::apply_final_norm(m, hd)).to(at::kDouble).log_softmax(-1);
    at::Tensor nd = mp::apply_final_norm(m, hd).to(at::kDouble), nf = mp::apply_final_norm(m, hf.to(at::kFloat)).to(at::kDouble);
    EXPECT_NEAR(s.mse_hidden[i], (hd.to(at::kDouble) - hf).pow(2).mean().item<double>(), 1e-6 + 1e-4 * s.mse_hidden[i]);
    EXPECT_NEAR(s.mse_normed[i], (nd - nf).pow(2).mean().item<double>(), 1e-6 + 1e-4 * s.mse_normed[i]);
    EXPECT_NEAR(s.kl[i], (lf.exp() * (lf - ld)).sum(-1).mean().item<double>(), 1e-5);
    EXPECT_NEAR(s.loss_delta[i], -ld.gather(2, tgt.unsqueeze(2)).mean().item<double>() - full_loss, 1e-5);
    EXPECT_NEAR(s.agreement[i], (ld.argmax(-1) == lf.argmax(-1)).to(at::kDouble).mean().item<double>(), 1e-12);
    EXPECT_GT(s.kl[i], 0.0);
  }
}

TEST(PruneStreaming, EqualsInMemoryBitForBit) {
  at::NoGradGuard ng;
  mp::test::ScratchDir dir;
  mp::Model m = mp::test::prune_model(13);
  mp::SaveOptions so;
  so.max_shard_bytes = 20000;  // several shards
  mp::save_model(m, dir.file("model"), so);
  mp::Model loaded = mp::load_model(dir.file("model"));
  at::Tensor w = windows(6, 9, 13);
  auto mem = mp::memory_source(loaded);
  auto str = mp::streaming_source(dir.file("model"), at::kCPU, at::kFloat);
  mp::CalibrationOptions co;
  co.micro_batch = 2;
  mp::CalibrationScores a = mp::calibrate(*mem, w, co);
  co.windows_per_pass = 4;  // 2 micro-batches per layer read; the micro-batches stay the same
  mp::CalibrationScores b = mp::calibrate(*str, w, co);
  for (int64_t i = 0; i < m.config.num_layers(); ++i) {
    EXPECT_TRUE(at::equal(a.mixer_input[i], b.mixer_input[i])) << i;
    using Pair = std::pair<std::vector<at::Tensor>*, std::vector<at::Tensor>*>;
    for (auto [x, y] : std::vector<Pair>{{&a.mlp, &b.mlp}, {&a.attn_heads, &b.attn_heads}, {&a.mamba, &b.mamba}})
      EXPECT_TRUE((*x)[i].defined() == (*y)[i].defined() && (!(*x)[i].defined() || at::equal((*x)[i], (*y)[i]))) << i;
    EXPECT_EQ(a.block_influence[i], b.block_influence[i]);
  }
  mp::LayerImportanceOptions lo;
  lo.micro_batch = 2;
  mp::LayerDropScores da = mp::layer_importance(*mem, w, lo), db = mp::layer_importance(*str, w, lo);
  EXPECT_EQ(da.mse_hidden, db.mse_hidden);
  EXPECT_EQ(da.mse_normed, db.mse_normed);
  EXPECT_EQ(da.kl, db.kl);
  EXPECT_EQ(da.loss_delta, db.loss_delta);
  EXPECT_EQ(mem->fingerprint(), str->fingerprint());
}

TEST(PruneFingerprint, IgnoresDtypeAndCatchesOtherWeights) {
  mp::Model m = mp::test::prune_model(14);
  const uint64_t f = mp::model_fingerprint(m.weights);
  EXPECT_EQ(f, mp::model_fingerprint(m.to(at::kCPU, at::kBFloat16).weights));
  EXPECT_NE(f, mp::model_fingerprint(mp::test::prune_model(15).weights));
  auto changed = m.weights;
  changed[mp::layer_tensor(3, "mixer.D")] = changed[mp::layer_tensor(3, "mixer.D")] + 1.0;  // a 4-element tensor
  EXPECT_NE(f, mp::model_fingerprint(changed));
}

mp::Importance score(const mp::Model& m) {
  auto src = mp::memory_source(m);
  at::Tensor w = windows(4, 8, 16);
  mp::ScoreSettings s;
  s.samples = 4;
  s.layer_samples = 2;
  s.seq_len = 8;
  return mp::make_importance(m.config, src->fingerprint(), s, mp::calibrate(*src, w, {}),
                             mp::layer_importance(*src, w.narrow(0, 0, 2), {}));
}

TEST(PruneImportanceFile, RoundTripsExactlyAndRefusesOtherModels) {
  at::NoGradGuard ng;
  mp::test::ScratchDir dir;
  mp::Model m = mp::test::prune_model(16);
  mp::Importance imp = score(m);
  mp::save_importance(imp, dir.file("importance.json"));
  mp::Importance back = mp::load_importance(dir.file("importance.json"));
  EXPECT_EQ(back.hidden, imp.hidden);
  EXPECT_EQ(back.mamba, imp.mamba);
  EXPECT_EQ(back.mlp, imp.mlp);
  EXPECT_EQ(back.attention, imp.attention);
  EXPECT_EQ(back.hidden_per_layer, imp.hidden_per_layer);
  EXPECT_EQ(back.layers[3].kl, imp.layers[3].kl);
  EXPECT_EQ(back.fingerprint, imp.fingerprint);
  EXPECT_EQ(mp::importance_to_json(back), mp::importance_to_json(imp));
  mp::check_importance_matches(back, m.config, mp::model_fingerprint(m.weights), "imp", "model");

  auto refused = [&](const std::function<void()>& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error; expected " << needle;
    } catch (const mp::Error& e) {
      EXPECT_EQ(e.kind(), mp::ErrorKind::BadInput);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  mp::Model other = mp::test::prune_model(17);
  refused([&] { mp::check_importance_matches(back, other.config, mp::model_fingerprint(other.weights), "imp", "other"); },
          "weight fingerprint");
  mp::ModelConfig wider = m.config;
  wider.intermediate_size = 64;
  refused([&] { mp::check_importance_matches(back, wider, imp.fingerprint, "imp", "wider"); }, "'intermediate_size'");

  nlohmann::json j = mp::importance_to_json(imp);
  j["version"] = 2;
  refused([&] { mp::importance_from_json(j, "v2.json"); }, "'version' is 2");
  j = mp::importance_to_json(imp);
  j["mlp"]["2"].erase(0);
  refused([&] { mp::importance_from_json(j, "short.json"); }, "'mlp.2' has 47 entries, the model's config implies 48");
  j = mp::importance_to_json(imp);
  j["layers"][1]["type"] = "mlp";
  refused([&] { mp::importance_from_json(j, "type.json"); }, "the config says \"attention\"");
}

}  // namespace
