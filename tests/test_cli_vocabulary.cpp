// The command line's vocabulary, checked on the CLI11 app the binary builds (cli/app.h), in
// process: every option has help; each concept has one flag name in every command (model widths
// named after their config.json fields); every command that reports a result has --json and
// --quiet; a flag shared by several commands keeps one meaning; `completion bash` names every
// command and its options.
#include "cli/app.h"

#include <CLI/CLI.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Command {
  std::string path;  // "data from-text"
  const CLI::App* app;
  bool leaf;
};

void walk(const CLI::App& app, const std::string& path, std::vector<Command>* out) {
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App* s) { return !s->get_name().empty(); })) {
    const std::string p = path.empty() ? sub->get_name() : path + " " + sub->get_name();
    const bool leaf = sub->get_subcommands([](const CLI::App* s) { return !s->get_name().empty(); }).empty();
    out->push_back({p, sub, leaf});
    walk(*sub, p, out);
  }
}

struct Flag {
  std::string name;  // "--seed"
  std::string help;
};

// Every long flag of a command but --help and --help-all (CLI11's, the same in every command).
std::vector<Flag> flags_of(const CLI::App& cmd) {
  std::vector<Flag> out;
  for (const CLI::Option* o : cmd.get_options([](const CLI::Option* o) { return o->nonpositional(); })) {
    if (o == cmd.get_help_ptr() || o == cmd.get_help_all_ptr()) continue;
    for (const std::string& n : o->get_lnames()) out.push_back({"--" + n, o->get_description()});
  }
  return out;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

class CliVocabulary : public ::testing::Test {
 protected:
  void SetUp() override {
    app_ = mp::cli::make_app();
    walk(*app_, "", &commands_);
  }
  std::unique_ptr<CLI::App> app_;
  std::vector<Command> commands_;
};

// One concept, one flag: the spellings other tools (or other commands once) use are refused.
struct Concept {
  const char* flag;
  std::vector<std::string> other_spellings;
};
const std::vector<Concept> kConcepts = {
    {"--hidden-size", {"--hidden-grid", "--hidden", "--hidden-dim", "--d-model", "--embedding-size"}},
    {"--ffn-hidden-size", {"--ffn-grid", "--ffn", "--ffn-size", "--intermediate-size", "--mlp-width"}},
    {"--num-attention-heads", {"--attention-heads", "--heads", "--num-heads", "--query-heads", "--attn-heads"}},
    {"--mamba-num-heads", {"--mamba-heads", "--num-mamba-heads"}},
    {"--mamba-head-dim", {"--mamba-headdim", "--mamba-head-size"}},
    {"--model", {"--model-dir", "--model-path", "--checkpoint", "--ckpt", "--parent"}},
    {"--output", {"--out", "--output-dir", "--output-file", "--output-prefix", "--out-dir"}},
    {"--device", {"--dev", "--cuda", "--gpu"}},
    {"--dtype", {"--precision", "--data-type", "--compute-dtype"}},
    {"--seq-len", {"--seq-length", "--sequence-length", "--seqlen", "--context-len", "--window"}},
    {"--micro-batch", {"--micro-batch-size", "--batch-size", "--mbs"}},
    {"--data", {"--data-prefix", "--dataset", "--tokens-prefix", "--token-data"}},
    {"--overwrite", {"--force", "--clobber", "--replace"}},
    {"--json", {"--machine", "--json-output", "--format"}},
    {"--quiet", {"--silent", "--no-progress", "-q"}},
    {"--throughput-model", {"--throughput"}},
    {"--text-files", {"--text-file", "--files"}},
};

TEST_F(CliVocabulary, EveryOptionHasHelp) {
  for (const Command& c : commands_)
    for (const CLI::Option* o : c.app->get_options()) {
      if (o == c.app->get_help_ptr()) continue;
      EXPECT_FALSE(o->get_description().empty()) << c.path << " " << o->get_name() << " has no help text";
    }
}

TEST_F(CliVocabulary, OneFlagNamePerConcept) {
  for (const Command& c : commands_)
    for (const Flag& f : flags_of(*c.app)) {
      for (const Concept& k : kConcepts)
        for (const std::string& other : k.other_spellings)
          EXPECT_NE(f.name, other) << c.path << " spells " << k.flag << " as " << other;
      // Seeds are --seed; search's lists of widths use the width's own flag, never a "grid".
      if (f.name.find("seed") != std::string::npos) EXPECT_EQ(f.name, "--seed") << c.path;
      EXPECT_EQ(f.name.find("grid"), std::string::npos) << c.path << " " << f.name;
    }
  // prune takes one value of each width, search a list or range: the same five flags.
  for (const char* path : {"prune", "search"}) {
    const auto it = std::find_if(commands_.begin(), commands_.end(), [&](const Command& c) { return c.path == path; });
    ASSERT_NE(it, commands_.end());
    std::set<std::string> names;
    for (const Flag& f : flags_of(*it->app)) names.insert(f.name);
    for (const char* w : {"--hidden-size", "--ffn-hidden-size", "--num-attention-heads", "--mamba-num-heads",
                          "--mamba-head-dim"})
      EXPECT_TRUE(names.count(w)) << path << " lacks " << w;
  }
}

TEST_F(CliVocabulary, EveryReportingCommandHasJsonAndQuiet) {
  // Every command that runs reports a result, but the one that prints a script.
  for (const Command& c : commands_) {
    if (!c.leaf || c.path == "completion bash") continue;
    std::set<std::string> names;
    for (const Flag& f : flags_of(*c.app)) names.insert(f.name);
    EXPECT_TRUE(names.count("--json")) << c.path << " has no --json";
    EXPECT_TRUE(names.count("--quiet")) << c.path << " has no --quiet";
  }
}

// A flag in more than one command keeps one meaning: its help says so with the same words. train
// and distill take their shared flags from one table (distill/train_config.h), so only flags that
// other commands also have are checked.
const std::map<std::string, std::string> kSharedMeaning = {
    {"--model", "checkpoint"},
    {"--data", "token data"},
    {"--output", ""},  // the file or folder the command writes; each command says which
    {"--overwrite", "replac"},
    {"--device", "cpu or cuda"},
    {"--dtype", "fp32"},
    {"--seed", "seed"},
    {"--seq-len", "tokens per"},
    {"--micro-batch", "per forward"},
    {"--json", "json"},
    {"--quiet", "no progress"},
    {"--tokenizer", "tokenizer.json"},
    {"--samples", "samples"},
    {"--layer-metric", "mse_normed"},
    {"--config", "config.json"},
    {"--budget", "budget"},
    {"--throughput-model", "throughput model"},
    {"--prompt-tokens", "prompt tokens"},
    {"--output-tokens", "new tokens"},
    {"--max-shard-size", "shard"},
    {"--hidden-size", "hidden (embedding) channels"},
    {"--ffn-hidden-size", "mlp neurons"},
    {"--num-attention-heads", "query heads"},
    {"--mamba-num-heads", "mamba heads"},
    {"--mamba-head-dim", "mamba head channels"},
    {"--text-files", "text files"},
    {"--add-special-tokens", "post-processor"},
    {"--no-eod", "eos"},
    {"--threads", "threads"},
    {"--recipe", "recipe"},
    {"--resume", "continue"},
    {"--importance", "importance.json"},
    {"--temperature", "softmax"},
    {"--input", "file"},
};

TEST_F(CliVocabulary, NoFlagHasTwoMeanings) {
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> uses;  // flag -> (command, help)
  for (const Command& c : commands_)
    for (const Flag& f : flags_of(*c.app)) uses[f.name].push_back({c.path, f.help});
  for (const auto& [flag, where] : uses) {
    std::set<std::string> commands;
    for (const auto& w : where) commands.insert(w.first);
    commands.erase("train");
    commands.erase("distill");
    if (commands.empty() || where.size() < 2) continue;
    const auto meaning = kSharedMeaning.find(flag);
    ASSERT_NE(meaning, kSharedMeaning.end())
        << flag << " is shared by " << where.size() << " commands (e.g. " << where[0].first << ", " << where[1].first
        << "): give it one meaning and list it in kSharedMeaning";
    for (const auto& [cmd, help] : where)
      EXPECT_NE(lower(help).find(meaning->second), std::string::npos)
          << cmd << " " << flag << ": help '" << help << "' does not say '" << meaning->second << "'";
  }
}

TEST_F(CliVocabulary, BashCompletionNamesEveryCommandAndItsOptions) {
  testing::internal::CaptureStdout();
  app_->parse(std::vector<std::string>{"bash", "completion"});  // CLI11 takes the vector reversed
  const std::string script = testing::internal::GetCapturedStdout();
  ASSERT_NE(script.find("complete "), std::string::npos) << script;
  for (const Command& c : commands_)
    EXPECT_NE(script.find("\"" + c.path + "\")"), std::string::npos) << "completion lacks " << c.path;
  // The options branch of a command: the line `"PATH") words="...--flag..."` holding its flags.
  auto options_line = [&](const std::string& path) {
    std::istringstream in(script);
    std::string line;
    while (std::getline(in, line))
      if (line.find("\"" + path + "\") words=\"--") != std::string::npos) {
        std::replace(line.begin(), line.end(), '"', ' ');
        return line;
      }
    return std::string();
  };
  for (const char* path : {"prune", "data from-text"}) {
    const std::string line = options_line(path);
    ASSERT_FALSE(line.empty()) << "no options branch for " << path;
    const auto it = std::find_if(commands_.begin(), commands_.end(), [&](const Command& c) { return c.path == path; });
    ASSERT_NE(it, commands_.end());
    for (const Flag& f : flags_of(*it->app))
      EXPECT_NE(line.find(" " + f.name + " "), std::string::npos) << path << ": completion lacks " << f.name;
  }
}

}  // namespace
