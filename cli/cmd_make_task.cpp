// minipuzzle data make-task: a multiple-choice task from real text, built offline (eval/make_task.h).
#include "cli/commands.h"
#include "common/output_guard.h"
#include "eval/make_task.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <iostream>
#include <memory>

namespace mp::cli {

void register_data_make_task(CLI::App* data) {
  auto o = std::make_shared<eval::MakeTaskOptions>();
  auto overwrite = std::make_shared<bool>(false);
  CLI::App* cmd = data->add_subcommand(
      "make-task", "A multiple-choice task from text files: a passage, its true continuation and K-1 from other documents");
  cmd->add_option("--text", o->files, "UTF-8 text files, one document each (at least 2)")->required();
  cmd->add_option("--output", o->output, "Task folder (task.json + data.jsonl)")->required();
  cmd->add_option("--choices", o->choices, "Choices per sample")->capture_default_str()
      ->check(CLI::Range(int64_t{2}, int64_t{26}));
  cmd->add_option("--seed", o->seed, "Sampling seed")->capture_default_str();
  cmd->add_option("--context-chars", o->context_chars, "Passage length at most, in characters")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cmd->add_option("--continuation-chars", o->continuation_chars, "Choice length at most, in characters")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cmd->add_option("--samples", o->samples, "Samples to draw")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cmd->add_option("--split", o->split,
                  "word: passages and choices split at word boundaries; char: at any character, every choice exactly "
                  "--continuation-chars long (for small byte-level models)")
      ->capture_default_str()->check(CLI::IsMember({"word", "char"}));
  cmd->add_flag("--overwrite", *overwrite, "Replace an existing --output folder (never an input)");
  cmd->callback([o, overwrite] {
    guard_output({"--output", o->output, OutputKind::Folder}, o->files, *overwrite);
    const eval::MakeTaskStats s = eval::make_task(*o);
    std::cout << fmt::format("wrote {0}/task.json and {0}/data.jsonl: {1} samples x {2} choices from {3} documents\n",
                             o->output, s.samples, o->choices, s.documents);
  });
}

}  // namespace mp::cli
