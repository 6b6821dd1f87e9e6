// Reads a config.json with the installed library and prints its layer and tensor counts.
#include "model/config.h"
#include "model/weights.h"

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: consumer CONFIG_JSON\n");
    return 2;
  }
  const mp::ModelConfig config = mp::load_config(argv[1]);
  std::printf("layers %zu tensors %zu\n", config.layers.size(), mp::expected_tensors(config).size());
  return 0;
}
