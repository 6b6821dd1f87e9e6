// Shared set-up for the distill tests: a tiny hybrid config, a teacher and a student checkpoint,
// and a small repetitive token dataset (IndexedDatasetWriter) that a tiny model learns quickly.
#pragma once

#include "data/indexed_dataset.h"
#include "distill/train_config.h"
#include "model/model.h"
#include "tests/test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace mp::test {

inline const char* kDistillTinyConfig = R"({"hybrid_override_pattern": "M*-M-", "vocab_size": 61,
  "hidden_size": 32, "intermediate_size": 48, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
  "mamba_num_heads": 4, "mamba_head_dim": 8, "ssm_state_size": 8, "n_groups": 2, "conv_kernel": 4,
  "chunk_size": 8})";

inline ModelConfig distill_tiny_config() { return config_from_json_text(kDistillTinyConfig, "tiny"); }

// DIR/config.json (the tiny config with a byte vocabulary) and DIR/tok (byte tokens of a repeated
// sentence, from `minipuzzle data from-text`): what the CLI-level train/distill tests start from.
inline void write_byte_model_and_tokens(const ScratchDir& dir) {
  std::string cfg = kDistillTinyConfig;
  cfg.replace(cfg.find("\"vocab_size\": 61"), 16, "\"vocab_size\": 256");
  std::ofstream(dir.file("config.json")) << cfg;
  std::string text;
  for (int i = 0; i < 40; ++i) text += "We the People of the United States, in Order to form a more perfect Union. ";
  std::ofstream(dir.file("a.txt")) << text;
  auto r = run_cli("data from-text " + dir.file("a.txt") + " --output " + dir.file("tok"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
}

// A 37-token motif repeated: next-token prediction is learnable from a few tokens of context.
inline void write_repetitive_data(const std::string& prefix, int64_t tokens, int64_t vocab = 61) {
  IndexedDatasetWriter w(prefix, TokenDType::U16);
  std::vector<int64_t> seq;
  for (int64_t i = 0; i < tokens; ++i) seq.push_back(((i % 37) * 7 + (i % 37) / 5) % vocab);
  w.add_sequence(seq);
  w.end_document();
  w.finish();
}

// Every record of OUTPUT/metrics.jsonl with the given type.
inline std::vector<nlohmann::json> read_metrics(const std::string& output, const std::string& type) {
  std::ifstream in(output + "/metrics.jsonl");
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == type) out.push_back(j);
  }
  return out;
}

class DistillFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    write_repetitive_data(dir.file("data"), 3000);
    write_repetitive_data(dir.file("heldout"), 600);
    save_model(make_random_model(distill_tiny_config(), 1, at::kFloat), dir.file("teacher"));
    save_model(make_random_model(distill_tiny_config(), 2, at::kFloat), dir.file("student"));
  }
  TrainConfig config(const std::string& mode, const std::string& output) const {
    TrainConfig c = default_train_config(mode);
    if (mode == "distill") c.teacher = dir.file("teacher"), c.student = dir.file("student");
    else c.model = dir.file("student");
    c.data = dir.file("data");
    c.output = dir.file(output);
    c.steps = 6, c.seq_len = 16, c.micro_batch = 2, c.global_batch = 4;
    c.lr = 1e-2, c.min_lr = 1e-3, c.warmup = 2, c.seed = 5, c.quiet = true;
    return c;
  }
  ScratchDir dir;
};

}  // namespace mp::test
