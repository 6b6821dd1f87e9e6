// Incremental inference (model/decode.h) against the full forward: prefill + decode steps give the
// forward's logits at every position, for GQA / MQA / MHA, 1 and several Mamba groups, conv
// kernels 2..4, prompts shorter than the conv window, of one token, off the chunk grid and over
// several chunks; batch rows are independent; misuse is one clear bad-input error that leaves the
// cache unchanged; bytes() is the cost formula (and the search cost model's state terms).
#include "common/error.h"
#include "model/accounting.h"
#include "model/decode.h"
#include "model/forward.h"
#include "model/model.h"
#include "search/cost_model.h"
#include "tests/tensor_checks.h"
#include "tests/expect_error.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace {

struct Case {
  const char* name;
  std::string json;
};

// Every case has all three layer types; they differ in head sharing, groups, conv kernel, chunk.
std::vector<Case> cases() {
  const std::string common = R"("vocab_size": 61, "hidden_size": 32, "intermediate_size": 48, "head_dim": 8,
    "mamba_num_heads": 4, "mamba_head_dim": 8, "ssm_state_size": 8, )";
  return {
      {"gqa_g2_k4", "{" + common + R"("hybrid_override_pattern": "M*-M-", "num_attention_heads": 4,
        "num_key_value_heads": 2, "n_groups": 2, "conv_kernel": 4, "chunk_size": 8})"},
      {"mqa_g1_k2", "{" + common + R"("hybrid_override_pattern": "-M*M*", "num_attention_heads": 4,
        "num_key_value_heads": 1, "n_groups": 1, "conv_kernel": 2, "chunk_size": 4})"},
      {"mha_g4_k3_limits_nobias", "{" + common + R"("hybrid_override_pattern": "*M-M", "num_attention_heads": 2,
        "num_key_value_heads": 2, "n_groups": 4, "conv_kernel": 3, "chunk_size": 5, "use_conv_bias": false,
        "time_step_limit": [0.02, 0.3]})"},
  };
}

// A random model with every parameter perturbed (biases, A_log, dt_bias, D, norms), and mixer
// outputs scaled up so that each layer moves the logits: layout or state bugs cannot hide.
mp::Model decode_model(const Case& k, uint64_t seed, at::ScalarType dtype = at::kFloat) {
  mp::Model m = mp::make_random_model(mp::config_from_json_text(k.json, k.name), seed, at::kFloat);
  at::manual_seed(seed);
  for (auto& [n, t] : m.weights) {
    const bool out = n.find("out_proj") != std::string::npos || n.find("o_proj") != std::string::npos ||
                     n.find("down_proj") != std::string::npos;
    if (out) t = t * 8.0;
    else if (n.find("dt_bias") != std::string::npos) t = t + 1.0 * at::randn(t.sizes());  // dt across the clamp
    else t = t + 0.3 * at::randn(t.sizes());
  }
  return m.to(at::kCPU, dtype);
}

using mp::test::rel_err;

at::Tensor ids_for(int64_t batch, int64_t len, uint64_t seed) {
  at::manual_seed(seed);
  return at::randint(0, 61, {batch, len}, at::kLong);
}

// Prefill the first L tokens, decode the rest one at a time; each step's logits against the full
// forward at that position.
void check_against_forward(const mp::Model& m, const at::Tensor& ids, int64_t L, const std::string& label) {
  at::NoGradGuard ng;
  const int64_t total = ids.size(1);
  const at::Tensor full = mp::forward_logits(m, ids);  // [B, total, V]
  mp::InferenceCache cache(m, ids.size(0), total);
  at::Tensor got = mp::prefill(m, ids.narrow(1, 0, L), cache);
  EXPECT_EQ(got.sizes(), (std::vector<int64_t>{ids.size(0), m.config.vocab_size})) << label;
  EXPECT_LE(rel_err(got, full.select(1, L - 1)), 1e-5) << label << " prefill L=" << L;
  for (int64_t t = L; t < total; ++t) {
    got = mp::decode_step(m, cache, ids.select(1, t));
    EXPECT_LE(rel_err(got, full.select(1, t)), 1e-5) << label << " L=" << L << " step at position " << t;
  }
  EXPECT_EQ(cache.length, total) << label;
}

