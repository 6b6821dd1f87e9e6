// The candidate space: how many layers of each type are kept, and the widths. A candidate is
// arithmetic only (no tensors), so enumerating and costing thousands of 56B-sized candidates
// takes milliseconds.
#pragma once

#include "model/config.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mp {

struct Candidate {
  int64_t mamba = 0, attention = 0, mlp = 0;  // layers kept of each type
  int64_t ffn = 0, hidden = 0, attention_heads = 0, mamba_heads = 0, mamba_head_dim = 0;
  std::string key() const;  // "M45-A5-F48-ffn30720-d8192-q64-h256x64"
};

struct SearchSpace {
  std::vector<int64_t> mamba, attention, mlp;  // layer counts to try
  std::vector<int64_t> ffn, hidden, attention_heads, mamba_heads, mamba_head_dim;
};

// "a:b" (step 1), "a:b:step", or a comma list "a,b,c"; `what` names the flag in errors.
std::vector<int64_t> parse_int_list(const std::string& spec, const std::string& what);

// Defaults: Mamba and MLP layers from 3/4 of the parent's count to all of them, attention
// layers from 1 to all (a hybrid keeps at least one attention layer), the MLP width
// grid 75%..100% of the parent's in 1/32 steps, other widths the parent's.
SearchSpace default_space(const ModelConfig& parent);

// Every combination; bad input when a value exceeds the parent's, a width breaks the head /
// group divisibility, or the space is empty (names the flag).
std::vector<Candidate> enumerate(const SearchSpace& space, const ModelConfig& parent);

// The candidate's config: the parent with the layers in `kept` (indices, ascending) and the
// candidate's widths. `kept` must hold the right number of layers of each type.
ModelConfig candidate_config(const ModelConfig& parent, const Candidate& c, const std::vector<int64_t>& kept);

// Kept layer indices: the `count` most important of each type by `ranking` (layer indices of
// the parent ordered most important first); without a ranking, layers are kept in order
// from the last backwards except that the first of each type is kept (cost needs only counts).
std::vector<int64_t> choose_layers(const ModelConfig& parent, const Candidate& c, const std::vector<int64_t>& ranking);

}  // namespace mp
