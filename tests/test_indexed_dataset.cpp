// Megatron indexed dataset: round trips for every dtype, the exact .idx byte layout written by
// hand from the spec (docs/formats: magic, u64 version, u8 dtype, u64 S, u64 D, i32 lengths,
// i64 pointers, i64 doc indices), and one test per rejected corruption.
#include "common/error.h"
#include "data/indexed_dataset.h"
#include "tests/expect_error.h"
#include "tests/test_util.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using mp::IndexedDataset;
using mp::IndexedDatasetWriter;
using mp::TokenDType;

namespace {

// Little-endian byte builder, independent of the code under test.
struct Bytes {
  std::string s;
  Bytes& raw(const std::string& r) { s += r; return *this; }
  Bytes& u8(uint8_t v) { s.push_back(static_cast<char>(v)); return *this; }
  Bytes& le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return *this;
  }
  Bytes& u64(uint64_t v) { return le(v, 8); }
  Bytes& i64(int64_t v) { return le(static_cast<uint64_t>(v), 8); }
  Bytes& i32(int32_t v) { return le(static_cast<uint32_t>(v), 4); }
  Bytes& u16(uint16_t v) { return le(v, 2); }
};

const std::string kMagic("MMIDIDX\0\0", 9);

// An .idx built field by field from the spec.
std::string make_idx(uint8_t code, const std::vector<int32_t>& lengths,
                     const std::vector<int64_t>& pointers, const std::vector<int64_t>& docs,
                     uint64_t version = 1) {
  Bytes b;
  b.raw(kMagic).u64(version).u8(code).u64(lengths.size()).u64(docs.size());
  for (int32_t l : lengths) b.i32(l);
  for (int64_t p : pointers) b.i64(p);
  for (int64_t d : docs) b.i64(d);
  return b.s;
}

void write_bytes(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

using mp::test::expect_bad_input;

bool dir_empty(const std::string& path) { return fs::is_empty(path); }

// A valid small dataset for the corruption tests: int32 tokens, 3 sequences of 2, 3, 1 tokens
// (24 bytes of .bin), 2 documents: [0, 2) and [2, 3).
struct Valid {
  std::vector<int32_t> lengths{2, 3, 1};
  std::vector<int64_t> pointers{0, 8, 20};
  std::vector<int64_t> docs{0, 2, 3};
  std::string bin() const {
    Bytes b;
    for (int32_t t : {10, 11, 20, 21, 22, 30}) b.i32(t);
    return b.s;
  }
  std::string idx() const { return make_idx(4, lengths, pointers, docs); }
};

// Writes prefix.bin/.idx, opens them, expects BadInput naming `names_file` plus needles.
void expect_corrupt(const mp::test::ScratchDir& dir, const std::string& idx, const std::string& bin,
                    const std::string& names_file, std::initializer_list<std::string> needles) {
  const std::string prefix = dir.file("d");
  write_bytes(prefix + ".idx", idx);
  write_bytes(prefix + ".bin", bin);
  std::vector<std::string> all{prefix + names_file};
  all.insert(all.end(), needles.begin(), needles.end());
  try {
    IndexedDataset::open(prefix);
    ADD_FAILURE() << "expected mp::Error(BadInput) for " << names_file;
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.kind(), mp::ErrorKind::BadInput) << e.what();
    for (const std::string& n : all)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
          << "message lacks '" << n << "': " << e.what();
  }
}

}  // namespace

TEST(IndexedDataset, DTypeTable) {
  const int sizes[9] = {0, 1, 1, 2, 4, 8, 8, 4, 2};
  const char* names[9] = {"", "uint8", "int8", "int16", "int32", "int64", "float64", "float32", "uint16"};
  for (int c = 1; c <= 8; ++c) {
    EXPECT_EQ(mp::token_dtype_size(static_cast<TokenDType>(c)), sizes[c]) << c;
    EXPECT_STREQ(mp::token_dtype_name(static_cast<TokenDType>(c)), names[c]) << c;
  }
  EXPECT_EQ(mp::token_dtype_for_vocab(256), TokenDType::U16);
  EXPECT_EQ(mp::token_dtype_for_vocab(50257), TokenDType::U16);
  EXPECT_EQ(mp::token_dtype_for_vocab(65499), TokenDType::U16);
  EXPECT_EQ(mp::token_dtype_for_vocab(65500), TokenDType::I32);
  EXPECT_EQ(mp::token_dtype_for_vocab(131072), TokenDType::I32);
}

