// Progress lines for long work, on stderr: done/total, rate, ETA, plus caller-supplied fields.
// Updates at most a few times a second; silent when quiet. Never affects results.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace mp {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit, bool quiet = false);
  // Adds `n` units of work done; `extra` is appended to the line (e.g. "loss 2.31").
  void advance(int64_t n, const std::string& extra = "");
  void finish(const std::string& extra = "");
  double elapsed_seconds() const;
  double rate() const;  // units per second so far

 private:
  void print(bool final_line, const std::string& extra);
  std::string label_, unit_;
  int64_t total_, done_ = 0;
  bool quiet_;
  std::chrono::steady_clock::time_point start_, last_print_;
};

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12.3s"
std::string format_count(double n);           // 1234567 -> "1.23M"

}  // namespace mp
