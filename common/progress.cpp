#include "common/progress.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>

namespace mp {

Progress::Progress(std::string label, int64_t total, std::string unit, bool quiet)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), quiet_(quiet),
      start_(std::chrono::steady_clock::now()), last_print_(start_) {}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

double Progress::rate() const {
  double t = elapsed_seconds();
  return t > 0 ? done_ / t : 0.0;
}

void Progress::advance(int64_t n, const std::string& extra) {
  done_ += n;
  auto now = std::chrono::steady_clock::now();
  if (std::chrono::duration<double>(now - last_print_).count() >= 0.5 || done_ >= total_) {
    last_print_ = now;
    print(false, extra);
  }
}

void Progress::finish(const std::string& extra) { print(true, extra); }

void Progress::print(bool final_line, const std::string& extra) {
  if (quiet_) return;
  double r = rate();
  std::string eta = (r > 0 && total_ > done_) ? format_duration((total_ - done_) / r) : "-";
  std::string line = fmt::format("{}: {}/{} {} | {} {}/s | {} {}", label_, format_count(done_),
                                 format_count(total_), unit_, format_count(r), unit_,
                                 final_line ? "took" : "eta",
                                 final_line ? format_duration(elapsed_seconds()) : eta);
  if (!extra.empty()) line += " | " + extra;
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

std::string format_duration(double s) {
  if (!std::isfinite(s)) return "-";
  if (s < 60) return fmt::format("{:.1f}s", s);
  auto t = static_cast<int64_t>(s);
  if (t < 3600) return fmt::format("{}m{:02d}s", t / 60, static_cast<int>(t % 60));
  return fmt::format("{}h{:02d}m", t / 3600, static_cast<int>((t % 3600) / 60));
}

std::string format_count(double n) {
  double a = std::fabs(n);
  if (a >= 1e9) return fmt::format("{:.2f}G", n / 1e9);
  if (a >= 1e6) return fmt::format("{:.2f}M", n / 1e6);
  if (a >= 1e4) return fmt::format("{:.1f}k", n / 1e3);
  if (a == std::floor(a)) return fmt::format("{}", static_cast<int64_t>(n));
  return fmt::format("{:.2f}", n);
}

}  // namespace mp