TEST(IndexedDataset, RoundTripEveryDType) {
  mp::test::ScratchDir dir;
  for (int code = 1; code <= 8; ++code) {
    const auto t = static_cast<TokenDType>(code);
    int64_t lo = 0, hi = 0;
    switch (t) {
      case TokenDType::U8: lo = 0; hi = 255; break;
      case TokenDType::I8: lo = -128; hi = 127; break;
      case TokenDType::I16: lo = -32768; hi = 32767; break;
      case TokenDType::I32: lo = std::numeric_limits<int32_t>::min(); hi = std::numeric_limits<int32_t>::max(); break;
      case TokenDType::I64: lo = std::numeric_limits<int64_t>::min(); hi = std::numeric_limits<int64_t>::max(); break;
      case TokenDType::F64: lo = -(int64_t{1} << 53); hi = int64_t{1} << 53; break;
      case TokenDType::F32: lo = -(int64_t{1} << 24); hi = int64_t{1} << 24; break;
      case TokenDType::U16: lo = 0; hi = 65535; break;
    }
    // Documents: {seqA, seqB}, {empty sequence}, {seqC}.
    std::vector<std::vector<int64_t>> seqs = {
        {lo, hi, 0, 1, 7}, {hi - 1, lo + 1}, {}, {3, 2, 1, 0, hi, lo, 5, 5}};
    const std::string prefix = dir.file("rt" + std::to_string(code));
    {
      IndexedDatasetWriter w(prefix, t);
      w.add_sequence(seqs[0]);
      w.add_sequence(seqs[1]);
      w.end_document();
      w.add_sequence(seqs[2]);
      w.end_document();
      w.add_sequence(seqs[3]);
      w.finish();  // closes the last document implicitly
    }
    auto ds = IndexedDataset::open(prefix);
    SCOPED_TRACE(mp::token_dtype_name(t));
    EXPECT_EQ(ds->dtype(), t);
    EXPECT_EQ(ds->prefix(), prefix);
    ASSERT_EQ(ds->num_sequences(), 4);
    EXPECT_EQ(ds->num_documents(), 3);
    EXPECT_EQ(ds->document_indices(), (std::vector<int64_t>{0, 2, 3, 4}));
    std::vector<int64_t> stream;
    for (int64_t i = 0; i < 4; ++i) {
      EXPECT_EQ(ds->sequence_length(i), static_cast<int64_t>(seqs[i].size()));
      EXPECT_EQ(ds->read(i, 0, ds->sequence_length(i)), seqs[i]);
      stream.insert(stream.end(), seqs[i].begin(), seqs[i].end());
    }
    EXPECT_EQ(ds->read(3, 2, 3), (std::vector<int64_t>{1, 0, hi}));
    ASSERT_EQ(ds->total_tokens(), static_cast<int64_t>(stream.size()));
    std::vector<int64_t> got(stream.size());
    ds->read_stream(0, ds->total_tokens(), got.data());
    EXPECT_EQ(got, stream);
    EXPECT_EQ(ds->max_token(), hi);
    EXPECT_EQ(ds->max_token(), hi);  // cached
    const int64_t bin_size = static_cast<int64_t>(fs::file_size(prefix + ".bin"));
    EXPECT_EQ(bin_size, ds->total_tokens() * mp::token_dtype_size(t));
  }
}

