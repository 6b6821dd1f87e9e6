// The native tokenizer against Hugging Face `tokenizers`: ids recorded by
// scripts/tokenizer_reference.js for real tokenizer.json files (GPT-2, Qwen3: byte-level BPE;
// Llama 2: SentencePiece-style BPE with byte fallback) on the hard-cases text (line by line,
// with and without special tokens, and their decoding) and on whole documents. Zero mismatches
// expected; decode(encode(x)) == x for GPT-2 (Qwen3 gives NFC(x), as Hugging Face). The tokenizer files come from scripts/fetch_tokenizers.sh (.tokenizers/, or
// MP_TOKENIZERS_DIR); the tests skip when they are absent.
#include "data/tokenizer/tokenizer.h"
#include "tests/test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string tokenizers_dir() {
  if (const char* d = std::getenv("MP_TOKENIZERS_DIR")) return d;
  return mp::test::source_path(".tokenizers");
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0, nl;
  while ((nl = s.find('\n', start)) != std::string::npos) {
    out.push_back(s.substr(start, nl - start));
    start = nl + 1;
  }
  if (start < s.size()) out.push_back(s.substr(start));
  return out;
}

// byte_level: decode(encode(x)) == x, as Hugging Face gives for byte-level BPE without a
// normalizer; otherwise decode(encode(x)) is checked against Hugging Face's decoding.
void check_against_reference(const std::string& name, bool byte_level) {
  const std::string tok_path = tokenizers_dir() + "/" + name + "/tokenizer.json";
  if (!fs::exists(tok_path)) GTEST_SKIP() << tok_path << " absent: run scripts/fetch_tokenizers.sh";
  auto tok = mp::Tokenizer::load(tok_path);
  const nlohmann::json fx = nlohmann::json::parse(slurp(mp::test::source_path("tests/fixtures/tokenizer/" + name + ".json")));
  const std::vector<std::string> lines = split_lines(slurp(mp::test::source_path("tests/fixtures/tokenizer/hard_cases.txt")));
  ASSERT_EQ(lines.size(), fx["lines"].size());
  int mismatches = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& want = fx["lines"][i];
    std::vector<int64_t> ids = tok->encode(lines[i], false);
    if (ids != want["ids"].get<std::vector<int64_t>>()) {
      ++mismatches;
      ADD_FAILURE() << name << " hard case line " << i + 1 << ": ids differ";
    }
    if (tok->encode(lines[i], true) != want["ids_special"].get<std::vector<int64_t>>()) {
      ++mismatches;
      ADD_FAILURE() << name << " hard case line " << i + 1 << ": ids with special tokens differ";
    }
    EXPECT_EQ(tok->decode(want["ids"].get<std::vector<int64_t>>(), false), want["decoded"].get<std::string>())
        << name << " line " << i + 1;
    EXPECT_EQ(tok->decode(ids, false), byte_level ? lines[i] : want["decoded"].get<std::string>()) << name << " line " << i + 1;
  }
  for (const auto& doc : fx["documents"]) {
    const std::string file = doc["file"].get<std::string>();
    std::string path = mp::test::source_path("tests/fixtures/tokenizer/" + file);
    if (!fs::exists(path)) path = tokenizers_dir() + "/text/sotu/" + file;
    if (!fs::exists(path)) {
      ADD_FAILURE() << path << " absent: run scripts/fetch_tokenizers.sh";
      continue;
    }
    const std::string text = slurp(path);
    std::vector<int64_t> ids = tok->encode(text, false);
    if (ids != doc["ids"].get<std::vector<int64_t>>()) {
      ++mismatches;
      ADD_FAILURE() << name << " document " << file << ": ids differ";
    }
    if (byte_level) EXPECT_EQ(tok->decode(ids, false), text) << name << " " << file;
  }
  EXPECT_EQ(mismatches, 0);
}

}  // namespace

TEST(TokenizerExact, Gpt2ByteLevel) { check_against_reference("gpt2", true); }
TEST(TokenizerExact, Qwen3ByteLevelNfc) { check_against_reference("qwen3", false); }  // NFC: round trip up to NFC
TEST(TokenizerExact, Llama2SentencePieceStyle) { check_against_reference("llama2", false); }

TEST(TokenizerExact, SpecialTokensAndConfig) {
  const std::string dir = tokenizers_dir() + "/qwen3";
  if (!fs::exists(dir + "/tokenizer.json")) GTEST_SKIP() << dir << " absent: run scripts/fetch_tokenizers.sh";
  auto tok = mp::Tokenizer::load(dir);  // a folder works, and its tokenizer_config.json names eos
  EXPECT_EQ(tok->vocab_size(), 151669);
  EXPECT_EQ(tok->eos_id(), tok->token_to_id("<|im_end|>"));
  EXPECT_FALSE(tok->bos_id().has_value());
  EXPECT_EQ(tok->id_to_token(151643), "<|endoftext|>");
  EXPECT_TRUE(tok->is_special(151643));
  std::vector<int64_t> ids = tok->encode("a<|endoftext|>b", false);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[1], 151643);
  EXPECT_EQ(tok->decode(ids, true), "ab");
  EXPECT_EQ(tok->decode(ids, false), "a<|endoftext|>b");
}
