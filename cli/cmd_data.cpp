// minipuzzle data from-text | info: token data in Megatron's indexed format.
#include "cli/commands.h"
#include "cli/format.h"
#include "common/output_guard.h"
#include "data/indexed_dataset.h"
#include "data/text_dataset.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <iostream>
#include <memory>

namespace mp::cli {
namespace {

struct FromTextArgs {
  std::vector<std::string> files;
  std::string output;
  bool overwrite = false;
};

struct DataInfoArgs {
  std::string prefix;
};

}  // namespace

void register_data(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "Token data: build from text, inspect");
  data->require_subcommand(1);

  auto ft = std::make_shared<FromTextArgs>();
  CLI::App* from_text = data->add_subcommand("from-text", "UTF-8 text files -> byte-level token data (vocab 256)");
  from_text->add_option("files", ft->files, "Text files (one document each)")->required();
  from_text->add_option("--output", ft->output, "Output prefix (PREFIX.bin + PREFIX.idx)")->required();
  from_text->add_flag("--overwrite", ft->overwrite, "Replace existing PREFIX.bin/.idx (never an input)");
  from_text->callback([ft] {
    for (const std::string& out : token_data_files(ft->output))
      guard_output({"--output", out, OutputKind::File}, ft->files, ft->overwrite);
    TextToTokensStats s = bytes_dataset_from_text(ft->files, ft->output);
    std::cerr << fmt::format("wrote {}.bin/.idx: {} documents, {} tokens (bytes)\n", ft->output, s.documents, s.tokens);
  });

  auto di = std::make_shared<DataInfoArgs>();
  CLI::App* info = data->add_subcommand("info", "Sequences, documents, tokens and dtype of token data");
  info->add_option("prefix", di->prefix, "Token data prefix")->required();
  info->callback([di] {
    auto d = IndexedDataset::open(di->prefix);
    std::cout << table({{"field", "value"},
                        {"dtype", token_dtype_name(d->dtype())},
                        {"sequences", std::to_string(d->num_sequences())},
                        {"documents", std::to_string(d->num_documents())},
                        {"tokens", std::to_string(d->total_tokens())},
                        {"largest token id", std::to_string(d->max_token())}});
  });
}

}  // namespace mp::cli
