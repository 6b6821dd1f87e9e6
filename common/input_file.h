// Opening files the tool reads. What is read must be a regular file: symbolic links are followed
// (the Hugging Face cache stores every file as a link into its blob folder), but pipes, devices,
// sockets and folders are refused at once with bad input naming the file, so a named pipe given as
// a weights file or config never blocks and /dev/zero is never read until memory runs out.
#pragma once

#include <cstdint>
#include <string>

namespace mp {

// Bad input naming `path` (and `what` it was wanted as, when given) unless it is, after following
// links, an existing regular file. Returns its size in bytes.
uint64_t require_regular_file(const std::string& path, const char* what = nullptr);

// Opens a regular file read-only without ever blocking (O_NONBLOCK, then fstat checks the kind
// again on the open descriptor). Returns the descriptor; the caller closes it. `size` gets the
// file's size.
int open_regular_file(const std::string& path, uint64_t* size, const char* what = nullptr);

// The whole file. Bad input when it is larger than `max_bytes` (0: no limit), naming the file,
// its size and the limit.
std::string read_regular_file(const std::string& path, uint64_t max_bytes = 0, const char* what = nullptr);

}  // namespace mp
