// safetensors reading (mmap + full validation) and atomic writing. See safetensors.h and
// docs/formats.md. Invariants a SafetensorsFile guarantees once open() returns:
// every tensor's bytes lie inside the data buffer, its byte count equals prod(shape) * itemsize,
// and the tensors tile the buffer exactly. Data is little-endian on disk; hosts are assumed
// little-endian (checked at compile time below).
#include "model/safetensors.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/input_file.h"
#include "common/json_file.h"

#include <ATen/ops/empty.h>
#include <c10/core/ScalarType.h>
#include <c10/core/TensorOptions.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
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

const char* kSupportedForLoad = "F16, BF16, F32, F64, I8, I16, I32, I64, U8, BOOL";

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// prod(shape) * itemsize, false on overflow.
bool byte_count(const std::vector<int64_t>& shape, int itemsize, uint64_t* out) {
  uint64_t n = static_cast<uint64_t>(itemsize);
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  *out = n;
  return true;
}

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
  if (!byte_count(nonzero, st_dtype_size(t.dtype), &expected) || expected > static_cast<uint64_t>(INT64_MAX) ||
      !byte_count(t.shape, st_dtype_size(t.dtype), &expected))
    fail_input("{}: tensor '{}': shape {} x {} overflows 64-bit byte count", path, name, shape_str(t.shape),
               st_dtype_name(t.dtype));
  if (t.end - t.begin != expected)
    fail_input("{}: tensor '{}': data_offsets [{}, {}] give {} bytes, expected {} (shape {} x {})", path, name,
               t.begin, t.end, t.end - t.begin, expected, shape_str(t.shape), st_dtype_name(t.dtype));
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

bool st_dtype_to_scalar_type(StDType t, at::ScalarType* out) {
  switch (t) {
    case StDType::BOOL: *out = at::kBool; return true;
    case StDType::U8: *out = at::kByte; return true;
    case StDType::I8: *out = at::kChar; return true;
    case StDType::I16: *out = at::kShort; return true;
    case StDType::F16: *out = at::kHalf; return true;
    case StDType::BF16: *out = at::kBFloat16; return true;
    case StDType::I32: *out = at::kInt; return true;
    case StDType::F32: *out = at::kFloat; return true;
    case StDType::I64: *out = at::kLong; return true;
    case StDType::F64: *out = at::kDouble; return true;
    default: return false;
  }
}

bool st_dtype_from_scalar_type(at::ScalarType s, StDType* out) {
  switch (s) {
    case at::kBool: *out = StDType::BOOL; return true;
    case at::kByte: *out = StDType::U8; return true;
    case at::kChar: *out = StDType::I8; return true;
    case at::kShort: *out = StDType::I16; return true;
    case at::kHalf: *out = StDType::F16; return true;
    case at::kBFloat16: *out = StDType::BF16; return true;
    case at::kInt: *out = StDType::I32; return true;
    case at::kFloat: *out = StDType::F32; return true;
    case at::kLong: *out = StDType::I64; return true;
    case at::kDouble: *out = StDType::F64; return true;
    default: return false;
  }
}