// The writer's bytes against a layout written out by hand from the spec.
TEST(IndexedDataset, WriterExactByteLayout) {
  mp::test::ScratchDir dir;
  const std::string prefix = dir.file("layout");
  {
    IndexedDatasetWriter w(prefix, TokenDType::U16);
    w.add_sequence({5, 6, 7});
    w.add_sequence({8});
    w.end_document();
    w.add_sequence({9, 0x1234});
    w.finish();
  }
  Bytes idx;
  idx.raw(std::string("MMIDIDX\0\0", 9));        // magic, 9 bytes
  idx.u64(1);                                     // version
  idx.u8(8);                                      // dtype code: uint16
  idx.u64(3);                                     // sequence count S
  idx.u64(3);                                     // document count D = documents + 1
  idx.i32(3).i32(1).i32(2);                       // lengths (tokens)
  idx.i64(0).i64(6).i64(8);                       // byte pointers into .bin
  idx.i64(0).i64(2).i64(3);                       // document indices
  EXPECT_EQ(idx.s.size(), 34u + 3 * 4 + 3 * 8 + 3 * 8);
  EXPECT_EQ(read_bytes(prefix + ".idx"), idx.s);
  const std::string bin("\x05\x00\x06\x00\x07\x00\x08\x00\x09\x00\x34\x12", 12);
  EXPECT_EQ(read_bytes(prefix + ".bin"), bin);
}

// The reader on a file written by hand: int64 tokens at non-contiguous pointers (a gap).
TEST(IndexedDataset, ReadsHandWrittenFiles) {
  mp::test::ScratchDir dir;
  const std::string prefix = dir.file("hand");
  Bytes bin;
  bin.i64(100).i64(-2).i64(999999).i64(77).i64(42);  // gap token 77 belongs to no sequence
  write_bytes(prefix + ".bin", bin.s);
  write_bytes(prefix + ".idx", make_idx(5, {2, 1, 1}, {0, 16, 32}, {0, 1, 3}));
  auto ds = IndexedDataset::open(prefix);
  EXPECT_EQ(ds->dtype(), TokenDType::I64);
  EXPECT_EQ(ds->num_documents(), 2);
  EXPECT_EQ(ds->total_tokens(), 4);
  EXPECT_EQ(ds->read(0, 0, 2), (std::vector<int64_t>{100, -2}));
  EXPECT_EQ(ds->read(1, 0, 1), (std::vector<int64_t>{999999}));
  EXPECT_EQ(ds->read(2, 0, 1), (std::vector<int64_t>{42}));
  std::vector<int64_t> s(4);
  ds->read_stream(0, 4, s.data());
  EXPECT_EQ(s, (std::vector<int64_t>{100, -2, 999999, 42}));
  EXPECT_EQ(ds->max_token(), 999999);
}

TEST(IndexedDataset, FloatTokensAreCast) {
  mp::test::ScratchDir dir;
  const std::string prefix = dir.file("f");
  Bytes bin;
  float f[3] = {3.0f, 70000.0f, -1.0f};
  double d[2] = {5.0, 123456789.0};
  bin.s.append(reinterpret_cast<const char*>(f), sizeof f);
  write_bytes(prefix + ".bin", bin.s);
  write_bytes(prefix + ".idx", make_idx(7, {3}, {0}, {0, 1}));
  auto ds = IndexedDataset::open(prefix);
  EXPECT_EQ(ds->read(0, 0, 3), (std::vector<int64_t>{3, 70000, -1}));
  EXPECT_EQ(ds->max_token(), 70000);
  Bytes bin2;
  bin2.s.append(reinterpret_cast<const char*>(d), sizeof d);
  write_bytes(prefix + ".bin", bin2.s);
  write_bytes(prefix + ".idx", make_idx(6, {2}, {0}, {0, 1}));
  auto ds2 = IndexedDataset::open(prefix);
  EXPECT_EQ(ds2->max_token(), 123456789);
}