TEST(Decode, PrefillThenStepsMatchTheFullForward) {
  for (const Case& k : cases()) {
    mp::Model m = decode_model(k, 11);
    const int64_t Q = m.config.chunk_size, K = m.config.conv_kernel;
    // One token; shorter than the conv window; off the chunk grid; several chunks (+ remainder).
    std::vector<int64_t> lengths = {1, Q + 3, 3 * Q + 2};
    if (K - 2 >= 1) lengths.push_back(K - 2);
    for (int64_t L : lengths) {
      const at::Tensor ids = ids_for(2, L + 6, 100 + L);
      check_against_forward(m, ids, L, k.name);
    }
  }
}

// Layers narrower than the config (as per-layer pruning leaves them): the cache takes its widths
// from the tensors. Mamba layer 0 keeps heads {0, 2} (one per group), attention layer 1 keeps kv
// head 0 with its query heads {0, 1}, MLP layer 2 keeps 20 of 48 channels.
TEST(Decode, LayersNarrowerThanTheConfigWork) {
  mp::Model m = decode_model(cases()[0], 18);
  auto rows = [](const at::Tensor& t, const at::Tensor& idx) { return t.index_select(0, idx).contiguous(); };
  auto cols = [](const at::Tensor& t, const at::Tensor& idx) { return t.index_select(1, idx).contiguous(); };
  auto w = [&](int64_t layer, const char* suffix) -> at::Tensor& {
    return m.weights.at("backbone.layers." + std::to_string(layer) + "." + suffix);
  };
  const int64_t I = 32, GN2 = 32;  // 4 heads x 8; 2 groups x 8 state x (B, C)
  const at::Tensor heads = at::tensor(std::vector<int64_t>{0, 2});
  const at::Tensor chan = at::cat({at::arange(0, 8), at::arange(16, 24)});  // channels of heads 0, 2
  const at::Tensor in_rows = at::cat({chan, I + chan, 2 * I + at::arange(GN2), 2 * I + GN2 + heads});
  w(0, "mixer.in_proj.weight") = rows(w(0, "mixer.in_proj.weight"), in_rows);
  const at::Tensor conv_rows = at::cat({chan, I + at::arange(GN2)});
  w(0, "mixer.conv1d.weight") = rows(w(0, "mixer.conv1d.weight"), conv_rows);
  w(0, "mixer.conv1d.bias") = rows(w(0, "mixer.conv1d.bias"), conv_rows);
  for (const char* t : {"mixer.dt_bias", "mixer.A_log", "mixer.D"}) w(0, t) = rows(w(0, t), heads);
  w(0, "mixer.norm.weight") = rows(w(0, "mixer.norm.weight"), chan);
  w(0, "mixer.out_proj.weight") = cols(w(0, "mixer.out_proj.weight"), chan);
  w(1, "mixer.q_proj.weight") = w(1, "mixer.q_proj.weight").narrow(0, 0, 16).contiguous();
  w(1, "mixer.k_proj.weight") = w(1, "mixer.k_proj.weight").narrow(0, 0, 8).contiguous();
  w(1, "mixer.v_proj.weight") = w(1, "mixer.v_proj.weight").narrow(0, 0, 8).contiguous();
  w(1, "mixer.o_proj.weight") = w(1, "mixer.o_proj.weight").narrow(1, 0, 16).contiguous();
  w(2, "mixer.up_proj.weight") = w(2, "mixer.up_proj.weight").narrow(0, 0, 20).contiguous();
  w(2, "mixer.down_proj.weight") = w(2, "mixer.down_proj.weight").narrow(1, 0, 20).contiguous();
  mp::InferenceCache cache(m, 2, 30);
  EXPECT_EQ(cache.layers[0].ssm_BHPN.sizes(), (std::vector<int64_t>{2, 2, 8, 8}));
  EXPECT_EQ(cache.layers[0].conv_BCK.sizes(), (std::vector<int64_t>{2, 16 + GN2, 3}));
  EXPECT_EQ(cache.layers[1].k_BHTD.sizes(), (std::vector<int64_t>{2, 1, 30, 8}));
  check_against_forward(m, ids_for(2, 30, 9), 11, "narrowed layers");
}

