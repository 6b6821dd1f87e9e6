// safetensors reader and writer: round trips of every supported dtype, the writer's layout, and
// one test per rule a valid file obeys, each writing the corrupt file by hand.
#include "model/safetensors.h"

#include "common/error.h"
#include "tests/test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

namespace fs = std::filesystem;
using mp::test::ScratchDir;

namespace {

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string u64_le(uint64_t v) {
  std::string s(8, '\0');
  std::memcpy(&s[0], &v, 8);
  return s;
}

// A safetensors file written by hand: header length (the true one unless overridden), header, data.
void write_raw(const std::string& path, const std::string& header, const std::string& data,
               std::optional<uint64_t> claimed_len = std::nullopt) {
  write_bytes(path, u64_le(claimed_len ? *claimed_len : header.size()) + header + data);
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Runs f, expects mp::Error of kind BadInput whose message contains every needle.
template <typename F>
void expect_bad_input(F&& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "expected mp::Error (bad input), nothing was thrown";
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.kind(), mp::ErrorKind::BadInput) << e.what();
    const std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message should be one line: " << msg;
  }
}

void expect_open_fails(const std::string& path, const std::vector<std::string>& needles) {
  std::vector<std::string> all = needles;
  all.push_back(path);
  expect_bad_input([&] { mp::SafetensorsFile::open(path); }, all);
}

bool same_bytes(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  if (a.numel() == 0) return true;
  at::Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * ca.element_size()) == 0;
}

// Tensors of every dtype the writer accepts, plus zero-element and 0-d ones.
std::vector<std::pair<std::string, at::Tensor>> sample_tensors() {
  at::manual_seed(7);
  std::vector<std::pair<std::string, at::Tensor>> t;
  t.emplace_back("f32", at::randn({3, 5}));
  t.emplace_back("f16", at::randn({4, 2}).to(at::kHalf));
  t.emplace_back("bf16", at::randn({2, 3, 4}).to(at::kBFloat16));
  t.emplace_back("f64", at::randn({7}, at::kDouble));
  t.emplace_back("i64", at::randint(-1000000, 1000000, {5}, at::kLong));
  t.emplace_back("i32", at::randint(-100000, 100000, {2, 2}, at::kInt));
  t.emplace_back("i16", at::randint(-30000, 30000, {3}, at::kShort));
  t.emplace_back("i8", at::randint(-128, 128, {6}, at::kChar));
  t.emplace_back("u8", at::randint(0, 256, {9}, at::kByte));
  t.emplace_back("bool", at::randint(0, 2, {3, 3}, at::kLong).to(at::kBool));
  t.emplace_back("empty.f32", at::empty({0}, at::kFloat));
  t.emplace_back("empty.bf16", at::empty({4, 0, 2}, at::kBFloat16));
  t.emplace_back("scalar.f32", at::scalar_tensor(3.5, at::kFloat));
  return t;
}

const char* kEntryA = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

}  // namespace

TEST(Safetensors, RoundTripAllDtypes) {
  ScratchDir dir;
  const std::string path = dir.file("model.safetensors");
  auto tensors = sample_tensors();
  mp::write_safetensors(path, tensors, {{"note", "hello"}});

  auto f = mp::SafetensorsFile::open(path);
  EXPECT_EQ(f->tensors().size(), tensors.size());
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->metadata().at("note"), "hello");
  std::vector<at::Tensor> loaded;
  for (const auto& [name, t] : tensors) {
    const mp::StTensorInfo* info = f->find(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_EQ(info->numel(), t.numel()) << name;
    EXPECT_EQ(std::vector<int64_t>(t.sizes().begin(), t.sizes().end()), info->shape) << name;
    at::Tensor l = f->load(name);
    EXPECT_TRUE(l.is_contiguous()) << name;
    EXPECT_TRUE(l.device().is_cpu()) << name;
    EXPECT_TRUE(same_bytes(l, t)) << name << ": loaded tensor differs";
    loaded.push_back(l);
  }
  EXPECT_EQ(f->find("nope"), nullptr);
  EXPECT_EQ(std::string(mp::st_dtype_name(f->find("bf16")->dtype)), "BF16");
  EXPECT_EQ(std::string(mp::st_dtype_name(f->find("bool")->dtype)), "BOOL");
  // Loaded tensors own their memory: they outlive the mapping.
  f.reset();
  for (size_t i = 0; i < tensors.size(); ++i) EXPECT_TRUE(same_bytes(loaded[i], tensors[i].second));
}

