// Helpers shared by the tests: scratch folders, running the CLI, relative error.
#pragma once

#include <string>

namespace mp::test {

// A fresh empty folder under the system temp dir, removed when the object dies.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CliResult {
  int exit_code;
  std::string output;  // stdout and stderr together
};
// Runs the built `minipuzzle` binary with the given argument string (shell-quoted by the caller).
CliResult run_cli(const std::string& args);
// The same with extra environment variables ("A=1 B=2", shell-quoted by the caller).
CliResult run_cli_env(const std::string& env, const std::string& args);

std::string source_path(const std::string& relative);  // path inside the source tree

}  // namespace mp::test
