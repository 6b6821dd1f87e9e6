#include "common/atomic_output.h"

#include "common/error.h"
#include "common/input_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

namespace fs = std::filesystem;

namespace mp {
namespace {

std::string temp_sibling(const std::string& final_path, const char* tag) {
  fs::path p(final_path);
  std::string name = p.filename().string();
  if (name.empty()) name = p.parent_path().filename().string();
  fs::path parent = p.has_parent_path() ? p.parent_path() : fs::path(".");
  return (parent / fmt::format(".{}.{}-{}", name, tag, ::getpid())).string();
}

// Temporaries of `final_path` (".NAME.partial-PID", ".NAME.old-PID") whose process no longer runs:
// what a kill mid-write leaves. Removed before a new temporary is made, so that an output's folder
// never collects them. A temporary of a live process (another writer of the same output) is kept;
// so is one whose PID a new process has taken since, until that process ends.
void remove_stale_temporaries(const std::string& final_path) {
  fs::path p(final_path);
  std::string name = p.filename().string();
  if (name.empty()) name = p.parent_path().filename().string();
  const fs::path parent = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::error_code ec;
  std::vector<fs::path> stale;
  for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string entry = it->path().filename().string();
    for (const char* tag : {".partial-", ".old-"}) {
      const std::string prefix = "." + name + tag;
      if (entry.size() <= prefix.size() || entry.compare(0, prefix.size(), prefix) != 0) continue;
      const std::string digits = entry.substr(prefix.size());
      if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
      const pid_t pid = static_cast<pid_t>(std::stol(digits));
      if (pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(it->path());
    }
  }
  for (const fs::path& s : stale) fs::remove_all(s, ec);
}

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

AtomicFile::AtomicFile(std::string final_path)
    : final_(std::move(final_path)), temp_(temp_sibling(final_, "partial")) {
  fs::path parent = fs::path(final_).parent_path();
  if (!parent.empty() && !fs::is_directory(parent))
    fail_input("{}: output folder {} does not exist", final_, parent.string());
  remove_stale_temporaries(final_);
}

AtomicFile::~AtomicFile() {
  if (!committed_) {
    std::error_code ec;
    fs::remove(temp_, ec);
  }
}

void AtomicFile::commit() {
  fsync_path(temp_);
  std::error_code ec;
  fs::rename(temp_, final_, ec);
  if (ec) fail_runtime("{}: cannot move finished file into place: {}", final_, ec.message());
  committed_ = true;
}

AtomicDir::AtomicDir(std::string final_path) : final_(std::move(final_path)) {
  while (!final_.empty() && final_.size() > 1 && final_.back() == '/') final_.pop_back();
  if (fs::exists(final_) && !fs::is_directory(final_))
    fail_input("{}: exists and is not a folder; expected a folder path for the output", final_);
  fs::path parent = fs::path(final_).parent_path();
  if (!parent.empty() && !fs::is_directory(parent))
    fail_input("{}: parent folder {} does not exist", final_, parent.string());
  temp_ = temp_sibling(final_, "partial");
  remove_stale_temporaries(final_);
  std::error_code ec;
  fs::remove_all(temp_, ec);
  fs::create_directory(temp_, ec);
  if (ec) fail_runtime("{}: cannot create temporary folder: {}", temp_, ec.message());
}

AtomicDir::~AtomicDir() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(temp_, ec);
  }
}

void AtomicDir::commit() {
  std::error_code ec;
  std::string old;
  if (fs::exists(final_)) {
    old = temp_sibling(final_, "old");
    fs::remove_all(old, ec);
    fs::rename(final_, old, ec);
    if (ec) fail_runtime("{}: cannot move the previous folder aside: {}", final_, ec.message());
  }
  fs::rename(temp_, final_, ec);
  if (ec) fail_runtime("{}: cannot move finished folder into place: {}", final_, ec.message());
  committed_ = true;
  if (!old.empty()) fs::remove_all(old, ec);
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  AtomicFile out(path);
  {
    std::ofstream f(out.temp_path(), std::ios::binary);
    if (!f) fail_runtime("{}: cannot create {}: {}", path, out.temp_path(), std::strerror(errno));
    f.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    f.flush();
    if (!f) fail_runtime("{}: write failed: {}", path, std::strerror(errno));
  }
  out.commit();
}

std::string read_file(const std::string& path) { return read_regular_file(path); }

}  // namespace mp