TEST(Safetensors, WriterLayoutOrderPaddingAndNonContiguousInput) {
  ScratchDir dir;
  const std::string path = dir.file("x.safetensors");
  at::Tensor base = at::arange(24, at::kFloat).reshape({4, 6});
  at::Tensor transposed = base.t();  // not contiguous
  ASSERT_FALSE(transposed.is_contiguous());
  mp::write_safetensors(path, {{"zz.first", transposed}, {"aa.second", at::ones({3}, at::kHalf)}, {"mm.third", base}});

  const std::string bytes = read_all(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u) << "header padded to a multiple of 8";
  const std::string header = bytes.substr(8, n);
  auto j = nlohmann::json::parse(header);
  EXPECT_EQ(j["__metadata__"]["format"], "pt");
  // Entries appear in the given order, offsets sequential.
  EXPECT_LT(header.find("zz.first"), header.find("aa.second"));
  EXPECT_LT(header.find("aa.second"), header.find("mm.third"));
  EXPECT_EQ(j["zz.first"]["data_offsets"], nlohmann::json({0, 96}));
  EXPECT_EQ(j["aa.second"]["data_offsets"], nlohmann::json({96, 102}));
  EXPECT_EQ(j["mm.third"]["data_offsets"], nlohmann::json({102, 198}));
  EXPECT_EQ(j["zz.first"]["shape"], nlohmann::json({6, 4}));
  EXPECT_EQ(bytes.size(), 8 + n + 198);

  auto f = mp::SafetensorsFile::open(path);
  EXPECT_TRUE(at::equal(f->load("zz.first"), transposed));
  EXPECT_TRUE(at::equal(f->load("mm.third"), base));
  // tensors() is in offset order.
  ASSERT_EQ(f->tensors().size(), 3u);
  EXPECT_EQ(f->tensors()[0].name, "zz.first");
  EXPECT_EQ(f->tensors()[2].name, "mm.third");
  EXPECT_EQ(std::memcmp(f->data(*f->find("mm.third")), base.data_ptr(), 96), 0);
}

TEST(Safetensors, EmptyFileWithOnlyMetadata) {
  ScratchDir dir;
  const std::string path = dir.file("empty.safetensors");
  mp::write_safetensors(path, {});
  auto f = mp::SafetensorsFile::open(path);
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_EQ(f->metadata().at("format"), "pt");
}

TEST(Safetensors, HandWrittenFileWithoutMetadataAndPadding) {
  ScratchDir dir;
  const std::string path = dir.file("ok.safetensors");
  float v[2] = {1.5f, -2.0f};
  write_raw(path, std::string("{") + kEntryA + ",\"z\":{\"dtype\":\"I64\",\"shape\":[0],\"data_offsets\":[8,8]}}   ",
            std::string(reinterpret_cast<const char*>(v), 8));
  auto f = mp::SafetensorsFile::open(path);
  EXPECT_TRUE(f->metadata().empty());
  at::Tensor a = f->load("a");
  EXPECT_EQ(a.scalar_type(), at::kFloat);
  EXPECT_FLOAT_EQ(a[1].item<float>(), -2.0f);
  EXPECT_EQ(f->load("z").numel(), 0);
}

// --- corrupt files: one test per rule ----------------------------------------------------------

