// safetensors files: a validated, memory-mapped reader and an atomic writer. What a valid header
// obeys, and the checks made when a file is opened, are in safetensors_header.h; the file must be
// a regular file (links followed; a pipe is refused, never read). A violation throws mp::Error
// (bad input) whose message names the file and the tensor.
#pragma once

#include "model/safetensors_header.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mp {

// The ATen type a safetensors dtype loads as; false for types LibTorch 1.13 cannot hold (F8,
// unsigned 16/32/64).
bool st_dtype_to_scalar_type(StDType t, at::ScalarType* out);
// The safetensors dtype an ATen tensor is written as; false for types safetensors cannot hold.
bool st_dtype_from_scalar_type(at::ScalarType s, StDType* out);

class SafetensorsFile {
 public:
  // Maps and validates the file. Throws mp::Error(BadInput) naming `path` on any violation.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::vector<StTensorInfo>& tensors() const { return tensors_; }  // in offset order
  const StTensorInfo* find(const std::string& name) const;              // nullptr if absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Copies one tensor into a new contiguous CPU tensor of its stored dtype. Only F16, BF16 and
  // F32 are accepted for model weights (others: bad input naming the tensor and its dtype), plus
  // the integer types I64/I32 used by token-id files.
  at::Tensor load(const std::string& name) const;
  // Elements [begin, end) of the tensor's row-major flattening as a new 1-D CPU tensor of its
  // stored dtype (same dtypes as load); runtime error when the range is not inside [0, numel).
  at::Tensor load_range(const std::string& name, int64_t begin, int64_t end) const;
  // Raw bytes of a tensor inside the mapping (valid while this object lives).
  const uint8_t* data(const StTensorInfo& t) const;

 private:
  SafetensorsFile() = default;
  // The tensor and its LibTorch dtype; bad input when it is absent or of a dtype load refuses.
  const StTensorInfo& loadable(const std::string& name, at::ScalarType* st) const;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* buffer_ = nullptr;  // start of the data buffer inside the mapping
  std::vector<StTensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// One tensor of a file about to be written: what its header entry says.
struct StTensorSpec {
  std::string name;
  StDType dtype;
  std::vector<int64_t> shape;
};

// Streams a safetensors file one tensor at a time: the header, with every offset computed from
// the specs, is written first; then write() appends each tensor's bytes in spec order, so only
// the tensor being written needs to be in memory. finish() renames the file into place; a writer
// destroyed before finish() removes its temporary file and leaves nothing at `path`.
// Invariant: the bytes appended so far are exactly those of specs()[0 .. written()).
class SafetensorsWriter {
 public:
  // Validates the specs (non-empty unique names, not "__metadata__", dtypes loadable by
  // SafetensorsFile) before touching the disk: bad input naming `path` and the tensor.
  // Metadata gets {"format":"pt"} added.
  SafetensorsWriter(std::string path, std::vector<StTensorSpec> specs,
                    const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  const std::vector<StTensorSpec>& specs() const { return specs_; }
  size_t written() const { return next_; }
  // Appends specs()[written()]; `t` (any device, any layout) must have its dtype and shape:
  // bad input naming the file and the tensor otherwise, and when every tensor was written.
  void write(const at::Tensor& t);
  // Every tensor written: flush, fsync and rename into place. Bad input when some are missing.
  void finish();

 private:
  struct Impl;
  std::string path_;
  std::vector<StTensorSpec> specs_;
  size_t next_ = 0;
  std::unique_ptr<Impl> impl_;
};

// Writes tensors (any of F16/BF16/F32/I32/I64/U8/BOOL; made contiguous and moved to CPU as needed)
// in the given order, atomically (temporary name + rename). Metadata gets {"format":"pt"} added.
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace mp
