// minipuzzle: compress hybrid Mamba-Transformer models (Nemotron-H) the MiniPuzzle way.
// Errors from user input end in one line and exit code 2; runtime failures exit 1. Every error line
// is printable text (control characters and bytes that are not UTF-8 escaped as \xNN).
#include "cli/app.h"
#include "cli/commands.h"
#include "common/error.h"
#include "common/printable.h"

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>

#include <cstdio>
#include <memory>
#include <new>
#include <string>

namespace mp::cli {
// Version, commit, LibTorch version and CUDA support; generated at build time (cmake/build_info.cmake).
std::string version_text();
}  // namespace mp::cli

int main(int argc, char** argv) {
  mp::cli::set_command_line(argc, argv);
  const std::unique_ptr<CLI::App> owned = mp::cli::make_app();
  CLI::App& app = *owned;
  app.set_version_flag("--version", mp::cli::version_text, "Version, commit, LibTorch version and CUDA support");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "minipuzzle: usage error: %s (see --help)\n", mp::printable(e.what()).c_str());
    return 2;
  } catch (const mp::Error& e) {
    std::fprintf(stderr, "minipuzzle: error: %s\n", mp::printable(e.what()).c_str());
    return e.exit_code();
  } catch (const c10::OutOfMemoryError& e) {
    // Not a bug but a setting that does not fit the card: bad input, one line (train and distill
    // say which step and what to change; distill/trainer.cpp).
    std::string msg = e.what_without_backtrace();
    std::fprintf(stderr, "minipuzzle: error: out of GPU memory: %s\n",
                 mp::printable(msg.substr(0, msg.find('\n'))).c_str());
    return 2;
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    std::fprintf(stderr, "minipuzzle: internal error: %s\n", mp::printable(msg.substr(0, msg.find('\n'))).c_str());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "minipuzzle: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "minipuzzle: error: %s\n", mp::printable(e.what()).c_str());
    return 1;
  }
  return 0;
}
