// Tokenizer components on small hand-made tokenizer.json files: merge order, byte-level
// mapping and round trip, added tokens, byte fallback, unknown-character fusing, the template
// post-processor, SentencePiece-style decoding, eos/bos from tokenizer_config.json, and the
// Oniguruma-to-PCRE2 escape rewriting. Expected ids follow from the merge ranks by hand.
#include "common/error.h"
#include "data/tokenizer/regex.h"
#include "data/tokenizer/tokenizer.h"
#include "tests/test_util.h"
#include "tests/tokenizer_fixtures.h"

#include <gtest/gtest.h>

using Ids = std::vector<int64_t>;

namespace {

std::shared_ptr<const mp::Tokenizer> load(const mp::test::ScratchDir& dir, const nlohmann::json& j,
                                          const std::string& config = "") {
  mp::test::write_text(dir.file("tokenizer.json"), j.dump());
  if (!config.empty()) mp::test::write_text(dir.file("tokenizer_config.json"), config);
  return mp::Tokenizer::load(dir.path());
}

}  // namespace

TEST(TokenizerComponents, ByteLevelMergesByRankLeftmostFirst) {
  mp::test::ScratchDir dir;
  auto tok = load(dir, mp::test::tiny_byte_level_tokenizer(), R"({"eos_token": "<|eos|>"})");
  EXPECT_EQ(tok->encode("the"), (Ids{'t', 257}));           // h+e merges; t+he has no merge
  EXPECT_EQ(tok->encode(" the"), (Ids{258}));               // Ġ+t, then h+e, then Ġt+he
  EXPECT_EQ(tok->encode("aaa"), (Ids{259, 'a'}));           // leftmost pair first
  EXPECT_EQ(tok->encode("aaaa"), (Ids{259, 259}));
  EXPECT_EQ(tok->encode("the the"), (Ids{'t', 257, 258}));  // GPT-2 pattern keeps the space with the word
  EXPECT_EQ(tok->encode("x<|eos|>y"), (Ids{'x', 260, 'y'}));
  EXPECT_EQ(tok->encode("\xC3\xA9"), (Ids{0xC3, 0xA9}));    // bytes of é
  EXPECT_EQ(tok->encode(""), Ids{});
  EXPECT_EQ(tok->eos_id(), 260);
  EXPECT_EQ(tok->vocab_size(), 261);
  const std::string text = "h\xC3\xA9llo  w\xC3\xB6rld\n\t<|eos|> 12,345 \xF0\x9F\x98\x80!";
  EXPECT_EQ(tok->decode(tok->encode(text)), text);
  EXPECT_EQ(tok->decode(tok->encode(text), true), "h\xC3\xA9llo  w\xC3\xB6rld\n\t 12,345 \xF0\x9F\x98\x80!");
  EXPECT_EQ(tok->decode({0xC3}), "\xEF\xBF\xBD");  // a lone lead byte decodes to U+FFFD
}

TEST(TokenizerComponents, AddedTokenStripAndSingleWord) {
  mp::test::ScratchDir dir;
  nlohmann::json j = mp::test::tiny_byte_level_tokenizer();
  j["added_tokens"].push_back({{"id", 261}, {"content", "[M]"}, {"single_word", false}, {"lstrip", true},
                               {"rstrip", true}, {"normalized", false}, {"special", true}});
  j["added_tokens"].push_back({{"id", 262}, {"content", "cat"}, {"single_word", true}, {"lstrip", false},
                               {"rstrip", false}, {"normalized", false}, {"special", false}});
  auto tok = load(dir, j);
  EXPECT_EQ(tok->encode("x  [M]  y"), (Ids{'x', 261, 'y'}));    // surrounding spaces absorbed
  EXPECT_EQ(tok->encode("cat"), (Ids{262}));
  EXPECT_EQ(tok->encode("concat"), (Ids{'c', 'o', 'n', 'c', 'a', 't'}));  // not a whole word
  EXPECT_EQ(tok->encode("a cat."), (Ids{'a', ' ', 262, '.'}));
}

TEST(TokenizerComponents, MetaspaceByteFallbackTemplateAndDecoder) {
  mp::test::ScratchDir dir;
  auto tok = load(dir, mp::test::tiny_metaspace_tokenizer(true));
  EXPECT_EQ(tok->encode("a b"), (Ids{262, 259, 261}));
  EXPECT_EQ(tok->encode("a b", true), (Ids{1, 262, 259, 261}));
  EXPECT_EQ(tok->encode("\xC3\xA9"), (Ids{259, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(tok->decode({262, 259, 261}), "a b");
  EXPECT_EQ(tok->decode({1, 259, 3 + 0xC3, 3 + 0xA9}, true), "\xC3\xA9");
  EXPECT_EQ(tok->decode({3 + 0xC3, 260}), "\xEF\xBF\xBD" "a");  // an invalid byte run: U+FFFD per byte
  EXPECT_EQ(tok->bos_id(), 1);  // from the template, without a tokenizer_config.json
  EXPECT_FALSE(tok->eos_id().has_value());
}

TEST(TokenizerComponents, UnknownCharactersFuseWithoutByteFallback) {
  mp::test::ScratchDir dir;
  auto tok = load(dir, mp::test::tiny_metaspace_tokenizer(false));
  EXPECT_EQ(tok->encode("\xC3\xA9\xC3\xA9" "a"), (Ids{259, 0, 260}));
}

TEST(TokenizerComponents, OnigurumaEscapesRewritten) {
  EXPECT_EQ(mp::tok::onig_to_pcre2("a\\sb"), "a[\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}]b");
  EXPECT_EQ(mp::tok::onig_to_pcre2("[^\\s\\p{L}]"), "[^\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}\\p{L}]");
  EXPECT_EQ(mp::tok::onig_to_pcre2("\\p{N}{1,3}|[\\]\\\\]"), "\\p{N}{1,3}|[\\]\\\\]");
  // U+180E is White_Space to PCRE2's UCP \s but not to Oniguruma (nor to the rewritten class).
  mp::tok::Regex re("\\s+", "test");
  std::vector<std::pair<size_t, size_t>> m;
  re.find_all("a\xE1\xA0\x8E" "b \t c", m);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0], (std::pair<size_t, size_t>{5, 8}));
}

TEST(TokenizerComponents, EmptyMatchesAdvanceLikeOniguruma) {
  mp::tok::Regex re("x*", "test");
  std::vector<std::pair<size_t, size_t>> m;
  re.find_all("axxb", m);
  // Empty at 0, "xx" at 1, then the empty match at 3 right after it is skipped, empty at 4.
  EXPECT_EQ(m, (std::vector<std::pair<size_t, size_t>>{{0, 0}, {1, 3}, {4, 4}}));
}

TEST(TokenizerComponents, CheckFitsModel) {
  mp::test::ScratchDir dir;
  auto tok = load(dir, mp::test::tiny_byte_level_tokenizer());
  EXPECT_NO_THROW(mp::check_tokenizer_fits_model(*tok, 261, "m"));
  try {
    mp::check_tokenizer_fits_model(*tok, 256, "model-folder");
    FAIL() << "expected an error";
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find("model-folder has vocab_size 256"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
  }
}
