// Sharded checkpoints without processes: W ranks are simulated by slicing the tensors of a tiny
// model here, each slice written with write_rank_shard, then committed as rank 0 would. The
// reference is always the original tensors, compared bit for bit.
#include "distill/sharded_checkpoint.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "distill/checkpoint.h"
#include "distill/optim.h"
#include "distill/sharded_consolidate.h"
#include "model/model.h"
#include "tests/distill_fixture.h"
#include "tests/test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>

namespace fs = std::filesystem;
using mp::test::ScratchDir;
using Key = std::pair<std::string, std::string>;  // (tensor, kind)

namespace {

const std::vector<std::string> kKinds = {mp::kShardKindWeight, mp::kShardKindExpAvg, mp::kShardKindExpAvgSq};

bool same_bytes(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  at::Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * ca.element_size()) == 0;
}

// The state a run would save: the tiny student's fp32 weights and made-up AdamW moments.
struct Original {
  mp::ModelConfig config;
  std::vector<mp::TensorSpec> specs;  // checkpoint order
  std::map<Key, at::Tensor> flat;     // 1-D
  mp::Model model;
};

Original make_original() {
  Original o;
  o.config = mp::test::distill_tiny_config();
  o.model = mp::make_random_model(o.config, 11, at::kFloat);
  at::manual_seed(5);
  for (const auto& [name, t] : o.model.ordered()) {
    o.specs.push_back({name, std::vector<int64_t>(t.sizes().begin(), t.sizes().end())});
    o.flat[{name, mp::kShardKindWeight}] = t.reshape({-1}).clone();
    o.flat[{name, mp::kShardKindExpAvg}] = at::randn({t.numel()});
    o.flat[{name, mp::kShardKindExpAvgSq}] = at::rand({t.numel()});
  }
  return o;
}

struct Range {
  int64_t begin, end;
};
// Which part of each tensor rank r of W holds: r -> (tensor -> range), empty ranges left out.
using Layout = std::function<std::map<std::string, Range>(int rank, int world)>;

// ZeRO-3 style: all tensors concatenated in order, cut into W equal chunks (the last shorter), so
// a rank holds parts of several tensors and tensors straddle ranks.
Layout flat_layout(const Original& o) {
  return [&o](int r, int w) {
    int64_t total = 0;
    for (const auto& s : o.specs) total += o.flat.at({s.name, mp::kShardKindWeight}).numel();
    const int64_t chunk = (total + w - 1) / w, lo = r * chunk, hi = std::min(total, lo + chunk);
    std::map<std::string, Range> out;
    int64_t off = 0;
    for (const auto& s : o.specs) {
      const int64_t n = o.flat.at({s.name, mp::kShardKindWeight}).numel();
      const int64_t b = std::max(lo, off), e = std::min(hi, off + n);
      if (b < e) out[s.name] = {b - off, e - off};
      off += n;
    }
    return out;
  };
}

// ZeRO-1 style: every tensor split into W near-equal parts.
Layout per_tensor_layout(const Original& o) {
  return [&o](int r, int w) {
    std::map<std::string, Range> out;
    for (const auto& s : o.specs) {
      const int64_t n = o.flat.at({s.name, mp::kShardKindWeight}).numel();
      const int64_t b = n * r / w, e = n * (r + 1) / w;
      if (b < e) out[s.name] = {b, e};
    }
    return out;
  };
}

void write_rank(const std::string& output, int64_t step, int r, int w, const Original& o, const Layout& layout,
                at::ScalarType weight_dtype = at::kFloat) {
  std::vector<mp::ShardPiece> pieces;
  for (const auto& [name, rg] : layout(r, w))
    for (const std::string& k : kKinds) {
      at::Tensor t = o.flat.at({name, k}).slice(0, rg.begin, rg.end);
      if (k == mp::kShardKindWeight) t = t.to(weight_dtype);
      pieces.push_back({name, k, rg.begin, rg.end, t});
    }
  mp::write_rank_shard(output, step, r, w, pieces);
}

