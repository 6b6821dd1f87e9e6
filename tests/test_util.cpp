#include "tests/test_util.h"

#include <sys/wait.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <random>

namespace fs = std::filesystem;

namespace mp::test {

ScratchDir::ScratchDir() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  path_ = (fs::temp_directory_path() /
           ("mp_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
            std::to_string(rd() % 100000)))
              .string();
  fs::create_directories(path_);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

CliResult run_cli(const std::string& args) { return run_cli_env("", args); }

CliResult run_cli_env(const std::string& env, const std::string& args) {
  std::string cmd = (env.empty() ? "" : "env " + env + " ") + std::string(MP_CLI_PATH) + " " + args + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  CliResult r{-1, ""};
  if (!pipe) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string source_path(const std::string& relative) {
  return std::string(MP_SOURCE_DIR) + "/" + relative;
}

}  // namespace mp::test
