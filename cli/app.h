// The minipuzzle command line as one CLI11 app holding every subcommand, built the same way for the
// binary (main.cpp), its bash completion (completion.h) and the tests.
#pragma once

#include <memory>

namespace CLI {
class App;
}

namespace mp::cli {

// Every subcommand registered, with its options and callback; main adds --version.
std::unique_ptr<CLI::App> make_app();

}  // namespace mp::cli
