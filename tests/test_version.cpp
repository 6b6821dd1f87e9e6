// `minipuzzle --version` (no subcommand needed, listed in --help): four lines (version, commit,
// LibTorch, CUDA), the version being the one CMake's project() declares (MP_PROJECT_VERSION, from
// tests/CMakeLists.txt). One test: each one costs a process start under CTest.
#include "tests/test_util.h"

#include <gtest/gtest.h>

#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(Version, PrintsVersionCommitLibTorchAndCuda) {
  ASSERT_TRUE(std::regex_match(std::string(MP_PROJECT_VERSION), std::regex(R"([0-9]+\.[0-9]+\.[0-9]+)")));
  const auto r = mp::test::run_cli("--version");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto lines = lines_of(r.output);
  ASSERT_EQ(lines.size(), 4u) << r.output;
  EXPECT_EQ(lines[0], std::string("minipuzzle ") + MP_PROJECT_VERSION);
  EXPECT_TRUE(std::regex_match(lines[1], std::regex("commit: ([0-9a-f]{7,40}(-dirty)?|unknown)"))) << lines[1];
  EXPECT_TRUE(std::regex_match(lines[2], std::regex(R"(LibTorch: [0-9]+\.[0-9]+\.[0-9]+\S*)"))) << lines[2];
  EXPECT_TRUE(std::regex_match(lines[3], std::regex(R"(CUDA: (no|yes \(.+\)))"))) << lines[3];

  const auto help = mp::test::run_cli("--help");
  EXPECT_EQ(help.exit_code, 0) << help.output;
  EXPECT_NE(help.output.find("--version"), std::string::npos) << help.output;
}

}  // namespace
