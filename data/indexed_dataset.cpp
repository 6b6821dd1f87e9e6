// Megatron indexed dataset (PREFIX.bin + PREFIX.idx): strict reader and atomic writer.
//
// .idx layout (little-endian), as Megatron-LM's _IndexWriter writes it:
//   offset 0   magic "MMIDIDX\0\0"           9 bytes
//   offset 9   version = 1                    u64
//   offset 17  dtype code (1..8)              u8
//   offset 18  sequence count S               u64
//   offset 26  document count D               u64   (D = len(doc_idx) = documents + 1)
//   offset 34  lengths[S]                     i32   (tokens per sequence)
//              pointers[S]                    i64   (byte offset of each sequence in .bin)
//              doc_idx[D]                     i64   (doc_idx[0] = 0; document i = sequences
//                                                    [doc_idx[i], doc_idx[i+1]); last = S)
// Megatron's multimodal variant appends S one-byte sequence modes; they are accepted and ignored.
// .bin: the sequences' tokens back to back, no header.
//
// Invariants after open(): every sequence lies inside the mapped .bin; pointers are
// non-decreasing; doc_idx starts at 0, is non-decreasing and never exceeds S;
// seq_start_ has S + 1 entries (prefix sums of lengths, seq_start_[S] = total_tokens_).
#include "data/indexed_dataset.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/input_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

