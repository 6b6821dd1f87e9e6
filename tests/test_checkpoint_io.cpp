// Checkpoint folders: single-file and sharded round trips, the index's consistency checks, atomic
// writes, and byte-size parsing.
#include "model/checkpoint_io.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "tests/expect_error.h"
#include "tests/test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>

namespace fs = std::filesystem;
using mp::test::ScratchDir;

namespace {

using mp::test::expect_bad_input;

bool same_bytes(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  if (a.numel() == 0) return true;
  at::Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * ca.element_size()) == 0;
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Writes an index by hand: weight_map entries as given.
void write_index(const std::string& dir, const std::vector<std::pair<std::string, std::string>>& map) {
  nlohmann::json wm = nlohmann::json::object();
  for (const auto& [name, file] : map) wm[name] = file;
  nlohmann::json j = {{"metadata", {{"total_size", 0}}}, {"weight_map", wm}};
  mp::write_file_atomic(dir + "/model.safetensors.index.json", j.dump(2));
}

}  // namespace

TEST(CheckpointIO, SingleFileRoundTrip) {
  ScratchDir dir;
  std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"backbone.norm_f.weight", at::randn({16}).to(at::kBFloat16)},
      {"lm_head.weight", at::randn({8, 16})},
      {"backbone.embeddings.weight", at::randn({8, 16}).to(at::kHalf)},
      {"empty", at::empty({0, 3})},
  };
  mp::write_checkpoint_tensors(dir.path(), tensors, mp::parse_byte_size("5GB"));
  EXPECT_EQ(files_in(dir.path()), std::vector<std::string>{"model.safetensors"});

  mp::CheckpointReader r(dir.path());
  EXPECT_EQ(r.dir(), dir.path());
  EXPECT_EQ(r.names(), (std::vector<std::string>{"backbone.embeddings.weight", "backbone.norm_f.weight", "empty",
                                                 "lm_head.weight"}));
  for (const auto& [name, t] : tensors) {
    EXPECT_TRUE(r.has(name));
    EXPECT_TRUE(same_bytes(r.load(name), t)) << name;
  }
  EXPECT_EQ(r.info("lm_head.weight").shape, (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(r.total_bytes(), 16u * 2 + 8 * 16 * 4 + 8 * 16 * 2);
  EXPECT_FALSE(r.has("nope"));
  expect_bad_input([&] { r.load("nope"); }, {dir.path(), "tensor 'nope'", "not found"});
  expect_bad_input([&] { r.info("nope"); }, {dir.path(), "tensor 'nope'"});
}

TEST(CheckpointIO, ShardedRoundTrip) {
  ScratchDir dir;
  at::manual_seed(3);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  uint64_t total = 0;
  for (int i = 0; i < 7; ++i) {
    // 4096 bytes each, except one 24000-byte tensor larger than the 10 KB limit.
    at::Tensor t = i == 3 ? at::randn({6000}) : (i % 2 ? at::randn({32, 64}).to(at::kBFloat16) : at::randn({32, 32}));
    tensors.emplace_back("layers." + std::to_string(i) + ".weight", t);
    total += t.numel() * t.element_size();
  }
  const uint64_t limit = mp::parse_byte_size("10KB");
  mp::write_checkpoint_tensors(dir.path(), tensors, limit);

  // Greedy filling: [0,1] [2] [3: oversize, alone] [4,5] [6].
  const std::vector<std::string> expected_files = {
      "model-00001-of-00005.safetensors", "model-00002-of-00005.safetensors", "model-00003-of-00005.safetensors",
      "model-00004-of-00005.safetensors", "model-00005-of-00005.safetensors", "model.safetensors.index.json"};
  EXPECT_EQ(files_in(dir.path()), expected_files) << "shards and index only, no temporaries";

  auto index = nlohmann::json::parse(mp::read_file(dir.file("model.safetensors.index.json")));
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  const auto& wm = index["weight_map"];
  EXPECT_EQ(wm.size(), tensors.size());
  const std::vector<int> shard_of = {1, 1, 2, 3, 4, 4, 5};
  for (size_t i = 0; i < tensors.size(); ++i)
    EXPECT_EQ(wm[tensors[i].first], "model-0000" + std::to_string(shard_of[i]) + "-of-00005.safetensors")
        << tensors[i].first;

  mp::CheckpointReader r(dir.path());
  EXPECT_EQ(r.names().size(), tensors.size());
  EXPECT_EQ(r.total_bytes(), total);
  for (const auto& [name, t] : tensors) EXPECT_TRUE(same_bytes(r.load(name), t)) << name;
}

TEST(CheckpointIO, PrefersIndexOverSingleFile) {
  ScratchDir dir;
  mp::write_safetensors(dir.file("model.safetensors"), {{"stale", at::zeros({2})}});
  mp::write_safetensors(dir.file("model-00001-of-00001.safetensors"), {{"fresh", at::ones({2})}});
  write_index(dir.path(), {{"fresh", "model-00001-of-00001.safetensors"}});
  mp::CheckpointReader r(dir.path());
  EXPECT_EQ(r.names(), std::vector<std::string>{"fresh"});
}

TEST(CheckpointIO, RejectsMissingFolder) {
  ScratchDir dir;
  const std::string missing = dir.file("nope");
  expect_bad_input([&] { mp::CheckpointReader r(missing); }, {missing + ": checkpoint folder not found"});
}

TEST(CheckpointIO, RejectsFolderWithoutCheckpoint) {
  ScratchDir dir;
  expect_bad_input([&] { mp::CheckpointReader r(dir.path()); },
                   {dir.path(), "model.safetensors", "model.safetensors.index.json"});
}

TEST(CheckpointIO, RejectsIndexNamingMissingShard) {
  ScratchDir dir;
  mp::write_safetensors(dir.file("model-00001-of-00002.safetensors"), {{"a", at::ones({2})}});
  write_index(dir.path(), {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}});
  expect_bad_input([&] { mp::CheckpointReader r(dir.path()); },
                   {"model.safetensors.index.json", "shard 'model-00002-of-00002.safetensors'", "tensor 'b'",
                    "not found"});
}

