// Parsing and validation of a safetensors header (safetensors_header.h). Invariants of a returned
// SafetensorsHeader: every tensor's bytes lie inside the data buffer, its byte count equals
// prod(shape) * itemsize, and the tensors, in offset order, tile the buffer exactly.
#include "model/safetensors_header.h"

#include "common/error.h"
#include "common/json_file.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <set>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors IO assumes a little-endian host");

namespace mp {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100000000;  // 100 MB, as the reference readers cap it
constexpr int kMaxHeaderDepth = 8;

struct DTypeRow {
  StDType dtype;
  const char* name;
  int size;
};
constexpr DTypeRow kDTypes[] = {
    {StDType::BOOL, "BOOL", 1},   {StDType::U8, "U8", 1},   {StDType::I8, "I8", 1},
    {StDType::F8_E5M2, "F8_E5M2", 1}, {StDType::F8_E4M3, "F8_E4M3", 1}, {StDType::I16, "I16", 2},
    {StDType::U16, "U16", 2},     {StDType::F16, "F16", 2}, {StDType::BF16, "BF16", 2},
    {StDType::I32, "I32", 4},     {StDType::U32, "U32", 4}, {StDType::F32, "F32", 4},
    {StDType::I64, "I64", 8},     {StDType::U64, "U64", 8}, {StDType::F64, "F64", 8},
};

// One tensor entry of the header, checked field by field.
StTensorInfo parse_entry(const std::string& path, const std::string& name, const json& e, uint64_t buffer_size) {
  if (!e.is_object())
    fail_input("{}: tensor '{}': header entry is {}, expected an object with dtype, shape, data_offsets", path,
               name, e.type_name());
  StTensorInfo t;
  t.name = name;

  auto dt = e.find("dtype");
  if (dt == e.end() || !dt->is_string())
    fail_input("{}: tensor '{}': missing or non-string \"dtype\"", path, name);
  if (!st_dtype_from_name(dt->get<std::string>(), &t.dtype))
    fail_input("{}: tensor '{}': unknown dtype '{}' (known: BOOL U8 I8 F8_E5M2 F8_E4M3 I16 U16 F16 BF16 I32 "
               "U32 F32 I64 U64 F64)",
               path, name, dt->get<std::string>());

  auto sh = e.find("shape");
  if (sh == e.end() || !sh->is_array())
    fail_input("{}: tensor '{}': missing \"shape\" or not an array", path, name);
  for (const json& d : *sh) {
    if (!d.is_number_unsigned())
      fail_input("{}: tensor '{}': shape {} has an entry that is not a non-negative integer", path, name,
                 json_brief(*sh));
    uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(INT64_MAX))
      fail_input("{}: tensor '{}': shape {} has an entry too large", path, name, json_brief(*sh));
    t.shape.push_back(static_cast<int64_t>(v));
  }

  auto off = e.find("data_offsets");
  if (off == e.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned())
    fail_input("{}: tensor '{}': \"data_offsets\" must be [begin, end] of non-negative integers, found {}", path,
               name, off == e.end() ? std::string("nothing") : json_brief(*off));
  t.begin = (*off)[0].get<uint64_t>();
  t.end = (*off)[1].get<uint64_t>();
  if (t.begin > t.end)
    fail_input("{}: tensor '{}': data_offsets [{}, {}] have begin > end", path, name, t.begin, t.end);
  if (t.end > buffer_size)
    fail_input("{}: tensor '{}': data_offsets [{}, {}] go beyond the end of the data buffer ({} bytes); "
               "file truncated?",
               path, name, t.begin, t.end, buffer_size);

  // The element count must fit whatever order the dimensions are multiplied in (a zero dimension
  // does not excuse [0, 2^62, 2^62]): checked over the non-zero dimensions.
  std::vector<int64_t> nonzero;
  for (int64_t d : t.shape)
    if (d) nonzero.push_back(d);
  uint64_t expected = 0;
  if (!st_byte_count(nonzero, st_dtype_size(t.dtype), &expected) || expected > static_cast<uint64_t>(INT64_MAX) ||
      !st_byte_count(t.shape, st_dtype_size(t.dtype), &expected))
    fail_input("{}: tensor '{}': shape {} x {} overflows 64-bit byte count", path, name, st_shape_text(t.shape),
               st_dtype_name(t.dtype));
  if (t.end - t.begin != expected)
    fail_input("{}: tensor '{}': data_offsets [{}, {}] give {} bytes, expected {} (shape {} x {})", path, name,
               t.begin, t.end, t.end - t.begin, expected, st_shape_text(t.shape), st_dtype_name(t.dtype));
  return t;
}

}  // namespace

const char* st_dtype_name(StDType t) {
  for (const auto& r : kDTypes)
    if (r.dtype == t) return r.name;
  return "?";
}

int st_dtype_size(StDType t) {
  for (const auto& r : kDTypes)
    if (r.dtype == t) return r.size;
  return 0;
}