namespace fs = std::filesystem;

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the token reader assumes a little-endian host (as Megatron's files are little-endian)"
#endif

namespace mp {
namespace {

constexpr char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
constexpr size_t kHeaderSize = 9 + 8 + 1 + 8 + 8;  // 34

bool valid_dtype_code(uint8_t c) { return c >= 1 && c <= 8; }

// A read-only memory map of a whole file; an empty file maps to nullptr.
struct Mapping {
  void* data = nullptr;
  size_t size = 0;
};

Mapping map_file(const std::string& path, const std::string& what) {
  uint64_t size = 0;
  const int fd = open_regular_file(path, &size, what.c_str());  // a pipe is refused, never waited on
  Mapping m;
  m.size = static_cast<size_t>(size);
  if (m.size > 0) {
    void* p = ::mmap(nullptr, m.size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      fail_runtime("{}: cannot memory-map {} bytes: {}", path, m.size, std::strerror(err));
    }
    m.data = p;
  }
  ::close(fd);
  return m;
}

void unmap(Mapping& m) {
  if (m.data) ::munmap(m.data, m.size);
  m.data = nullptr;
}

// Little-endian reads from a byte buffer (no alignment assumptions).
template <typename T>
T load(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
int64_t to_i64(T v) {
  if constexpr (std::is_floating_point_v<T>) {
    // Float token files are checked at open (check_float_tokens); this guard only keeps the
    // conversion defined.
    if (!std::isfinite(v) || std::fabs(static_cast<double>(v)) >= 9.2e18) return 0;
  }
  return static_cast<int64_t>(v);
}

template <typename T>
void widen(const unsigned char* src, int64_t count, int64_t* out) {
  for (int64_t i = 0; i < count; ++i) out[i] = to_i64(load<T>(src + i * sizeof(T)));
}

void widen_any(TokenDType t, const unsigned char* src, int64_t count, int64_t* out) {
  switch (t) {
    case TokenDType::U8: return widen<uint8_t>(src, count, out);
    case TokenDType::I8: return widen<int8_t>(src, count, out);
    case TokenDType::I16: return widen<int16_t>(src, count, out);
    case TokenDType::I32: return widen<int32_t>(src, count, out);
    case TokenDType::I64: return widen<int64_t>(src, count, out);
    case TokenDType::F64: return widen<double>(src, count, out);
    case TokenDType::F32: return widen<float>(src, count, out);
    case TokenDType::U16: return widen<uint16_t>(src, count, out);
  }
}

// The integer range a dtype holds exactly (floats: the integers they represent without gaps).
void dtype_range(TokenDType t, int64_t* lo, int64_t* hi) {
  switch (t) {
    case TokenDType::U8: *lo = 0; *hi = 255; return;
    case TokenDType::I8: *lo = -128; *hi = 127; return;
    case TokenDType::I16: *lo = -32768; *hi = 32767; return;
    case TokenDType::I32:
      *lo = std::numeric_limits<int32_t>::min();
      *hi = std::numeric_limits<int32_t>::max();
      return;
    case TokenDType::I64:
      *lo = std::numeric_limits<int64_t>::min();
      *hi = std::numeric_limits<int64_t>::max();
      return;
    case TokenDType::F64: *lo = -(int64_t{1} << 53); *hi = int64_t{1} << 53; return;
    case TokenDType::F32: *lo = -(int64_t{1} << 24); *hi = int64_t{1} << 24; return;
    case TokenDType::U16: *lo = 0; *hi = 65535; return;
  }
}

template <typename T>
void store_all(const std::vector<int64_t>& tokens, std::vector<unsigned char>& buf) {
  size_t base = buf.size();
  buf.resize(base + tokens.size() * sizeof(T));
  for (size_t i = 0; i < tokens.size(); ++i) {
    T v = static_cast<T>(tokens[i]);
    std::memcpy(buf.data() + base + i * sizeof(T), &v, sizeof(T));
  }
}

void encode(TokenDType t, const std::vector<int64_t>& tokens, std::vector<unsigned char>& buf) {
  switch (t) {
    case TokenDType::U8: return store_all<uint8_t>(tokens, buf);
    case TokenDType::I8: return store_all<int8_t>(tokens, buf);
    case TokenDType::I16: return store_all<int16_t>(tokens, buf);
    case TokenDType::I32: return store_all<int32_t>(tokens, buf);
    case TokenDType::I64: return store_all<int64_t>(tokens, buf);
    case TokenDType::F64: return store_all<double>(tokens, buf);
    case TokenDType::F32: return store_all<float>(tokens, buf);
    case TokenDType::U16: return store_all<uint16_t>(tokens, buf);
  }
}

template <typename T>
void put(std::string& s, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  s.append(b, sizeof(T));
}

}  // namespace

namespace {

// Float token files are rare; every value is checked once at open, so that NaN, infinities and
// fractions are refused naming the file instead of being read as some token id.
void check_float_tokens(TokenDType dtype, const unsigned char* base, const std::vector<int64_t>& lengths,
                        const std::vector<int64_t>& pointers, const std::string& bin_path) {
  const bool f64 = dtype == TokenDType::F64;
  const int64_t isz = f64 ? 8 : 4;
  for (size_t s = 0; s < lengths.size(); ++s) {
    for (int64_t i = 0; i < lengths[s]; ++i) {
      const unsigned char* p = base + pointers[s] + i * isz;
      const double v = f64 ? load<double>(p) : static_cast<double>(load<float>(p));
      if (!std::isfinite(v) || v != std::floor(v) || std::fabs(v) > 9007199254740992.0)
        fail_input("{}: sequence {} token {}: {} is not a whole-number token id ({} token data)", bin_path, s, i, v,
                   f64 ? "float64" : "float32");
    }
  }
}

}  // namespace

int token_dtype_size(TokenDType t) {
  switch (t) {
    case TokenDType::U8:
    case TokenDType::I8: return 1;
    case TokenDType::I16:
    case TokenDType::U16: return 2;
    case TokenDType::I32:
    case TokenDType::F32: return 4;
    case TokenDType::I64:
    case TokenDType::F64: return 8;
  }
  return 0;
}

const char* token_dtype_name(TokenDType t) {
  switch (t) {
    case TokenDType::U8: return "uint8";
    case TokenDType::I8: return "int8";
    case TokenDType::I16: return "int16";
    case TokenDType::I32: return "int32";
    case TokenDType::I64: return "int64";
    case TokenDType::F64: return "float64";
    case TokenDType::F32: return "float32";
    case TokenDType::U16: return "uint16";
  }
  return "unknown";
}

TokenDType token_dtype_for_vocab(int64_t vocab_size) {
  return vocab_size < 65500 ? TokenDType::U16 : TokenDType::I32;
}

// ---------------------------------------------------------------------------------------------
// Reader

MegatronIndex parse_megatron_index(const unsigned char* p, size_t n, uint64_t bin_bytes, const std::string& idx_path,
                                   const std::string& bin_path) {
  if (n < kHeaderSize)
    fail_input("{}: truncated: the header needs {} bytes, file has {}", idx_path, kHeaderSize, n);
  if (std::memcmp(p, kMagic, 9) != 0) {
    std::string found;
    for (int i = 0; i < 9; ++i) found += fmt::format("{:02x}", p[i]);
    fail_input("{}: bad magic: expected 4d4d49444944580000 (\"MMIDIDX\\0\\0\", a Megatron mmap "
               "indexed dataset), found {}",
               idx_path, found);
  }
  uint64_t version = load<uint64_t>(p + 9);
  if (version != 1) fail_input("{}: version: expected 1, found {}", idx_path, version);
  uint8_t code = p[17];
  if (!valid_dtype_code(code))
    fail_input("{}: dtype code: expected 1..8 (1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, "
               "6 float64, 7 float32, 8 uint16), found {}",
               idx_path, code);
  MegatronIndex ix;
  ix.dtype = static_cast<TokenDType>(code);
  const int64_t itemsize = token_dtype_size(ix.dtype);
  const uint64_t S = load<uint64_t>(p + 18), D = load<uint64_t>(p + 26);

  const uint64_t body = n - kHeaderSize;
  // Guard the size arithmetic: counts beyond 2^59 cannot fit any real file.
  constexpr uint64_t kCap = uint64_t{1} << 59;
  if (S > kCap || D > kCap || 12 * S + 8 * D > body) {
    std::string needs = (S > kCap || D > kCap)
                            ? std::string("more bytes than any file holds")
                            : fmt::format("{} bytes of lengths, pointers and document indices",
                                          12 * S + 8 * D);
    fail_input("{}: truncated: header says {} sequences and {} document indices (needs {}), "
               "file has {} bytes after the header",
               idx_path, S, D, needs, body);
  }
  const uint64_t need = 12 * S + 8 * D;
  if (body != need && body != need + S)
    fail_input("{}: size: header says {} sequences and {} document indices ({} bytes after the "
               "header), file has {} bytes after the header",
               idx_path, S, D, need, body);
  if (D < 1)
    fail_input("{}: document indices: expected at least one entry (doc_idx[0] = 0), found none",
               idx_path);
  if (bin_bytes > static_cast<uint64_t>(INT64_MAX))
    fail_input("{}: {} bytes is more than any token file holds", bin_path, bin_bytes);
  const int64_t bin_size = static_cast<int64_t>(bin_bytes);

  const unsigned char* len_p = p + kHeaderSize;
  const unsigned char* ptr_p = len_p + 4 * S;
  const unsigned char* doc_p = ptr_p + 8 * S;
  ix.lengths.resize(S);
  ix.pointers.resize(S);
  int64_t prev_ptr = 0;
  for (uint64_t i = 0; i < S; ++i) {
    int64_t len = load<int32_t>(len_p + 4 * i);
    int64_t ptr = load<int64_t>(ptr_p + 8 * i);
    if (len < 0) fail_input("{}: lengths[{}]: expected >= 0, found {}", idx_path, i, len);
    if (ptr < 0) fail_input("{}: pointers[{}]: expected >= 0, found {}", idx_path, i, ptr);
    if (i > 0 && ptr < prev_ptr)
      fail_input("{}: pointers[{}]: expected non-decreasing byte offsets, found {} after {}",
                 idx_path, i, ptr, prev_ptr);
    if (ptr > bin_size || len * itemsize > bin_size - ptr)
      fail_input("{}: too short for pointers[{}]: sequence {} spans bytes [{}, {}) ({} {} tokens), "
                 "file has {} bytes",
                 // ptr and the byte count are each below 2^63, so their sum fits unsigned 64 bits.
                 bin_path, i, i, ptr, static_cast<uint64_t>(ptr) + static_cast<uint64_t>(len * itemsize), len,
                 token_dtype_name(ix.dtype), bin_size);
    ix.lengths[i] = len;
    ix.pointers[i] = ptr;
    prev_ptr = ptr;
  }

  ix.doc_idx.resize(D);
  for (uint64_t i = 0; i < D; ++i) {
    int64_t d = load<int64_t>(doc_p + 8 * i);
    if (i == 0 && d != 0)
      fail_input("{}: document indices[0]: expected 0, found {}", idx_path, d);
    if (d < 0 || static_cast<uint64_t>(d) > S)
      fail_input("{}: document indices[{}]: expected a sequence index in [0, {}], found {}",
                 idx_path, i, S, d);
    if (i > 0 && d < ix.doc_idx[i - 1])
      fail_input("{}: document indices[{}]: expected non-decreasing, found {} after {}", idx_path,
                 i, d, ix.doc_idx[i - 1]);
    ix.doc_idx[i] = d;
  }
  return ix;
}

std::shared_ptr<IndexedDataset> IndexedDataset::open(const std::string& prefix) {
  const std::string idx_path = prefix + ".idx", bin_path = prefix + ".bin";
  // Check both before mapping anything so the message names the file that is really missing.
  if (!fs::exists(idx_path))
    fail_input("{}: file not found (index of the token dataset {})", idx_path, prefix);
  if (!fs::exists(bin_path))
    fail_input("{}: file not found (token data of the dataset {})", bin_path, prefix);

  std::shared_ptr<IndexedDataset> ds(new IndexedDataset());
  ds->prefix_ = prefix;

  Mapping idx = map_file(idx_path, "index of the token dataset");
  struct Unmap {
    Mapping& m;
    ~Unmap() { unmap(m); }
  } idx_guard{idx};
  const uint64_t bin_bytes = require_regular_file(bin_path, "token data of the dataset");
  MegatronIndex ix = parse_megatron_index(static_cast<const unsigned char*>(idx.data), idx.size, bin_bytes,
                                          idx_path, bin_path);

  Mapping bin = map_file(bin_path, "token data of the dataset");
  ds->bin_map_ = bin.data;  // owned by ds from here: its destructor unmaps
  ds->bin_size_ = bin.size;
  if (bin.size != bin_bytes)
    fail_input("{}: changed size while being opened ({} bytes, then {})", bin_path, bin_bytes, bin.size);
  ds->dtype_ = ix.dtype;
  ds->lengths_ = std::move(ix.lengths);
  ds->pointers_ = std::move(ix.pointers);
  ds->doc_idx_ = std::move(ix.doc_idx);
  ds->seq_start_.assign(ds->lengths_.size() + 1, 0);
  for (size_t i = 0; i < ds->lengths_.size(); ++i) ds->seq_start_[i + 1] = ds->seq_start_[i] + ds->lengths_[i];
  ds->total_tokens_ = ds->seq_start_.back();
  if (ds->dtype_ == TokenDType::F32 || ds->dtype_ == TokenDType::F64)
    check_float_tokens(ds->dtype_, static_cast<const unsigned char*>(ds->bin_map_), ds->lengths_, ds->pointers_,
                       bin_path);
  return ds;
}

IndexedDataset::~IndexedDataset() {
  if (bin_map_) ::munmap(bin_map_, bin_size_);
}

int64_t IndexedDataset::num_documents() const {
  return static_cast<int64_t>(doc_idx_.size()) - 1;
}

std::vector<int64_t> IndexedDataset::read(int64_t sequence, int64_t offset, int64_t count) const {
  if (sequence < 0 || sequence >= num_sequences())
    fail_runtime("{}: sequence {} out of range [0, {})", prefix_, sequence, num_sequences());
  const int64_t len = lengths_[sequence];
  if (offset < 0 || count < 0 || offset > len || count > len - offset)
    fail_runtime("{}: tokens [{}, {}) out of range for sequence {} of {} tokens", prefix_, offset,
                 offset + count, sequence, len);
  std::vector<int64_t> out(count);
  if (count > 0) {
    const int64_t isz = token_dtype_size(dtype_);
    const auto* src = static_cast<const unsigned char*>(bin_map_) + pointers_[sequence] + offset * isz;
    widen_any(dtype_, src, count, out.data());
  }
  return out;
}

void IndexedDataset::read_stream(int64_t start, int64_t count, int64_t* out) const {
  if (start < 0 || count < 0 || start > total_tokens_ || count > total_tokens_ - start)
    fail_runtime("{}: stream tokens [{}, {}) out of range [0, {})", prefix_, start, start + count,
                 total_tokens_);
  if (count == 0) return;
  const int64_t isz = token_dtype_size(dtype_);
  const auto* base = static_cast<const unsigned char*>(bin_map_);
  // Last sequence whose start is <= start: it holds token `start` (empty ones are skipped
  // because an empty sequence shares its start with the next one).
  auto it = std::upper_bound(seq_start_.begin(), seq_start_.end(), start);
  int64_t s = static_cast<int64_t>(it - seq_start_.begin()) - 1;
  int64_t pos = start, done = 0;
  while (done < count) {
    const int64_t off = pos - seq_start_[s];
    const int64_t take = std::min(lengths_[s] - off, count - done);
    if (take > 0) {
      widen_any(dtype_, base + pointers_[s] + off * isz, take, out + done);
      done += take;
      pos += take;
    }
    ++s;
  }
}

int64_t IndexedDataset::max_token() const {
  if (max_token_ != -1) return max_token_;
  int64_t best = std::numeric_limits<int64_t>::min();
  bool any = false;
  const int64_t isz = token_dtype_size(dtype_);
  const auto* base = static_cast<const unsigned char*>(bin_map_);
  constexpr int64_t kChunk = 1 << 14;
  std::vector<int64_t> buf(kChunk);
  for (size_t s = 0; s < lengths_.size(); ++s) {
    for (int64_t off = 0; off < lengths_[s]; off += kChunk) {
      const int64_t take = std::min(kChunk, lengths_[s] - off);
      widen_any(dtype_, base + pointers_[s] + off * isz, take, buf.data());
      for (int64_t i = 0; i < take; ++i) best = std::max(best, buf[i]);
      any = true;
    }
  }
  // An empty dataset reports -1 (no token at all); not cached, it costs nothing to redo.
  max_token_ = any ? best : -1;
  return max_token_;
}

// ---------------------------------------------------------------------------------------------
// Writer

struct IndexedDatasetWriter::Impl {
  std::string prefix;
  TokenDType dtype;
  AtomicFile bin, idx;
  std::FILE* f = nullptr;
  std::vector<int32_t> lengths;
  std::vector<int64_t> pointers;
  std::vector<int64_t> doc_idx{0};
  int64_t bytes = 0;
  bool open_document = false;  // sequences added since the last end_document()
  bool finished = false;
  std::vector<unsigned char> buf;

  Impl(std::string p, TokenDType t)
      : prefix(std::move(p)), dtype(t), bin(prefix + ".bin"), idx(prefix + ".idx") {}
  ~Impl() {
    if (f) std::fclose(f);
  }
};

IndexedDatasetWriter::IndexedDatasetWriter(std::string prefix, TokenDType dtype) {
  if (!valid_dtype_code(static_cast<uint8_t>(dtype)))
    fail_usage("{}: token dtype code {} is not one of 1..8", prefix, static_cast<int>(dtype));
  impl_ = std::make_unique<Impl>(std::move(prefix), dtype);
  impl_->f = std::fopen(impl_->bin.temp_path().c_str(), "wb");
  if (!impl_->f)
    fail_runtime("{}: cannot create {}: {}", impl_->prefix + ".bin", impl_->bin.temp_path(),
                 std::strerror(errno));
  std::setvbuf(impl_->f, nullptr, _IOFBF, 1 << 20);
}

IndexedDatasetWriter::~IndexedDatasetWriter() = default;

void IndexedDatasetWriter::add_sequence(const std::vector<int64_t>& tokens) {
  Impl& w = *impl_;
  const std::string bin_path = w.prefix + ".bin";
  if (w.finished) fail_runtime("{}: add_sequence after finish()", bin_path);
  int64_t lo = 0, hi = 0;
  dtype_range(w.dtype, &lo, &hi);
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < lo || tokens[i] > hi)
      fail_input("{}: token {} (position {} of sequence {}) does not fit {} (range [{}, {}])",
                 bin_path, tokens[i], i, w.lengths.size(), token_dtype_name(w.dtype), lo, hi);
  if (tokens.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    fail_input("{}: sequence {} has {} tokens; the index stores lengths as int32 (at most {})",
               bin_path, w.lengths.size(), tokens.size(), std::numeric_limits<int32_t>::max());
  w.buf.clear();
  encode(w.dtype, tokens, w.buf);
  if (!w.buf.empty() && std::fwrite(w.buf.data(), 1, w.buf.size(), w.f) != w.buf.size())
    fail_runtime("{}: write failed: {}", w.bin.temp_path(), std::strerror(errno));
  w.pointers.push_back(w.bytes);
  w.lengths.push_back(static_cast<int32_t>(tokens.size()));
  w.bytes += static_cast<int64_t>(w.buf.size());
  w.open_document = true;
}

void IndexedDatasetWriter::end_document() {
  Impl& w = *impl_;
  if (w.finished) fail_runtime("{}: end_document after finish()", w.prefix + ".idx");
  // As Megatron's builder: always appends the sequence count (an empty document if nothing
  // was added since the last call).
  w.doc_idx.push_back(static_cast<int64_t>(w.lengths.size()));
  w.open_document = false;
}

void IndexedDatasetWriter::finish() {
  Impl& w = *impl_;
  const std::string bin_path = w.prefix + ".bin", idx_path = w.prefix + ".idx";
  if (w.finished) fail_runtime("{}: finish() called twice", idx_path);
  if (w.open_document) end_document();

  int rc = std::fclose(w.f);
  w.f = nullptr;
  if (rc != 0) fail_runtime("{}: write failed: {}", w.bin.temp_path(), std::strerror(errno));

  const uint64_t S = w.lengths.size(), D = w.doc_idx.size();
  std::string h;
  h.reserve(kHeaderSize + 12 * S + 8 * D);
  h.append(kMagic, 9);
  put<uint64_t>(h, 1);
  put<uint8_t>(h, static_cast<uint8_t>(w.dtype));
  put<uint64_t>(h, S);
  put<uint64_t>(h, D);
  for (int32_t v : w.lengths) put<int32_t>(h, v);
  for (int64_t v : w.pointers) put<int64_t>(h, v);
  for (int64_t v : w.doc_idx) put<int64_t>(h, v);
  {
    std::FILE* fi = std::fopen(w.idx.temp_path().c_str(), "wb");
    if (!fi) fail_runtime("{}: cannot create {}: {}", idx_path, w.idx.temp_path(), std::strerror(errno));
    size_t wrote = std::fwrite(h.data(), 1, h.size(), fi);
    int crc = std::fclose(fi);
    if (wrote != h.size() || crc != 0)
      fail_runtime("{}: write failed: {}", w.idx.temp_path(), std::strerror(errno));
  }
  // .bin first, then .idx: a reader never finds a new index describing a missing .bin. An older
  // .idx goes before the new .bin arrives, so that a kill between the two renames leaves a .bin
  // without an index (recognisably unfinished), never a new .bin under an old index.
  std::error_code ec;
  if (fs::is_regular_file(idx_path, ec)) fs::remove(idx_path, ec);
  w.bin.commit();
  try {
    w.idx.commit();
  } catch (...) {
    // Neither file may be left: the new .bin goes too.
    fs::remove(bin_path, ec);
    throw;
  }
  w.finished = true;
}

}  // namespace mp
