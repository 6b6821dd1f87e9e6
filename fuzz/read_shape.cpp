#include "fuzz/format_readers.h"

#include "prune/plan.h"

namespace mp::fuzz {

void read_shape(const uint8_t* data, size_t size) { target_from_json_text(text_of(data, size), "shape.json"); }

}  // namespace mp::fuzz
