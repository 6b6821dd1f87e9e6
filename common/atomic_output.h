// Outputs appear whole or not at all. A file is written under a temporary name in the same
// folder and renamed into place; a folder is filled under a temporary sibling name and renamed
// when complete. If the writer is destroyed without commit() (an exception, a crash unwinding),
// the temporary is removed, so nothing that looks complete is ever left behind. A temporary left by
// a process that was killed (its PID no longer runs) is removed when the same output is written
// again.
#pragma once

#include <string>

namespace mp {

class AtomicFile {
 public:
  explicit AtomicFile(std::string final_path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  const std::string& temp_path() const { return temp_; }
  void commit();  // fsync + rename over final_path

 private:
  std::string final_, temp_;
  bool committed_ = false;
};

class AtomicDir {
 public:
  // Refuses (bad input) when final_path exists and is not a directory.
  explicit AtomicDir(std::string final_path);
  ~AtomicDir();
  AtomicDir(const AtomicDir&) = delete;
  AtomicDir& operator=(const AtomicDir&) = delete;
  const std::string& temp_path() const { return temp_; }
  std::string path_in_temp(const std::string& name) const { return temp_ + "/" + name; }
  // Moves the finished folder into place, replacing an older folder of the same name.
  void commit();

 private:
  std::string final_, temp_;
  bool committed_ = false;
};

// Writes a whole string to a file atomically.
void write_file_atomic(const std::string& path, const std::string& contents);
// The whole of a regular file (links followed; pipes and devices refused, see input_file.h); bad
// input naming the path when missing or unreadable.
std::string read_file(const std::string& path);

}  // namespace mp
