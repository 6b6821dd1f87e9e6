#include "search/report.h"

#include "common/atomic_output.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>

namespace mp {

nlohmann::json shape_json(const CandidateResult& c, const ModelConfig& parent) {
  // The fields `minipuzzle prune --shape` reads; the rest is context for a person, under metadata.
  nlohmann::json j;
  j["name"] = c.candidate.key();
  j["hidden_size"] = c.candidate.hidden;
  j["intermediate_size"] = c.candidate.ffn;
  j["num_attention_heads"] = c.candidate.attention_heads;
  j["mamba_num_heads"] = c.candidate.mamba_heads;
  j["mamba_head_dim"] = c.candidate.mamba_head_dim;
  j["kept_layers"] = c.kept_layers;
  j["metadata"] = {{"format", "minipuzzle-shape"},
                   {"version", 1},
                   {"parent_pattern", parent.pattern()},
                   {"pattern", c.config.pattern()},
                   {"layers", {{"mamba", c.candidate.mamba}, {"attention", c.candidate.attention}, {"mlp", c.candidate.mlp}}},
                   {"parameters", c.params},
                   {"memory_gib", to_gib(c.memory.total())},
                   {"metrics", c.metrics}};
  return j;
}

namespace {

double quality(const CandidateResult& c, const std::string& metric) {
  auto it = c.metrics.find(metric);
  return it != c.metrics.end() ? it->second : static_cast<double>(c.params) / 1e9;
}

// Non-dominated candidates: no other has both less memory and better quality.
std::vector<size_t> pareto_front(const SearchResult& r, const std::string& metric, bool higher_better) {
  std::vector<size_t> idx(r.feasible.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return r.feasible[a].memory.total() < r.feasible[b].memory.total(); });
  std::vector<size_t> front;
  double best = higher_better ? -1e300 : 1e300;
  for (size_t i : idx) {
    double q = quality(r.feasible[i], metric);
    if (higher_better ? q > best : q < best) { front.push_back(i); best = q; }
  }
  return front;
}

std::string pareto_svg(const SearchResult& r, const std::string& metric, bool higher_better) {
  const double W = 720, H = 460, L = 70, R = 20, T = 40, B = 60;
  std::vector<std::pair<double, double>> pts;
  for (const auto& c : r.feasible) pts.push_back({to_gib(c.memory.total()), quality(c, metric)});
  const double parent_mem = to_gib(deployment_memory(r.parent, r.budget).total());
  const double parent_q = metric == "params" ? count_params(r.parent).total() / 1e9
                          : r.parent_metrics.count(metric) ? r.parent_metrics.at(metric) : (higher_better ? 1.0 : 0.0);
  double x0 = parent_mem, x1 = std::max(parent_mem, r.budget.memory_limit_gib), y0 = parent_q, y1 = parent_q;
  for (auto [x, y] : pts) { x0 = std::min(x0, x); x1 = std::max(x1, x); y0 = std::min(y0, y); y1 = std::max(y1, y); }
  if (x1 - x0 < 1e-9) x1 = x0 + 1;
  if (y1 - y0 < 1e-9) y1 = y0 + 1;
  const double px = (x1 - x0) * 0.05, py = (y1 - y0) * 0.08;
  x0 -= px; x1 += px; y0 -= py; y1 += py;
  auto X = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto Y = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  std::string s = fmt::format(R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="12">)", W, H);
  s += fmt::format(R"(<rect width="{}" height="{}" fill="white"/>)", W, H);
  s += fmt::format(R"(<text x="{}" y="22" font-size="15" text-anchor="middle">Candidates under {} ({} feasible of {})</text>)",
                   W / 2, r.budget.name, r.feasible.size(), r.enumerated);
  s += fmt::format(R"(<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="black"/><line x1="{0}" y1="{3}" x2="{0}" y2="{1}" stroke="black"/>)",
                   L, H - B, W - R, T);
  for (int i = 0; i <= 5; ++i) {
    double xv = x0 + (x1 - x0) * i / 5, yv = y0 + (y1 - y0) * i / 5;
    s += fmt::format(R"(<text x="{:.1f}" y="{}" text-anchor="middle">{:.2f}</text>)", X(xv), H - B + 18, xv);
    s += fmt::format(R"(<text x="{}" y="{:.1f}" text-anchor="end">{:.3g}</text>)", L - 6, Y(yv) + 4, yv);
  }
  s += fmt::format(R"(<text x="{}" y="{}" text-anchor="middle">deployment memory (GiB)</text>)", (L + W - R) / 2, H - 18);
  s += fmt::format(R"svg(<text transform="translate(18,{}) rotate(-90)" text-anchor="middle">{}</text>)svg", (T + H - B) / 2,
                   metric == "params" ? "parameters (B)" : metric);
  const double lim = X(r.budget.memory_limit_gib);
  s += fmt::format(R"(<line x1="{0:.1f}" y1="{1}" x2="{0:.1f}" y2="{2}" stroke="#c33" stroke-dasharray="5,4"/><text x="{0:.1f}" y="{3}" fill="#c33" text-anchor="end">limit {4} GiB </text>)",
                   lim, T, H - B, T + 12, r.budget.memory_limit_gib);
  for (auto [x, y] : pts) s += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="2.5" fill="#89a" fill-opacity="0.6"/>)", X(x), Y(y));
  std::string path;
  for (size_t i : pareto_front(r, metric, higher_better)) {
    const auto& c = r.feasible[i];
    path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "M" : " L", X(to_gib(c.memory.total())), Y(quality(c, metric)));
    s += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="4" fill="#1f6fd0"/>)", X(to_gib(c.memory.total())), Y(quality(c, metric)));
  }
  if (!path.empty()) s += fmt::format(R"(<path d="{}" fill="none" stroke="#1f6fd0" stroke-width="1.5"/>)", path);
  s += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="9" height="9" fill="#e07b00"/><text x="{:.1f}" y="{:.1f}">parent</text>)",
                   X(parent_mem) - 4.5, Y(parent_q) - 4.5, X(parent_mem) - 48, Y(parent_q) + 4);
  s += fmt::format(R"(<circle cx="{}" cy="{}" r="4" fill="#1f6fd0"/><text x="{}" y="{}">Pareto front</text>)", W - 150, T + 14, W - 140, T + 18);
  s += "</svg>\n";
  return s;
}

}  // namespace