TEST(IndexedDataset, EmptyDataset) {
  mp::test::ScratchDir dir;
  const std::string prefix = dir.file("empty");
  {
    IndexedDatasetWriter w(prefix, TokenDType::I32);
    w.finish();
  }
  EXPECT_EQ(read_bytes(prefix + ".idx"), make_idx(4, {}, {}, {0}));
  EXPECT_EQ(fs::file_size(prefix + ".bin"), 0u);
  auto ds = IndexedDataset::open(prefix);
  EXPECT_EQ(ds->num_sequences(), 0);
  EXPECT_EQ(ds->num_documents(), 0);
  EXPECT_EQ(ds->total_tokens(), 0);
  EXPECT_EQ(ds->max_token(), -1);
  ds->read_stream(0, 0, nullptr);
}

TEST(IndexedDataset, ReadStreamAcrossBoundaries) {
  mp::test::ScratchDir dir;
  const std::string prefix = dir.file("stream");
  std::mt19937 rng(7);
  std::vector<int64_t> all;
  {
    IndexedDatasetWriter w(prefix, TokenDType::U16);
    for (int s = 0; s < 40; ++s) {
      std::vector<int64_t> seq(rng() % 9);  // includes empty sequences
      for (auto& t : seq) t = rng() % 65536;
      all.insert(all.end(), seq.begin(), seq.end());
      w.add_sequence(seq);
      if (s % 3 == 2) w.end_document();
    }
    w.finish();
  }
  auto ds = IndexedDataset::open(prefix);
  const int64_t n = ds->total_tokens();
  ASSERT_EQ(n, static_cast<int64_t>(all.size()));
  for (int trial = 0; trial < 500; ++trial) {
    int64_t start = rng() % (n + 1);
    int64_t count = rng() % (n - start + 1);
    std::vector<int64_t> got(count);
    ds->read_stream(start, count, got.data());
    ASSERT_TRUE(std::equal(got.begin(), got.end(), all.begin() + start)) << start << "+" << count;
  }
  std::vector<int64_t> one(2);
  EXPECT_THROW(ds->read_stream(n - 1, 2, one.data()), mp::Error);
  EXPECT_THROW(ds->read_stream(-1, 1, one.data()), mp::Error);
  EXPECT_THROW(ds->read(ds->num_sequences(), 0, 0), mp::Error);
}