TEST(Decode, StepsFromAnEmptyCacheMatchTheFullForward) {
  at::NoGradGuard ng;
  for (const Case& k : cases()) {
    mp::Model m = decode_model(k, 12);
    const at::Tensor ids = ids_for(2, 2 * m.config.chunk_size + 1, 5);
    const at::Tensor full = mp::forward_logits(m, ids);
    mp::InferenceCache cache(m, 2, ids.size(1));
    for (int64_t t = 0; t < ids.size(1); ++t)
      EXPECT_LE(rel_err(mp::decode_step(m, cache, ids.select(1, t)), full.select(1, t)), 1e-5) << k.name << " " << t;
  }
}

TEST(Decode, BatchRowsAreIndependent) {
  at::NoGradGuard ng;
  for (const Case& k : cases()) {
    mp::Model m = decode_model(k, 13);
    const at::Tensor ids = ids_for(3, 14, 6);
    const int64_t L = 9;
    mp::InferenceCache all(m, 3, 14);
    std::vector<at::Tensor> batched = {mp::prefill(m, ids.narrow(1, 0, L), all)};
    for (int64_t t = L; t < 14; ++t) batched.push_back(mp::decode_step(m, all, ids.select(1, t)));
    for (int64_t b = 0; b < 3; ++b) {
      const at::Tensor row = ids.narrow(0, b, 1);
      mp::InferenceCache one(m, 1, 14);
      std::vector<at::Tensor> alone = {mp::prefill(m, row.narrow(1, 0, L), one)};
      for (int64_t t = L; t < 14; ++t) alone.push_back(mp::decode_step(m, one, row.select(1, t)));
      // Not bitwise: BLAS blocks a 3-row product differently from a 1-row one, and the full
      // forward itself differs by up to ~3e-6 between these batch sizes; a leak between rows
      // would be of order 1.
      for (size_t s = 0; s < alone.size(); ++s)
        EXPECT_LE(rel_err(batched[s].narrow(0, b, 1), alone[s]), 1e-5) << k.name << " row " << b << " step " << s;
    }
  }
}

// extend(): prefill a prompt, then the rest in chunks of several tokens (shorter than the conv
// window, across chunk boundaries, one token): every position's logits equal the full forward's.
TEST(Decode, ExtendInChunksMatchesTheFullForward) {
  at::NoGradGuard ng;
  for (const Case& k : cases()) {
    mp::Model m = decode_model(k, 21);
    const int64_t Q = m.config.chunk_size;
    const std::vector<int64_t> pieces = {Q + 3, 1, 2, Q, 2 * Q + 1};
    int64_t total = 0;
    for (int64_t p : pieces) total += p;
    const at::Tensor ids = ids_for(2, total, 31);
    const at::Tensor full = mp::forward_logits(m, ids);
    mp::InferenceCache cache(m, 2, total);
    at::Tensor last = mp::prefill(m, ids.narrow(1, 0, pieces[0]), cache);
    EXPECT_LE(rel_err(last, full.select(1, pieces[0] - 1)), 1e-5) << k.name;
    int64_t at = pieces[0];
    for (size_t i = 1; i < pieces.size(); ++i) {
      const at::Tensor got = mp::extend(m, cache, ids.narrow(1, at, pieces[i]));
      ASSERT_EQ(got.sizes(), (std::vector<int64_t>{2, pieces[i], m.config.vocab_size})) << k.name;
      EXPECT_LE(rel_err(got, full.narrow(1, at, pieces[i])), 1e-5) << k.name << " piece " << i;
      at += pieces[i];
    }
    EXPECT_EQ(cache.length, total) << k.name;
    // From an empty cache, extend is the full forward.
    mp::InferenceCache empty(m, 2, total);
    EXPECT_LE(rel_err(mp::extend(m, empty, ids), full), 1e-5) << k.name;
  }
}

