#include "common/svg_chart.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace mp {
namespace {

const char* kPalette[] = {"#1f6fd0", "#e07b00", "#2a9d3a", "#c33", "#8a4fd0", "#7a5230", "#d04fa5", "#555"};

std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else o += c;
  }
  return o;
}

}  // namespace

std::string render_svg(const LineChart& ch) {
  const double W = ch.width, H = ch.height, L = 72, R = 20, T = 40, B = 56;
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (const auto& s : ch.series)
    for (auto [x, y] : s.points)
      if (std::isfinite(x) && std::isfinite(y)) {
        x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
      }
  if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 - x0 < 1e-12) x1 = x0 + 1;
  if (y1 - y0 < 1e-12) y0 -= 0.5, y1 += 0.5;
  const double py = (y1 - y0) * 0.05;
  y0 -= py, y1 += py;
  auto X = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto Y = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };

  std::string s = fmt::format(R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="12">)", W, H);
  s += fmt::format(R"(<rect width="{}" height="{}" fill="white"/>)", W, H);
  s += fmt::format(R"(<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>)", W / 2, escape(ch.title));
  s += fmt::format(R"(<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="black"/><line x1="{0}" y1="{3}" x2="{0}" y2="{1}" stroke="black"/>)",
                   L, H - B, W - R, T);
  for (int i = 0; i <= 5; ++i) {
    const double xv = x0 + (x1 - x0) * i / 5, yv = y0 + (y1 - y0) * i / 5;
    s += fmt::format(R"(<line x1="{0:.1f}" y1="{1}" x2="{0:.1f}" y2="{2}" stroke="#eee"/>)", X(xv), T, H - B);
    s += fmt::format(R"(<line x1="{0}" y1="{1:.1f}" x2="{2}" y2="{1:.1f}" stroke="#eee"/>)", L, Y(yv), W - R);
    s += fmt::format(R"(<text x="{:.1f}" y="{}" text-anchor="middle">{:.4g}</text>)", X(xv), H - B + 18, xv);
    s += fmt::format(R"(<text x="{}" y="{:.1f}" text-anchor="end">{:.4g}</text>)", L - 6, Y(yv) + 4, yv);
  }
  s += fmt::format(R"(<text x="{}" y="{}" text-anchor="middle">{}</text>)", (L + W - R) / 2, H - 16, escape(ch.x_label));
  s += fmt::format(R"svg(<text transform="translate(18,{}) rotate(-90)" text-anchor="middle">{}</text>)svg", (T + H - B) / 2,
                   escape(ch.y_label));
  for (size_t k = 0; k < ch.series.size(); ++k) {
    const char* colour = kPalette[k % (sizeof(kPalette) / sizeof(kPalette[0]))];
    std::vector<std::pair<double, double>> pts;
    for (auto p : ch.series[k].points)
      if (std::isfinite(p.first) && std::isfinite(p.second)) pts.push_back(p);
    std::sort(pts.begin(), pts.end());
    std::string path;
    for (auto [x, y] : pts) path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "M" : " L", X(x), Y(y));
    if (!path.empty())
      s += fmt::format(R"(<path d="{}" fill="none" stroke="{}" stroke-width="1.6"/>)", path, colour);
    if (ch.series[k].markers)
      for (auto [x, y] : pts) s += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"/>)", X(x), Y(y), colour);
    const double ly = T + 14 + 16.0 * static_cast<double>(k);
    s += fmt::format(R"(<line x1="{0}" y1="{1:.1f}" x2="{2}" y2="{1:.1f}" stroke="{3}" stroke-width="3"/><text x="{4}" y="{5:.1f}">{6}</text>)",
                     W - R - 190, ly, W - R - 170, colour, W - R - 164, ly + 4, escape(ch.series[k].name));
  }
  s += "</svg>\n";
  return s;
}

}  // namespace mp