void write_search_outputs(const SearchResult& r, const std::string& dir, const std::string& metric) {
  std::filesystem::create_directories(dir);
  nlohmann::json all = nlohmann::json::array();
  std::string csv = "rank,key,pattern,mamba,attention,mlp,ffn,hidden,attention_heads,mamba_heads,mamba_head_dim,"
                    "params,memory_gib,weights_gib,kv_gib,mamba_state_gib,workspace_gib";
  if (r.speed) csv += ",speedup,prefill_s,decode_ms_per_token,generation_s";
  std::vector<std::string> metric_names;
  if (!r.feasible.empty())
    for (const auto& [k, v] : r.feasible.front().metrics) metric_names.push_back(k);
  for (const auto& k : metric_names) csv += "," + k;
  csv += "\n";
  for (size_t i = 0; i < r.feasible.size(); ++i) {
    const auto& c = r.feasible[i];
    nlohmann::json j = shape_json(c, r.parent);
    j["rank"] = i + 1;
    j["pattern"] = c.config.pattern();
    j["parameters"] = c.params;
    j["key"] = c.candidate.key();
    j["memory"] = {{"weights_gib", to_gib(c.memory.weights)}, {"kv_cache_gib", to_gib(c.memory.kv_cache)},
                   {"mamba_conv_gib", to_gib(c.memory.mamba_conv)}, {"mamba_ssm_gib", to_gib(c.memory.mamba_ssm)},
                   {"workspace_gib", to_gib(c.memory.workspace)}, {"total_gib", to_gib(c.memory.total())}};
    j["metrics"] = c.metrics;
    if (c.speed)
      j["predicted_speed"] = {{"speedup", c.speedup}, {"prefill_s", c.speed->prefill_s},
                              {"decode_ms_per_token", 1e3 * c.speed->decode_s_per_token},
                              {"generation_s", c.speed->generation_s}};
    all.push_back(j);
    csv += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{:.4f},{:.4f},{:.4f},{:.4f},{:.4f}", i + 1, c.candidate.key(),
                       c.config.pattern(), c.candidate.mamba, c.candidate.attention, c.candidate.mlp, c.candidate.ffn,
                       c.candidate.hidden, c.candidate.attention_heads, c.candidate.mamba_heads, c.candidate.mamba_head_dim,
                       c.params, to_gib(c.memory.total()), to_gib(c.memory.weights), to_gib(c.memory.kv_cache),
                       to_gib(c.memory.mamba_conv + c.memory.mamba_ssm), to_gib(c.memory.workspace));
    if (c.speed)
      csv += fmt::format(",{:.4f},{:.6g},{:.6g},{:.6g}", c.speedup, c.speed->prefill_s, 1e3 * c.speed->decode_s_per_token,
                         c.speed->generation_s);
    for (const auto& k : metric_names) csv += fmt::format(",{:.6g}", c.metrics.count(k) ? c.metrics.at(k) : 0.0);
    csv += "\n";
  }
  nlohmann::json doc = {{"format", "minipuzzle-candidates"}, {"version", 1}, {"budget", r.budget.name},
                        {"memory_limit_gib", r.budget.memory_limit_gib}, {"parent_pattern", r.parent.pattern()},
                        {"parent_params", count_params(r.parent).total()},
                        {"parent_memory_gib", to_gib(deployment_memory(r.parent, r.budget).total())},
                        {"enumerated", r.enumerated}, {"feasible", r.feasible.size()}, {"seconds", r.seconds},
                        {"ranked_by", metric}, {"candidates", all}};
  if (r.speed) {
    const auto& m = r.speed->model;
    doc["speed_model"] = {{"card", m.card}, {"dtype", m.dtype}, {"date", m.date}, {"commit", m.commit},
                          {"batch", r.speed->workload.batch}, {"prompt_tokens", r.speed->workload.prompt_tokens},
                          {"output_tokens", r.speed->workload.output_tokens},
                          {"parent_generation_s", r.parent_speed->generation_s},
                          {"parent_prefill_s", r.parent_speed->prefill_s},
                          {"parent_decode_ms_per_token", 1e3 * r.parent_speed->decode_s_per_token}};
  }
  write_file_atomic(dir + "/candidates.json", doc.dump(2) + "\n");
  write_file_atomic(dir + "/candidates.csv", csv);
  const bool higher_better = metric != "kl" && metric != "loss";
  write_file_atomic(dir + "/pareto.svg", pareto_svg(r, metric, higher_better));
  if (!r.feasible.empty()) write_file_atomic(dir + "/best.shape.json", shape_json(r.feasible.front(), r.parent).dump(2) + "\n");
}