// gather_cache_rows hands one prompt's state to several rows: each row then continues exactly as
// the prompt's own cache would, whatever the other rows do.
TEST(Decode, GatheredRowsContinueLikeTheirSource) {
  at::NoGradGuard ng;
  for (const Case& k : cases()) {
    mp::Model m = decode_model(k, 22);
    const at::Tensor prompts = ids_for(2, 7, 41), cont = ids_for(5, 4, 42);
    mp::InferenceCache src(m, 2, 7);
    mp::prefill(m, prompts, src);
    const std::vector<int64_t> rows = {1, 0, 1, 1, 0};
    mp::InferenceCache many = mp::gather_cache_rows(m, src, rows, 11);
    EXPECT_EQ(many.batch, 5);
    EXPECT_EQ(many.length, 7);
    const at::Tensor got = mp::extend(m, many, cont);
    for (size_t r = 0; r < rows.size(); ++r) {
      const at::Tensor whole = at::cat({prompts.narrow(0, rows[r], 1), cont.narrow(0, r, 1)}, 1);
      const at::Tensor ref = mp::forward_logits(m, whole).narrow(1, 7, 4);
      EXPECT_LE(rel_err(got.narrow(0, r, 1), ref), 1e-5) << k.name << " row " << r;
    }
  }
}

using mp::test::expect_bad_input;

TEST(Decode, MisuseIsOneClearErrorAndLeavesTheCacheUnchanged) {
  at::NoGradGuard ng;
  mp::Model m = decode_model(cases()[0], 14);
  mp::InferenceCache cache(m, 2, 4);
  const at::Tensor ids = ids_for(2, 5, 7);
  expect_bad_input([&] { mp::prefill(m, ids, cache); }, {"prefill ids", "5 tokens", "max_len = 4"});
  expect_bad_input([&] { mp::prefill(m, ids.narrow(0, 0, 1).narrow(1, 0, 2), cache); }, {"batch 1", "batch 2"});
  mp::prefill(m, ids.narrow(1, 0, 3), cache);
  const at::Tensor k_before = cache.layers[1].k_BHTD.clone(), ssm_before = cache.layers[0].ssm_BHPN.clone();
  at::Tensor bad = at::tensor(std::vector<int64_t>{3, 61});
  expect_bad_input([&] { mp::decode_step(m, cache, bad); }, {"decode_step ids", "61", "[0, 61)"});
  expect_bad_input([&] { mp::decode_step(m, cache, at::zeros({3}, at::kLong)); }, {"decode_step ids", "[2]", "[3]"});
  EXPECT_EQ(cache.length, 3);
  EXPECT_TRUE(at::equal(cache.layers[1].k_BHTD, k_before));
  EXPECT_TRUE(at::equal(cache.layers[0].ssm_BHPN, ssm_before));
  mp::decode_step(m, cache, ids.select(1, 3));  // the 4th token fills the cache
  expect_bad_input([&] { mp::decode_step(m, cache, ids.select(1, 4)); }, {"cache is full", "4 of max_len = 4"});
  EXPECT_EQ(cache.length, 4);
  expect_bad_input([&] { mp::extend(m, cache, ids.narrow(1, 0, 1)); }, {"extend", "4 held + 1 new", "max_len = 4"});
  expect_bad_input([&] { mp::gather_cache_rows(m, cache, {0, 2}, 8); }, {"row 2", "[0, 2)"});
  expect_bad_input([&] { mp::gather_cache_rows(m, cache, {0}, 3); }, {"capacity 3", "4 tokens"});
  expect_bad_input([&] { mp::InferenceCache(m, 0, 4); }, {"batch"});
  expect_bad_input([&] { mp::InferenceCache(m, 1, 0); }, {"max_len"});
  mp::Model other = decode_model(cases()[1], 14);
  expect_bad_input([&] { mp::decode_step(other, cache, ids.select(1, 0)); }, {"inference cache layer 0", "mamba", "mlp"});
}

