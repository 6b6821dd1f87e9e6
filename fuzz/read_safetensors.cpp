#include "fuzz/format_readers.h"

#include "model/safetensors_header.h"

namespace mp::fuzz {

void read_safetensors(const uint8_t* data, size_t size) {
  const SafetensorsHeader h = parse_safetensors_header(data, size, "model.safetensors");
  // Accepted: the tensors, in offset order, tile the data buffer exactly and each holds
  // prod(shape) * itemsize bytes, so every read of a tensor stays inside the file.
  uint64_t pos = 0;
  for (const StTensorInfo& t : h.tensors) {
    require(t.begin == pos && t.begin <= t.end, "tensor '" + t.name + "' does not start where the previous ended");
    uint64_t bytes = 0;
    require(st_byte_count(t.shape, st_dtype_size(t.dtype), &bytes) && bytes == t.end - t.begin,
            "tensor '" + t.name + "' byte count");
    pos = t.end;
  }
  require(h.data_start >= 8 && h.data_start <= size && pos == size - h.data_start, "tensors end at the file's end");
}

}  // namespace mp::fuzz
