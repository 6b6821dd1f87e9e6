#include "fuzz/format_readers.h"

#include "search/budget.h"

namespace mp::fuzz {

void read_budget(const uint8_t* data, size_t size) { budget_from_json_text(text_of(data, size), "budget.json"); }

}  // namespace mp::fuzz
