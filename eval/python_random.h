// Python's random.Random, as far as the lm-evaluation-harness uses it to draw few-shot examples:
// the generator is the Mersenne Twister MT19937 seeded from an integer the way CPython seeds it
// (init_by_array over the integer's 32-bit words, least significant first), and sample(population,
// k) draws indices by CPython's algorithm (a shrinking pool for small populations, rejection from
// a set otherwise; each draw is getrandbits(bit_length(n)) retried until below n). The same seed
// therefore picks the same few-shot examples as the harness, in the same order, as long as the
// same sequence of samples is drawn.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace mp::eval {

class PyRandom {
 public:
  explicit PyRandom(uint64_t seed);
  uint32_t next_u32();                // genrand_uint32
  uint32_t getrandbits(int k);        // 1 <= k <= 32
  int64_t randbelow(int64_t n);       // uniform in [0, n), 1 <= n < 2^32
  // random.sample(range(n), k): k distinct indices in draw order. Bad input unless 0 <= k <= n.
  std::vector<int64_t> sample(int64_t n, int64_t k);

 private:
  std::array<uint32_t, 624> mt_{};
  int index_ = 624;
};

}  // namespace mp::eval
