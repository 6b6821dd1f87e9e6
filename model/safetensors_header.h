// The part of a safetensors file that says what it holds: u64 little-endian header length N, N
// bytes of JSON naming every tensor's dtype, shape and [begin, end) inside the data buffer that
// follows. Parsing needs no LibTorch (the fuzz and fast sanitizer builds compile it alone).
// Every rule a valid file obeys is checked: header length within the file and at most 100 MB,
// header starts with '{', nests at most 8 levels (scanned before parsing), no duplicate keys at any
// depth, known dtypes, non-negative integer shapes whose element counts fit 64 bits in any order
// of multiplication, data_offsets inside the buffer with end - begin == prod(shape) * itemsize, and
// offsets that tile the buffer exactly (no gap, no overlap, last end == buffer size).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mp {

enum class StDType { BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64 };

const char* st_dtype_name(StDType t);
int st_dtype_size(StDType t);
// Parses "BF16" etc.; false when unknown.
bool st_dtype_from_name(const std::string& name, StDType* out);
// prod(shape) * itemsize; false on 64-bit overflow.
bool st_byte_count(const std::vector<int64_t>& shape, int itemsize, uint64_t* out);
std::string st_shape_text(const std::vector<int64_t>& shape);  // "[2, 3]"

struct StTensorInfo {
  std::string name;
  StDType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // relative to the start of the data buffer
  int64_t numel() const;
};

struct SafetensorsHeader {
  std::vector<StTensorInfo> tensors;  // in offset order
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // byte offset of the data buffer in the file: 8 + N
};

// Validates the first `size` bytes of a whole file (`bytes`). Throws mp::Error(BadInput) naming
// `path` and the tensor or field on any violation.
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, uint64_t size, const std::string& path);

}  // namespace mp
