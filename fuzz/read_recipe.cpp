#include "fuzz/format_readers.h"

#include "distill/train_config.h"

namespace mp::fuzz {

void read_recipe(const uint8_t* data, size_t size) {
  // The paths a command line would add, so that the settings' checks go past "--data is required".
  TrainConfig base = default_train_config("distill");
  base.data = "tokens", base.eval_data = "heldout", base.output = "run", base.teacher = "teacher";
  base.student = "student";
  TrainConfig c = recipe_from_json_text(text_of(data, size), "recipe.json", base);
  c.mode = "distill";
  validate_train_config(c);
}

}  // namespace mp::fuzz
