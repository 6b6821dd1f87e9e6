// data from-text / from-jsonl with a tokenizer: one document per file or line, the ids the
// tokenizer gives plus EOS (unless --no-eod), output byte-identical for 1 and 3 threads; and
// bad input (tokenizer.json that is unsupported, invalid or truncated, JSONL lines that are not
// JSON or lack the key, text that is not UTF-8): one line naming the file, exit 2, no output.
#include "data/indexed_dataset.h"
#include "data/tokenizer/tokenizer.h"
#include "tests/test_util.h"
#include "tests/tokenizer_fixtures.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
using Ids = std::vector<int64_t>;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Corpus {
  mp::test::ScratchDir dir;
  std::string tok;
  std::vector<std::string> texts = {"the cat sat on the mat. aaaa\n", "",
                                    "Second \xC3\xA9 document<|eos|>with a special token\n",
                                    std::string(5000, 'a') + " the end"};
  Corpus() {
    tok = dir.file("tok");
    fs::create_directories(tok);
    mp::test::write_text(tok + "/tokenizer.json", mp::test::tiny_byte_level_tokenizer().dump());
    mp::test::write_text(tok + "/tokenizer_config.json", R"({"eos_token": {"content": "<|eos|>"}})");
    for (size_t i = 0; i < texts.size(); ++i) mp::test::write_text(dir.file("d" + std::to_string(i) + ".txt"), texts[i]);
  }
  std::string files() const {
    std::string s;
    for (size_t i = 0; i < texts.size(); ++i) s += " " + dir.file("d" + std::to_string(i) + ".txt");
    return s;
  }
};

void expect_bad_input(const mp::test::CliResult& r, const std::string& needle, const std::string& prefix) {
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_FALSE(fs::exists(prefix + ".bin"));
  EXPECT_FALSE(fs::exists(prefix + ".idx"));
}

}  // namespace

TEST(TokenizeCorpus, TextFilesOneDocumentEachWithEos) {
  Corpus c;
  auto tok = mp::Tokenizer::load(c.tok);
  const std::string p1 = c.dir.file("one"), p3 = c.dir.file("three");
  auto r1 = mp::test::run_cli("data from-text" + c.files() + " --tokenizer " + c.tok + " --output " + p1 + " --threads 1");
  ASSERT_EQ(r1.exit_code, 0) << r1.output;
  auto r3 = mp::test::run_cli("data from-text" + c.files() + " --tokenizer " + c.tok + " --output " + p3 + " --threads 3");
  ASSERT_EQ(r3.exit_code, 0) << r3.output;
  EXPECT_EQ(slurp(p1 + ".bin"), slurp(p3 + ".bin"));
  EXPECT_EQ(slurp(p1 + ".idx"), slurp(p3 + ".idx"));

  auto ds = mp::IndexedDataset::open(p1);
  EXPECT_EQ(ds->dtype(), mp::TokenDType::U16);
  ASSERT_EQ(ds->num_documents(), 4);
  ASSERT_EQ(ds->num_sequences(), 4);
  for (size_t i = 0; i < c.texts.size(); ++i) {
    Ids want = tok->encode(c.texts[i]);
    if (!want.empty()) want.push_back(260);  // EOS after each non-empty document, as Megatron
    EXPECT_EQ(ds->read(static_cast<int64_t>(i), 0, ds->sequence_length(static_cast<int64_t>(i))), want) << i;
  }
  const Ids third = ds->read(2, 0, ds->sequence_length(2));
  EXPECT_EQ(std::count(third.begin(), third.end(), 260), 2);  // the special token in the text, and EOS

  const std::string pn = c.dir.file("noeod");
  auto rn = mp::test::run_cli("data from-text" + c.files() + " --tokenizer " + c.tok + "/tokenizer.json --no-eod --output " + pn);
  ASSERT_EQ(rn.exit_code, 0) << rn.output;
  auto dn = mp::IndexedDataset::open(pn);
  EXPECT_EQ(dn->read(0, 0, dn->sequence_length(0)), tok->encode(c.texts[0]));
  EXPECT_EQ(dn->total_tokens() + 3, ds->total_tokens());
}

