// minipuzzle completion bash: the bash completion script for this binary, read off its own
// subcommands and options (cli/completion.h).
#include "cli/commands.h"
#include "cli/completion.h"

#include <CLI/CLI.hpp>

#include <iostream>

namespace mp::cli {

void register_completion(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("completion", "Shell completion scripts");
  cmd->require_subcommand(1);
  CLI::App* bash = cmd->add_subcommand(
      "bash", "Print the bash completion script (source it, or install it as bash-completion/completions/minipuzzle)");
  CLI::App* root = &app;
  bash->callback([root] { std::cout << bash_completion(*root); });
}

}  // namespace mp::cli
