// The bounded JSON entry point, printable error text and the output guard, as units.
#include "common/error.h"
#include "common/json_file.h"
#include "common/output_guard.h"
#include "common/printable.h"
#include "tests/test_util.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.exit_code(), 2) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "accepted";
  return "";
}

TEST(JsonFile, NestingIsBoundedBeforeParsing) {
  // A million levels would overflow the stack of a recursive parser or destructor.
  const std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
  EXPECT_NE(error_of([&] { mp::parse_json_text(deep, "deep.json"); }).find("deep.json: JSON nests deeper than 64"),
            std::string::npos);
  // Exactly at the limit is fine; brackets inside strings do not count.
  const std::string at_limit = std::string(64, '[') + std::string(64, ']');
  EXPECT_NO_THROW(mp::parse_json_text(at_limit, "ok.json"));
  EXPECT_EQ(mp::json_nesting_depth(R"({"a": "[[[[[[", "b": [1, {"c": "\"]"}]})", 64), 3);
  mp::JsonLimits tight;
  tight.max_depth = 2;
  EXPECT_THROW(mp::parse_json_text(R"({"a": [[1]]})", "t", tight), mp::Error);
}

TEST(JsonFile, DuplicateKeysAtAnyDepthAreRefused) {
  EXPECT_NE(error_of([] { mp::parse_json_text(R"({"a": 1, "a": 2})", "d.json"); }).find("\"a\" appears twice"),
            std::string::npos);
  EXPECT_NE(error_of([] { mp::parse_json_text(R"({"x": [{"k": 1, "k": 1}]})", "d.json"); }).find("\"k\""),
            std::string::npos);
  // The same key in sibling objects is not a duplicate.
  EXPECT_NO_THROW(mp::parse_json_text(R"({"x": {"k": 1}, "y": {"k": 2}})", "ok.json"));
}

TEST(JsonFile, SizeCapAndTypedAccessorsNameFileAndField) {
  mp::JsonLimits small;
  small.max_bytes = 10;
  EXPECT_NE(error_of([&] { mp::parse_json_text(R"({"a": "long enough"})", "big.json", small); }).find("big.json"),
            std::string::npos);
  const nlohmann::json j = mp::parse_json_text(R"({"n": "7", "big": 18446744073709551615, "x": 1e308, "b": 1})", "f.json");
  EXPECT_NE(error_of([&] { mp::json_int(j["n"], "n", "f.json"); }).find("f.json: field 'n' must be a whole number"),
            std::string::npos);
  EXPECT_NE(error_of([&] { mp::json_int(j["big"], "big", "f.json"); }).find("'big'"), std::string::npos);
  EXPECT_NE(error_of([&] { mp::json_number(j["x"], "x", "f.json", 0, 1e6); }).find("'x'"), std::string::npos);
  EXPECT_NE(error_of([&] { mp::json_bool(j["b"], "b", "f.json"); }).find("true or false"), std::string::npos);
  EXPECT_NE(error_of([&] { mp::json_required(j, "absent", "f.json"); }).find("'absent' is missing"), std::string::npos);
  // A library conversion that escaped the accessors still names the file, not json.exception.
  const std::string e = error_of([&] { mp::with_json_source("f.json", [&] { return j["n"].get<int>(); }); });
  EXPECT_NE(e.find("f.json"), std::string::npos);
  EXPECT_EQ(e.find("json.exception"), std::string::npos) << e;
}

TEST(Printable, EscapesControlAndInvalidBytesKeepsUtf8) {
  EXPECT_EQ(mp::printable("plain"), "plain");
  EXPECT_EQ(mp::printable("a\nb\x01"), "a\\x0ab\\x01");
  EXPECT_EQ(mp::printable("w\xff\xfe"), "w\\xff\\xfe");
  EXPECT_EQ(mp::printable("caf\xc3\xa9"), "caf\xc3\xa9");         // é stays
  EXPECT_EQ(mp::printable("\xc3"), "\\xc3");                      // cut-short sequence
  EXPECT_EQ(mp::printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");    // a surrogate is not UTF-8
}

TEST(OutputGuard, ComparesWholePathComponents) {
  mp::test::ScratchDir d;
  fs::create_directories(d.file("model"));
  std::ofstream(d.file("model/config.json")) << "{}";
  // "model2" shares a prefix with "model" but is not inside it.
  EXPECT_NO_THROW(mp::guard_output({"--output", d.file("model2"), mp::OutputKind::Folder}, {d.file("model")}, false));
  EXPECT_THROW(mp::guard_output({"--output", d.file("model/"), mp::OutputKind::Folder}, {d.file("model")}, true),
               mp::Error);
  EXPECT_THROW(mp::guard_output({"--output", d.file("x/../model"), mp::OutputKind::Folder}, {d.file("model")}, true),
               mp::Error);
  // Relative and absolute spellings of one place are one place.
  const fs::path cwd = fs::current_path();
  fs::current_path(d.path());
  EXPECT_THROW(mp::guard_output({"--output", "model", mp::OutputKind::Folder}, {d.file("model")}, true), mp::Error);
  fs::current_path(cwd);
  // Nothing is left behind by the checks themselves.
  EXPECT_EQ(std::distance(fs::directory_iterator(d.path()), fs::directory_iterator()), 1);
}

TEST(OutputGuard, NewFoldersAreRemovedUnlessKept) {
  mp::test::ScratchDir d;
  { mp::NewFolders f(d.file("a/b/c")); EXPECT_TRUE(fs::is_directory(d.file("a/b/c"))); }
  EXPECT_FALSE(fs::exists(d.file("a")));
  {
    mp::NewFolders f(d.file("a/b"));
    f.keep();
  }
  EXPECT_TRUE(fs::is_directory(d.file("a/b")));
}

}  // namespace
