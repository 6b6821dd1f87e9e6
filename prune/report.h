// Human views of an importance file: a terminal summary (layers ranked by a metric, the most and
// least important of each axis) and layers.svg (one bar per layer, coloured by type, with a
// legend and labelled axes; hand-written SVG, no dependencies).
#pragma once

#include "prune/importance.h"

#include <string>

namespace mp {

std::string importance_summary(const Importance& imp, LayerMetric metric, int64_t top = 8);
std::string layers_svg(const Importance& imp, LayerMetric metric);

}  // namespace mp
