// safetensors reading (mmap; the header validated by safetensors_header.cpp, so once open()
// returns every tensor's bytes lie inside the data buffer, its byte count equals
// prod(shape) * itemsize, and the tensors tile the buffer exactly) and atomic writing. Data is
// little-endian on disk; hosts are assumed little-endian (checked at compile time below).
#include "model/safetensors.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/input_file.h"

#include <ATen/ops/empty.h>
#include <c10/core/ScalarType.h>
#include <c10/core/TensorOptions.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors IO assumes a little-endian host");

namespace mp {
namespace {

using json = nlohmann::json;

const char* kSupportedForLoad = "F16, BF16, F32, F64, I8, I16, I32, I64, U8, BOOL";

}  // namespace

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

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;

  uint64_t file_size = 0;
  const int fd = open_regular_file(path, &file_size, "safetensors");  // never blocks on a pipe
  if (file_size < 8) {
    ::close(fd);
    parse_safetensors_header(nullptr, file_size, path);  // throws: too short
  }
  void* m = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);
  if (m == MAP_FAILED) fail_input("{}: cannot memory-map: {}", path, std::strerror(map_err));
  f->map_ = m;  // owned by f from here on: an exception below unmaps it in ~SafetensorsFile
  f->map_size_ = file_size;
  const auto* bytes = static_cast<const uint8_t*>(m);

  SafetensorsHeader h = parse_safetensors_header(bytes, file_size, path);
  f->tensors_ = std::move(h.tensors);
  f->metadata_ = std::move(h.metadata);
  f->buffer_ = bytes + h.data_start;
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

const StTensorInfo& SafetensorsFile::loadable(const std::string& name, at::ScalarType* st) const {
  const StTensorInfo* t = find(name);
  if (!t) fail_input("{}: tensor '{}' not found", path_, name);
  if (!st_dtype_to_scalar_type(t->dtype, st))
    fail_input("{}: tensor '{}': dtype {} is not supported (supported: {})", path_, name,
               st_dtype_name(t->dtype), kSupportedForLoad);
  return *t;
}

at::Tensor SafetensorsFile::load(const std::string& name) const {
  at::ScalarType st;
  const StTensorInfo& t = loadable(name, &st);
  at::Tensor out = at::empty(t.shape, at::TensorOptions().dtype(st));
  if (t.end > t.begin) std::memcpy(out.data_ptr(), data(t), t.end - t.begin);
  return out;
}

at::Tensor SafetensorsFile::load_range(const std::string& name, int64_t begin, int64_t end) const {
  at::ScalarType st;
  const StTensorInfo& t = loadable(name, &st);
  const int64_t size = st_dtype_size(t.dtype);
  const int64_t numel = static_cast<int64_t>(t.end - t.begin) / size;
  if (begin < 0 || end < begin || end > numel)
    fail_runtime("{}: tensor '{}': range [{}, {}) outside its {} elements", path_, name, begin, end, numel);
  at::Tensor out = at::empty({end - begin}, at::TensorOptions().dtype(st));
  if (end > begin) std::memcpy(out.data_ptr(), data(t) + begin * size, static_cast<size_t>((end - begin) * size));
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
      if (d < 0) fail_input("{}: tensor '{}': shape {} has a negative size", path_, s.name, st_shape_text(s.shape));
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
      if (!st_byte_count(s.shape, st_dtype_size(s.dtype), &bytes) || offset + bytes < offset)
        fail_input("{}: tensor '{}': shape {} overflows a 64-bit byte count", path_, s.name, st_shape_text(s.shape));
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
               st_shape_text(std::vector<int64_t>(t.sizes().begin(), t.sizes().end())), st_shape_text(s.shape));
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
