// Fixed-length windows drawn deterministically from a token dataset.
// The dataset's sequences are viewed as one stream; window w covers stream tokens
// [w * seq_len, w * seq_len + seq_len + 1), so neighbours share one token (the last target of
// one is the first input of the next) and no token is predicted twice in an epoch. The window
// order is a permutation fixed by the seed (own Fisher-Yates over splitmix64, so it is the same
// on every platform and library). After all windows are used the next epoch uses a new
// permutation (seed + epoch). The position is explicit so training can save and resume it.
#pragma once

#include "data/indexed_dataset.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace mp {

class WindowSampler {
 public:
  // Bad input when the dataset holds fewer than seq_len + 1 tokens (names the prefix, the token
  // count and what is needed), or when vocab_size > 0 and a token id is >= vocab_size (names
  // the largest id and the vocabulary size).
  WindowSampler(std::shared_ptr<IndexedDataset> data, int64_t seq_len, uint64_t seed,
                int64_t vocab_size = 0);

  int64_t num_windows() const { return num_windows_; }
  int64_t seq_len() const { return seq_len_; }
  // The next `batch` windows: int64 CPU tensor [batch, seq_len + 1].
  at::Tensor next_batch(int64_t batch);
  // The first `count` windows of the seed's first epoch, independent of the position: for
  // evaluation sets that must not move.
  at::Tensor fixed_windows(int64_t count) const;

  uint64_t position() const { return position_; }  // windows drawn so far, over all epochs
  void set_position(uint64_t p) { position_ = p; }

 private:
  int64_t window_at(uint64_t global_index) const;  // window id for the global draw index
  std::shared_ptr<IndexedDataset> data_;
  int64_t seq_len_, num_windows_;
  uint64_t seed_, position_ = 0;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> perm_;
};

}  // namespace mp
