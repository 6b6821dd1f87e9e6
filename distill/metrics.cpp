#include "distill/metrics.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/json_file.h"

#include <filesystem>
#include <sstream>

namespace mp {

MetricsLog::MetricsLog(std::string path, int64_t keep_up_to_step) : path_(std::move(path)) {
  std::string kept;
  if (keep_up_to_step >= 0 && std::filesystem::exists(path_)) {
    std::istringstream in(read_file(path_));
    std::string line;
    while (std::getline(in, line)) {
      nlohmann::json j;
      try {
        j = parse_json_text(line, path_);
      } catch (const Error&) {
        continue;  // a line cut short by a kill
      }
      if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer()) continue;
      if (j.value("step", int64_t{0}) <= keep_up_to_step) kept += line + "\n";
    }
  }
  write_file_atomic(path_, kept);
  out_.open(path_, std::ios::app);
  if (!out_) fail_runtime("{}: cannot open for appending", path_);
}

void MetricsLog::append(const nlohmann::json& record) {
  out_ << record.dump() << "\n";
  out_.flush();
  if (!out_) fail_runtime("{}: write failed (disk full?)", path_);
}

}  // namespace mp
