// Tokenizer and generation files follow a checkpoint through the commands that derive one from
// another: the library's selection of companion files, and prune / convert end to end.
#include "model/companion_files.h"
#include "model/model.h"
#include "tests/prune_fixtures.h"
#include "tests/test_util.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using mp::test::run_cli;

namespace {

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

// A parent as a user's folder looks: weights, config, tokenizer files, a README, and things that
// are not companions (sub-folder, hidden file, pipe, other weight formats).
void add_companions(const std::string& dir) {
  write_text(dir + "/tokenizer.json", "{\"model\": {\"type\": \"BPE\"}}\n");
  write_text(dir + "/tokenizer_config.json", "{\"eos_token\": \"</s>\"}\n");
  write_text(dir + "/special_tokens_map.json", "{}\n");
  write_text(dir + "/generation_config.json", "{\"eos_token_id\": 2}\n");
  write_text(dir + "/README.md", "# a model card\n");
  fs::create_directories(dir + "/blobs");
  write_text(dir + "/blobs/abc123", "chat template body\n");
  fs::create_symlink(fs::absolute(dir + "/blobs/abc123"), dir + "/chat_template.jinja");
  write_text(dir + "/.cache_marker", "hidden\n");
  write_text(dir + "/pytorch_model.bin", "not copied\n");
  write_text(dir + "/model.safetensors.index.json.bak.index.json", "{}\n");
  ASSERT_EQ(mkfifo((dir + "/a_pipe").c_str(), 0600), 0);
}

const std::vector<std::string> kExpected = {"README.md",          "chat_template.jinja", "generation_config.json",
                                            "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"};

TEST(CompanionFiles, SelectsNonWeightRegularFilesFollowingLinks) {
  mp::test::ScratchDir dir;
  const std::string parent = dir.file("parent");
  mp::save_model(mp::test::prune_model(31), parent);
  add_companions(parent);
  EXPECT_EQ(mp::companion_files(parent), kExpected);
  EXPECT_TRUE(mp::companion_files(dir.file("missing")).empty());
  EXPECT_TRUE(mp::companion_files("").empty());
}

TEST(CompanionFiles, SaveModelCopiesThemAndKeepsItsOwnConfig) {
  mp::test::ScratchDir dir;
  const std::string parent = dir.file("parent");
  mp::Model m = mp::test::prune_model(32);
  mp::save_model(m, parent);
  add_companions(parent);
  mp::SaveOptions so;
  so.companions_from = parent;
  mp::save_model(m, dir.file("copy"), so);
  for (const auto& name : kExpected) {
    ASSERT_TRUE(fs::is_regular_file(fs::symlink_status(dir.file("copy/" + name)))) << name;  // a file, not a link
    EXPECT_EQ(slurp(dir.file("copy/" + name)), slurp(parent + "/" + name)) << name;
  }
  EXPECT_FALSE(fs::exists(dir.file("copy/pytorch_model.bin")));
  EXPECT_FALSE(fs::exists(dir.file("copy/blobs")));
  EXPECT_FALSE(fs::exists(dir.file("copy/.cache_marker")));
  EXPECT_EQ(mp::load_model(dir.file("copy")).config.hidden_size, m.config.hidden_size);
}

TEST(CompanionFiles, ConvertCarriesThem) {
  mp::test::ScratchDir dir;
  const std::string parent = dir.file("parent");
  mp::save_model(mp::test::prune_model(33), parent);
  add_companions(parent);
  auto r = run_cli("convert --model " + parent + " --output " + dir.file("converted") + " --dtype bf16");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(mp::companion_files(dir.file("converted")), kExpected);
  EXPECT_EQ(slurp(dir.file("converted/tokenizer.json")), slurp(parent + "/tokenizer.json"));
}

}  // namespace
