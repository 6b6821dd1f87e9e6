// Requests from strings to token ids, by the harness's tokenization rules: trailing spaces move to
// the continuation, continuation = encode(context + continuation)[len(encode(context)):], BOS from
// the post-processor, the prefix token for empty contexts, left truncation, rolling windows as the
// harness's docstring draws them. No LibTorch: part of the sanitized format tests.
#include "data/tokenizer/tokenizer.h"
#include "eval/request_tokens.h"
#include "tests/test_util.h"
#include "tests/tokenizer_fixtures.h"

#include <gtest/gtest.h>

namespace {

using Ids = std::vector<int64_t>;
using mp::eval::TextEncoder;
using mp::eval::TokenRequest;

std::shared_ptr<const mp::Tokenizer> tokenizer(const mp::test::ScratchDir& dir, const nlohmann::json& j) {
  mp::test::write_text(dir.file("tokenizer.json"), j.dump());
  return mp::Tokenizer::load(dir.path());
}

TEST(EvalTokens, TrailingSpaceMovesToTheContinuation) {
  mp::test::ScratchDir dir;
  TextEncoder enc(tokenizer(dir, mp::test::tiny_byte_level_tokenizer()), 260);
  // "say " + "the": the space joins "the" as one token " the" (258), as in encode("say the").
  TokenRequest r = mp::eval::encode_request(enc, "say ", "the", 100, "d");
  EXPECT_EQ(r.context, (Ids{'s', 'a', 'y'}));
  EXPECT_EQ(r.continuation, (Ids{258}));
  // Encoding the two halves alone would give "say " and "t" + "he".
  EXPECT_EQ(enc.encode("the"), (Ids{'t', 257}));
  // Empty context: the prefix token conditions the first continuation token.
  r = mp::eval::encode_request(enc, "", " the", 100, "d");
  EXPECT_EQ(r.context, (Ids{260}));
  EXPECT_EQ(r.continuation, (Ids{258}));
  // ... unless the continuation starts with that very token.
  r = mp::eval::encode_request(enc, "", "<|eos|> the", 100, "d");
  EXPECT_EQ(r.context, (Ids{260}));
  EXPECT_EQ(r.continuation, (Ids{258}));
  // Left truncation to max_length + 1 tokens in all.
  r = mp::eval::encode_request(enc, "abcdefghij", " the", 4, "d");
  EXPECT_EQ(r.context, (Ids{'g', 'h', 'i', 'j'}));
  EXPECT_EQ(r.continuation, (Ids{258}));
}

TEST(EvalTokens, BosFromThePostProcessor) {
  mp::test::ScratchDir dir;
  TextEncoder enc(tokenizer(dir, mp::test::tiny_metaspace_tokenizer(true)), std::nullopt);
  EXPECT_EQ(enc.prefix_token(), 1);  // BOS from the template
  TokenRequest r = mp::eval::encode_request(enc, "a", " b", 100, "d");
  EXPECT_EQ(r.context, (Ids{1, 262}));   // <s> ▁a
  EXPECT_EQ(r.continuation, (Ids{259, 261}));  // ▁ b
  // A text that already starts with the BOS text gets no second one.
  EXPECT_EQ(enc.encode("<s>a"), (Ids{1, 262}));
  EXPECT_EQ(enc.encode("a"), (Ids{1, 262}));
}

// The harness's docstring: tokens 0..9, max length 4 -> inputs [P 0 1 2] [3 4 5 6] [5 6 7 8]
// predicting [0 1 2 3] [4 5 6 7] [8 9]; after make_disjoint_window the contexts are [P], [3], [5 6 7].
TEST(EvalTokens, RollingWindowsAsTheHarnessDrawsThem) {
  TextEncoder enc(nullptr, 200);
  const std::string text = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  const auto w = mp::eval::encode_rolling(enc, text, 4, "d");
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].context, (Ids{200}));
  EXPECT_EQ(w[0].continuation, (Ids{0, 1, 2, 3}));
  EXPECT_EQ(w[1].context, (Ids{3}));
  EXPECT_EQ(w[1].continuation, (Ids{4, 5, 6, 7}));
  EXPECT_EQ(w[2].context, (Ids{5, 6, 7}));
  EXPECT_EQ(w[2].continuation, (Ids{8, 9}));
  EXPECT_EQ(TextEncoder(nullptr, std::nullopt).prefix_token(), 10);  // bytes: '\n'
}

}  // namespace
