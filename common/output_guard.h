// Checks every writing command makes before any work, so that no output ever clobbers an input
// or existing work:
//   - paths are resolved (absolute, links followed); an output equal to an input, inside an input
//     folder, or containing an input is refused (usage error naming the flag), --overwrite or not;
//   - an existing output (a non-empty folder, or a file) is refused unless `overwrite`;
//   - the nearest existing folder on the output's way must accept a new file (probed by creating
//     and removing one), else bad input naming the OS reason (e.g. "Read-only file system").
// A training run folder under --resume is the run continuing: its caller passes overwrite = true
// for that case. Inputs given as "" are skipped, so callers may pass optional flags as they are.
#pragma once

#include <string>
#include <vector>

namespace mp {

enum class OutputKind { Folder, File };

struct OutputCheck {
  std::string flag;  // e.g. "--output"
  std::string path;
  OutputKind kind = OutputKind::Folder;
};

void guard_output(const OutputCheck& out, const std::vector<std::string>& inputs, bool overwrite);

// The files of token data PREFIX (PREFIX.bin, PREFIX.idx), for the inputs list.
std::vector<std::string> token_data_files(const std::string& prefix);

// Creates the missing folders of `dir`; unless keep() is called, removes on destruction those it
// created that are still empty (an error after creation leaves nothing behind).
class NewFolders {
 public:
  explicit NewFolders(const std::string& dir);
  ~NewFolders();
  NewFolders(const NewFolders&) = delete;
  NewFolders& operator=(const NewFolders&) = delete;
  void keep() { keep_ = true; }

 private:
  std::vector<std::string> created_;  // outermost first
  bool keep_ = false;
};

}  // namespace mp
