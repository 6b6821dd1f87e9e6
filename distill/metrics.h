// OUTPUT/metrics.jsonl: one JSON object a line, appended and flushed as the run goes.
//   {"type":"train","step":S,"tokens":..,"loss":..,"kl":..,"ce":..,"hidden":..,"lr":..,"grad_norm":..,
//    "tokens_per_s":..,"time":..}        step S = optimizer steps completed, time = seconds since start
//   {"type":"eval","step":S,"loss":..,"accuracy":..,"bits_per_token":..,"tokens":..,"model":"student"}
// On resume, records past the checkpoint's step (written after it, before the stop) are dropped
// so that the log reads as one unbroken run.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <fstream>
#include <string>

namespace mp {

class MetricsLog {
 public:
  // keep_up_to_step < 0: start a new log (truncate); else keep records with step <= it.
  MetricsLog(std::string path, int64_t keep_up_to_step);
  void append(const nlohmann::json& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace mp
