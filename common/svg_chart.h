// Line charts as standalone SVG (no dependencies): loss curves of training runs, and any other
// "y against x, several series" figure. Axes fit the data (optionally log-scaled x), five ticks a
// side, a legend in the corner, one colour a series from a fixed palette so a run keeps its colour
// across figures when given in the same order.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace mp {

struct ChartSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y), any order; drawn sorted by x
  bool markers = false;                            // dots at the points (sparse series, e.g. evals)
};

struct LineChart {
  std::string title, x_label, y_label;
  std::vector<ChartSeries> series;
  int width = 760, height = 440;
};

// Non-finite points are left out; a chart with no finite point still renders (empty axes).
std::string render_svg(const LineChart& chart);

}  // namespace mp