bool st_dtype_from_name(const std::string& name, StDType* out) {
  for (const auto& r : kDTypes)
    if (name == r.name) {
      *out = r.dtype;
      return true;
    }
  return false;
}

std::string st_shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool st_byte_count(const std::vector<int64_t>& shape, int itemsize, uint64_t* out) {
  uint64_t n = static_cast<uint64_t>(itemsize);
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  *out = n;
  return true;
}

int64_t StTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, uint64_t size, const std::string& path) {
  if (size < 8)
    fail_input("{}: file is {} bytes, too short for a safetensors file (expected at least the 8-byte header "
               "length)",
               path, size);
  SafetensorsHeader h;
  uint64_t n = 0;
  std::memcpy(&n, bytes, 8);
  if (n > kMaxHeaderBytes)
    fail_input("{}: header length {} exceeds the 100 MB limit (corrupt or not a safetensors file)", path, n);
  if (8 + n > size)
    fail_input("{}: header length {} goes beyond the end of the file ({} bytes, so at most {} available)", path,
               n, size, size - 8);
  if (n == 0 || bytes[8] != '{')
    fail_input("{}: header does not start with '{{' (found {}); not a safetensors file", path,
               n == 0 ? std::string("an empty header") : fmt::format("byte 0x{:02x}", bytes[8]));

  // Bounded before parsing: the nesting depth is scanned first (a valid header nests 3 levels), so
  // hostile nesting cannot exhaust the stack. nlohmann keeps the last of duplicate keys silently,
  // so the keys of every object are counted as they are parsed.
  const char* hb = reinterpret_cast<const char*>(bytes + 8);
  const std::string header_text(hb, hb + n);
  if (json_nesting_depth(header_text, kMaxHeaderDepth) > kMaxHeaderDepth)
    fail_input("{}: header JSON nests deeper than {} levels; not a safetensors header", path, kMaxHeaderDepth);
  std::vector<std::set<std::string>> seen;
  std::string duplicate;
  bool duplicate_top = false;
  json header;
  try {
    header = json::parse(header_text, [&](int, json::parse_event_t ev, json& parsed) {
      if (ev == json::parse_event_t::object_start) seen.emplace_back();
      if (ev == json::parse_event_t::object_end && !seen.empty()) seen.pop_back();
      if (ev == json::parse_event_t::key && !seen.empty()) {
        const std::string& k = parsed.get_ref<const std::string&>();
        if (!seen.back().insert(k).second && duplicate.empty()) duplicate = k, duplicate_top = seen.size() == 1;
      }
      return true;
    });
  } catch (const json::exception& e) {
    fail_input("{}: header is not valid JSON: {}", path, e.what());
  }
  if (!header.is_object()) fail_input("{}: header JSON is {}, expected an object", path, header.type_name());
  if (!duplicate.empty())
    fail_input("{}: {} '{}' appears more than once in the header", path,
               !duplicate_top ? "field" : duplicate == "__metadata__" ? "key" : "tensor", duplicate);

  const uint64_t buffer_size = size - 8 - n;
  h.data_start = 8 + n;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) fail_input("{}: \"__metadata__\" is {}, expected an object", path, it->type_name());
      for (auto m2 = it->begin(); m2 != it->end(); ++m2) {
        if (!m2->is_string())
          fail_input("{}: \"__metadata__\" entry '{}' is {}, expected a string", path, m2.key(),
                     m2->type_name());
        h.metadata[m2.key()] = m2->get<std::string>();
      }
      continue;
    }
    h.tensors.push_back(parse_entry(path, it.key(), *it, buffer_size));
  }

  // Sorted by offsets, the tensors must tile the buffer: each begins where the previous ended.
  std::sort(h.tensors.begin(), h.tensors.end(), [](const StTensorInfo& a, const StTensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  const StTensorInfo* prev = nullptr;
  for (const StTensorInfo& t : h.tensors) {
    if (t.begin < pos)
      fail_input("{}: tensor '{}': data_offsets [{}, {}] overlap tensor '{}' [{}, {}]", path, t.name, t.begin,
                 t.end, prev->name, prev->begin, prev->end);
    if (t.begin > pos)
      fail_input("{}: tensor '{}': data_offsets [{}, {}] leave a gap of {} bytes after {}", path, t.name,
                 t.begin, t.end, t.begin - pos,
                 prev ? fmt::format("tensor '{}' (ends at {})", prev->name, prev->end)
                      : std::string("the start of the data buffer"));
    pos = t.end;
    prev = &t;
  }
  if (pos != buffer_size)
    fail_input("{}: {} trailing bytes after the last tensor{} (data buffer is {} bytes, tensors end at {})", path,
               buffer_size - pos, prev ? fmt::format(" '{}'", prev->name) : std::string(), buffer_size, pos);

  return h;
}

}  // namespace mp
