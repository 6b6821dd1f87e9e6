#include "distill/finalists.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/json_file.h"
#include "common/svg_chart.h"
#include "data/sampler.h"
#include "distill/trainer.h"
#include "model/lm_eval.h"
#include "model/model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

namespace fs = std::filesystem;

namespace mp {
namespace {

at::ScalarType eval_dtype(const TrainConfig& c, at::Device dev) {
  if (c.dtype == "auto") return dev.is_cuda() ? at::kBFloat16 : at::kFloat;
  return parse_dtype(c.dtype);
}

double held_out_loss(const std::string& model_dir, const at::Tensor& windows, const FinalistDistillOptions& o) {
  LoadOptions lo;
  lo.device = parse_device(o.recipe.device);
  lo.dtype = eval_dtype(o.recipe, lo.device);
  return lm_stats(load_model(model_dir, lo), windows, o.eval_micro_batch).loss();
}

// A finished run's summary (the run is not repeated), or nothing.
std::optional<nlohmann::json> finished_summary(const std::string& run_dir) {
  const std::string path = run_dir + "/summary.json";
  if (!fs::exists(path) || !fs::exists(run_dir + "/final/config.json")) return std::nullopt;
  nlohmann::json s = read_json_file(path);
  if (!s.is_object() || !s.value("finished", false)) return std::nullopt;
  return s;
}

}  // namespace

std::vector<FinalistResult> distill_finalists(const std::vector<Finalist>& finalists, const FinalistDistillOptions& o,
                                              const std::function<void(size_t, size_t)>& on_finalist) {
  if (o.tokens <= 0) fail_usage("--distill-tokens: expected a positive number of tokens, got {}", o.tokens);
  if (finalists.empty()) return {};
  const int64_t vocab = load_config(o.teacher).vocab_size;
  WindowSampler ev(IndexedDataset::open(o.eval_data), o.eval_seq_len, o.seed, vocab);
  const at::Tensor windows = ev.fixed_windows(std::min(o.eval_windows, ev.num_windows()));
  std::vector<FinalistResult> out;
  for (size_t i = 0; i < finalists.size(); ++i) {
    FinalistResult r;
    r.finalist = finalists[i];
    r.run_dir = finalists[i].dir + "-distill";  // beside it: a run folder never lies inside its student
    r.loss_before = held_out_loss(finalists[i].dir, windows, o);
    std::optional<nlohmann::json> done = finished_summary(r.run_dir);
    if (!done) {
      TrainConfig c = o.recipe;
      c.mode = "distill";
      c.teacher = o.teacher, c.student = finalists[i].dir, c.data = o.data, c.output = r.run_dir;
      c.eval_data.clear();  // the held-out evaluation below is the same for every finalist
      c.tokens = o.tokens, c.steps = 0;
      c.resume = true, c.overwrite = false;  // a new run, or the killed one continued
      c.save_every = c.save_every > 0 ? c.save_every : std::max<int64_t>(1, c.total_steps() / 4);
      run_training(c);
      done = finished_summary(r.run_dir);
      if (!done) fail_runtime("{}: the distillation ended without a final model", r.run_dir);
    }
    r.steps = done->value("total_steps", int64_t{0});
    r.tokens = done->value("tokens", int64_t{0});
    r.seconds = done->value("seconds", 0.0);
    r.loss_after = held_out_loss(r.run_dir + "/final", windows, o);
    out.push_back(r);
    if (on_finalist) on_finalist(i + 1, finalists.size());
  }
  std::vector<size_t> order(out.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return out[a].loss_after < out[b].loss_after; });
  for (size_t k = 0; k < order.size(); ++k) out[order[k]].rank_after = static_cast<int64_t>(k + 1);
  return out;
}

double spearman_rank_correlation(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  const size_t n = a.size();
  if (n != b.size()) fail_runtime("rank correlation of {} and {} ranks", a.size(), b.size());
  if (n < 2) return 1.0;
  // Positions within each list (the ranks given need not be 1..n, e.g. zero-shot places 1, 2, 5).
  auto positions = [n](const std::vector<int64_t>& r) {
    std::vector<size_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](size_t x, size_t y) { return r[x] < r[y]; });
    std::vector<double> pos(n);
    for (size_t k = 0; k < n; ++k) pos[idx[k]] = static_cast<double>(k + 1);
    return pos;
  };
  const std::vector<double> pa = positions(a), pb = positions(b);
  double d2 = 0;
  for (size_t i = 0; i < n; ++i) d2 += (pa[i] - pb[i]) * (pa[i] - pb[i]);
  const double nn = static_cast<double>(n);
  return 1.0 - 6.0 * d2 / (nn * (nn * nn - 1.0));  // no ties: the closed form is exact
}

nlohmann::json write_finalists_report(const std::vector<FinalistResult>& results, const std::string& output,
                                      const std::string& metric, const FinalistDistillOptions& o) {
  std::vector<int64_t> before, after;
  nlohmann::json rows = nlohmann::json::array();
  std::string csv = fmt::format("zero_shot_rank,rank_after,key,zero_shot_{},loss_before,loss_after,steps,tokens,seconds,dir\n", metric);
  for (const FinalistResult& r : results) {
    before.push_back(r.finalist.zero_shot_rank), after.push_back(r.rank_after);
    rows.push_back({{"key", r.finalist.key}, {"dir", r.finalist.dir}, {"run", r.run_dir},
                    {"zero_shot_rank", r.finalist.zero_shot_rank}, {"zero_shot_metric", r.finalist.zero_shot_metric},
                    {"loss_before", r.loss_before}, {"loss_after", r.loss_after}, {"rank_after", r.rank_after},
                    {"steps", r.steps}, {"tokens", r.tokens}, {"seconds", r.seconds}});
    csv += fmt::format("{},{},{},{},{},{},{},{},{},{}\n", r.finalist.zero_shot_rank, r.rank_after, r.finalist.key,
                       r.finalist.zero_shot_metric, r.loss_before, r.loss_after, r.steps, r.tokens, r.seconds,
                       r.finalist.dir);
  }
  auto best = std::min_element(results.begin(), results.end(),
                               [](const FinalistResult& a, const FinalistResult& b) { return a.rank_after < b.rank_after; });
  nlohmann::json doc = {{"zero_shot_metric", metric},
                        {"distill_tokens", o.tokens},
                        {"eval", {{"data", o.eval_data}, {"seq_len", o.eval_seq_len}, {"windows", o.eval_windows}}},
                        {"spearman", spearman_rank_correlation(before, after)},
                        {"chosen", best == results.end() ? nlohmann::json() : nlohmann::json(best->finalist.dir)},
                        {"finalists", rows}};
  LineChart chart;
  chart.title = fmt::format("finalists: held-out loss before and after {} distillation tokens", o.tokens);
  chart.x_label = "zero-shot rank (" + metric + ")";
  chart.y_label = "held-out loss (nats/token)";
  ChartSeries pruned{"pruned", {}, true}, distilled{"distilled", {}, true};
  for (const FinalistResult& r : results) {
    pruned.points.emplace_back(static_cast<double>(r.finalist.zero_shot_rank), r.loss_before);
    distilled.points.emplace_back(static_cast<double>(r.finalist.zero_shot_rank), r.loss_after);
  }
  chart.series = {pruned, distilled};
  write_file_atomic(output + "/finalists.json", doc.dump(2) + "\n");
  write_file_atomic(output + "/finalists.csv", csv);
  write_file_atomic(output + "/finalists.svg", render_svg(chart));
  return doc;
}

}  // namespace mp