TEST(Safetensors, RejectsFileShorterThan8Bytes) {
  ScratchDir dir;
  const std::string path = dir.file("short.safetensors");
  write_bytes(path, "abc");
  expect_open_fails(path, {"3 bytes", "8-byte"});
}

TEST(Safetensors, RejectsMissingFile) {
  ScratchDir dir;
  expect_open_fails(dir.file("nothere.safetensors"), {"not found"});
}

TEST(Safetensors, RejectsHeaderLengthBeyondFile) {
  ScratchDir dir;
  const std::string path = dir.file("long.safetensors");
  write_raw(path, "{}", "", 1000);
  expect_open_fails(path, {"header length 1000", "beyond the end of the file"});
}

TEST(Safetensors, RejectsHeaderOver100MB) {
  ScratchDir dir;
  const std::string path = dir.file("huge.safetensors");
  write_raw(path, "{}", "", 200000000);
  expect_open_fails(path, {"header length 200000000", "100 MB"});
}

TEST(Safetensors, RejectsHeaderNotStartingWithBrace) {
  ScratchDir dir;
  const std::string path = dir.file("nobrace.safetensors");
  write_raw(path, " {}     ", "");
  expect_open_fails(path, {"header does not start with '{'"});
  write_raw(path, "", "");
  expect_open_fails(path, {"empty header"});
}

TEST(Safetensors, RejectsInvalidJson) {
  ScratchDir dir;
  const std::string path = dir.file("badjson.safetensors");
  write_raw(path, R"({"a":{"dtype":"F32","shape":[2],)", "");
  expect_open_fails(path, {"not valid JSON"});
}

TEST(Safetensors, RejectsHeaderThatIsNotAnObjectOfObjects) {
  ScratchDir dir;
  const std::string path = dir.file("entry.safetensors");
  write_raw(path, R"({"a": 5})", "");
  expect_open_fails(path, {"tensor 'a'", "expected an object"});
}