TEST(TokenizeCorpus, JsonlOneDocumentPerLine) {
  Corpus c;
  auto tok = mp::Tokenizer::load(c.tok);
  const std::string in = c.dir.file("c.jsonl");
  mp::test::write_text(in, "{\"body\": \"the first\", \"id\": 1}\n\n{\"body\": \"caf\\u00e9 second\"}\r\n{\"body\": \"\"}\n");
  const std::string p = c.dir.file("j");
  auto r = mp::test::run_cli("data from-jsonl " + in + " --json-key body --tokenizer " + c.tok + " --output " + p + " --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto ds = mp::IndexedDataset::open(p);
  ASSERT_EQ(ds->num_documents(), 3);  // the blank line is skipped
  Ids a = tok->encode("the first"), b = tok->encode("caf\xC3\xA9 second");
  a.push_back(260);
  b.push_back(260);
  EXPECT_EQ(ds->read(0, 0, ds->sequence_length(0)), a);
  EXPECT_EQ(ds->read(1, 0, ds->sequence_length(1)), b);
  EXPECT_EQ(ds->sequence_length(2), 0);
}

TEST(TokenizeCorpus, BadJsonlLinesNamed) {
  Corpus c;
  const std::string in = c.dir.file("bad.jsonl"), p = c.dir.file("out");
  mp::test::write_text(in, "{\"text\": \"ok\"}\n{\"text\": \"unterminated}\n");
  expect_bad_input(mp::test::run_cli("data from-jsonl " + in + " --tokenizer " + c.tok + " --output " + p),
                   in + ":2: not valid JSON", p);
  mp::test::write_text(in, "{\"text\": \"ok\"}\n{\"text\": \"ok\"}\n{\"content\": \"no text key\"}\n");
  expect_bad_input(mp::test::run_cli("data from-jsonl " + in + " --tokenizer " + c.tok + " --output " + p),
                   in + ":3: no \"text\" key", p);
}

TEST(TokenizeCorpus, TextNotUtf8Named) {
  Corpus c;
  const std::string bad = c.dir.file("latin1.txt"), p = c.dir.file("out");
  mp::test::write_text(bad, "line one\ncaf\xE9\n");
  expect_bad_input(mp::test::run_cli("data from-text " + c.dir.file("d0.txt") + " " + bad + " --tokenizer " + c.tok + " --output " + p),
                   bad + ": not valid UTF-8 at byte 12 (line 2)", p);
}

TEST(TokenizeCorpus, BadTokenizerFilesRefusedByName) {
  Corpus c;
  const std::string p = c.dir.file("out"), t = c.dir.file("t.json");
  nlohmann::json j = mp::test::tiny_byte_level_tokenizer();
  j["pre_tokenizer"] = {{"type", "UnicodeScripts"}};
  mp::test::write_text(t, j.dump());
  expect_bad_input(mp::test::run_cli("data from-text " + c.dir.file("d0.txt") + " --tokenizer " + t + " --output " + p),
                   t + ": pre_tokenizer: unsupported pre_tokenizer type \"UnicodeScripts\"", p);

  j = mp::test::tiny_byte_level_tokenizer();
  j["model"]["type"] = "Unigram";
  mp::test::write_text(t, j.dump());
  expect_bad_input(mp::test::run_cli("tokenize --tokenizer " + t + " --text hi"), t + ": model: unsupported model type \"Unigram\"", p);

  j = mp::test::tiny_byte_level_tokenizer();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(\\p{L}+"}}}, {"behavior", "Isolated"}, {"invert", false}};
  mp::test::write_text(t, j.dump());
  expect_bad_input(mp::test::run_cli("data from-text " + c.dir.file("d0.txt") + " --tokenizer " + t + " --output " + p),
                   t + ": pre_tokenizer.pattern.Regex: invalid regular expression", p);

  const std::string whole = mp::test::tiny_byte_level_tokenizer().dump();
  mp::test::write_text(t, whole.substr(0, whole.size() / 2));
  expect_bad_input(mp::test::run_cli("data from-text " + c.dir.file("d0.txt") + " --tokenizer " + t + " --output " + p),
                   t + ": not valid JSON", p);
  mp::test::write_text(t, "this is not JSON");
  expect_bad_input(mp::test::run_cli("tokenize --tokenizer " + t + " --text hi"), t + ": not valid JSON", p);
}

TEST(TokenizeCorpus, TokenizeCommand) {
  Corpus c;
  auto r = mp::test::run_cli("tokenize --tokenizer " + c.tok + " --text ' the aaa'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "258 32 259 97\n");  // " the" merged; " aaa" -> space, aa, a
  r = mp::test::run_cli("tokenize --tokenizer " + c.tok + " --decode --text '258 32 259 97'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, " the aaa\n");
  r = mp::test::run_cli("tokenize --tokenizer " + c.tok + " --json --text 'the'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "{\"ids\":[116,257],\"tokens\":[\"t\",\"he\"]}\n");
  r = mp::test::run_cli("tokenize --tokenizer " + c.tok + " --decode --text '99999'");
  EXPECT_EQ(r.exit_code, 2) << r.output;
}
