// Each subcommand registers its options and a callback on the top-level app. Callbacks parse,
// call one library function, and print; they hold no logic of their own.
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace mp::cli {

// The arguments after the program name, as main() received them (for --nproc re-execution).
void set_command_line(int argc, char** argv);
const std::vector<std::string>& command_line();

void register_info(CLI::App& app);
void register_init(CLI::App& app);
void register_forward(CLI::App& app);
void register_eval(CLI::App& app);
void register_eval_tasks(CLI::App& app);  // cmd_eval_tasks.cpp
void register_generate(CLI::App& app);  // cmd_generate.cpp
void register_convert(CLI::App& app);
void register_data(CLI::App& app);
// data make-task, added to the data subcommand (cmd_make_task.cpp)
void register_data_make_task(CLI::App* data);
void register_tokenize(CLI::App& app);  // cmd_tokenize.cpp
void register_search(CLI::App& app);
void register_score(CLI::App& app);
void register_prune(CLI::App& app);
void register_train(CLI::App& app);    // train and distill (cmd_train.cpp)
void register_plot(CLI::App& app);
void register_completion(CLI::App& app);  // completion bash (cmd_completion.cpp)

}  // namespace mp::cli
