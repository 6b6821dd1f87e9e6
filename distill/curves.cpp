#include "distill/curves.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/json_file.h"

#include <filesystem>
#include <sstream>

namespace mp {
namespace {

bool has_number(const nlohmann::json& j, const std::string& k) { return j.contains(k) && j[k].is_number(); }

// Points (x, field) of the records that have both, averaged over a trailing window of `smooth`.
std::vector<std::pair<double, double>> points(const std::vector<nlohmann::json>& recs, const CurveOptions& o) {
  std::vector<std::pair<double, double>> raw;
  for (const auto& r : recs)
    if (has_number(r, o.field) && has_number(r, o.x)) raw.push_back({r[o.x].get<double>(), r[o.field].get<double>()});
  if (o.smooth <= 1) return raw;
  std::vector<std::pair<double, double>> out;
  double sum = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    sum += raw[i].second;
    if (i >= static_cast<size_t>(o.smooth)) sum -= raw[i - o.smooth].second;
    const double n = static_cast<double>(std::min(i + 1, static_cast<size_t>(o.smooth)));
    out.push_back({raw[i].first, sum / n});
  }
  return out;
}

}  // namespace

RunRecords read_run_records(const std::string& path, const std::string& label) {
  const std::string file = std::filesystem::is_directory(path) ? path + "/metrics.jsonl" : path;
  if (!std::filesystem::exists(file)) fail_input("{}: no such file (expected a run folder or its metrics.jsonl)", file);
  RunRecords r;
  r.label = label;
  std::istringstream in(read_file(file));
  int64_t n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    if (line.empty()) continue;
    const nlohmann::json j = parse_json_text(line, fmt::format("{}:{}", file, n));
    if (!j.is_object()) fail_input("{}:{}: not a JSON object", file, n);
    const std::string where = fmt::format("{}:{}", file, n);
    const std::string type = j.contains("type") ? json_string(j["type"], "type", where) : "";
    const std::string model = j.contains("model") ? json_string(j["model"], "model", where) : "student";
    if (type != "train" && type != "eval") continue;
    if (j.contains("step")) json_int(j["step"], "step", where, 0);
    if (j.contains("tokens")) json_number(j["tokens"], "tokens", where, 0);
    if (type == "train") r.train.push_back(j);
    else if (model == "teacher") r.teacher_eval.push_back(j);
    else r.eval.push_back(j);
  }
  // Eval records carry the step; their token count is the train record's at that step.
  std::vector<std::pair<int64_t, double>> tokens_at;
  for (const auto& t : r.train) tokens_at.push_back({t.value("step", int64_t{0}), t.value("tokens", 0.0)});
  for (auto& e : r.eval) {
    const int64_t s = e.value("step", int64_t{0});
    double tok = 0;
    for (auto [st, tk] : tokens_at)
      if (st == s) tok = tk;
    e["tokens"] = s == 0 ? 0.0 : tok;  // the eval's own "tokens" counts evaluated tokens; replace it
  }
  return r;
}

LineChart curves_chart(const std::vector<RunRecords>& runs, const CurveOptions& o, const std::string& title) {
  if (o.records != "eval" && o.records != "train") fail_usage("plot: records '{}', expected eval or train", o.records);
  if (o.x != "tokens" && o.x != "step") fail_usage("plot: x '{}', expected tokens or step", o.x);
  LineChart ch;
  ch.title = title;
  ch.x_label = o.x == "tokens" ? "training tokens" : "optimizer step";
  ch.y_label = (o.records == "eval" ? "held-out " : "training ") + o.field;
  bool any = false;
  for (const auto& run : runs) {
    ChartSeries s{run.label, points(o.records == "eval" ? run.eval : run.train, o), o.records == "eval"};
    any = any || !s.points.empty();
    ch.series.push_back(std::move(s));
  }
  if (!any)
    fail_input("plot: no {} record has a numeric '{}' (eval records: loss, accuracy, bits_per_token, perplexity; "
               "train records: loss, kl, ce, lr, grad_norm, tokens_per_s)", o.records, o.field);
  if (o.records == "eval" && o.teacher) {
    for (const auto& run : runs) {
      if (run.teacher_eval.empty() || !has_number(run.teacher_eval.front(), o.field)) continue;
      double x0 = 1e300, x1 = -1e300;
      for (const auto& s : ch.series)
        for (auto [x, y] : s.points) x0 = std::min(x0, x), x1 = std::max(x1, x);
      const double v = run.teacher_eval.front()[o.field].get<double>();
      ch.series.push_back({"teacher", {{x0, v}, {x1, v}}, false});
      break;
    }
  }
  return ch;
}

LineChart run_loss_chart(const RunRecords& run, const std::string& title) {
  LineChart ch;
  ch.title = title;
  ch.x_label = "training tokens";
  ch.y_label = "loss (nats / token)";
  CurveOptions o;
  o.records = "train", o.smooth = 10;
  ch.series.push_back({"training loss (10-step mean)", points(run.train, o), false});
  o.smooth = 1;
  if (!run.eval.empty()) ch.series.push_back({"held-out loss", points(run.eval, o), true});
  if (!run.teacher_eval.empty() && has_number(run.teacher_eval.front(), "loss") && !run.train.empty()) {
    const double v = run.teacher_eval.front()["loss"].get<double>();
    ch.series.push_back({"teacher, held-out", {{0.0, v}, {run.train.back().value("tokens", 0.0), v}}, false});
  }
  return ch;
}

}  // namespace mp
