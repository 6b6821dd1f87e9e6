// make_plan: ranking rules of docs/method.md on hand-made scores, and every refusal.
#include "common/error.h"
#include "prune/importance.h"
#include "prune/plan.h"
#include "tests/prune_fixtures.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

// Scores chosen so that each rule has one right answer.
mp::Importance synthetic() {
  mp::Importance imp;
  imp.parent = mp::test::prune_config();  // M * - M - *
  const auto& c = imp.parent;
  const int64_t n = c.num_layers();
  for (int64_t k = 0; k < c.hidden_size; ++k) imp.hidden.push_back(static_cast<float>((k * 7) % 32));
  imp.hidden_per_layer.assign(n, imp.hidden);
  imp.mlp.resize(n);
  imp.attention.resize(n);
  imp.mamba.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    mp::LayerImportanceRow r;
    r.mse_normed = 10.0 - i;  // earlier = more important
    r.mse_hidden = static_cast<double>(i);  // later = more important
    imp.layers.push_back(r);
    switch (c.layers[i]) {
      case mp::LayerType::Mlp:
        for (int64_t k = 0; k < 48; ++k) imp.mlp[i].push_back(static_cast<float>(i == 2 ? k : 48 - k));
        break;
      case mp::LayerType::Attention: imp.attention[i] = {1.f, 5.f, 9.f, 2.f}; break;
      case mp::LayerType::Mamba:
        // s[h][c]: channel 0 tiny everywhere, channel 7 large; head 1 big in group 0, head 2 in group 1.
        for (int64_t h = 0; h < 4; ++h)
          for (int64_t ch = 0; ch < 8; ++ch)
            imp.mamba[i].push_back(static_cast<float>((ch == 0 ? 0.01 : ch) * (h == 1 || h == 2 ? 3.0 : 1.0)));
        break;
    }
  }
  return imp;
}