int64_t StTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;

  uint64_t file_size = 0;
  const int fd = open_regular_file(path, &file_size, "safetensors");  // never blocks on a pipe
  if (file_size < 8) {
    ::close(fd);
    fail_input("{}: file is {} bytes, too short for a safetensors file (expected at least the 8-byte header "
               "length)",
               path, file_size);
  }
  void* m = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);
  if (m == MAP_FAILED) fail_input("{}: cannot memory-map: {}", path, std::strerror(map_err));
  f->map_ = m;  // owned by f from here on: an exception below unmaps it in ~SafetensorsFile
  f->map_size_ = file_size;
  const auto* bytes = static_cast<const uint8_t*>(m);

  uint64_t n = 0;
  std::memcpy(&n, bytes, 8);
  if (n > kMaxHeaderBytes)
    fail_input("{}: header length {} exceeds the 100 MB limit (corrupt or not a safetensors file)", path, n);
  if (8 + n > file_size)
    fail_input("{}: header length {} goes beyond the end of the file ({} bytes, so at most {} available)", path,
               n, file_size, file_size - 8);
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

  const uint64_t buffer_size = file_size - 8 - n;
  f->buffer_ = bytes + 8 + n;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) fail_input("{}: \"__metadata__\" is {}, expected an object", path, it->type_name());
      for (auto m2 = it->begin(); m2 != it->end(); ++m2) {
        if (!m2->is_string())
          fail_input("{}: \"__metadata__\" entry '{}' is {}, expected a string", path, m2.key(),
                     m2->type_name());
        f->metadata_[m2.key()] = m2->get<std::string>();
      }
      continue;
    }
    f->tensors_.push_back(parse_entry(path, it.key(), *it, buffer_size));
  }

  // Sorted by offsets, the tensors must tile the buffer: each begins where the previous ended.
  std::sort(f->tensors_.begin(), f->tensors_.end(), [](const StTensorInfo& a, const StTensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  const StTensorInfo* prev = nullptr;
  for (const StTensorInfo& t : f->tensors_) {
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

  for (size_t i = 0; i < f->tensors_.size(); ++i) f->index_[f->tensors_[i].name] = i;
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

const StTensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t* SafetensorsFile::data(const StTensorInfo& t) const { return buffer_ + t.begin; }

at::Tensor SafetensorsFile::load(const std::string& name) const {
  const StTensorInfo* t = find(name);
  if (!t) fail_input("{}: tensor '{}' not found", path_, name);
  at::ScalarType st;
  if (!st_dtype_to_scalar_type(t->dtype, &st))
    fail_input("{}: tensor '{}': dtype {} is not supported (supported: {})", path_, name,
               st_dtype_name(t->dtype), kSupportedForLoad);
  at::Tensor out = at::empty(t->shape, at::TensorOptions().dtype(st));
  if (t->end > t->begin) std::memcpy(out.data_ptr(), data(*t), t->end - t->begin);
  return out;
}

at::Tensor SafetensorsFile::load_range(const std::string& name, int64_t begin, int64_t end) const {
  const StTensorInfo* t = find(name);
  if (!t) fail_input("{}: tensor '{}' not found", path_, name);
  at::ScalarType st;
  if (!st_dtype_to_scalar_type(t->dtype, &st))
    fail_input("{}: tensor '{}': dtype {} is not supported (supported: {})", path_, name,
               st_dtype_name(t->dtype), kSupportedForLoad);
  const int64_t size = st_dtype_size(t->dtype);
  const int64_t numel = static_cast<int64_t>(t->end - t->begin) / size;
  if (begin < 0 || end < begin || end > numel)
    fail_runtime("{}: tensor '{}': range [{}, {}) outside its {} elements", path_, name, begin, end, numel);
  at::Tensor out = at::empty({end - begin}, at::TensorOptions().dtype(st));
  if (end > begin) std::memcpy(out.data_ptr(), data(*t) + begin * size, static_cast<size_t>((end - begin) * size));
  return out;
}

struct SafetensorsWriter::Impl {
  explicit Impl(const std::string& path) : out(path) {}
  AtomicFile out;
  std::ofstream f;
};

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<StTensorSpec> specs,
                                     const std::map<std::string, std::string>& metadata)
    : path_(std::move(path)), specs_(std::move(specs)) {
  // Validate everything before touching the disk.
  std::set<std::string> names;
  for (const StTensorSpec& s : specs_) {
    if (s.name.empty()) fail_input("{}: cannot write a tensor with an empty name", path_);
    if (s.name == "__metadata__") fail_input("{}: '__metadata__' is reserved and cannot name a tensor", path_);
    if (!names.insert(s.name).second) fail_input("{}: tensor '{}' given twice; names must be unique", path_, s.name);
    at::ScalarType st;
    if (!st_dtype_to_scalar_type(s.dtype, &st))
      fail_input("{}: tensor '{}': dtype {} cannot be written (supported: {})", path_, s.name,
                 st_dtype_name(s.dtype), kSupportedForLoad);
    for (int64_t d : s.shape)
      if (d < 0) fail_input("{}: tensor '{}': shape {} has a negative size", path_, s.name, shape_str(s.shape));
  }

  // Header: metadata first, then entries in the given order with sequential offsets.
  std::map<std::string, std::string> meta = metadata;
  meta["format"] = "pt";
  std::string header;
  try {
    header = "{\"__metadata__\":" + json(meta).dump();
    uint64_t offset = 0;
    for (const StTensorSpec& s : specs_) {
      uint64_t bytes = 0;
      if (!byte_count(s.shape, st_dtype_size(s.dtype), &bytes) || offset + bytes < offset)
        fail_input("{}: tensor '{}': shape {} overflows a 64-bit byte count", path_, s.name, shape_str(s.shape));
      json entry = {{"dtype", st_dtype_name(s.dtype)}, {"shape", s.shape}, {"data_offsets", {offset, offset + bytes}}};
      header += "," + json(s.name).dump() + ":" + entry.dump();
      offset += bytes;
    }
    header += "}";
  } catch (const json::exception& e) {  // e.g. a name or metadata value that is not valid UTF-8
    fail_input("{}: cannot encode the header: {}", path_, e.what());
  }
  header.append((8 - header.size() % 8) % 8, ' ');  // data buffer starts 8-byte aligned
  const uint64_t n = header.size();

  impl_ = std::make_unique<Impl>(path_);
  impl_->f.open(impl_->out.temp_path(), std::ios::binary | std::ios::trunc);
  if (!impl_->f) fail_runtime("{}: cannot create temporary file {}", path_, impl_->out.temp_path());
  char len[8];
  std::memcpy(len, &n, 8);
  impl_->f.write(len, 8);
  impl_->f.write(header.data(), static_cast<std::streamsize>(n));
  if (!impl_->f) fail_runtime("{}: write failed in the header (disk full?)", path_);
}

SafetensorsWriter::~SafetensorsWriter() = default;  // an unfinished AtomicFile removes its temporary

void SafetensorsWriter::write(const at::Tensor& t) {
  if (!impl_) fail_runtime("{}: write after finish()", path_);
  if (next_ >= specs_.size())
    fail_input("{}: all {} tensors are written already; no room for another", path_, specs_.size());
  const StTensorSpec& s = specs_[next_];
  StDType d;
  if (!t.defined()) fail_input("{}: tensor '{}' is undefined", path_, s.name);
  if (!st_dtype_from_scalar_type(t.scalar_type(), &d) || d != s.dtype)
    fail_input("{}: tensor '{}' is {}, the header says {}", path_, s.name, c10::toString(t.scalar_type()),
               st_dtype_name(s.dtype));
  if (std::vector<int64_t>(t.sizes().begin(), t.sizes().end()) != s.shape)
    fail_input("{}: tensor '{}' has shape {}, the header says {}", path_, s.name,
               shape_str(std::vector<int64_t>(t.sizes().begin(), t.sizes().end())), shape_str(s.shape));
  at::Tensor c = t.cpu().contiguous();
  const uint64_t bytes = static_cast<uint64_t>(c.numel()) * c.element_size();
  if (bytes) impl_->f.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(bytes));
  if (!impl_->f) fail_runtime("{}: write failed at tensor '{}' (disk full?)", path_, s.name);
  ++next_;
}

void SafetensorsWriter::finish() {
  if (!impl_) fail_runtime("{}: finish() called twice", path_);
  if (next_ != specs_.size())
    fail_input("{}: {} of {} tensors written; tensor '{}' and the rest are missing", path_, next_, specs_.size(),
               specs_[next_].name);
  impl_->f.flush();
  if (!impl_->f) fail_runtime("{}: write failed (disk full?)", path_);
  impl_->f.close();
  impl_->out.commit();
  impl_.reset();
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<StTensorSpec> specs;
  for (const auto& [name, t] : tensors) {
    if (!t.defined()) fail_input("{}: tensor '{}' is undefined", path, name);
    StDType d;
    if (!st_dtype_from_scalar_type(t.scalar_type(), &d))
      fail_input("{}: tensor '{}': dtype {} cannot be written (supported: {})", path, name,
                 c10::toString(t.scalar_type()), kSupportedForLoad);
    specs.push_back({name, d, std::vector<int64_t>(t.sizes().begin(), t.sizes().end())});
  }
  SafetensorsWriter w(path, std::move(specs), metadata);
  for (const auto& kv : tensors) w.write(kv.second);
  w.finish();
}

}  // namespace mp