TEST(CheckpointIO, RejectsTensorMappedToShardThatLacksIt) {
  ScratchDir dir;
  mp::write_safetensors(dir.file("model-00001-of-00002.safetensors"), {{"a", at::ones({2})}});
  mp::write_safetensors(dir.file("model-00002-of-00002.safetensors"), {{"b", at::ones({2})}});
  write_index(dir.path(), {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00001-of-00002.safetensors"},
                           {"c", "model-00002-of-00002.safetensors"}});
  expect_bad_input([&] { mp::CheckpointReader r(dir.path()); },
                   {"model.safetensors.index.json", "tensor 'b'", "model-00001-of-00002.safetensors",
                    "does not contain it"});
}

TEST(CheckpointIO, RejectsTensorInTwoShards) {
  ScratchDir dir;
  mp::write_safetensors(dir.file("model-00001-of-00002.safetensors"), {{"a", at::ones({2})}, {"b", at::ones({2})}});
  mp::write_safetensors(dir.file("model-00002-of-00002.safetensors"), {{"b", at::ones({2})}, {"c", at::ones({2})}});
  write_index(dir.path(), {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00001-of-00002.safetensors"},
                           {"c", "model-00002-of-00002.safetensors"}});
  expect_bad_input([&] { mp::CheckpointReader r(dir.path()); },
                   {"model.safetensors.index.json", "tensor 'b'", "two shards", "model-00001-of-00002.safetensors",
                    "model-00002-of-00002.safetensors"});
}

TEST(CheckpointIO, RejectsCorruptShardNamingIt) {
  ScratchDir dir;
  std::string shard = dir.file("model-00001-of-00001.safetensors");
  mp::write_safetensors(shard, {{"a", at::ones({4})}});
  fs::resize_file(shard, fs::file_size(shard) - 1);
  write_index(dir.path(), {{"a", "model-00001-of-00001.safetensors"}});
  expect_bad_input([&] { mp::CheckpointReader r(dir.path()); }, {shard, "tensor 'a'"});
}

TEST(CheckpointIO, RejectsInvalidIndex) {
  ScratchDir dir;
  mp::write_file_atomic(dir.file("model.safetensors.index.json"), "{\"weight_map\": [");
  expect_bad_input([&] { mp::CheckpointReader r(dir.path()); }, {"model.safetensors.index.json", "JSON"});
  mp::write_file_atomic(dir.file("model.safetensors.index.json"), "{\"metadata\": {}}");
  expect_bad_input([&] { mp::CheckpointReader r(dir.path()); }, {"model.safetensors.index.json", "weight_map"});
}

TEST(CheckpointIO, FailedWriteLeavesNothing) {
  ScratchDir dir;
  std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"a", at::ones({1024})}, {"b", at::ones({1024})}, {"c", at::ones({4}, at::kComplexFloat)}};
  expect_bad_input([&] { mp::write_checkpoint_tensors(dir.path(), tensors, 4096); },
                   {dir.path(), "tensor 'c'", "cannot be written"});
  EXPECT_TRUE(fs::is_empty(dir.path())) << "no shard, index or temporary may remain";
  expect_bad_input([&] { mp::write_checkpoint_tensors(dir.path(), {{"a", at::ones({1})}, {"a", at::ones({1})}}, 0); },
                   {"tensor 'a'", "twice"});
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(CheckpointIO, ParseByteSize) {
  EXPECT_EQ(mp::parse_byte_size("20KB"), 20000u);
  EXPECT_EQ(mp::parse_byte_size("5GB"), 5000000000u);
  EXPECT_EQ(mp::parse_byte_size("1.5GiB"), 1610612736u);
  EXPECT_EQ(mp::parse_byte_size("100MiB"), 104857600u);
  EXPECT_EQ(mp::parse_byte_size("500MB"), 500000000u);
  EXPECT_EQ(mp::parse_byte_size("1000"), 1000u);
  EXPECT_EQ(mp::parse_byte_size("0"), 0u);
  EXPECT_EQ(mp::parse_byte_size("64B"), 64u);
  EXPECT_EQ(mp::parse_byte_size(" 2 kib "), 2048u);
  EXPECT_EQ(mp::parse_byte_size("0.5KB"), 500u);
  EXPECT_EQ(mp::parse_byte_size("1TB"), 1000000000000u);
}

TEST(CheckpointIO, ParseByteSizeRejectsNonsense) {
  for (const char* bad : {"", "GB", "abc", "-5GB", "5XB", "5 G B", "1.2.3MB", "99999999999999999999999GB"})
    expect_bad_input([&] { mp::parse_byte_size(bad); }, {std::string("'") + bad + "'"});
}
