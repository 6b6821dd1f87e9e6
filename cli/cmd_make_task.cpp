// minipuzzle data make-task: a multiple-choice task from real text, built offline (eval/make_task.h).
#include "cli/commands.h"
#include "cli/common_options.h"
#include "common/output_guard.h"
#include "eval/make_task.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <memory>

namespace mp::cli {

void register_data_make_task(CLI::App* data) {
  auto o = std::make_shared<eval::MakeTaskOptions>();
  auto overwrite = std::make_shared<bool>(false);
  auto report = std::make_shared<ReportFlags>();
  CLI::App* cmd = data->add_subcommand(
      "make-task", "A multiple-choice task from text files: a passage, its true continuation and K-1 from other documents");
  cmd->add_option("--text-files", o->files, "UTF-8 text files, one document each (at least 2)")->required();
  add_output(cmd, o->output, "Task folder (task.json + data.jsonl)")->required();
  cmd->add_option("--choices", o->choices, "Choices per sample")->capture_default_str()
      ->check(CLI::Range(int64_t{2}, int64_t{26}));
  add_seed(cmd, o->seed, "Sampling seed");
  cmd->add_option("--context-chars", o->context_chars, "Passage length at most, in characters")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cmd->add_option("--continuation-chars", o->continuation_chars, "Choice length at most, in characters")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cmd->add_option("--samples", o->samples, "Samples (passages with their choices) to draw")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cmd->add_option("--split", o->split,
                  "word: passages and choices split at word boundaries; char: at any character, every choice exactly "
                  "--continuation-chars long (for small byte-level models)")
      ->capture_default_str()->check(CLI::IsMember({"word", "char"}));
  add_overwrite(cmd, *overwrite);
  add_report_flags(cmd, *report);
  cmd->callback([o, overwrite, report] {
    guard_output({"--output", o->output, OutputKind::Folder}, o->files, *overwrite);
    const eval::MakeTaskStats s = eval::make_task(*o);
    if (report->json)
      std::cout << nlohmann::json{{"output", o->output}, {"samples", s.samples}, {"choices", o->choices},
                                  {"documents", s.documents}}.dump(2)
                << "\n";
    note(*report, fmt::format("wrote {0}/task.json and {0}/data.jsonl: {1} samples x {2} choices from {3} documents",
                              o->output, s.samples, o->choices, s.documents));
  });
}

}  // namespace mp::cli
