#include "search/throughput.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/json_file.h"
#include "search/nnls.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>

namespace mp {
namespace {

Part part_of(LayerType t) {
  switch (t) {
    case LayerType::Mamba: return Part::Mamba;
    case LayerType::Attention: return Part::Attention;
    case LayerType::Mlp: return Part::Mlp;
  }
  return Part::Head;
}

// How many times each part occurs in a model: its layers of each type, and one head.
std::array<double, kNumParts> part_counts(const ModelConfig& c) {
  std::array<double, kNumParts> n{0, 0, 0, 1};
  for (LayerType t : c.layers) n[static_cast<int>(part_of(t))] += 1;
  return n;
}

// The sample's row of the design matrix: each part's features times its count, concatenated.
std::vector<double> design_row(const ModelConfig& c, Phase ph, int64_t batch, int64_t length) {
  std::vector<double> row;
  const auto n = part_counts(c);
  for (int p = 0; p < kNumParts; ++p) {
    for (double f : part_features(c, static_cast<Part>(p), ph, batch, length)) row.push_back(n[p] * f);
  }
  return row;
}

int64_t phase_index(Phase p) { return static_cast<int64_t>(p); }

// Which design-matrix columns are per-layer (host) terms: feature 0 of every part.
std::vector<bool> host_columns(Phase ph) {
  std::vector<bool> host;
  for (int p = 0; p < kNumParts; ++p)
    for (size_t j = 0; j < part_feature_names(static_cast<Part>(p), ph).size(); ++j) host.push_back(j == 0);
  return host;
}

// max(host, device) = 1 on every (relative) row: rows bound by the host constrain the host
// columns, the others the device columns. Alternate assignment and NNLS from the additive fit
// until the assignment is stable (or 50 rounds; it settles in a few).
Eigen::VectorXd fit_overlap(const Eigen::MatrixXd& A, Eigen::VectorXd x, const std::vector<bool>& host) {
  Eigen::MatrixXd H = A, D = A;
  for (Eigen::Index j = 0; j < A.cols(); ++j) (host[j] ? D : H).col(j).setZero();
  std::vector<bool> side, last;
  for (int round = 0; round < 50; ++round) {
    const Eigen::VectorXd h = H * x, d = D * x;
    side.assign(static_cast<size_t>(A.rows()), false);
    for (Eigen::Index i = 0; i < A.rows(); ++i) side[i] = h(i) >= d(i);
    if (side == last) break;
    last = side;
    Eigen::MatrixXd M(A.rows(), A.cols());
    for (Eigen::Index i = 0; i < A.rows(); ++i) M.row(i) = side[i] ? H.row(i) : D.row(i);
    x = nnls(M, Eigen::VectorXd::Ones(A.rows()));
  }
  return x;
}

}  // namespace

const char* phase_name(Phase p) { return p == Phase::Prefill ? "prefill" : "decode"; }

const char* part_name(Part p) {
  switch (p) {
    case Part::Mamba: return "mamba";
    case Part::Attention: return "attention";
    case Part::Mlp: return "mlp";
    case Part::Head: return "head";
  }
  return "?";
}

const std::vector<std::string>& part_feature_names(Part part, Phase phase) {
  static const std::vector<std::string> pm{"layer", "matmul_flops", "scan_flops", "elements"},
      pa{"layer", "matmul_flops", "attention_flops", "elements"}, pf{"layer", "matmul_flops", "elements"},
      ph{"model", "lm_head_flops", "elements"}, dm{"layer", "weight_bytes", "state_bytes"},
      da{"layer", "weight_bytes", "kv_bytes"}, df{"layer", "weight_bytes"}, dh{"model", "lm_head_bytes"};
  const bool pre = phase == Phase::Prefill;
  switch (part) {
    case Part::Mamba: return pre ? pm : dm;
    case Part::Attention: return pre ? pa : da;
    case Part::Mlp: return pre ? pf : df;
    case Part::Head: return pre ? ph : dh;
  }
  return ph;
}

std::vector<double> part_features(const ModelConfig& c, Part part, Phase phase, int64_t batch, int64_t length) {
  const double b = static_cast<double>(batch), L = static_cast<double>(length), T = b * L;
  const double d = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const double H = c.mamba_num_heads, P = c.mamba_head_dim, N = c.ssm_state_size, G = c.n_groups;
  const double I = c.mamba_inner(), R = c.mamba_in_proj_rows(), Cd = c.mamba_conv_dim(), K = c.conv_kernel;
  const double q = c.num_attention_heads, kv = c.num_key_value_heads, hd = c.head_dim;
  const double Q = static_cast<double>(std::min<int64_t>(c.chunk_size, std::max<int64_t>(length, 1)));
  if (phase == Phase::Prefill) {
    switch (part) {
      case Part::Mamba:
        return {1, 2 * T * d * (R + I), b * L * (4 * H * P * N + 2 * G * Q * N + 2 * H * Q * P), T * (d + R + Cd)};
      case Part::Attention:
        return {1, 2 * T * d * hd * (2 * q + 2 * kv), 2 * b * L * L * q * hd, T * (d + hd * (q + 2 * kv))};
      case Part::Mlp: return {1, 4 * T * d * F, T * (d + F)};
      case Part::Head: return {1, 2 * b * d * V, T * d};
    }
  }
  switch (part) {
    case Part::Mamba: return {1, 2 * (d * R + I * d + Cd * K), 4 * b * H * P * N};
    case Part::Attention: return {1, 2 * d * hd * (2 * q + 2 * kv), 2 * b * L * kv * hd * 2};
    case Part::Mlp: return {1, 4 * d * F};
    case Part::Head: return {1, 2 * V * d};
  }
  return {};
}

double ThroughputModel::predict(const ModelConfig& c, Phase phase, int64_t batch, int64_t length) const {
  const auto n = part_counts(c);
  double s = 0, host = 0;  // host: the per-layer terms (feature 0 of every part)
  for (int p = 0; p < kNumParts; ++p) {
    const std::vector<double> f = part_features(c, static_cast<Part>(p), phase, batch, length);
    const std::vector<double>& k = coefficients[phase_index(phase)][p];
    if (k.size() != f.size())
      fail_input("throughput model: {} {} has {} coefficients, expected {}", phase_name(phase),
                 part_name(static_cast<Part>(p)), k.size(), f.size());
    host += n[p] * k[0] * f[0];
    for (size_t i = 1; i < f.size(); ++i) s += n[p] * k[i] * f[i];
  }
  if (phase == Phase::Decode && decode_combine == DecodeCombine::Overlap) return std::max(host, s);
  return host + s;
}

GenerationEstimate ThroughputModel::estimate(const ModelConfig& c, const Workload& w) const {
  GenerationEstimate e;
  e.prefill_s = predict(c, Phase::Prefill, w.batch, w.prompt_tokens);
  e.decode_s_per_token = predict(c, Phase::Decode, w.batch, w.prompt_tokens + w.output_tokens / 2);
  e.generation_s = e.prefill_s + static_cast<double>(w.output_tokens) * e.decode_s_per_token;
  return e;
}

double ThroughputModel::speedup(const ModelConfig& parent, const ModelConfig& candidate, const Workload& w) const {
  return estimate(parent, w).generation_s / estimate(candidate, w).generation_s;
}

ThroughputModel fit_throughput(const std::vector<ThroughputSample>& samples, DecodeCombine combine) {
  ThroughputModel m;
  m.decode_combine = combine;
  for (Phase ph : {Phase::Prefill, Phase::Decode}) {
    std::vector<const ThroughputSample*> rows;
    for (const auto& s : samples)
      if (s.phase == ph) rows.push_back(&s);
    size_t cols = 0;
    for (int p = 0; p < kNumParts; ++p) cols += part_feature_names(static_cast<Part>(p), ph).size();
    if (rows.size() < cols)
      fail_input("throughput fit: {} {} samples for {} coefficients; measure more shapes", rows.size(), phase_name(ph), cols);
    Eigen::MatrixXd A(static_cast<Eigen::Index>(rows.size()), static_cast<Eigen::Index>(cols));
    Eigen::VectorXd y(static_cast<Eigen::Index>(rows.size()));
    for (size_t i = 0; i < rows.size(); ++i) {
      const ThroughputSample& s = *rows[i];
      if (!(s.seconds > 0) || !std::isfinite(s.seconds))
        fail_input("throughput fit: a {} sample ({}, length {}) has time {}; expected a positive number", phase_name(ph),
                   s.config.pattern(), s.length, s.seconds);
      const std::vector<double> r = design_row(s.config, ph, s.batch, s.length);
      // Relative error: divide the row and the target by the measured time.
      for (size_t j = 0; j < cols; ++j) A(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) = r[j] / s.seconds;
      y(static_cast<Eigen::Index>(i)) = 1.0;
    }
    Eigen::VectorXd x = nnls(A, y);
    if (ph == Phase::Decode && combine == DecodeCombine::Overlap) x = fit_overlap(A, x, host_columns(ph));
    size_t k = 0;
    for (int p = 0; p < kNumParts; ++p) {
      auto& coef = m.coefficients[phase_index(ph)][p];
      coef.clear();
      for (size_t j = 0; j < part_feature_names(static_cast<Part>(p), ph).size(); ++j) coef.push_back(x(static_cast<Eigen::Index>(k++)));
    }
    double sq = 0, worst = 0;
    for (const ThroughputSample* s : rows) {
      const double rel = m.predict(s->config, ph, s->batch, s->length) / s->seconds - 1.0;
      sq += rel * rel;
      worst = std::max(worst, std::abs(rel));
    }
    m.rms_rel_error[phase_index(ph)] = std::sqrt(sq / static_cast<double>(rows.size()));
    m.max_rel_error[phase_index(ph)] = worst;
    m.samples[phase_index(ph)] = static_cast<int64_t>(rows.size());
  }
  return m;
}

nlohmann::json throughput_to_json(const ThroughputModel& m) {
  nlohmann::json j = {{"format", "minipuzzle-throughput"}, {"version", 1}, {"card", m.card}, {"dtype", m.dtype},
                      {"date", m.date}, {"commit", m.commit}, {"runtime", m.runtime},
                      {"decode_combine", m.decode_combine == DecodeCombine::Overlap ? "overlap" : "sum"}};
  for (Phase ph : {Phase::Prefill, Phase::Decode}) {
    nlohmann::json c, f;
    for (int p = 0; p < kNumParts; ++p) {
      c[part_name(static_cast<Part>(p))] = m.coefficients[phase_index(ph)][p];
      f[part_name(static_cast<Part>(p))] = part_feature_names(static_cast<Part>(p), ph);
    }
    j["features"][phase_name(ph)] = f;
    j["seconds_per_unit"][phase_name(ph)] = c;
    j["fit"][phase_name(ph)] = {{"samples", m.samples[phase_index(ph)]},
                                {"rms_relative_error", m.rms_rel_error[phase_index(ph)]},
                                {"max_relative_error", m.max_rel_error[phase_index(ph)]}};
  }
  return j;
}

ThroughputModel throughput_from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object() || j.value("format", "") != "minipuzzle-throughput")
    fail_input("{}: not a throughput model (expected \"format\": \"minipuzzle-throughput\")", source);
  ThroughputModel m;
  m.card = j.value("card", ""), m.dtype = j.value("dtype", ""), m.date = j.value("date", "");
  m.commit = j.value("commit", ""), m.runtime = j.value("runtime", "");
  const std::string combine = j.value("decode_combine", "sum");
  if (combine != "sum" && combine != "overlap")
    fail_input("{}: decode_combine '{}', expected sum or overlap", source, combine);
  m.decode_combine = combine == "overlap" ? DecodeCombine::Overlap : DecodeCombine::Sum;
  for (Phase ph : {Phase::Prefill, Phase::Decode}) {
    for (int p = 0; p < kNumParts; ++p) {
      const Part part = static_cast<Part>(p);
      const size_t want = part_feature_names(part, ph).size();
      const auto& node = j.contains("seconds_per_unit") && j["seconds_per_unit"].contains(phase_name(ph))
                             ? j["seconds_per_unit"][phase_name(ph)]
                             : nlohmann::json();
      if (!node.is_object() || !node.contains(part_name(part)) || !node[part_name(part)].is_array() ||
          node[part_name(part)].size() != want)
      {
        std::string names;
        for (const std::string& n : part_feature_names(part, ph)) names += (names.empty() ? "" : ", ") + n;
        fail_input("{}: seconds_per_unit.{}.{} must be a list of {} numbers ({})", source, phase_name(ph),
                   part_name(part), want, names);
      }
      for (const auto& v : node[part_name(part)]) {
        if (!v.is_number() || v.get<double>() < 0 || !std::isfinite(v.get<double>()))
          fail_input("{}: seconds_per_unit.{}.{} holds {}; expected non-negative numbers", source, phase_name(ph),
                     part_name(part), json_brief(v));
        m.coefficients[phase_index(ph)][p].push_back(v.get<double>());
      }
    }
    if (j.contains("fit") && j["fit"].contains(phase_name(ph))) {
      const auto& f = j["fit"][phase_name(ph)];
      m.samples[phase_index(ph)] = f.value("samples", int64_t{0});
      m.rms_rel_error[phase_index(ph)] = f.value("rms_relative_error", 0.0);
      m.max_rel_error[phase_index(ph)] = f.value("max_relative_error", 0.0);
    }
  }
  return m;
}

