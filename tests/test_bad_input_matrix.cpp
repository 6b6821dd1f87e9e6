// Hostile and mistaken input across every subcommand, run through the real binary. Each case must
// end with exit code 2 and one printable line naming the file, field or flag; and the whole
// fixture tree (inputs and any existing outputs) must be byte-identical afterwards, so nothing was
// changed and no output or temporary was left behind. The table is the specification.
#include "data/indexed_dataset.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "tests/prune_fixtures.h"
#include "tests/test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

namespace fs = std::filesystem;
using mp::test::run_cli;

namespace {

// ---- fixture files -------------------------------------------------------------------------------

void write(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

void make_fifo(const std::string& path) {
  fs::create_directories(fs::path(path).parent_path());
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0) << path;
}

std::string nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// A safetensors file from raw header text and data bytes (for headers no writer would produce).
void write_raw_safetensors(const std::string& path, const std::string& header, size_t data_bytes) {
  std::string s(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(s.data(), &n, 8);
  write(path, s + header + std::string(data_bytes, '\0'));
}

// PREFIX.idx with one sequence of `len` tokens of dtype `code` at byte 0, and PREFIX.bin as given.
void write_raw_tokens(const std::string& prefix, uint8_t code, int32_t len, int64_t pointer, const std::string& bin) {
  std::string idx("MMIDIDX\0\0", 9);
  auto put = [&](const void* p, size_t k) { idx.append(static_cast<const char*>(p), k); };
  const uint64_t version = 1, S = 1, D = 2;
  put(&version, 8);
  put(&code, 1);
  put(&S, 8);
  put(&D, 8);
  put(&len, 4);
  put(&pointer, 8);
  const int64_t docs[2] = {0, 1};
  put(docs, 16);
  write(prefix + ".idx", idx);
  write(prefix + ".bin", bin);
}

std::string tiny_config_json(const std::string& override_fields) {
  std::string base = R"({"hybrid_override_pattern": "M*-", "vocab_size": 61, "hidden_size": 32,
    "intermediate_size": 48, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
    "mamba_num_heads": 4, "mamba_head_dim": 8, "ssm_state_size": 8, "n_groups": 2, "conv_kernel": 4,
    "chunk_size": 8)";
  return base + override_fields + "}";
}

// Every entry below `root`: kind plus content hash (files) or target (links); pipes are not read.
std::map<std::string, std::string> snapshot(const std::string& root) {
  std::map<std::string, std::string> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    const std::string rel = fs::relative(it->path(), root).string();
    const fs::file_status st = it->symlink_status();
    if (fs::is_symlink(st)) {
      out[rel] = "link " + fs::read_symlink(it->path()).string();
    } else if (fs::is_regular_file(st)) {
      std::ifstream f(it->path(), std::ios::binary);
      std::string text((std::istreambuf_iterator<char>(f)), {});
      out[rel] = "file " + std::to_string(std::hash<std::string>{}(text)) + " " + std::to_string(text.size());
    } else {
      out[rel] = fs::is_directory(st) ? "dir" : "special";
    }
  }
  return out;
}

// One line of printable text: no control characters but the final newline, valid UTF-8.
bool printable_line(const std::string& s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\n' && i + 1 == s.size()) continue;
    if (c < 0x20 || c == 0x7F) return false;
    if (c >= 0x80) {
      const int n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
      if (n == 0 || i + n > s.size()) return false;
      for (int k = 1; k < n; ++k)
        if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
      i += n - 1;
    }
  }
  return true;
}

// ---- shared inputs, built once per process ----------------------------------------------------------

class Fixture {
 public:
  static Fixture& get() {
    static Fixture f;
    return f;
  }
  std::string root() const { return dir_.path(); }
  std::string at(const std::string& name) const { return dir_.file(name); }

