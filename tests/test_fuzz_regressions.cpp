// Inputs that once crashed a fuzz target (fuzz/), kept as files under
// tests/fixtures/fuzz_regressions/FORMAT/: each is read as the fuzz target reads it and must now be
// refused as bad input with the one-line message its CASE.expect file quotes (or, where the
// bug was refusing a valid file, accepted: CASE.expect says "accepted"). The repository's own
// files of every format must be accepted, so that the readers the fuzzers drive are not refusing
// everything.
#include "common/printable.h"
#include "eval/task_spec.h"
#include "fuzz/format_readers.h"
#include "tests/test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

const mp::fuzz::Format& format(const std::string& name) {
  for (const auto& f : mp::fuzz::formats())
    if (name == f.name) return f;
  throw std::invalid_argument("no format " + name);
}

std::string refusal(const std::string& name, const std::string& bytes) {
  return mp::fuzz::refusal_of(name.c_str(), format(name).read, reinterpret_cast<const uint8_t*>(bytes.data()),
                              bytes.size());
}

TEST(FuzzRegressions, EveryKeptInputIsRefusedWithItsMessage) {
  const fs::path root = mp::test::source_path("tests/fixtures/fuzz_regressions");
  int cases = 0;
  for (const auto& f : mp::fuzz::formats()) {
    const fs::path dir = root / f.name;
    if (!fs::is_directory(dir)) continue;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.path().extension() == ".expect") continue;
      ++cases;
      std::string expect = slurp(e.path().string() + ".expect");
      while (!expect.empty() && (expect.back() == '\n' || expect.back() == '\r')) expect.pop_back();
      ASSERT_FALSE(expect.empty()) << e.path() << ": no .expect file beside it";
      std::string message;
      try {
        message = refusal(f.name, slurp(e.path()));
      } catch (const std::exception& ex) {
        ADD_FAILURE() << e.path() << ": " << ex.what();
        continue;
      }
      if (expect == "accepted") {
        EXPECT_EQ(message, "") << e.path();
        continue;
      }
      EXPECT_NE(message.find(expect), std::string::npos) << e.path() << ": " << message;
      const std::string line = mp::printable(message);
      EXPECT_EQ(line.find('\n'), std::string::npos) << e.path();
      EXPECT_LE(line.size(), 2000u) << e.path();
    }
  }
  EXPECT_GT(cases, 0);
}

TEST(FuzzRegressions, TheRepositorysOwnFilesAreAccepted) {
  auto accepted = [](const std::string& name, const std::string& rel) {
    EXPECT_EQ(refusal(name, slurp(mp::test::source_path(rel))), "") << rel;
  };
  for (const char* c : {"configs/nemotron-h-8b/config.json", "configs/nemotron-h-56b/config.json",
                        "configs/demo/config.json", "tests/fixtures/parity/mqa_g1_sharded/model/config.json"})
    accepted("config", c);
  for (const char* s : {"tests/fixtures/parity/gqa_g2_single/model/model.safetensors",
                        "tests/fixtures/parity/mqa_g1_sharded/model/model-00003-of-00009.safetensors",
                        "tests/fixtures/parity/gqa_g2_single/inputs.safetensors"})
    accepted("safetensors", s);
  accepted("shard_index", "tests/fixtures/parity/mqa_g1_sharded/model/model.safetensors.index.json");
  accepted("budget", "configs/budgets/rtx5090-fp4-1m.json");
  for (const char* r : {"configs/recipes/minipuzzle-kd.json", "configs/recipes/cpu-demo-kd.json"}) accepted("recipe", r);
  // Every built-in task, as a task file on one line, with its documents from the prompt fixtures.
  for (const std::string& name : mp::eval::builtin_task_names()) {
    const fs::path docs = mp::test::source_path("tests/fixtures/eval_tasks/" + name + ".docs.jsonl");
    if (!fs::exists(docs)) continue;
    nlohmann::json task = nlohmann::json::parse(mp::eval::builtin_task_json(name));
    task["data"] = docs.filename().string();
    EXPECT_EQ(refusal("task", task.dump() + "\n" + slurp(docs)), "") << name;
  }
}

TEST(FuzzRegressions, AnIndexIsCheckedAgainstTheSizeOfItsBin) {
  // One document of one sequence: 3 uint16 tokens at byte 0 of the .bin.
  std::string idx("MMIDIDX\0\0", 9);
  auto put = [&idx](const void* p, size_t n) { idx.append(static_cast<const char*>(p), n); };
  const uint64_t version = 1, sequences = 1, documents = 2;
  const uint8_t dtype = 8;
  const int32_t length = 3;
  const int64_t pointer = 0, doc0 = 0, doc1 = 1;
  put(&version, 8), put(&dtype, 1), put(&sequences, 8), put(&documents, 8);
  put(&length, 4), put(&pointer, 8), put(&doc0, 8), put(&doc1, 8);
  auto with_bin = [&](uint64_t bin_bytes) {
    std::string in(8, '\0');
    std::memcpy(in.data(), &bin_bytes, 8);
    return refusal("megatron_idx", in + idx);
  };
  EXPECT_EQ(with_bin(6), "");
  EXPECT_NE(with_bin(5).find("tokens.bin: too short for pointers[0]"), std::string::npos) << with_bin(5);
}

}  // namespace