ThroughputModel load_throughput(const std::string& path) {
  const nlohmann::json j = read_json_file(path);
  return with_json_source(path, [&] { return throughput_from_json(j, path); });
}

nlohmann::json sample_to_json(const ThroughputSample& s) {
  return {{"config", config_to_json(s.config)}, {"phase", phase_name(s.phase)}, {"batch", s.batch},
          {"length", s.length}, {"seconds", s.seconds}};
}

ThroughputSample sample_from_json(const nlohmann::json& j, const std::string& source) {
  ThroughputSample s;
  if (!j.is_object() || !j.contains("config") || !j.contains("phase") || !j.contains("seconds"))
    fail_input("{}: a sample needs config, phase, batch, length and seconds", source);
  s.config = config_from_json(j["config"], source);
  const std::string ph = j["phase"].get<std::string>();
  if (ph != "prefill" && ph != "decode") fail_input("{}: phase '{}', expected prefill or decode", source, ph);
  s.phase = ph == "prefill" ? Phase::Prefill : Phase::Decode;
  s.batch = j.value("batch", int64_t{1});
  s.length = j.value("length", int64_t{1});
  s.seconds = j["seconds"].get<double>();
  return s;
}

// The configs installed beside the running binary (cmake --install puts them in
// PREFIX/share/minipuzzle/configs, the binary in PREFIX/bin), else the source tree's.
std::string default_throughput_path() {
  const std::string file = "/throughput/h200-bf16.json";
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const std::filesystem::path installed = exe.parent_path() / ".." / "share" / "minipuzzle" / "configs";
    if (std::filesystem::exists(installed.string() + file, ec)) return installed.string() + file;
  }
#ifdef MP_CONFIGS_DIR
  const std::string p = std::string(MP_CONFIGS_DIR) + file;
  if (std::filesystem::exists(p, ec)) return p;
#endif
  return "";
}

}  // namespace mp
