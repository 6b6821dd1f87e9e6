#include "eval/request_tokens.h"

#include "common/error.h"
#include "data/tokenizer/tokenizer.h"
#include "eval/python_text.h"

#include <algorithm>

namespace mp::eval {

TextEncoder::TextEncoder(std::shared_ptr<const Tokenizer> tokenizer, std::optional<int64_t> prefix_token)
    : tokenizer_(std::move(tokenizer)), prefix_(prefix_token) {
  if (!prefix_) {
    if (!tokenizer_) prefix_ = 10;
    else if (tokenizer_->bos_id()) prefix_ = tokenizer_->bos_id();
    else prefix_ = tokenizer_->eos_id();
  }
  if (tokenizer_ && prefix_) prefix_text_ = tokenizer_->decode({*prefix_}, false);
}

std::vector<int64_t> TextEncoder::encode_plain(std::string_view text) const {
  if (!tokenizer_) return std::vector<int64_t>(reinterpret_cast<const unsigned char*>(text.data()),
                                               reinterpret_cast<const unsigned char*>(text.data()) + text.size());
  return tokenizer_->encode(text, false);
}

std::vector<int64_t> TextEncoder::encode(std::string_view text) const {
  if (!tokenizer_) return encode_plain(text);
  const bool starts_with_prefix = !prefix_text_.empty() && py_startswith(text, prefix_text_);
  return tokenizer_->encode(text, !starts_with_prefix);
}

int64_t TextEncoder::prefix_token() const {
  if (!prefix_)
    fail_input("{}: the tokenizer has neither a BOS nor an EOS token to condition the first token on; give "
               "--prefix-token-id",
               name());
  return *prefix_;
}

std::string TextEncoder::name() const { return tokenizer_ ? tokenizer_->path() : "bytes"; }

namespace {

void truncate_left(TokenRequest& r, int64_t max_length, const std::string& where) {
  const int64_t cont = static_cast<int64_t>(r.continuation.size());
  if (cont > max_length)
    fail_input("{}: the continuation has {} tokens, more than --max-length {}", where, cont, max_length);
  const int64_t keep = max_length + 1 - cont;  // context tokens that fit
  if (static_cast<int64_t>(r.context.size()) > keep) r.context.erase(r.context.begin(), r.context.end() - keep);
}

}  // namespace

TokenRequest encode_request(const TextEncoder& enc, const std::string& context, const std::string& continuation,
                            int64_t max_length, const std::string& where) {
  TokenRequest r;
  if (context.empty()) {
    std::vector<int64_t> cont = enc.encode_plain(continuation);
    if (cont.empty()) fail_input("{}: the continuation encodes to no tokens; expected text to score", where);
    const int64_t p = enc.prefix_token();
    if (cont.front() != p) {
      r.context = {p};
      r.continuation = std::move(cont);
    } else {
      r.context = {cont.front()};
      r.continuation.assign(cont.begin() + 1, cont.end());
    }
  } else {
    const std::string ctx = py_rstrip(context);
    const std::string cont = context.substr(ctx.size()) + continuation;
    const std::vector<int64_t> whole = enc.encode(ctx + cont);
    r.context = enc.encode(ctx);
    if (r.context.empty()) fail_input("{}: the context encodes to no tokens; expected text before the continuation", where);
    if (whole.size() > r.context.size()) r.continuation.assign(whole.begin() + r.context.size(), whole.end());
  }
  if (r.continuation.empty()) fail_input("{}: the continuation encodes to no tokens; expected text to score", where);
  truncate_left(r, max_length, where);
  return r;
}

std::vector<TokenRequest> encode_rolling(const TextEncoder& enc, const std::string& text, int64_t max_length,
                                         const std::string& where) {
  const std::vector<int64_t> toks = enc.encode(text);
  std::vector<TokenRequest> windows;
  if (toks.empty()) fail_input("{}: the text encodes to no tokens; expected text to score", where);
  const int64_t n = static_cast<int64_t>(toks.size());
  // Window inputs are the max_length tokens before each prediction; with context_len 1 every
  // window after the first predicts up to max_length new tokens.
  const int64_t first = std::min(max_length, n);
  TokenRequest w;
  w.context = {enc.prefix_token()};
  w.continuation.assign(toks.begin(), toks.begin() + first);
  windows.push_back(w);
  int64_t predicted = first;
  while (predicted < n) {
    const int64_t len = std::min(n - predicted, max_length);
    const int64_t end = predicted + len;
    // inputs toks[end - max_length - 1, end - 1), predictions toks[end - len, end); the context is
    // the inputs before the first prediction.
    TokenRequest r;
    r.context.assign(toks.begin() + (end - max_length - 1), toks.begin() + (end - len));
    r.continuation.assign(toks.begin() + (end - len), toks.begin() + end);
    windows.push_back(std::move(r));
    predicted = end;
  }
  return windows;
}

}  // namespace mp::eval
