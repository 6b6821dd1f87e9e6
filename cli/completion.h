// Bash completion for a CLI11 app, read off the app itself: after the program name, its
// subcommands; after a subcommand, its sub-subcommands and options; file names where no option or
// subcommand matches.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace mp::cli {

// A bash script defining the completion function and registering it for app's name.
std::string bash_completion(const CLI::App& app);

}  // namespace mp::cli