mp::ShardedCommit commit_info(const Original& o, int64_t step, int w) {
  mp::ShardedCommit c;
  c.world_size = w;
  c.shard_mode = "full";
  c.tensors = o.specs;
  c.config = o.config;
  c.config.dtype = "bfloat16";  // the run's compute dtype
  c.state.step = step;
  c.state.tokens = 1000 * step;
  c.state.sampler_position = 77;
  c.state.optimizer_steps = step;
  c.state.config = {{"lr", 0.001}};
  return c;
}

// Every rank writes, then rank 0 commits: what a sharded run does at a checkpoint step.
std::string save(const std::string& output, int64_t step, int w, const Original& o, const Layout& layout,
                 at::ScalarType weight_dtype = at::kFloat) {
  for (int r = 0; r < w; ++r) write_rank(output, step, r, w, o, layout, weight_dtype);
  return mp::commit_sharded_checkpoint(output, commit_info(o, step, w));
}

template <typename F>
std::string expect_error(mp::ErrorKind kind, F&& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "expected mp::Error, nothing was thrown";
  } catch (const mp::Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.kind(), kind) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
    return msg;
  }
  return "";
}

// Every rank of a W-rank layout reads its ranges; each must equal the original's elements.
void expect_reads_match(const mp::ShardedCheckpointReader& rd, const Original& o, const Layout& layout, int w) {
  for (int r = 0; r < w; ++r)
    for (const auto& [name, rg] : layout(r, w))
      for (const std::string& k : kKinds)
        EXPECT_TRUE(same_bytes(rd.read_range(name, k, rg.begin, rg.end), o.flat.at({name, k}).slice(0, rg.begin, rg.end)))
            << name << " " << k << " rank " << r << " of " << w;
}

void edit_json(const std::string& path, const std::function<void(nlohmann::json&)>& f) {
  auto j = nlohmann::json::parse(mp::read_file(path));
  f(j);
  mp::write_file_atomic(path, j.dump(1));
}

}  // namespace

TEST(ShardedCheckpoint, WrittenAtTwoReadAtFourAndOne) {
  ScratchDir dir;
  const Original o = make_original();
  const std::string ck = save(dir.path(), 6, 2, o, flat_layout(o));
  EXPECT_EQ(ck, dir.file("checkpoint-6"));
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(ck)) names.insert(e.path().filename().string());
  EXPECT_EQ(names, (std::set<std::string>{"manifest.json", "rank-0-of-2.safetensors", "rank-1-of-2.safetensors"}));

  mp::ShardedCheckpointReader rd(ck);
  EXPECT_EQ(rd.world_size(), 2);
  EXPECT_EQ(rd.step(), 6);
  EXPECT_EQ(rd.shard_mode(), "full");
  EXPECT_EQ(rd.state().tokens, 6000);
  EXPECT_EQ(rd.state().sampler_position, 77u);
  EXPECT_EQ(rd.config().pattern(), o.config.pattern());
  ASSERT_EQ(rd.tensors().size(), o.specs.size());
  for (size_t i = 0; i < o.specs.size(); ++i) EXPECT_EQ(rd.tensors()[i].name, o.specs[i].name);

  // Four ranks in either layout, and one rank reading every tensor whole.
  expect_reads_match(rd, o, flat_layout(o), 4);
  expect_reads_match(rd, o, per_tensor_layout(o), 4);
  for (const auto& s : o.specs)
    for (const std::string& k : kKinds) {
      at::Tensor t = rd.read(s.name, k);
      EXPECT_EQ(t.sizes().vec(), s.shape) << s.name;
      EXPECT_TRUE(same_bytes(t.reshape({-1}), o.flat.at({s.name, k}))) << s.name << " " << k;
    }
  expect_error(mp::ErrorKind::Runtime, [&] { rd.read_range(o.specs[0].name, "weight", 5, 2); }, {"[5, 2)"});
  expect_error(mp::ErrorKind::BadInput, [&] { rd.read("nope", "weight"); }, {"'nope'"});
}

TEST(ShardedCheckpoint, WrittenAtFourOrOneReadAtTwoAndThree) {
  const Original o = make_original();
  for (int w : {4, 1}) {
    ScratchDir dir;
    mp::ShardedCheckpointReader rd(save(dir.path(), 3, w, o, per_tensor_layout(o)));
    EXPECT_EQ(rd.world_size(), w);
    expect_reads_match(rd, o, flat_layout(o), 2);
    expect_reads_match(rd, o, flat_layout(o), 3);
    expect_reads_match(rd, o, per_tensor_layout(o), 3);
  }
}

