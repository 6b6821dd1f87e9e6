#include "cli/app.h"

#include "cli/commands.h"

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace mp::cli {
namespace {
std::vector<std::string> g_args;
}

void set_command_line(int argc, char** argv) { g_args.assign(argv + 1, argv + argc); }
const std::vector<std::string>& command_line() { return g_args; }

std::unique_ptr<CLI::App> make_app() {
  auto app = std::make_unique<CLI::App>("minipuzzle: score, search, prune and distill Nemotron-H hybrid models", "minipuzzle");
  app->require_subcommand(1);
  app->set_help_all_flag("--help-all", "Help for every subcommand");
  register_info(*app);
  register_init(*app);
  register_forward(*app);
  register_eval(*app);
  register_eval_tasks(*app);
  register_generate(*app);
  register_convert(*app);
  register_data(*app);
  register_tokenize(*app);
  register_search(*app);
  register_score(*app);
  register_prune(*app);
  register_train(*app);
  register_plot(*app);
  register_completion(*app);
  return app;
}

}  // namespace mp::cli