 private:
  Fixture() {
    mp::save_model(mp::test::prune_model(21, 1e-5, "M*-"), at("model"));
    mp::SaveOptions sharded;
    sharded.max_shard_bytes = 20000;
    mp::save_model(mp::test::prune_model(21, 1e-5, "M*-"), at("sharded"), sharded);
    mp::IndexedDatasetWriter w(at("tokens"), mp::TokenDType::U16);
    at::Tensor t = mp::test::prune_ids(1, 1200, 3);
    w.add_sequence(std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel()));
    w.end_document();
    w.finish();
    write(at("config.json"), tiny_config_json(""));
    mp::write_safetensors(at("ids.safetensors"), {{"input_ids", mp::test::prune_ids(1, 6, 4)}});
    write(at("run/metrics.jsonl"), R"({"type": "train", "step": 1, "tokens": 16, "loss": 4.1})" "\n");
    write(at("text.txt"), "some text to tokenise\n");
    auto r = run_cli("score --model " + at("model") + " --data " + at("tokens") + " --output " +
                     at("scores/importance.json") + " --samples 4 --layer-samples 2 --seq-len 16 --quiet");
    if (r.exit_code != 0) ADD_FAILURE() << "fixture score failed: " << r.output;
  }
  mp::test::ScratchDir dir_;
};

// ---- the table ------------------------------------------------------------------------------------

struct Case {
  const char* name;
  // Arguments; {M} model, {S} sharded model, {D} token data, {I} importance.json, {C} config.json,
  // {T} ids.safetensors, {R} run folder, {X} this case's own folder, {ROOT} the fixture root.
  std::string args;
  const char* needle;                                      // must appear in the error line
  std::function<void(const std::string& x)> setup = {};  // makes the case's hostile files in {X}
};

std::string expand(std::string s, const std::string& x) {
  const Fixture& f = Fixture::get();
  const std::map<std::string, std::string> subs = {
      {"{M}", f.at("model")},        {"{S}", f.at("sharded")},         {"{D}", f.at("tokens")},
      {"{I}", f.at("scores/importance.json")}, {"{C}", f.at("config.json")}, {"{T}", f.at("ids.safetensors")},
      {"{R}", f.at("run")},          {"{X}", x},                       {"{ROOT}", f.root()}};
  for (const auto& [k, v] : subs)
    for (size_t p; (p = s.find(k)) != std::string::npos;) s.replace(p, k.size(), v);
  return s;
}

// A copy of the fixture model in X/m whose model.safetensors is replaced.
void model_with_weights(const std::string& x, const std::function<void(const std::string&)>& weights) {
  fs::create_directories(x + "/m");
  fs::copy_file(Fixture::get().at("model/config.json"), x + "/m/config.json");
  weights(x + "/m/model.safetensors");
}

// A copy of the fixture config in X/m with an index naming `shard` for one tensor.
void model_with_index(const std::string& x, const std::string& index) {
  fs::create_directories(x + "/m");
  fs::copy_file(Fixture::get().at("model/config.json"), x + "/m/config.json");
  write(x + "/m/model.safetensors.index.json", index);
}

std::string index_naming(const std::string& shard) {
  return R"({"metadata": {}, "weight_map": {"backbone.embeddings.weight": ")" + shard + R"("}})";
}

const char* kTrain = "train --model {M} --data {D} --seq-len 8 --micro-batch 1 --global-batch 1 --steps 1 --quiet";
const char* kPruneTo = "prune --model {M} --importance {I} --hidden-size 16";