TEST(PrunePlan, RanksEveryAxisAsMiniPuzzleDoes) {
  mp::Importance imp = synthetic();
  mp::PruneTarget t;
  t.hidden_size = 4;
  t.intermediate_size = 3;
  t.num_attention_heads = 2;
  t.mamba_num_heads = 2;
  t.mamba_head_dim = 7;
  mp::PruningPlan p = mp::make_plan(imp, t);
  // hidden score (7k mod 32) is largest (31, 30, 29, 28) at k = 9, 18, 27, 4.
  EXPECT_EQ(p.hidden, (std::vector<int64_t>{4, 9, 18, 27}));
  EXPECT_EQ(p.mlp[2], (std::vector<int64_t>{45, 46, 47}));  // per layer: layer 2 ranks upwards
  EXPECT_EQ(p.mlp[4], (std::vector<int64_t>{0, 1, 2}));     // layer 4 downwards
  EXPECT_EQ(p.attention[1], (std::vector<int64_t>{1, 2}));  // best of {0,1} and of {2,3}
  EXPECT_EQ(p.mamba_channels[0], (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(p.mamba_heads[0], (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(p.kept_layers, (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  mp::ModelConfig child = mp::plan_config(imp.parent, p);
  EXPECT_EQ(child.hidden_size, 4);
  EXPECT_EQ(child.mamba_num_heads, 2);
  EXPECT_EQ(child.mamba_head_dim, 7);
}

TEST(PrunePlan, LayerCountsKeepTheMostImportantOfEachType) {
  mp::Importance imp = synthetic();
  mp::PruneTarget t;
  t.keep_counts = std::map<mp::LayerType, int64_t>{{mp::LayerType::Mlp, 1}, {mp::LayerType::Attention, 1}};
  EXPECT_EQ(mp::make_plan(imp, t).kept_layers, (std::vector<int64_t>{0, 1, 2, 3}));  // mse_normed: earlier wins
  t.layer_metric = mp::LayerMetric::MseHidden;
  EXPECT_EQ(mp::make_plan(imp, t).kept_layers, (std::vector<int64_t>{0, 3, 4, 5}));  // later wins
  t = {};
  t.drop_layers = std::vector<int64_t>{5, 1};
  EXPECT_EQ(mp::make_plan(imp, t).kept_layers, (std::vector<int64_t>{0, 2, 3, 4}));
  t = {};
  t.keep_layers = std::vector<int64_t>{4, 0};
  EXPECT_EQ(mp::make_plan(imp, t).kept_layers, (std::vector<int64_t>{0, 4}));
}

void expect_refused(const mp::PruneTarget& t, const std::string& needle) {
  try {
    mp::make_plan(synthetic(), t);
    ADD_FAILURE() << "no error; expected: " << needle;
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.kind(), mp::ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(PrunePlan, RefusesImpossibleTargets) {
  mp::PruneTarget t;
  t.hidden_size = 33;
  expect_refused(t, "hidden_size 33 is above the parent's 32");
  t = {};
  t.intermediate_size = 49;
  expect_refused(t, "above the parent's 48");
  t = {};
  t.mamba_num_heads = 3;
  expect_refused(t, "mamba_num_heads 3 is not a multiple of n_groups 2");
  t = {};
  t.num_attention_heads = 3;
  expect_refused(t, "num_attention_heads 3 is not a multiple of num_key_value_heads 2");
  t = {};
  t.keep_counts = std::map<mp::LayerType, int64_t>{{mp::LayerType::Mamba, 3}};
  expect_refused(t, "keeps 3 mamba layers; the parent has only 2");
  t = {};
  t.keep_layers = std::vector<int64_t>{0, 6};
  expect_refused(t, "kept layer 6 does not exist");
  t = {};
  t.drop_layers = std::vector<int64_t>{0, 1, 2, 3, 4, 5};
  expect_refused(t, "drops every layer");
}

TEST(PrunePlan, ShapeFilesAndFlagsParse) {
  auto t = mp::target_from_json(nlohmann::json::parse(R"({"hidden_size": 16, "mamba_head_dim": 4,
      "layers": {"mamba": 1, "mlp": 2}, "name": "candidate 7"})"), "shape.json");
  EXPECT_EQ(*t.hidden_size, 16);
  EXPECT_EQ(*t.mamba_head_dim, 4);
  EXPECT_EQ(t.keep_counts->at(mp::LayerType::Mamba), 1);
  EXPECT_FALSE(t.intermediate_size.has_value());
  try {
    mp::target_from_json(nlohmann::json::parse(R"({"hiden_size": 16})"), "shape.json");
    ADD_FAILURE();
  } catch (const mp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown field 'hiden_size'"), std::string::npos) << e.what();
  }
  try {
    mp::target_from_json(nlohmann::json::parse(R"({"kept_layers": [1], "drop_layers": [2]})"), "shape.json");
    ADD_FAILURE();
  } catch (const mp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("at most one"), std::string::npos) << e.what();
  }
  auto counts = mp::parse_layer_counts("mamba=45,attention=5,mlp=48", "--keep-layers");
  EXPECT_EQ(counts.at(mp::LayerType::Attention), 5);
  EXPECT_EQ(mp::parse_index_list("3,17,40", "--drop-layers"), (std::vector<int64_t>{3, 17, 40}));
  EXPECT_THROW(mp::parse_layer_counts("mamba=x", "--keep-layers"), mp::Error);
  EXPECT_THROW(mp::parse_index_list("3,,4", "--drop-layers"), mp::Error);
}

}  // namespace

namespace {

// The random control: same shape, deterministic in the seed, different indices from the ranked plan.
TEST(PrunePlan, RandomizedImportanceKeepsTheShapeNotTheChoice) {
  mp::Importance imp = synthetic();
  mp::PruneTarget t;
  t.hidden_size = 4;
  t.intermediate_size = 3;
  t.num_attention_heads = 2;
  t.mamba_num_heads = 2;
  t.mamba_head_dim = 7;
  t.keep_counts = std::map<mp::LayerType, int64_t>{{mp::LayerType::Mlp, 1}};
  mp::PruningPlan ranked = mp::make_plan(imp, t);
  mp::PruningPlan a = mp::make_plan(mp::randomized_importance(imp, 1), t);
  mp::PruningPlan b = mp::make_plan(mp::randomized_importance(imp, 1), t);
  EXPECT_EQ(mp::plan_config(imp.parent, a).num_layers(), mp::plan_config(imp.parent, ranked).num_layers());
  EXPECT_TRUE(mp::plan_config(imp.parent, a) == mp::plan_config(imp.parent, b));
  EXPECT_EQ(a.hidden, b.hidden);
  EXPECT_EQ(a.hidden.size(), 4u);
  bool differs = a.hidden != ranked.hidden;
  for (int seed = 2; seed < 6 && !differs; ++seed)
    differs = mp::make_plan(mp::randomized_importance(imp, seed), t).hidden != ranked.hidden;
  EXPECT_TRUE(differs);
}

}  // namespace
