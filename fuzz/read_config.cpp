#include "fuzz/format_readers.h"

#include "model/config.h"

namespace mp::fuzz {

void read_config(const uint8_t* data, size_t size) {
  const ModelConfig c = config_from_json_text(text_of(data, size), "config.json");
  // What we write reads back as the same configuration.
  const ModelConfig again = config_from_json_text(config_to_json_text(c), "config.json (written back)");
  require(again == c, "config.json written back reads differently");
}

}  // namespace mp::fuzz