TEST(ShardedCheckpoint, ConsolidatesToTheHuggingFaceCheckpointBitForBit) {
  ScratchDir dir;
  const Original o = make_original();
  const std::string ck = save(dir.path(), 2, 2, o, flat_layout(o));

  // As the run's compute dtype (the config's): bf16 of the fp32 masters.
  mp::consolidate_sharded_checkpoint(ck, dir.file("hf"));
  mp::Model m = mp::load_model(dir.file("hf"));
  EXPECT_EQ(m.config.dtype, "bfloat16");
  EXPECT_EQ(m.config.pattern(), o.config.pattern());
  ASSERT_EQ(m.weights.size(), o.specs.size());
  for (const auto& [name, t] : o.model.weights) EXPECT_TRUE(same_bytes(m.w(name), t.to(at::kBFloat16))) << name;

  // fp32 in several files: the masters exactly, and the same bytes save_model writes.
  mp::ConsolidateOptions co;
  co.dtype = at::kFloat;
  co.max_shard_bytes = 20000;
  mp::consolidate_sharded_checkpoint(ck, dir.file("hf32"), co);
  EXPECT_TRUE(fs::exists(dir.file("hf32/model.safetensors.index.json")));
  mp::Model m32 = mp::load_model(dir.file("hf32"));
  for (const auto& [name, t] : o.model.weights) EXPECT_TRUE(same_bytes(m32.w(name), t)) << name;

  mp::SaveOptions so;
  so.max_shard_bytes = 20000;
  mp::save_model(o.model, dir.file("saved"), so);
  for (const auto& e : fs::directory_iterator(dir.file("saved"))) {
    const std::string f = e.path().filename().string();
    if (f == "config.json") continue;
    EXPECT_EQ(mp::read_file(e.path().string()), mp::read_file(dir.file("hf32/" + f))) << f;
  }

  // The whole student, as the trainer resumes it without sharding.
  mp::Model whole = mp::load_sharded_model(mp::ShardedCheckpointReader(ck));
  for (const auto& [name, t] : o.model.weights) EXPECT_TRUE(same_bytes(whole.w(name), t)) << name;
}

TEST(ShardedCheckpoint, BF16WeightsAndOptimizerStateRestoreWhole) {
  ScratchDir dir;
  const Original o = make_original();
  const std::string ck = save(dir.path(), 4, 3, o, flat_layout(o), at::kBFloat16);
  mp::ShardedCheckpointReader rd(ck);
  EXPECT_EQ(rd.dtype(o.specs[0].name, "weight"), mp::StDType::BF16);
  EXPECT_EQ(rd.dtype(o.specs[0].name, "exp_avg"), mp::StDType::F32);

  // The unsharded optimizer gets masters (bf16 widened) and moments whole.
  std::vector<std::pair<std::string, at::Tensor>> params;
  for (const auto& [name, t] : o.model.ordered()) params.emplace_back(name, at::zeros_like(t));
  mp::AdamW opt(params, mp::AdamWOptions{});
  mp::load_optimizer_state(ck, opt, 4);
  EXPECT_EQ(opt.steps_taken(), 4);
  std::map<std::string, at::Tensor> st;
  for (auto& [n, t] : opt.state_tensors()) st[n] = t;
  for (const auto& s : o.specs) {
    auto flat = [&](const std::string& k) { return o.flat.at({s.name, k}).view(s.shape); };
    EXPECT_TRUE(same_bytes(st.at("master." + s.name), flat("weight").to(at::kBFloat16).to(at::kFloat))) << s.name;
    EXPECT_TRUE(same_bytes(st.at("exp_avg." + s.name), flat("exp_avg"))) << s.name;
    EXPECT_TRUE(same_bytes(st.at("exp_avg_sq." + s.name), flat("exp_avg_sq"))) << s.name;
  }
  EXPECT_EQ(mp::read_trainer_state(ck).optimizer_steps, 4);
  EXPECT_EQ(mp::read_trainer_state(ck).config, (nlohmann::json{{"lr", 0.001}}));
}

