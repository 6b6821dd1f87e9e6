// Requests as token ids, by the harness's rules for a causal model (lm_eval/api/model.py
// TemplateLM.loglikelihood / _encode_pair, lm_eval/models/huggingface.py tok_encode and
// loglikelihood_rolling, lm_eval/utils.py get_rolling_token_windows / make_disjoint_window):
//   - the context's trailing whitespace (str.isspace) moves to the front of the continuation;
//   - whole = encode(context + continuation), ctx = encode(context), continuation tokens =
//     whole[len(ctx):], where encode is the tokenizer's default call: special tokens added by the
//     post-processor (e.g. a BOS), unless the text already starts with the prefix token's text;
//   - an empty context becomes the prefix token (BOS, else EOS), unless the continuation's own
//     first token is that token, which then serves as the context;
//   - a pair longer than max_length + 1 tokens loses tokens from the left of the context;
//   - rolling: encode(text) split into windows of at most max_length inputs, the first one
//     starting from the prefix token, each later one conditioned on the max_length tokens before
//     its predictions; every token is predicted exactly once.
// Without a tokenizer, UTF-8 bytes are the ids (vocab 256) and nothing is added; the prefix token
// is then '\n' (10) unless one is given.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mp {
class Tokenizer;
}

namespace mp::eval {

class TextEncoder {
 public:
  // `tokenizer` null: bytes. `prefix_token`: overrides BOS / EOS (the harness's prefix_token_id).
  TextEncoder(std::shared_ptr<const Tokenizer> tokenizer, std::optional<int64_t> prefix_token);
  std::vector<int64_t> encode(std::string_view text) const;        // the default call (see above)
  std::vector<int64_t> encode_plain(std::string_view text) const;  // no special tokens
  int64_t prefix_token() const;  // bad input when the tokenizer has neither BOS nor EOS
  bool is_bytes() const { return !tokenizer_; }
  std::string name() const;      // the tokenizer.json path, or "bytes"

 private:
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::optional<int64_t> prefix_;
  std::string prefix_text_;  // what the prefix token decodes to
};

struct TokenRequest {
  std::vector<int64_t> context, continuation;  // both non-empty
};

// `where` names the document in errors (an empty continuation, a context of no tokens).
TokenRequest encode_request(const TextEncoder& enc, const std::string& context, const std::string& continuation,
                            int64_t max_length, const std::string& where);
std::vector<TokenRequest> encode_rolling(const TextEncoder& enc, const std::string& text, int64_t max_length,
                                         const std::string& where);

}  // namespace mp::eval
