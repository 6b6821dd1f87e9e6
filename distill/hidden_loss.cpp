#include "distill/hidden_loss.h"

#include "common/error.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <sstream>

namespace mp {

LayerPairs match_layers(int64_t Ls, int64_t Lt, const std::string& map) {
  LayerPairs pairs;
  if (map.empty()) {
    for (int64_t k = 0; k < Ls; ++k)
      pairs.emplace_back(k, std::max<int64_t>(0, ((k + 1) * Lt * 2 + Ls) / (2 * Ls) - 1));  // round half up
    return pairs;
  }
  std::stringstream ss(map);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const size_t colon = item.find(':');
    int64_t s = -1, t = -1;
    try {
      if (colon == std::string::npos) throw std::invalid_argument("no colon");
      size_t used = 0;
      s = std::stoll(item.substr(0, colon), &used);
      if (used != colon) throw std::invalid_argument("trailing");
      t = std::stoll(item.substr(colon + 1), &used);
      if (used != item.size() - colon - 1) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      fail_usage("--hidden-map: entry '{}' is not 'student_layer:teacher_layer'", item);
    }
    if (s < 0 || s >= Ls || t < 0 || t >= Lt)
      fail_usage("--hidden-map: entry '{}' is out of range (student layers 0..{}, teacher layers 0..{})", item, Ls - 1,
                 Lt - 1);
    pairs.emplace_back(s, t);
  }
  if (pairs.empty()) fail_usage("--hidden-map: no entries in '{}'", map);
  return pairs;
}

ResidualRecorder::ResidualRecorder(int64_t num_layers) : after_(static_cast<size_t>(num_layers)) {
  observer_ = [this](int64_t layer, Site site, const at::Tensor& v) {
    const int64_t n = static_cast<int64_t>(after_.size());
    if (site == Site::BlockInput && layer > 0) after_[layer - 1] = v;
    if (site == Site::FinalHidden) after_[n - 1] = v;
  };
}

const at::Tensor& ResidualRecorder::after_layer(int64_t k) const {
  if (k < 0 || k >= static_cast<int64_t>(after_.size()) || !after_[k].defined())
    fail_runtime("hidden loss: residual stream after layer {} was not recorded", k);
  return after_[k];
}

void ResidualRecorder::clear() {
  for (auto& t : after_) t = at::Tensor();
}

at::Tensor cosine_hidden_loss(const ResidualRecorder& student, const ResidualRecorder& teacher,
                              const LayerPairs& pairs) {
  at::Tensor total;
  for (const auto& [s, t] : pairs) {
    at::Tensor a = student.after_layer(s).to(at::kFloat), b = teacher.after_layer(t).to(at::kFloat);
    if (a.size(-1) != b.size(-1))
      fail_input("hidden loss: student layer {} has width {}, teacher layer {} has {}; cosine needs equal widths", s,
                 a.size(-1), t, b.size(-1));
    at::Tensor term = (1.0 - at::cosine_similarity(a, b, -1, 1e-8)).mean();
    total = total.defined() ? total + term : term;
  }
  return total / static_cast<double>(pairs.size());
}

}  // namespace mp
