// Deterministic fixed-length windows over a token stream.
//
// Window w covers stream tokens [w*L, w*L + L + 1) for L = seq_len: consecutive windows share
// their boundary token (the last target of one is the first input of the next), so
// num_windows = (total_tokens - 1) / L and no token is wasted as a target.
// Draw g (counted over all epochs) is window perm_e[g % W] of epoch e = g / W, where perm_e is a
// Fisher-Yates shuffle of [0, W) driven by splitmix64 seeded with seed + e. Both are written out
// here (no <random>), so the order is identical on every platform and library version.
#include "data/sampler.h"

#include "common/error.h"

#include <ATen/ops/empty.h>

namespace mp {
namespace {

// splitmix64 (Steele, Lea, Flood 2014): a 64-bit state advanced by the golden-ratio gamma.
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound), bound >= 1, without modulo bias (rejects the short top slice).
  uint64_t below(uint64_t bound) {
    const uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
    for (;;) {
      uint64_t r = next();
      if (r >= threshold) return r % bound;
    }
  }
};

std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  SplitMix64 rng{seed};
  for (int64_t i = n - 1; i > 0; --i) {
    int64_t j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1));
    std::swap(p[i], p[j]);
  }
  return p;
}

}  // namespace

WindowSampler::WindowSampler(std::shared_ptr<IndexedDataset> data, int64_t seq_len, uint64_t seed,
                             int64_t vocab_size)
    : data_(std::move(data)), seq_len_(seq_len), num_windows_(0), seed_(seed) {
  if (!data_) fail_usage("WindowSampler: no dataset given");
  if (seq_len_ < 1) fail_usage("{}: sequence length must be >= 1, got {}", data_->prefix(), seq_len_);
  const int64_t total = data_->total_tokens();
  if (total <= seq_len_)  // written so that seq_len_ + 1 is never formed from a huge seq_len_
    fail_input("{}: too little data: {} tokens, a window of sequence length {} needs at least {}",
               data_->prefix(), total, seq_len_, fmt::format("{}", static_cast<uint64_t>(seq_len_) + 1));
  if (vocab_size > 0) {
    const int64_t mx = data_->max_token();
    if (mx >= vocab_size)
      fail_input("{}: token id {} is outside the vocabulary: the model has {} tokens (ids 0..{})",
                 data_->prefix(), mx, vocab_size, vocab_size - 1);
  }
  num_windows_ = (total - 1) / seq_len_;
}

int64_t WindowSampler::window_at(uint64_t global_index) const {
  const uint64_t w = static_cast<uint64_t>(num_windows_);
  const int64_t epoch = static_cast<int64_t>(global_index / w);
  if (epoch != cached_epoch_) {
    perm_ = permutation(num_windows_, seed_ + static_cast<uint64_t>(epoch));
    cached_epoch_ = epoch;
  }
  return perm_[static_cast<size_t>(global_index % w)];
}

at::Tensor WindowSampler::next_batch(int64_t batch) {
  if (batch < 1) fail_usage("{}: batch size must be >= 1, got {}", data_->prefix(), batch);
  const int64_t width = seq_len_ + 1;
  at::Tensor out = at::empty({batch, width}, at::TensorOptions().dtype(at::kLong));
  int64_t* p = out.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t w = window_at(position_);
    data_->read_stream(w * seq_len_, width, p + b * width);
    ++position_;
  }
  return out;
}

at::Tensor WindowSampler::fixed_windows(int64_t count) const {
  if (count < 1) fail_usage("{}: window count must be >= 1, got {}", data_->prefix(), count);
  if (count > num_windows_)
    fail_input("{}: asked for {} fixed windows of {} tokens, the data holds only {}",
               data_->prefix(), count, seq_len_ + 1, num_windows_);
  // Computed apart from the draw cache so evaluation never disturbs training draws.
  const std::vector<int64_t> perm = permutation(num_windows_, seed_);
  const int64_t width = seq_len_ + 1;
  at::Tensor out = at::empty({count, width}, at::TensorOptions().dtype(at::kLong));
  int64_t* p = out.data_ptr<int64_t>();
  for (int64_t b = 0; b < count; ++b) data_->read_stream(perm[b] * seq_len_, width, p + b * width);
  return out;
}

}  // namespace mp