TEST(IndexedDataset, DocumentsFollowMegatronBuilder) {
  mp::test::ScratchDir dir;
  auto docs_of = [&](const std::function<void(IndexedDatasetWriter&)>& fill) {
    const std::string prefix = dir.file("docs");
    {
      IndexedDatasetWriter w(prefix, TokenDType::U8);
      fill(w);
      w.finish();
    }
    return IndexedDataset::open(prefix)->document_indices();
  };
  // finish() closes an open document; otherwise it adds nothing.
  EXPECT_EQ(docs_of([](auto& w) { w.add_sequence({1}); w.add_sequence({2}); }),
            (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(docs_of([](auto& w) { w.add_sequence({1}); w.end_document(); w.add_sequence({2}); }),
            (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(docs_of([](auto& w) { w.add_sequence({1}); w.end_document(); }),
            (std::vector<int64_t>{0, 1}));
  // As Megatron's builder, end_document() with nothing new makes an empty document.
  EXPECT_EQ(docs_of([](auto& w) { w.add_sequence({1}); w.end_document(); w.end_document(); }),
            (std::vector<int64_t>{0, 1, 1}));
}

TEST(IndexedDataset, FilesAppearOnlyAtFinish) {
  mp::test::ScratchDir dir;
  const std::string prefix = dir.file("late");
  {
    IndexedDatasetWriter w(prefix, TokenDType::I32);
    w.add_sequence({1, 2, 3});
    w.end_document();
    EXPECT_FALSE(fs::exists(prefix + ".bin"));
    EXPECT_FALSE(fs::exists(prefix + ".idx"));
    w.finish();
    EXPECT_TRUE(fs::exists(prefix + ".bin"));
    EXPECT_TRUE(fs::exists(prefix + ".idx"));
  }
  {
    mp::test::ScratchDir dir2;
    {
      IndexedDatasetWriter w(dir2.file("abandoned"), TokenDType::I32);
      w.add_sequence({1, 2, 3});
    }  // destroyed without finish()
    EXPECT_TRUE(dir_empty(dir2.path()));
  }
}

TEST(IndexedDataset, WriterRejectsOutOfRangeTokens) {
  struct Case {
    TokenDType t;
    int64_t bad;
    const char* name;
  };
  const Case cases[] = {
      {TokenDType::U8, 256, "uint8"},           {TokenDType::U8, -1, "uint8"},
      {TokenDType::I8, 128, "int8"},            {TokenDType::I8, -129, "int8"},
      {TokenDType::I16, 32768, "int16"},        {TokenDType::U16, 65536, "uint16"},
      {TokenDType::U16, -1, "uint16"},          {TokenDType::I32, int64_t{1} << 31, "int32"},
      {TokenDType::F32, (int64_t{1} << 24) + 1, "float32"},
      {TokenDType::F64, (int64_t{1} << 53) + 1, "float64"},
  };
  for (const Case& c : cases) {
    mp::test::ScratchDir dir;
    const std::string prefix = dir.file("bad");
    {
      IndexedDatasetWriter w(prefix, c.t);
      w.add_sequence({0, 1});
      expect_bad_input([&] { w.add_sequence({1, c.bad, 2}); },
                       {prefix + ".bin", std::to_string(c.bad), c.name});
    }  // abandoned after the error
    EXPECT_TRUE(dir_empty(dir.path())) << c.name << " " << c.bad;
  }
}

TEST(IndexedDataset, WriterNeedsAnOutputFolder) {
  mp::test::ScratchDir dir;
  expect_bad_input([&] { IndexedDatasetWriter w(dir.file("no/such/folder/x"), TokenDType::U16); },
                   {"no/such/folder"});
}

// --- corruptions: every one is bad input naming the file -------------------------------------

TEST(IndexedDatasetCorrupt, ValidBaseOpens) {
  mp::test::ScratchDir dir;
  Valid v;
  write_bytes(dir.file("d.idx"), v.idx());
  write_bytes(dir.file("d.bin"), v.bin());
  auto ds = IndexedDataset::open(dir.file("d"));
  EXPECT_EQ(ds->read(1, 0, 3), (std::vector<int64_t>{20, 21, 22}));
  EXPECT_EQ(ds->num_documents(), 2);
}

TEST(IndexedDatasetCorrupt, BadMagic) {
  mp::test::ScratchDir dir;
  Valid v;
  std::string idx = v.idx();
  idx[0] = 'X';
  expect_corrupt(dir, idx, v.bin(), ".idx", {"magic"});
  // A fairseq "cached" index (TNTIDX) is not this format either.
  idx = v.idx();
  idx.replace(0, 8, std::string("TNTIDX\0\0", 8));
  expect_corrupt(dir, idx, v.bin(), ".idx", {"magic"});
}

TEST(IndexedDatasetCorrupt, WrongVersion) {
  mp::test::ScratchDir dir;
  Valid v;
  expect_corrupt(dir, make_idx(4, v.lengths, v.pointers, v.docs, 2), v.bin(), ".idx",
                 {"version", "expected 1", "found 2"});
}

TEST(IndexedDatasetCorrupt, UnknownDTypeCode) {
  mp::test::ScratchDir dir;
  Valid v;
  for (uint8_t code : {0, 9, 255})
    expect_corrupt(dir, make_idx(code, v.lengths, v.pointers, v.docs), v.bin(), ".idx",
                   {"dtype code", "found " + std::to_string(code)});
}

TEST(IndexedDatasetCorrupt, TruncatedIdx) {
  mp::test::ScratchDir dir;
  Valid v;
  const std::string full = v.idx();
  // Inside the header, inside lengths, inside pointers, inside document indices, one byte short.
  for (size_t keep : {size_t{0}, size_t{5}, size_t{20}, size_t{33}, size_t{34}, size_t{40},
                      size_t{34 + 12 + 4}, size_t{34 + 12 + 24 + 3}, full.size() - 1}) {
    SCOPED_TRACE(keep);
    expect_corrupt(dir, full.substr(0, keep), v.bin(), ".idx", {"truncated"});
  }
  // The exact message for a header that promises more than the file holds.
  expect_corrupt(dir, full.substr(0, 34 + 10), v.bin(), ".idx",
                 {"header says 3 sequences and 3 document indices",
                  "needs 60 bytes", "file has 10 bytes after the header"});
}

TEST(IndexedDatasetCorrupt, TrailingBytesInIdx) {
  mp::test::ScratchDir dir;
  Valid v;
  expect_corrupt(dir, v.idx() + "xy", v.bin(), ".idx", {"size"});
  // Megatron's multimodal variant appends one mode byte per sequence: accepted.
  write_bytes(dir.file("m.idx"), v.idx() + std::string(3, '\0'));
  write_bytes(dir.file("m.bin"), v.bin());
  EXPECT_EQ(IndexedDataset::open(dir.file("m"))->num_sequences(), 3);
}

TEST(IndexedDatasetCorrupt, BinTooShortForPointers) {
  mp::test::ScratchDir dir;
  Valid v;
  const std::string bin = v.bin();
  expect_corrupt(dir, v.idx(), bin.substr(0, bin.size() - 1), ".bin", {"pointers[2]", "23 bytes"});
  expect_corrupt(dir, v.idx(), "", ".bin", {"pointers[0]"});
  expect_corrupt(dir, make_idx(4, v.lengths, {0, 8, 4000}, v.docs), bin, ".bin", {"pointers[2]"});
}

TEST(IndexedDatasetCorrupt, PointersAndLengthsInconsistent) {
  mp::test::ScratchDir dir;
  Valid v;
  expect_corrupt(dir, make_idx(4, v.lengths, {0, 8, 4}, v.docs), v.bin(), ".idx",
                 {"pointers[2]", "non-decreasing"});
  expect_corrupt(dir, make_idx(4, v.lengths, {-8, 8, 20}, v.docs), v.bin(), ".idx",
                 {"pointers[0]"});
  expect_corrupt(dir, make_idx(4, {2, -3, 1}, v.pointers, v.docs), v.bin(), ".idx",
                 {"lengths[1]", "-3"});
}

TEST(IndexedDatasetCorrupt, DocumentIndicesOutOfRange) {
  mp::test::ScratchDir dir;
  Valid v;
  expect_corrupt(dir, make_idx(4, v.lengths, v.pointers, {0, 2, 4}), v.bin(), ".idx",
                 {"document indices[2]", "found 4"});
  expect_corrupt(dir, make_idx(4, v.lengths, v.pointers, {1, 2, 3}), v.bin(), ".idx",
                 {"document indices[0]", "expected 0"});
  expect_corrupt(dir, make_idx(4, v.lengths, v.pointers, {0, 2, 1}), v.bin(), ".idx",
                 {"document indices[2]", "non-decreasing"});
  expect_corrupt(dir, make_idx(4, v.lengths, v.pointers, {0, -1, 3}), v.bin(), ".idx",
                 {"document indices[1]"});
  expect_corrupt(dir, make_idx(4, v.lengths, v.pointers, {}), v.bin(), ".idx",
                 {"document indices"});
}

TEST(IndexedDatasetCorrupt, MissingFiles) {
  mp::test::ScratchDir dir;
  Valid v;
  const std::string prefix = dir.file("d");
  write_bytes(prefix + ".idx", v.idx());
  expect_bad_input([&] { IndexedDataset::open(prefix); }, {prefix + ".bin", "not found"});
  fs::remove(prefix + ".idx");
  write_bytes(prefix + ".bin", v.bin());
  expect_bad_input([&] { IndexedDataset::open(prefix); }, {prefix + ".idx", "not found"});
  fs::remove(prefix + ".bin");
  expect_bad_input([&] { IndexedDataset::open(prefix); }, {prefix + ".idx", "not found"});
}
