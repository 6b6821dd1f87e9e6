// Loss curves from training runs' metrics.jsonl (distill/metrics.h has the record format): one
// run's records read back, and charts comparing runs (common/svg_chart.h). `minipuzzle plot` and
// the trainer's own OUTPUT/loss.svg both come from here.
#pragma once

#include "common/svg_chart.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace mp {

struct RunRecords {
  std::string label;
  std::vector<nlohmann::json> train, eval;  // eval: the student's records only
  std::vector<nlohmann::json> teacher_eval;  // distill runs evaluate the teacher once
};

// PATH is a run folder (holding metrics.jsonl) or the file itself. Bad input naming the file and
// line for a missing file or a line that is not a JSON object.
RunRecords read_run_records(const std::string& path, const std::string& label);

struct CurveOptions {
  std::string records = "eval";  // "eval" or "train"
  std::string field = "loss";    // any numeric field of those records (loss, bits_per_token, kl, ce, ...)
  std::string x = "tokens";      // "tokens" or "step"
  int smooth = 1;                // moving average over this many points (train records are noisy)
  bool teacher = true;           // with eval records: the teacher's value as a flat reference line
};

// Bad input when no run has a record with the field.
LineChart curves_chart(const std::vector<RunRecords>& runs, const CurveOptions& opt, const std::string& title);

// The chart a run leaves in OUTPUT/loss.svg: training loss (smoothed) and held-out loss by tokens.
LineChart run_loss_chart(const RunRecords& run, const std::string& title);

}  // namespace mp
