// minipuzzle plot: loss curves of one or more training runs in one SVG (and their last values on
// the terminal), e.g. distilled against fine-tuned against from-scratch on held-out loss.
#include "cli/commands.h"
#include "cli/common_options.h"
#include "common/atomic_output.h"
#include "common/error.h"
#include "common/output_guard.h"
#include "distill/curves.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <iostream>
#include <memory>

namespace mp::cli {
namespace {

struct PlotArgs {
  std::vector<std::string> runs, labels;
  std::string output = "curves.svg", title;
  CurveOptions curve;
  bool overwrite = false;
  ReportFlags report;
};

void run_plot(const PlotArgs& a) {
  std::vector<std::string> inputs;  // the metrics files read (an SVG beside them is fine)
  for (const std::string& r : a.runs)
    inputs.push_back(std::filesystem::is_directory(r) ? r + "/metrics.jsonl" : r);
  guard_output({"--output", a.output, OutputKind::File}, inputs, a.overwrite);
  if (!a.labels.empty() && a.labels.size() != a.runs.size())
    fail_usage("plot: {} labels for {} runs; give one label a run or none", a.labels.size(), a.runs.size());
  if (a.curve.smooth < 1) fail_usage("plot: --smooth must be >= 1 (got {})", a.curve.smooth);
  std::vector<RunRecords> runs;
  for (size_t i = 0; i < a.runs.size(); ++i) {
    std::string label = a.labels.empty() ? std::filesystem::path(a.runs[i]).filename().string() : a.labels[i];
    if (label.empty() || label == "metrics.jsonl") label = a.runs[i];
    runs.push_back(read_run_records(a.runs[i], label));
  }
  const std::string title = a.title.empty() ? fmt::format("{} {} by {}", a.curve.records, a.curve.field, a.curve.x) : a.title;
  const LineChart ch = curves_chart(runs, a.curve, title);
  write_file_atomic(a.output, render_svg(ch));
  if (a.report.json) {
    nlohmann::json series = nlohmann::json::array();
    for (const ChartSeries& s : ch.series) {
      nlohmann::json j = {{"run", s.name}, {"points", s.points.size()}};
      if (!s.points.empty()) j["last"] = {{a.curve.x, s.points.back().first}, {a.curve.field, s.points.back().second}};
      series.push_back(j);
    }
    std::cout << nlohmann::json{{"output", a.output}, {"series", series}}.dump(2) << "\n";
    note(a.report, "wrote " + a.output);
    return;
  }
  std::cout << fmt::format("{:<28} {:>8} {:>14} {:>12}\n", "run", "points", a.curve.x, a.curve.field);
  for (const ChartSeries& s : ch.series) {
    if (s.points.empty()) {
      std::cout << fmt::format("{:<28} {:>8}\n", s.name, 0);
      continue;
    }
    std::cout << fmt::format("{:<28} {:>8} {:>14.6g} {:>12.5g}\n", s.name, s.points.size(), s.points.back().first,
                             s.points.back().second);
  }
  note(a.report, "wrote " + a.output);
}

}  // namespace

void register_plot(CLI::App& app) {
  auto a = std::make_shared<PlotArgs>();
  CLI::App* cmd = app.add_subcommand("plot", "Loss curves of training runs (metrics.jsonl) in one SVG");
  cmd->add_option("runs", a->runs, "Run folders (or their metrics.jsonl)")->required();
  cmd->add_option("--labels", a->labels, "One label a run (default: folder names)")->delimiter(',');
  cmd->add_option("--records", a->curve.records, "eval (held-out) or train records")->capture_default_str();
  cmd->add_option("--field", a->curve.field, "loss, bits_per_token, accuracy, kl, ce, lr, ...")->capture_default_str();
  cmd->add_option("--x", a->curve.x, "tokens or step")->capture_default_str();
  cmd->add_option("--smooth", a->curve.smooth, "Moving average over N points")->capture_default_str();
  cmd->add_flag("!--no-teacher", a->curve.teacher, "Leave out the teacher's held-out value");
  cmd->add_option("--title", a->title, "Chart title");
  add_output(cmd, a->output, "SVG file")->capture_default_str();
  add_overwrite(cmd, a->overwrite, "Replace an existing --output file");
  add_report_flags(cmd, a->report);
  cmd->callback([a] { run_plot(*a); });
}

}  // namespace mp::cli
