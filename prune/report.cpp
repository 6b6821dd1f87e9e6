#include "prune/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace mp {
namespace {

std::string row(const Importance& imp, int64_t i, int64_t rank) {
  const LayerImportanceRow& r = imp.layers[i];
  return fmt::format("{:>5} {:>5}  {:<9} {:>11.4e} {:>11.4e} {:>10.4e} {:>+10.4f} {:>9.4f} {:>9.4f}\n", rank, i,
                     layer_type_name(imp.parent.layers[i]), r.mse_hidden, r.mse_normed, r.kl, r.loss_delta,
                     r.agreement, r.block_influence);
}

const char* colour(LayerType t) {
  switch (t) {
    case LayerType::Mamba: return "#4c78a8";
    case LayerType::Attention: return "#e45756";
    case LayerType::Mlp: return "#54a24b";
  }
  return "#888";
}

}  // namespace

std::string importance_summary(const Importance& imp, LayerMetric metric, int64_t top) {
  const ModelConfig& c = imp.parent;
  const int64_t n = c.num_layers();
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return imp.layers[a].importance(metric) > imp.layers[b].importance(metric);
  });
  std::string s = fmt::format("layer importance ({} layers, pattern {}), ranked by {}; parent loss {:.4f} nats/token\n",
                              n, c.pattern(), layer_metric_name(metric), imp.full_loss);
  s += fmt::format("{:>5} {:>5}  {:<9} {:>11} {:>11} {:>10} {:>10} {:>9} {:>9}\n", "rank", "layer", "type",
                   "mse_hidden", "mse_normed", "kl", "loss_delta", "agreement", "BI");
  const bool all = n <= 2 * top;
  for (int64_t k = 0; k < n; ++k) {
    if (!all && k == top) s += "  ...\n";
    if (all || k < top || k >= n - top) s += row(imp, order[k], k + 1);
  }
  // Per type: the least important layers are the cheapest to drop.
  for (LayerType t : {LayerType::Mamba, LayerType::Attention, LayerType::Mlp}) {
    std::vector<int64_t> of;
    for (int64_t i : order)
      if (c.layers[i] == t) of.push_back(i);
    if (of.empty()) continue;
    std::string least;
    for (size_t k = of.size(); k-- > 0 && of.size() - k <= 5;) least += fmt::format(" {}", of[k]);
    s += fmt::format("{:<9} {:>3} layers; least important:{}\n", layer_type_name(t), of.size(), least);
  }
  auto spread = [](const std::vector<float>& v) {
    if (v.empty()) return std::string("-");
    auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    return fmt::format("min {:.4g} / max {:.4g}", *lo, *hi);
  };
  s += fmt::format("hidden channels ({}): {}\n", c.hidden_size, spread(imp.hidden));
  return s;
}

std::string layers_svg(const Importance& imp, LayerMetric metric) {
  const ModelConfig& c = imp.parent;
  const int64_t n = c.num_layers();
  const double W = std::max<double>(640, 60 + 12.0 * n), H = 360, left = 70, right = 20, topm = 40, bottom = 50;
  const double pw = W - left - right, ph = H - topm - bottom;
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = imp.layers[i].importance(metric);
  double lo = std::min(0.0, *std::min_element(v.begin(), v.end()));
  double hi = std::max(0.0, *std::max_element(v.begin(), v.end()));
  if (hi - lo <= 0) hi = lo + 1;
  auto y = [&](double x) { return topm + ph * (hi - x) / (hi - lo); };
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0f}\" height=\"{:.0f}\" font-family=\"sans-serif\" "
      "font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      W, H);
  s += fmt::format("<text x=\"{:.0f}\" y=\"20\" font-size=\"14\" text-anchor=\"middle\">Layer importance: {} when the "
                   "layer is removed ({} windows)</text>\n",
                   W / 2, layer_metric_name(metric), imp.settings.layer_samples);
  const double bw = pw / n;
  for (int64_t i = 0; i < n; ++i) {
    const double y0 = y(std::max(0.0, v[i])), y1 = y(std::min(0.0, v[i]));
    s += fmt::format("<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" fill=\"{}\"><title>layer {} "
                     "({}): {:.4g}</title></rect>\n",
                     left + i * bw + bw * 0.1, y0, bw * 0.8, std::max(0.5, y1 - y0), colour(c.layers[i]), i,
                     layer_type_name(c.layers[i]), v[i]);
  }
  // Axes, ticks and labels.
  s += fmt::format("<line x1=\"{0:.0f}\" y1=\"{1:.0f}\" x2=\"{0:.0f}\" y2=\"{2:.0f}\" stroke=\"black\"/>\n", left, topm,
                   topm + ph);
  s += fmt::format("<line x1=\"{0:.0f}\" y1=\"{1:.2f}\" x2=\"{2:.0f}\" y2=\"{1:.2f}\" stroke=\"black\"/>\n", left, y(0),
                   left + pw);
  for (int k = 0; k <= 4; ++k) {
    const double val = lo + (hi - lo) * k / 4.0;
    s += fmt::format("<text x=\"{:.0f}\" y=\"{:.2f}\" text-anchor=\"end\">{:.3g}</text>\n", left - 5, y(val) + 4, val);
  }
  const int64_t step = std::max<int64_t>(1, n / 20);
  for (int64_t i = 0; i < n; i += step)
    s += fmt::format("<text x=\"{:.2f}\" y=\"{:.0f}\" text-anchor=\"middle\">{}</text>\n", left + (i + 0.5) * bw,
                     topm + ph + 15, i);
  s += fmt::format("<text x=\"{:.0f}\" y=\"{:.0f}\" text-anchor=\"middle\">layer index</text>\n", left + pw / 2, H - 12);
  s += fmt::format("<text transform=\"translate(16,{:.0f}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
                   topm + ph / 2, layer_metric_name(metric));
  // Legend.
  double lx = left + pw - 240;
  for (LayerType t : {LayerType::Mamba, LayerType::Attention, LayerType::Mlp}) {
    s += fmt::format("<rect x=\"{:.0f}\" y=\"30\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.0f}\" y=\"39\">{} "
                     "({})</text>\n",
                     lx, colour(t), lx + 14, layer_type_name(t), c.count(t));
    lx += 80;
  }
  s += "</svg>\n";
  return s;
}

}  // namespace mp
