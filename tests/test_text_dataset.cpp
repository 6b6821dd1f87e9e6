// Text files to byte-level token data: bytes exactly, one document per file, uint16 on disk.
#include "common/error.h"
#include "data/indexed_dataset.h"
#include "data/text_dataset.h"
#include "tests/test_util.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

void write_bytes(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::vector<int64_t> as_ids(const std::string& s) {
  std::vector<int64_t> v;
  for (unsigned char c : s) v.push_back(c);
  return v;
}

}  // namespace

TEST(TextDataset, TwoFilesBytesExactly) {
  mp::test::ScratchDir dir;
  const std::string a = "State of the Union, caf\xc3\xa9\n", b = std::string("x\0\xff", 3);
  write_bytes(dir.file("a.txt"), a);
  write_bytes(dir.file("b.txt"), b);
  const std::string prefix = dir.file("bytes");
  mp::TextToTokensStats st = mp::bytes_dataset_from_text({dir.file("a.txt"), dir.file("b.txt")}, prefix);
  EXPECT_EQ(st.files, 2);
  EXPECT_EQ(st.documents, 2);
  EXPECT_EQ(st.tokens, static_cast<int64_t>(a.size() + b.size()));

  auto ds = mp::IndexedDataset::open(prefix);
  EXPECT_EQ(ds->dtype(), mp::TokenDType::U16);
  EXPECT_EQ(ds->num_sequences(), 2);
  EXPECT_EQ(ds->num_documents(), 2);
  EXPECT_EQ(ds->document_indices(), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(ds->read(0, 0, ds->sequence_length(0)), as_ids(a));
  EXPECT_EQ(ds->read(1, 0, ds->sequence_length(1)), as_ids(b));
  EXPECT_EQ(ds->max_token(), 255);
  // On disk: each byte as a little-endian uint16, files back to back.
  std::string want;
  for (unsigned char c : a + b) {
    want.push_back(static_cast<char>(c));
    want.push_back('\0');
  }
  std::ifstream f(prefix + ".bin", std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(f), {}), want);
}

TEST(TextDataset, EmptyFileIsAnEmptyDocument) {
  mp::test::ScratchDir dir;
  write_bytes(dir.file("e.txt"), "");
  write_bytes(dir.file("h.txt"), "hi");
  auto st = mp::bytes_dataset_from_text({dir.file("e.txt"), dir.file("h.txt")}, dir.file("o"));
  EXPECT_EQ(st.documents, 2);
  EXPECT_EQ(st.tokens, 2);
  auto ds = mp::IndexedDataset::open(dir.file("o"));
  EXPECT_EQ(ds->document_indices(), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(ds->sequence_length(0), 0);
}

TEST(TextDataset, MissingFileIsBadInputAndLeavesNothing) {
  mp::test::ScratchDir dir;
  write_bytes(dir.file("a.txt"), "abc");
  const std::string missing = dir.file("nope.txt");
  try {
    mp::bytes_dataset_from_text({dir.file("a.txt"), missing}, dir.file("out"));
    ADD_FAILURE() << "expected an error";
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.kind(), mp::ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  // Only the input remains.
  std::vector<std::string> names;
  for (const auto& ent : fs::directory_iterator(dir.path())) names.push_back(ent.path().filename());
  EXPECT_EQ(names, (std::vector<std::string>{"a.txt"}));
}

TEST(TextDataset, NoFilesIsBadInput) {
  mp::test::ScratchDir dir;
  try {
    mp::bytes_dataset_from_text({}, dir.file("out"));
    ADD_FAILURE() << "expected an error";
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.kind(), mp::ErrorKind::BadInput);
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));
}