TEST(ShardedCheckpoint, UncommittedStepIsIgnoredByLatestAndCleanedUp) {
  ScratchDir dir;
  const Original o = make_original();
  save(dir.path(), 2, 2, o, flat_layout(o));
  EXPECT_EQ(mp::latest_checkpoint(dir.path()).value_or(""), dir.file("checkpoint-2"));
  EXPECT_EQ(mp::read_trainer_state(dir.file("checkpoint-2")).step, 2);

  // Step 4: both ranks wrote, but the run died before rank 0 committed.
  write_rank(dir.path(), 4, 0, 2, o, flat_layout(o));
  write_rank(dir.path(), 4, 1, 2, o, flat_layout(o));
  EXPECT_TRUE(fs::is_directory(mp::sharded_staging_dir(dir.path(), 4)));
  EXPECT_FALSE(fs::exists(dir.file("checkpoint-4")));
  EXPECT_EQ(mp::latest_checkpoint(dir.path()).value_or(""), dir.file("checkpoint-2"));
  mp::remove_partial_checkpoints(dir.path());
  EXPECT_FALSE(fs::exists(mp::sharded_staging_dir(dir.path(), 4)));
  EXPECT_EQ(mp::latest_checkpoint(dir.path()).value_or(""), dir.file("checkpoint-2"));

  // Step 4 again at world size 4 with only three ranks written: the commit refuses and nothing
  // changes; then the fourth rank writes, the commit succeeds, and leftovers are gone.
  write_rank(dir.path(), 4, 0, 2, o, flat_layout(o));  // a stale file of another world size
  for (int r = 0; r < 3; ++r) write_rank(dir.path(), 4, r, 4, o, flat_layout(o));
  expect_error(mp::ErrorKind::Runtime, [&] { mp::commit_sharded_checkpoint(dir.path(), commit_info(o, 4, 4)); },
               {"rank-3-of-4.safetensors", "missing"});
  EXPECT_FALSE(fs::exists(dir.file("checkpoint-4")));
  EXPECT_EQ(mp::latest_checkpoint(dir.path()).value_or(""), dir.file("checkpoint-2"));
  write_rank(dir.path(), 4, 3, 4, o, flat_layout(o));
  mp::commit_sharded_checkpoint(dir.path(), commit_info(o, 4, 4));
  EXPECT_EQ(mp::latest_checkpoint(dir.path()).value_or(""), dir.file("checkpoint-4"));
  EXPECT_FALSE(fs::exists(dir.file("checkpoint-4/rank-0-of-2.safetensors")));
  expect_reads_match(mp::ShardedCheckpointReader(dir.file("checkpoint-4")), o, per_tensor_layout(o), 2);
}

TEST(ShardedCheckpoint, CommitRefusesOverlapsAndGaps) {
  ScratchDir dir;
  const Original o = make_original();
  const std::string t0 = o.specs[0].name;
  const int64_t n0 = o.flat.at({t0, "weight"}).numel();
  auto layout_with = [&](Range r1) {
    return [&, r1](int r, int w) {
      auto m = per_tensor_layout(o)(r, w);
      if (r == 1) m[t0] = r1;
      return m;
    };
  };
  // Rank 1's part of the first tensor starts one element early (overlap) or late (gap).
  for (int64_t shift : {-1, 1}) {
    const std::string output = dir.file("run" + std::to_string(shift));
    fs::create_directories(output);
    expect_error(mp::ErrorKind::Runtime,
                 [&] { save(output, 2, 2, o, layout_with({n0 / 2 + shift, n0})); },
                 {t0, shift < 0 ? "both hold" : "held by no rank"});
    EXPECT_FALSE(fs::exists(output + "/checkpoint-2"));
    EXPECT_FALSE(fs::exists(output + "/latest"));
  }
}

