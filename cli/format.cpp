#include "cli/format.h"

#include <fmt/format.h>

#include <algorithm>

namespace mp::cli {

std::string gib(double bytes) {
  double g = bytes / (1024.0 * 1024.0 * 1024.0);
  if (g >= 0.1) return fmt::format("{:.2f} GiB", g);
  if (bytes >= 1024.0 * 1024.0) return fmt::format("{:.2f} MiB", bytes / (1024.0 * 1024.0));
  if (bytes >= 1024.0) return fmt::format("{:.2f} KiB", bytes / 1024.0);
  return fmt::format("{:.0f} B", bytes);
}

std::string billions(double n) {
  if (n >= 1e9) return fmt::format("{:.2f} B", n / 1e9);
  if (n >= 1e6) return fmt::format("{:.2f} M", n / 1e6);
  if (n >= 1e3) return fmt::format("{:.1f} k", n / 1e3);
  return fmt::format("{}", static_cast<int64_t>(n));
}

std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  std::string out;
  for (size_t ri = 0; ri < rows.size(); ++ri) {
    for (size_t i = 0; i < rows[ri].size(); ++i) {
      // First column left-aligned, numbers right-aligned.
      out += i == 0 ? fmt::format("{:<{}}", rows[ri][i], width[i]) : fmt::format("  {:>{}}", rows[ri][i], width[i]);
    }
    out += "\n";
    if (ri == 0) {
      size_t total = 0;
      for (size_t w : width) total += w + 2;
      out += std::string(total - 2, '-') + "\n";
    }
  }
  return out;
}

}  // namespace mp::cli