TEST(Decode, BytesEqualTheCostFormula) {
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    for (const Case& k : cases()) {
      mp::Model m = decode_model(k, 15, dtype);
      const mp::ModelConfig& c = m.config;
      const int64_t B = 3, T = 37, e = dtype == at::kFloat ? 4 : 2;
      mp::InferenceCache cache(m, B, T);
      const int64_t n_attn = c.count(mp::LayerType::Attention), n_mamba = c.count(mp::LayerType::Mamba);
      const int64_t formula = n_attn * 2 * c.num_key_value_heads * c.head_dim * T * B * e +
                              n_mamba * B * c.mamba_conv_dim() * (c.conv_kernel - 1) * e +
                              n_mamba * B * c.mamba_num_heads * c.mamba_head_dim * c.ssm_state_size * 4;
      EXPECT_EQ(static_cast<int64_t>(cache.bytes()), formula) << k.name;
      const mp::StateSizes s = mp::state_sizes(c);
      EXPECT_EQ(static_cast<int64_t>(cache.bytes()),
                (s.kv_per_token * T + s.mamba_conv_per_seq) * B * e + s.mamba_ssm_per_seq * B * 4)
          << k.name;
      if (dtype == at::kBFloat16) {  // the search cost model's defaults: bf16 KV and conv, fp32 SSM
        mp::Budget b;
        b.context_tokens = T;
        b.batch = B;
        const mp::MemoryBreakdown mem = mp::deployment_memory(c, b);
        EXPECT_EQ(static_cast<double>(cache.bytes()), mem.kv_cache + mem.mamba_conv + mem.mamba_ssm) << k.name;
      }
    }
  }
}

TEST(Decode, FillForBenchmarkSetsLengthsDeterministically) {
  at::NoGradGuard ng;
  mp::Model m = decode_model(cases()[0], 16);
  mp::InferenceCache a(m, 2, 50), b(m, 2, 50);
  mp::fill_for_benchmark(a, 40, 9);
  mp::fill_for_benchmark(b, 40, 9);
  EXPECT_EQ(a.length, 40);
  for (size_t i = 0; i < a.layers.size(); ++i) {
    const mp::LayerCache &x = a.layers[i], &y = b.layers[i];
    if (x.type == mp::LayerType::Attention) {
      EXPECT_EQ(x.length, 40);
      EXPECT_TRUE(at::equal(x.k_BHTD, y.k_BHTD));
      EXPECT_GT(x.v_BHTD.narrow(2, 0, 40).abs().min().item<float>(), 0.0f);
      EXPECT_EQ(x.v_BHTD.narrow(2, 40, 10).abs().max().item<float>(), 0.0f);
    } else if (x.type == mp::LayerType::Mamba) {
      EXPECT_TRUE(at::equal(x.ssm_BHPN, y.ssm_BHPN));
      EXPECT_GT(x.conv_BCK.abs().sum().item<float>(), 0.0f);
    }
  }
  at::Tensor logits = mp::decode_step(m, a, at::zeros({2}, at::kLong));
  EXPECT_TRUE(at::isfinite(logits).all().item<bool>());
  EXPECT_EQ(a.length, 41);
  expect_bad_input([&] { mp::fill_for_benchmark(a, 51, 1); }, {"length 51", "[0, 50]"});
}

}  // namespace

namespace {

// On a GPU: the same prefill + steps against the CUDA full forward (our conv / scan kernels and
// scaled_dot_product_attention there, plain ATen ops in the step), in fp32 and bf16.
TEST(Decode, CudaMatchesTheCudaForward) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  at::NoGradGuard ng;
  for (const Case& k : cases()) {
    for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
      const double tol = dtype == at::kFloat ? 1e-4 : 3e-2;
      mp::Model m = decode_model(k, 17).to(at::Device(at::kCUDA), dtype);
      const int64_t L = 3 * m.config.chunk_size + 2;
      const at::Tensor ids = ids_for(2, L + 6, 8).cuda();
      const at::Tensor full = mp::forward_logits(m, ids).cpu();
      mp::InferenceCache cache(m, 2, L + 6);
      at::Tensor got = mp::prefill(m, ids.narrow(1, 0, L), cache);
      EXPECT_TRUE(got.is_cuda());
      EXPECT_LE(rel_err(got.cpu(), full.select(1, L - 1)), tol) << k.name << " " << c10::toString(dtype);
      for (int64_t t = L; t < L + 6; ++t)
        EXPECT_LE(rel_err(mp::decode_step(m, cache, ids.select(1, t)).cpu(), full.select(1, t)), tol)
            << k.name << " " << c10::toString(dtype) << " position " << t;
      mp::fill_for_benchmark(cache, L + 3, 1);
      EXPECT_TRUE(at::isfinite(mp::decode_step(m, cache, ids.select(1, 0))).all().item<bool>());
    }
  }
}

}  // namespace
