#include "common/error.h"
#include "fuzz/format_readers.h"

namespace mp::fuzz {

std::string refusal_of(const char* format, Reader read, const uint8_t* data, size_t size) {
  try {
    read(data, size);
  } catch (const Error& e) {
    const std::string message = e.what();
    if (e.exit_code() != 2)
      throw std::logic_error(std::string(format) + ": refused as a runtime failure (exit 1), not as bad input: " +
                             message);
    if (message.empty()) throw std::logic_error(std::string(format) + ": refused with an empty message");
    return message;
  }
  return "";
}

}  // namespace mp::fuzz