TEST(Safetensors, RejectsUnknownDtype) {
  ScratchDir dir;
  const std::string path = dir.file("dtype.safetensors");
  write_raw(path, R"({"w.weight":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0'));
  expect_open_fails(path, {"tensor 'w.weight'", "unknown dtype 'F17'"});
}

TEST(Safetensors, RejectsBadShape) {
  ScratchDir dir;
  const std::string path = dir.file("shape.safetensors");
  write_raw(path, R"({"w":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,8]}})", std::string(8, '\0'));
  expect_open_fails(path, {"tensor 'w'", "shape [2,-1]", "non-negative integer"});
}

TEST(Safetensors, RejectsBadDataOffsets) {
  ScratchDir dir;
  const std::string path = dir.file("offsets.safetensors");
  write_raw(path, R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", std::string(8, '\0'));
  expect_open_fails(path, {"tensor 'w'", "data_offsets [8, 0]", "begin > end"});
  write_raw(path, R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", std::string(8, '\0'));
  expect_open_fails(path, {"tensor 'w'", "data_offsets", "[begin, end]"});
}

TEST(Safetensors, RejectsBadMetadata) {
  ScratchDir dir;
  const std::string path = dir.file("meta.safetensors");
  write_raw(path, std::string(R"({"__metadata__":{"format":"pt","n":3},)") + kEntryA + "}", std::string(8, '\0'));
  expect_open_fails(path, {"__metadata__", "'n'", "expected a string"});
  write_raw(path, std::string(R"({"__metadata__":[],)") + kEntryA + "}", std::string(8, '\0'));
  expect_open_fails(path, {"__metadata__", "expected an object"});
}

TEST(Safetensors, RejectsByteCountMismatch) {
  ScratchDir dir;
  const std::string path = dir.file("model.safetensors");
  write_raw(path, R"({"a.weight":{"dtype":"F32","shape":[3],"data_offsets":[0,10]}})", std::string(10, '\0'));
  expect_open_fails(path, {"tensor 'a.weight'", "data_offsets [0, 10] give 10 bytes, expected 12 (shape [3] x F32)"});
}

TEST(Safetensors, RejectsOverlappingOffsets) {
  ScratchDir dir;
  const std::string path = dir.file("overlap.safetensors");
  write_raw(path, std::string("{") + kEntryA + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
            std::string(12, '\0'));
  expect_open_fails(path, {"tensor 'b'", "overlap tensor 'a'"});
}

TEST(Safetensors, RejectsGapBetweenTensors) {
  ScratchDir dir;
  const std::string path = dir.file("gap.safetensors");
  write_raw(path, std::string("{") + kEntryA + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
            std::string(20, '\0'));
  expect_open_fails(path, {"tensor 'b'", "gap of 4 bytes", "tensor 'a'"});
}

TEST(Safetensors, RejectsGapAtStart) {
  ScratchDir dir;
  const std::string path = dir.file("gap0.safetensors");
  write_raw(path, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", std::string(12, '\0'));
  expect_open_fails(path, {"tensor 'a'", "gap of 4 bytes", "start of the data buffer"});
}

TEST(Safetensors, RejectsOffsetsBeyondBuffer) {
  ScratchDir dir;
  const std::string path = dir.file("beyond.safetensors");
  write_raw(path, std::string("{") + kEntryA + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[100,108]}})",
            std::string(8, '\0'));
  expect_open_fails(path, {"tensor 'b'", "data_offsets [100, 108]", "beyond the end of the data buffer (8 bytes)"});
}

TEST(Safetensors, RejectsTrailingBytes) {
  ScratchDir dir;
  const std::string path = dir.file("trailing.safetensors");
  write_raw(path, std::string("{") + kEntryA + "}", std::string(11, '\0'));
  expect_open_fails(path, {"3 trailing bytes", "'a'"});
}

TEST(Safetensors, RejectsDuplicateTensorNames) {
  ScratchDir dir;
  const std::string path = dir.file("dup.safetensors");
  // Otherwise valid: nlohmann alone would silently keep the second entry.
  write_raw(path, std::string("{") + kEntryA + "," + kEntryA + "}", std::string(8, '\0'));
  expect_open_fails(path, {"tensor 'a'", "more than once"});
}

TEST(Safetensors, RejectsTruncatedFile) {
  ScratchDir dir;
  const std::string path = dir.file("trunc.safetensors");
  mp::write_safetensors(path, {{"first", at::zeros({4})}, {"last", at::ones({4})}});
  ASSERT_NO_THROW(mp::SafetensorsFile::open(path));
  fs::resize_file(path, fs::file_size(path) - 4);
  expect_open_fails(path, {"tensor 'last'", "beyond the end of the data buffer", "truncated"});
}

TEST(Safetensors, LoadRejectsUnsupportedDtypes) {
  ScratchDir dir;
  const std::string path = dir.file("f8.safetensors");
  write_raw(path,
            R"({"f8":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]},)"
            R"("u16":{"dtype":"U16","shape":[2],"data_offsets":[4,8]},)"
            R"("u64":{"dtype":"U64","shape":[1],"data_offsets":[8,16]}})",
            std::string(16, '\0'));
  auto f = mp::SafetensorsFile::open(path);  // valid file; only loading is refused
  expect_bad_input([&] { f->load("f8"); }, {path, "tensor 'f8'", "F8_E4M3", "not supported", "BF16"});
  expect_bad_input([&] { f->load("u16"); }, {path, "tensor 'u16'", "U16"});
  expect_bad_input([&] { f->load("u64"); }, {path, "tensor 'u64'", "U64"});
  expect_bad_input([&] { f->load("missing"); }, {path, "tensor 'missing'", "not found"});
}

// --- writer refusals ---------------------------------------------------------------------------

TEST(Safetensors, FailedWriteLeavesNoFile) {
  ScratchDir dir;
  const std::string path = dir.file("out.safetensors");
  expect_bad_input(
      [&] {
        mp::write_safetensors(path, {{"ok", at::ones({2})}, {"complex", at::ones({2}, at::kComplexFloat)}});
      },
      {path, "tensor 'complex'", "cannot be written"});
  EXPECT_TRUE(fs::is_empty(dir.path())) << "no output and no temporary file may remain";
}

TEST(Safetensors, WriteRefusesDuplicateNames) {
  ScratchDir dir;
  const std::string path = dir.file("out.safetensors");
  expect_bad_input([&] { mp::write_safetensors(path, {{"a", at::ones({2})}, {"a", at::zeros({2})}}); },
                   {path, "tensor 'a'", "twice"});
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(Safetensors, WriteRefusesNonUtf8Name) {
  ScratchDir dir;
  const std::string path = dir.file("out.safetensors");
  expect_bad_input([&] { mp::write_safetensors(path, {{"bad\xff", at::ones({2})}}); }, {path, "UTF-8"});
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(Safetensors, DtypeNames) {
  for (const char* name : {"BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32",
                           "F32", "I64", "U64", "F64"}) {
    mp::StDType t;
    ASSERT_TRUE(mp::st_dtype_from_name(name, &t)) << name;
    EXPECT_EQ(std::string(mp::st_dtype_name(t)), name);
  }
  mp::StDType t;
  EXPECT_FALSE(mp::st_dtype_from_name("bf16", &t));
  EXPECT_EQ(mp::st_dtype_size(mp::StDType::BF16), 2);
  EXPECT_EQ(mp::st_dtype_size(mp::StDType::F8_E5M2), 1);
  EXPECT_EQ(mp::st_dtype_size(mp::StDType::U64), 8);
}

// --- streaming writer --------------------------------------------------------------------------

TEST(Safetensors, StreamingWriterMatchesWholeWriter) {
  ScratchDir dir;
  const auto tensors = sample_tensors();
  mp::write_safetensors(dir.file("whole.safetensors"), tensors, {{"k", "v"}});
  std::vector<mp::StTensorSpec> specs;
  for (const auto& [name, t] : tensors) {
    mp::StDType d;
    ASSERT_TRUE(mp::st_dtype_from_scalar_type(t.scalar_type(), &d)) << name;
    specs.push_back({name, d, t.sizes().vec()});
  }
  mp::SafetensorsWriter w(dir.file("stream.safetensors"), specs, {{"k", "v"}});
  for (const auto& kv : tensors) {
    EXPECT_FALSE(fs::exists(dir.file("stream.safetensors"))) << "appears only when finished";
    w.write(kv.second);
  }
  w.finish();
  EXPECT_EQ(read_all(dir.file("stream.safetensors")), read_all(dir.file("whole.safetensors")));
}

TEST(Safetensors, StreamingWriterRefusesMismatchesAndLeavesNoFileUnfinished) {
  ScratchDir dir;
  const std::string path = dir.file("out.safetensors");
  {
    mp::SafetensorsWriter w(path, {{"a", mp::StDType::F32, {2, 3}}, {"b", mp::StDType::BF16, {4}}});
    expect_bad_input([&] { w.write(at::ones({3, 2})); }, {path, "tensor 'a'", "shape [3, 2]", "[2, 3]"});
    w.write(at::ones({2, 3}).t().contiguous().t());  // any layout of the right shape
    expect_bad_input([&] { w.write(at::ones({4})); }, {path, "tensor 'b'", "Float", "BF16"});
    expect_bad_input([&] { w.finish(); }, {path, "1 of 2", "tensor 'b'"});
  }
  EXPECT_TRUE(fs::is_empty(dir.path())) << "an unfinished writer leaves nothing behind";
  expect_bad_input([&] { mp::SafetensorsWriter w(path, {{"a", mp::StDType::U16, {2}}}); }, {path, "U16"});
  EXPECT_TRUE(fs::is_empty(dir.path()));
}
