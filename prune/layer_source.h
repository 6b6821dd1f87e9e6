// Where a layer-at-a-time pass gets its weights: a Model already in memory, or a checkpoint read
// one layer at a time (--stream). Both hand out Models holding what the caller needs, so the same
// driver code (calibration, layer importance) runs over either and, given the same micro-batches,
// produces bit-identical numbers.
// Invariant: a Model returned by layer(i) holds at least layer i's tensors and the config; it stays
// valid until the next call of layer(). ends() holds the embedding, norm_f and lm_head.
#pragma once

#include "model/model.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace mp {

class LayerSource {
 public:
  virtual ~LayerSource() = default;
  virtual const ModelConfig& config() const = 0;
  virtual at::Device device() const = 0;
  virtual const Model& ends() = 0;
  virtual const Model& layer(int64_t i) = 0;
  // Weight fingerprint (fingerprint.h) of the whole model. For a streaming source every tensor
  // must have been loaded once (one full pass) before; runtime error otherwise.
  virtual uint64_t fingerprint() = 0;
};

// Borrows `m` (it must outlive the source).
std::unique_ptr<LayerSource> memory_source(const Model& m);

// Opens `dir` (config.json + safetensors), validates every tensor's presence and shape against
// the config as load_model does, and loads tensors on demand onto `device` as `dtype`.
std::unique_ptr<LayerSource> streaming_source(const std::string& dir, at::Device device,
                                              std::optional<at::ScalarType> dtype);

}  // namespace mp