std::string search_table(const SearchResult& r, size_t rows, const std::string& metric) {
  std::string s = fmt::format("{:>4}  {:<34} {:>9} {:>9} {:>8} {:>8}", "rank", "candidate", "params", "memory", "weights", "kv");
  if (r.speed) s += fmt::format(" {:>8}", "speed");
  if (metric != "params") s += fmt::format(" {:>10}", metric);
  s += "\n";
  for (size_t i = 0; i < std::min(rows, r.feasible.size()); ++i) {
    const auto& c = r.feasible[i];
    const std::string params = c.params >= 1e9 ? fmt::format("{:.2f}B", c.params / 1e9)
                               : c.params >= 1e6 ? fmt::format("{:.2f}M", c.params / 1e6)
                                                 : fmt::format("{:.1f}k", c.params / 1e3);
    s += fmt::format("{:>4}  {:<34} {:>9} {:>6.2f}GiB {:>5.2f}GiB {:>5.2f}GiB", i + 1, c.candidate.key(), params,
                     to_gib(c.memory.total()), to_gib(c.memory.weights), to_gib(c.memory.kv_cache));
    if (r.speed) s += fmt::format(" {:>7.3f}x", c.speedup);
    if (metric != "params") s += fmt::format(" {:>10.4f}", quality(c, metric));
    s += "\n";
  }
  // The chosen candidate against the median of all ranked ones (how much the ranking buys).
  std::vector<double> q;
  for (const auto& c : r.feasible)
    if (c.metrics.count(metric)) q.push_back(c.metrics.at(metric));
  if (!q.empty()) {
    std::vector<double> sorted = q;
    std::sort(sorted.begin(), sorted.end());
    const double med = sorted.size() % 2 ? sorted[sorted.size() / 2]
                                         : 0.5 * (sorted[sorted.size() / 2 - 1] + sorted[sorted.size() / 2]);
    s += fmt::format("ranked {} of {} feasible by {}: chosen {:.4f}, median {:.4f}\n", q.size(), r.feasible.size(), metric,
                     q.front(), med);
  }
  return s;
}

}  // namespace mp
