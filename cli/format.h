// Terminal formatting shared by the subcommands.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mp::cli {

std::string gib(double bytes);        // "29.52 GiB"
std::string billions(double count);   // "8.10 B" / "123.4 M"
// A plain aligned table: first row is the header.
std::string table(const std::vector<std::vector<std::string>>& rows);

}  // namespace mp::cli
