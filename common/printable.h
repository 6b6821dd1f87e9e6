// Text fit for a terminal line: control characters (newlines included) and bytes that are not
// part of valid UTF-8 are written as \xNN, so a message quoting a hostile file stays one line of
// printable text.
#pragma once

#include <string>

namespace mp {

std::string printable(const std::string& text);

}  // namespace mp