std::vector<Case> cases() {
  const std::string train = kTrain, prune_to = kPruneTo;
  return {
      // Outputs never clobber inputs or existing work.
      {"InitOutputExists", "init --config {C} --output {M}", "already exists"},
      {"InitOutputContainsConfig", "init --config {X}/c/config.json --output {X}/c", "contains the input",
       [](const std::string& x) { write(x + "/c/config.json", tiny_config_json("")); }},
      {"InitOverwriteStillKeepsInput", "init --config {X}/c/config.json --output {X}/c --overwrite",
       "contains the input", [](const std::string& x) { write(x + "/c/config.json", tiny_config_json("")); }},
      {"ConvertOutputIsModel", "convert --model {M} --output {M}", "is the input"},
      {"ConvertOutputIsModelOverwrite", "convert --model {M} --output {M} --overwrite", "is the input"},
      {"ConvertOutputInsideModel", "convert --model {M} --output {M}/copy", "lies inside the input"},
      {"ConvertOutputContainsModel", "convert --model {M} --output {ROOT} --overwrite", "contains the input"},
      {"ConvertOutputLinkToModel", "convert --model {M} --output {X}/link --overwrite", "is the input",
       [](const std::string& x) {
         fs::create_directories(x);
         fs::create_directory_symlink(Fixture::get().at("model"), x + "/link");
       }},
      {"ConvertOutputExists", "convert --model {M} --output {S}", "pass --overwrite"},
      {"ConvertOutputIsAFile", "convert --model {M} --output {C} --overwrite", "not a folder"},
      {"ConvertReadOnlyLocation", "convert --model {M} --output /proc/mp-output", "cannot write in /proc"},
      {"PruneOutputIsModel", prune_to + " --output {M}", "is the input"},
      {"PruneOutputExists", prune_to + " --output {S}", "already exists"},
      {"PruneOutputContainsImportance", prune_to + " --output {ROOT}/scores --overwrite", "contains the input"},
      {"ForwardOutputIsWeights", "forward --model {M} --input {T} --output {M}/model.safetensors --overwrite",
       "lies inside the input"},
      {"ForwardOutputIsInput", "forward --model {M} --input {T} --output {T} --overwrite", "is the input"},
      {"ForwardOutputExists", "forward --model {M} --input {T} --output {X}/logits.safetensors", "already exists",
       [](const std::string& x) { write(x + "/logits.safetensors", "keep me"); }},
      {"ScoreOutputExists", "score --model {M} --data {D} --output {I}", "already exists"},
      {"ScoreOutputInsideModel", "score --model {M} --data {D} --output {M}/importance.json", "lies inside the input"},
      {"ScoreBadDataLeavesNoFolder", "score --model {M} --data {X}/absent --output {X}/new/deeper/importance.json",
       "absent.idx", [](const std::string& x) { fs::create_directories(x); }},
      {"SearchOutputExists", "search --config {C} --no-predict-speed --output {S}", "already exists"},
      {"SearchOutputIsModel", "search --model {M} --no-predict-speed --output {M}", "is the input"},
      {"DataFromTextOutputExists", "data from-text {ROOT}/text.txt --output {D}", "already exists"},
      {"DataFromTextOutputIsInput", "data from-text {X}/t.bin --output {X}/t --overwrite", "is the input",
       [](const std::string& x) { write(x + "/t.bin", "text"); }},
      {"PlotOutputIsMetrics", "plot {R} --output {R}/metrics.jsonl --overwrite", "is the input"},
      {"PlotOutputExists", "plot {R} --output {X}/curves.svg", "already exists",
       [](const std::string& x) { write(x + "/curves.svg", "<svg/>"); }},
      {"TrainOutputIsModel", train + " --output {M}", "is the input"},
      {"TrainOutputHoldsOtherWork", train + " --output {S}", "holds no training run"},
      {"TrainResumeAndOverwrite", train + " --output {X}/run --resume --overwrite", "give one"},
      {"DistillOutputContainsTeacher",
       "distill --teacher {M} --student {S} --data {D} --seq-len 8 --micro-batch 1 --global-batch 1 --steps 1 "
       "--output {ROOT} --overwrite",
       "contains the input"},

      // What is read must be a regular file: pipes and devices fail at once.
      {"ConfigIsPipe", "info {X}/config.json", "named pipe", [](const std::string& x) { make_fifo(x + "/config.json"); }},
      {"ConfigLinksToDevZero", "info {X}/c", "character device",
       [](const std::string& x) {
         fs::create_directories(x + "/c");
         fs::create_symlink("/dev/zero", x + "/c/config.json");
       }},
      {"WeightsArePipe", "convert --model {X}/m --output {X}/out", "named pipe",
       [](const std::string& x) { model_with_weights(x, make_fifo); }},
      {"ShardIsPipe", "convert --model {X}/m --output {X}/out", "named pipe",
       [](const std::string& x) {
         model_with_index(x, index_naming("shard.safetensors"));
         make_fifo(x + "/m/shard.safetensors");
       }},
      {"IndexIsPipe", "convert --model {X}/m --output {X}/out", "named pipe",
       [](const std::string& x) {
         fs::create_directories(x + "/m");
         fs::copy_file(Fixture::get().at("model/config.json"), x + "/m/config.json");
         make_fifo(x + "/m/model.safetensors.index.json");
       }},
      {"TokenIndexIsPipe", "eval --model {M} --data {X}/d --seq-len 8", "named pipe",
       [](const std::string& x) {
         make_fifo(x + "/d.idx");
         write(x + "/d.bin", std::string(64, '\0'));
       }},
      {"TokenDataIsPipe", "eval --model {M} --data {X}/d --seq-len 8", "named pipe",
       [](const std::string& x) {
         fs::create_directories(x);
         fs::copy_file(Fixture::get().at("tokens.idx"), x + "/d.idx");
         make_fifo(x + "/d.bin");
       }},
      {"ImportanceIsPipe", "prune --model {M} --importance {X}/imp.json --hidden-size 16 --output {X}/out", "named pipe",
       [](const std::string& x) { make_fifo(x + "/imp.json"); }},
      {"RecipeIsPipe", train + " --recipe {X}/recipe.json --output {X}/run", "named pipe",
       [](const std::string& x) { make_fifo(x + "/recipe.json"); }},
      {"BudgetIsPipe", "info {C} --budget {X}/budget.json", "named pipe",
       [](const std::string& x) { make_fifo(x + "/budget.json"); }},
      {"ForwardInputIsPipe", "forward --model {M} --input {X}/ids.safetensors --output {X}/out.safetensors",
       "named pipe", [](const std::string& x) { make_fifo(x + "/ids.safetensors"); }},
      {"WeightsAreAFolder", "convert --model {X}/m --output {X}/out", "is a folder",
       [](const std::string& x) { model_with_weights(x, [](const std::string& p) { fs::create_directories(p); }); }},

      // Shard names stay inside the checkpoint folder.
      {"ShardOutsideFolder", "convert --model {X}/m --output {X}/out", "plain file name",
       [](const std::string& x) { model_with_index(x, index_naming("../other/model.safetensors")); }},
      {"ShardAbsolutePath", "convert --model {X}/m --output {X}/out", "plain file name",
       [](const std::string& x) { model_with_index(x, index_naming("/etc/passwd")); }},

      // Deep nesting is refused before parsing, in every JSON the tool reads.
      {"ConfigDeeplyNested", "info {X}/config.json", "nests deeper",
       [](const std::string& x) { write(x + "/config.json", R"({"a": )" + nested(100000) + "}"); }},
      {"HeaderDeeplyNested", "convert --model {X}/m --output {X}/out", "nests deeper",
       [](const std::string& x) {
         model_with_weights(x, [](const std::string& p) {
           write_raw_safetensors(p, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": )" + nested(50000) + "}}", 4);
         });
       }},
      {"IndexDeeplyNested", "convert --model {X}/m --output {X}/out", "nests deeper",
       [](const std::string& x) { model_with_index(x, R"({"weight_map": )" + nested(50000) + "}"); }},
      {"ImportanceDeeplyNested", "prune --model {M} --importance {X}/imp.json --hidden-size 16 --output {X}/out",
       "nests deeper", [](const std::string& x) { write(x + "/imp.json", nested(50000)); }},
      {"ShapeDeeplyNested", "prune --model {M} --importance {I} --shape {X}/shape.json --output {X}/out", "nests deeper",
       [](const std::string& x) { write(x + "/shape.json", R"({"kept_layers": )" + nested(50000) + "}"); }},
      {"RecipeDeeplyNested", train + " --recipe {X}/recipe.json --output {X}/run", "nests deeper",
       [](const std::string& x) { write(x + "/recipe.json", nested(50000)); }},
      {"BudgetDeeplyNested", "info {C} --budget {X}/budget.json", "nests deeper",
       [](const std::string& x) { write(x + "/budget.json", nested(50000)); }},
      {"ThroughputDeeplyNested", "info {C} --throughput-model {X}/tp.json", "nests deeper",
       [](const std::string& x) { write(x + "/tp.json", nested(50000)); }},

      // config.json fields: required, typed, in range.
      {"HiddenSizeHuge", "info {X}/c.json", "hidden_size",
       [](const std::string& x) { write(x + "/c.json", tiny_config_json(R"(, "hidden_size": 4611686018427387904)")); }},
      {"HiddenSizeMissing", "info {X}/c.json", "field 'hidden_size' is missing",
       [](const std::string& x) {
         std::string c = tiny_config_json("");
         c.replace(c.find(R"("hidden_size": 32,)"), 18, "");
         write(x + "/c.json", c);
       }},
      {"HiddenSizeWrongType", "info {X}/c.json", "field 'hidden_size' must be a whole number",
       [](const std::string& x) {
         std::string c = tiny_config_json("");
         c.replace(c.find(R"("hidden_size": 32)"), 17, R"("hidden_size": "32")");
         write(x + "/c.json", c);
       }},
      {"HiddenSizeTwice", "info {X}/c.json", "appears twice",
       [](const std::string& x) { write(x + "/c.json", tiny_config_json(R"(, "hidden_size": 64)")); }},
      {"EpsilonInfinity", "info {X}/c.json", "layer_norm_epsilon",
       [](const std::string& x) { write(x + "/c.json", tiny_config_json(R"(, "layer_norm_epsilon": Infinity)")); }},
      {"EpsilonFloatObjectWrongType", "info {X}/c.json", "layer_norm_epsilon",
       [](const std::string& x) {
         write(x + "/c.json", tiny_config_json(R"(, "layer_norm_epsilon": {"__float__": 5})"));
       }},
      {"InitVocabTooLarge", "init --config {X}/c.json --output {X}/out", "vocab_size",
       [](const std::string& x) { write(x + "/c.json", tiny_config_json(R"(, "vocab_size": 1099511627776)")); }},

      // Other JSON files: wrong types name the file and the field.
      {"ImportanceWrongType", "prune --model {M} --importance {X}/imp.json --hidden-size 16 --output {X}/out",
       "settings.seed",
       [](const std::string& x) {
         std::ifstream f(Fixture::get().at("scores/importance.json"));
         nlohmann::json j = nlohmann::json::parse(f);
         j["settings"]["seed"] = "twelve";
         write(x + "/imp.json", j.dump());
       }},
      {"BudgetWrongType", "info {C} --budget {X}/budget.json", "memory_limit_gib",
       [](const std::string& x) { write(x + "/budget.json", R"({"memory_limit_gib": "lots"})"); }},
      {"RecipeNumberOverflows", train + " --recipe {X}/recipe.json --output {X}/run", "1e999",
       [](const std::string& x) { write(x + "/recipe.json", R"({"lr": 1e999})"); }},

      // safetensors validated as the reference implementation does.
      {"HeaderNotUtf8", "convert --model {X}/m --output {X}/out", "model.safetensors",
       [](const std::string& x) {
         model_with_weights(x, [](const std::string& p) {
           write_raw_safetensors(p, "{\"w\xff\xfe\x01\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
         });
       }},
      {"ShapeProductOverflows", "convert --model {X}/m --output {X}/out", "overflows",
       [](const std::string& x) {
         model_with_weights(x, [](const std::string& p) {
           write_raw_safetensors(
               p, R"({"w": {"dtype": "F32", "shape": [0, 4611686018427387904, 4611686018427387904], "data_offsets": [0, 0]}})", 0);
         });
       }},
      {"OffsetsLeaveGap", "convert --model {X}/m --output {X}/out", "gap",
       [](const std::string& x) {
         model_with_weights(x, [](const std::string& p) {
           write_raw_safetensors(p, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8);
         });
       }},
      {"UnknownDtype", "convert --model {X}/m --output {X}/out", "unknown dtype",
       [](const std::string& x) {
         model_with_weights(x, [](const std::string& p) {
           write_raw_safetensors(p, R"({"w": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}})", 4);
         });
       }},
      {"HeaderLengthTooLarge", "convert --model {X}/m --output {X}/out", "100 MB",
       [](const std::string& x) {
         model_with_weights(x, [](const std::string& p) {
           std::string s(8, '\xff');
           write(p, s + "{}");
         });
       }},
      {"TensorNamedTwice", "convert --model {X}/m --output {X}/out", "more than once",
       [](const std::string& x) {
         model_with_weights(x, [](const std::string& p) {
           write_raw_safetensors(p, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8);
         });
       }},
      {"WeightsAllNaN", "forward --model {X}/m --input {T} --output {X}/logits.safetensors", "NaN",
       [](const std::string& x) {
         mp::Model m = mp::test::prune_model(21, 1e-5, "M*-");
         for (auto& [n, t] : m.weights) t = at::full_like(t, std::nan(""));
         fs::create_directories(x);
         mp::save_model(m, x + "/m");
       }},

      // Token data checked against itself before any read.
      {"FloatTokensNaN", "eval --model {M} --data {X}/d --seq-len 2", "whole-number token id",
       [](const std::string& x) {
         const double v[4] = {1.0, 2.0, std::nan(""), 3.0};
         write_raw_tokens(x + "/d", 6, 4, 0, std::string(reinterpret_cast<const char*>(v), sizeof(v)));
       }},
      {"TokenPointerBeyondBin", "eval --model {M} --data {X}/d --seq-len 2", "d.bin",
       [](const std::string& x) { write_raw_tokens(x + "/d", 8, 4, 1000, std::string(8, '\0')); }},

      // Accepted nonsense on the command line is a usage error naming the flag.
      {"PruneNegativeWidth", prune_to.substr(0, prune_to.find(" --hidden")) + " --hidden-size -5 --output {X}/out",
       "--hidden-size"},
      {"PruneZeroWidth", prune_to.substr(0, prune_to.find(" --hidden")) + " --hidden-size 0 --output {X}/out",
       "--hidden-size"},
      {"PruneWidthAboveParent", prune_to.substr(0, prune_to.find(" --hidden")) + " --hidden-size 4096 --output {X}/out",
       "above the parent"},
      {"PruneNegativeHeads", prune_to + " --mamba-num-heads -2 --output {X}/out", "--mamba-num-heads"},
      {"TrainLrInfinite", train + " --lr inf --output {X}/run", "--lr"},
      {"TrainLrNaN", train + " --lr nan --output {X}/run", "--lr"},
      {"TrainSeqLenHuge", train + " --seq-len 9223372036854775807 --output {X}/run", "--seq-len"},
      {"TrainStepsNotWhole", train + " --steps 2.5 --output {X}/run", "--steps"},
      {"DistillTemperatureNaN",
       "distill --teacher {M} --student {S} --data {D} --seq-len 8 --micro-batch 1 --global-batch 1 --steps 1 "
       "--temperature nan --output {X}/run",
       "--temperature"},
      {"EvalSeqLenHuge", "eval --model {M} --data {D} --seq-len 9223372036854775807", "9223372036854775808"},
      {"GenerateTooManyTokens", "generate --model {M} --prompt-ids 1,2 --max-new-tokens 1000000000000",
       "--max-new-tokens"},
      {"GenerateTinyTemperature", "generate --model {M} --prompt-ids 1,2 --temperature 1e-320", "--temperature"},
      {"SearchSpeedupInfinite", "search --config {C} --no-predict-speed --min-speedup inf --output {X}/out",
       "--min-speedup"},
      {"SearchSeqLenZero", "search --config {C} --no-predict-speed --seq-len 0 --output {X}/out", "--seq-len"},
      {"InfoNegativePromptTokens", "info {C} --prompt-tokens -4", "--prompt-tokens"},
  };
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class BadInputMatrix : public ::testing::TestWithParam<Case> {};

TEST_P(BadInputMatrix, ExitsTwoWithOneLineAndChangesNothing) {
  const Case& c = GetParam();
  Fixture& f = Fixture::get();
  const std::string x = f.at(std::string("cases/") + c.name);
  if (c.setup) c.setup(x);
  const auto before = snapshot(f.root());
  const std::string args = expand(c.args, x);
  const auto r = run_cli(args);
  EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
  EXPECT_NE(r.output.find(c.needle), std::string::npos) << args << "\n" << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_TRUE(printable_line(r.output)) << r.output;
  EXPECT_EQ(snapshot(f.root()), before) << "files changed, appeared or vanished: " << args;
}

INSTANTIATE_TEST_SUITE_P(Cli, BadInputMatrix, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

// ---- beyond the table ---------------------------------------------------------------------------------

// Hugging Face's cache stores each file once under blobs/ and links to it from snapshots/REV/.
TEST(HubCacheLayout, CheckpointOfLinksIntoBlobsLoads) {
  Fixture& f = Fixture::get();
  mp::test::ScratchDir hub;
  const std::string blobs = hub.file("blobs"), snap = hub.file("snapshots/0123abcd");
  fs::create_directories(blobs);
  fs::create_directories(snap);
  int k = 0;
  for (const auto& e : fs::directory_iterator(f.at("sharded"))) {
    const std::string blob = blobs + "/" + std::to_string(1000 + k++) + "beef";
    fs::copy_file(e.path(), blob);
    fs::create_symlink("../../blobs/" + fs::path(blob).filename().string(), snap + "/" + e.path().filename().string());
  }
  auto r = run_cli("forward --model " + snap + " --input " + f.at("ids.safetensors") + " --output " +
                   hub.file("logits.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto direct = run_cli("forward --model " + f.at("sharded") + " --input " + f.at("ids.safetensors") + " --output " +
                        hub.file("direct.safetensors"));
  ASSERT_EQ(direct.exit_code, 0) << direct.output;
  EXPECT_TRUE(at::equal(mp::SafetensorsFile::open(hub.file("logits.safetensors"))->load("logits"),
                        mp::SafetensorsFile::open(hub.file("direct.safetensors"))->load("logits")));
  r = run_cli("info " + snap);
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(Overwrite, ReplacesAnOutputThatHoldsNoInput) {
  Fixture& f = Fixture::get();
  mp::test::ScratchDir d;
  write(d.file("out/old.txt"), "old work");
  auto r = run_cli("convert --model " + f.at("model") + " --output " + d.file("out"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(fs::exists(d.file("out/old.txt")));
  r = run_cli("convert --model " + f.at("model") + " --output " + d.file("out") + " --overwrite");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(fs::exists(d.file("out/old.txt")));
  EXPECT_TRUE(fs::exists(d.file("out/model.safetensors")));
  // An empty existing folder is no existing work.
  fs::create_directories(d.file("empty"));
  r = run_cli("convert --model " + f.at("model") + " --output " + d.file("empty"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace
