#include "common/input_file.h"

#include "common/error.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mp {
namespace {

std::string what_suffix(const char* what) { return what ? fmt::format(" ({})", what) : std::string(); }

const char* kind_name(mode_t m) {
  if (S_ISDIR(m)) return "a folder";
  if (S_ISFIFO(m)) return "a named pipe";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

[[noreturn]] void not_regular(const std::string& path, mode_t m, const char* what) {
  fail_input("{}: is {}{}; expected a regular file (or a link to one)", path, kind_name(m), what_suffix(what));
}

}  // namespace

uint64_t require_regular_file(const std::string& path, const char* what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) fail_input("{}: file not found{}", path, what_suffix(what));
    fail_input("{}: cannot read{}: {}", path, what_suffix(what), std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) not_regular(path, st.st_mode, what);
  return static_cast<uint64_t>(st.st_size);
}

int open_regular_file(const std::string& path, uint64_t* size, const char* what) {
  require_regular_file(path, what);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) fail_input("{}: file not found{}", path, what_suffix(what));
    fail_input("{}: cannot open for reading{}: {}", path, what_suffix(what), std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {  // replaced between stat and open
    const mode_t m = st.st_mode;
    ::close(fd);
    not_regular(path, m, what);
  }
  // Regular files never block; clear the flag so reads behave as usual.
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  if (size) *size = static_cast<uint64_t>(st.st_size);
  return fd;
}

std::string read_regular_file(const std::string& path, uint64_t max_bytes, const char* what) {
  uint64_t size = 0;
  const int fd = open_regular_file(path, &size, what);
  if (max_bytes && size > max_bytes) {
    ::close(fd);
    fail_input("{}: {} bytes, more than the {} bytes allowed for this kind of file{}", path, size, max_bytes,
               what_suffix(what));
  }
  std::string out;
  out.resize(size);
  uint64_t done = 0;
  while (done < size) {
    const ssize_t n = ::read(fd, out.data() + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      fail_input("{}: read failed: {}", path, std::strerror(err));
    }
    if (n == 0) break;  // shrank while reading
    done += static_cast<uint64_t>(n);
  }
  ::close(fd);
  out.resize(done);
  return out;
}

}  // namespace mp
