#include "common/output_guard.h"

#include "common/error.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace fs = std::filesystem;

namespace mp {
namespace {

fs::path resolve(const std::string& p) {
  std::error_code ec;
  fs::path abs = fs::absolute(p, ec);
  if (ec) return fs::path(p).lexically_normal();
  fs::path c = fs::weakly_canonical(abs, ec);
  return (ec ? abs : c).lexically_normal();
}

// True when `inner` is `outer` or lies below it (whole path components compared).
bool within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin(), o = outer.begin();
  for (; o != outer.end(); ++o, ++i) {
    if (o->empty()) continue;  // trailing separator
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

bool is_nonempty_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec) && !fs::is_empty(p, ec);
}

}  // namespace

std::vector<std::string> token_data_files(const std::string& prefix) {
  if (prefix.empty()) return {};
  return {prefix + ".bin", prefix + ".idx"};
}

void guard_output(const OutputCheck& out, const std::vector<std::string>& inputs, bool overwrite) {
  if (out.path.empty()) return;
  const fs::path o = resolve(out.path);
  for (const std::string& input : inputs) {
    if (input.empty()) continue;
    const fs::path in = resolve(input);
    if (o == in) fail_usage("{} {}: is the input {}; write the output somewhere else", out.flag, out.path, input);
    if (within(o, in))
      fail_usage("{} {}: lies inside the input {}; write the output somewhere else", out.flag, out.path, input);
    if (within(in, o))
      fail_usage("{} {}: contains the input {}; writing it would replace that input", out.flag, out.path, input);
  }
  std::error_code ec;
  const fs::file_status st = fs::status(o, ec);
  if (fs::exists(st)) {
    if (out.kind == OutputKind::Folder && !fs::is_directory(st))
      fail_input("{} {}: exists and is not a folder; expected a folder path for the output", out.flag, out.path);
    if (out.kind == OutputKind::File && fs::is_directory(st))
      fail_input("{} {}: is a folder; expected a file path for the output", out.flag, out.path);
    const bool occupied = out.kind == OutputKind::File || is_nonempty_dir(o);
    if (occupied && !overwrite)
      fail_usage("{} {}: already exists{}; pass --overwrite to replace it, or choose another path", out.flag,
                 out.path, out.kind == OutputKind::Folder ? " and is not empty" : "");
  }
  // The nearest existing folder on the way must accept new entries.
  fs::path dir = o.parent_path();
  while (!dir.empty() && !fs::exists(dir, ec) && dir != dir.parent_path()) dir = dir.parent_path();
  if (!dir.empty() && fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec))
      fail_input("{} {}: {} is not a folder", out.flag, out.path, dir.string());
    // A probe file, created and removed at once: permission bits alone do not tell (root ignores
    // them; read-only mounts and special file systems refuse regardless).
    const std::string probe = (dir / fmt::format(".mp-write-probe-{}", ::getpid())).string();
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
      fail_input("{} {}: cannot write in {}: {}", out.flag, out.path, dir.string(), std::strerror(errno));
    ::close(fd);
    ::unlink(probe.c_str());
  }
}

NewFolders::NewFolders(const std::string& dir) {
  if (dir.empty()) return;
  std::vector<fs::path> missing;
  std::error_code ec;
  for (fs::path p = fs::absolute(dir, ec).lexically_normal(); !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    missing.push_back(p);
    if (p == p.parent_path()) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (!fs::create_directory(*it, ec) && ec) {
      const std::string reason = ec.message();
      std::error_code ignored;
      for (auto c = created_.rbegin(); c != created_.rend(); ++c) fs::remove(*c, ignored);
      fail_input("{}: cannot create the output folder {}: {}", dir, it->string(), reason);
    }
    created_.push_back(it->string());
  }
}

NewFolders::~NewFolders() {
  if (keep_) return;
  std::error_code ec;
  for (auto it = created_.rbegin(); it != created_.rend(); ++it)
    if (fs::is_empty(*it, ec)) fs::remove(*it, ec);
  created_.clear();
}

}  // namespace mp
