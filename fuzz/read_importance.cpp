#include "fuzz/format_readers.h"

#include "prune/importance.h"

namespace mp::fuzz {

void read_importance(const uint8_t* data, size_t size) {
  const Importance imp = importance_from_json_text(text_of(data, size), "importance.json");
  // Accepted: one entry per layer and every vector as long as the config says.
  const ModelConfig& c = imp.parent;
  const size_t n = static_cast<size_t>(c.num_layers());
  require(imp.layers.size() == n && imp.hidden_per_layer.size() == n && imp.mlp.size() == n, "per-layer counts");
  require(imp.hidden.size() == static_cast<size_t>(c.hidden_size), "hidden scores");
}

}  // namespace mp::fuzz