TEST(ShardedCheckpoint, DamagedFilesAreOneLineBadInput) {
  ScratchDir dir;
  const Original o = make_original();
  const std::string good = save(dir.path(), 2, 2, o, per_tensor_layout(o));  // every tensor on both ranks
  const std::string t0 = o.specs[0].name;
  int n = 0;
  // A fresh copy of the checkpoint, damaged by `damage`; opening it must fail naming `needles`.
  auto check = [&](const std::function<void(const std::string&)>& damage, const std::vector<std::string>& needles) {
    const std::string ck = dir.file("copy" + std::to_string(n++));
    fs::copy(good, ck);
    damage(ck);
    expect_error(mp::ErrorKind::BadInput, [&] { mp::ShardedCheckpointReader r(ck); }, needles);
  };
  const std::string r1 = "rank-1-of-2.safetensors";
  check([&](const std::string& ck) { fs::remove(ck + "/" + r1); }, {r1, "missing"});
  check([&](const std::string& ck) { fs::resize_file(ck + "/" + r1, fs::file_size(ck + "/" + r1) - 10); },
        {r1, "bytes"});
  check([&](const std::string& ck) {  // header length scrambled, size unchanged
    std::fstream f(ck + "/" + r1, std::ios::in | std::ios::out | std::ios::binary);
    f.write("\xff\xff\xff\xff\xff\xff\xff\x7f", 8);
  }, {r1});
  check([&](const std::string& ck) { fs::copy_file(good + "/rank-0-of-2.safetensors", ck + "/" + r1,
                                                     fs::copy_options::overwrite_existing); },
        {r1});
  check([&](const std::string& ck) {
    const std::string m = mp::read_file(ck + "/manifest.json");
    mp::write_file_atomic(ck + "/manifest.json", m.substr(0, m.size() / 2));
  }, {"manifest.json", "not valid JSON"});
  check([&](const std::string& ck) { fs::remove(ck + "/manifest.json"); }, {"manifest.json", "not found"});
  // Hand-edited layouts: a piece of rank 1 one element early (overlap) or late (gap).
  for (int64_t shift : {-1, 1})
    check([&](const std::string& ck) {
      edit_json(ck + "/manifest.json", [&](nlohmann::json& j) {
        for (auto& p : j["ranks"][1]["pieces"])
          if (p["begin"].get<int64_t>() > 0) {  // a piece that starts inside its tensor
            p["begin"] = p["begin"].get<int64_t>() + shift;
            break;
          }
      });
    }, {"manifest.json", shift < 0 ? "both hold" : "held by no rank"});
  check([&](const std::string& ck) {
    edit_json(ck + "/manifest.json", [&](nlohmann::json& j) { j["tensors"][0]["shape"][0] = 1000; });
  }, {"manifest.json", t0, "held by no rank"});
  check([&](const std::string& ck) {  // the manifest's dtype disagrees with the rank file's
    edit_json(ck + "/manifest.json", [&](nlohmann::json& j) {
      for (auto& r : j["ranks"])
        for (auto& p : r["pieces"])
          if (p["kind"] == "weight") p["dtype"] = "BF16";
    });
  }, {"rank-0-of-2.safetensors", t0, "is F32, expected BF16"});
  check([&](const std::string& ck) {
    edit_json(ck + "/manifest.json", [&](nlohmann::json& j) { j["ranks"][1]["pieces"][0]["dtype"] = "I32"; });
  }, {"manifest.json", "is I32"});
  check([&](const std::string& ck) {
    edit_json(ck + "/manifest.json", [&](nlohmann::json& j) { j["world_size"] = 3; });
  }, {"manifest.json", "lists 2 ranks"});
  check([&](const std::string& ck) {
    edit_json(ck + "/manifest.json", [&](nlohmann::json& j) { j["ranks"][0].erase("pieces"); });
  }, {"manifest.json", "'pieces'"});
}

TEST(ShardedCheckpoint, ConvertCommandConsolidates) {
  ScratchDir dir;
  const Original o = make_original();
  const std::string ck = save(dir.path(), 2, 2, o, flat_layout(o));
  auto r = mp::test::run_cli("convert --model " + ck + " --output " + dir.file("hf") + " --dtype fp32");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  mp::Model m = mp::load_model(dir.file("hf"));
  for (const auto& [name, t] : o.model.weights) EXPECT_TRUE(same_bytes(m.w(name), t)) << name;

  fs::remove(ck + "/rank-0-of-2.safetensors");
  r = mp::test::run_cli("convert --model " + ck + " --output " + dir.file("hf2"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("rank-0-of-2.safetensors"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir.file("hf2")));
}
