// eval-tasks and data make-task as a user meets them: results and per-sample records that agree
// with each other, the same numbers with and without context reuse, a made task that is what it
// says (the true continuation follows its passage in the source; the others come from other
// documents; same seed, same bytes) and bad input: one line, exit code 2, no output left behind.
#include "tests/test_util.h"
#include "tests/tokenizer_fixtures.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
using mp::test::run_cli;

namespace {

const char* kByteConfig = R"({"hybrid_override_pattern": "M*-M-", "vocab_size": 256, "hidden_size": 32,
  "intermediate_size": 48, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
  "mamba_num_heads": 4, "mamba_head_dim": 8, "ssm_state_size": 8, "n_groups": 2, "conv_kernel": 4, "chunk_size": 8})";

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::vector<nlohmann::json> jsonl(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::string fixture(const std::string& name) { return mp::test::source_path("tests/fixtures/eval_tasks/" + name); }

class EvalTasksCli : public ::testing::Test {
 protected:
  void SetUp() override {
    mp::test::write_text(dir.file("config.json"), kByteConfig);
    auto r = run_cli("init --config " + dir.file("config.json") + " --output " + dir.file("model") + " --dtype fp32 --seed 3");
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  std::string base() const { return "eval-tasks --quiet --bootstrap-iters 200 --model " + dir.file("model") + " "; }
  void expect_refused(const std::string& args, const std::vector<std::string>& needles) {
    const std::string out = dir.file("refused.json");
    auto r = run_cli(base() + args + " --log-samples --output " + out);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    for (const auto& n : needles) EXPECT_NE(r.output.find(n), std::string::npos) << args << "\n" << r.output;
    EXPECT_FALSE(fs::exists(out)) << args;
    EXPECT_FALSE(fs::exists(dir.file("refused.samples.jsonl"))) << args;
  }
  mp::test::ScratchDir dir;
};

TEST_F(EvalTasksCli, ResultsAndSamplesAgreeWithAndWithoutContextReuse) {
  const std::string tasks = "--tasks arc_easy=" + fixture("arc_easy.docs.jsonl") + " hellaswag=" +
                            fixture("hellaswag.docs.jsonl") + " winogrande=" + fixture("winogrande.docs.jsonl") +
                            " lambada_openai=" + fixture("lambada_openai.docs.jsonl") + " perplexity=" +
                            fixture("perplexity.docs.jsonl");
  auto r = run_cli(base() + tasks + " --log-samples --output " + dir.file("a.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("acc_norm"), std::string::npos) << r.output;
  r = run_cli(base() + tasks + " --log-samples --no-context-reuse --batch-tokens 64 --output " + dir.file("b.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json res = nlohmann::json::parse(slurp(dir.file("a.json")));
  const auto sa = jsonl(dir.file("a.samples.jsonl")), sb = jsonl(dir.file("b.samples.jsonl"));
  ASSERT_EQ(sa.size(), 3u + 2 + 3 + 3 + 2);
  ASSERT_EQ(sa.size(), sb.size());
  std::map<std::string, std::pair<double, int>> acc;  // task -> (sum, n)
  for (size_t i = 0; i < sa.size(); ++i) {
    const auto &x = sa[i], &y = sb[i];
    ASSERT_EQ(x["requests"].size(), y["requests"].size());
    for (size_t q = 0; q < x["requests"].size(); ++q) {
      const double a = x["requests"][q]["loglikelihood"], b = y["requests"][q]["loglikelihood"];
      EXPECT_NEAR(a, b, 1e-5 * std::abs(b)) << x["task"] << " " << x["doc_index"];
      EXPECT_EQ(x["requests"][q]["is_greedy"], y["requests"][q]["is_greedy"]);
    }
    for (const auto& [k, v] : x["metrics"].items()) {
      if (k == "ll") EXPECT_NEAR(v.get<double>(), y["metrics"][k].get<double>(), 1e-5 * std::abs(v.get<double>()));
      else EXPECT_EQ(v, y["metrics"][k]) << x["task"] << " " << x["doc_index"] << " " << k;
    }
    if (x["metrics"].contains("acc")) {
      acc[x["task"]].first += x["metrics"]["acc"].get<double>();
      acc[x["task"]].second += 1;
    }
  }
  for (const auto& [task, sn] : acc)
    EXPECT_DOUBLE_EQ(res["results"][task]["metrics"]["acc"]["value"].get<double>(), sn.first / sn.second) << task;
  // Byte-level: a byte's perplexity is below the 256 of a uniform guess only by chance for a random
  // model, but bits per byte is log2 of it.
  const auto& p = res["results"]["perplexity"]["metrics"];
  EXPECT_NEAR(p["bits_per_byte"]["value"].get<double>(), std::log2(p["byte_perplexity"]["value"].get<double>()), 1e-9);
  EXPECT_EQ(p["bits_per_byte"]["stderr_method"], "bootstrap");
  EXPECT_GT(res["results"]["arc_easy"]["shared_contexts"].get<int64_t>(), 0);
}

TEST_F(EvalTasksCli, BadInputIsOneLineExitTwoAndNoOutput) {
  // A task file that is not JSON, one with an unknown field.
  mp::test::write_text(dir.file("broken.json"), "{\"name\": \"x\", ");
  expect_refused("--tasks " + dir.file("broken.json"), {"broken.json", "not valid JSON"});
  mp::test::write_text(dir.file("typo.json"), R"({"name": "x", "kind": "multiple_choice", "data": "d.jsonl",
    "prompt": "{{q}}", "choice": ["a"], "gold": "g"})");
  expect_refused("--tasks " + dir.file("typo.json"), {"typo.json", "'choice'"});
  // Gold out of range; answerKey not among the labels; empty choices; a missing field (file:line).
  mp::test::write_text(dir.file("piqa.jsonl"), R"({"goal": "g", "sol1": "a", "sol2": "b", "label": 2})" "\n");
  expect_refused("--tasks piqa=" + dir.file("piqa.jsonl"), {"piqa.jsonl:1", "'label'", "gold index 2", "[0, 2)"});
  mp::test::write_text(dir.file("huge.jsonl"), R"({"goal": "g", "sol1": "a", "sol2": "b", "label": 18446744073709551615})" "\n");
  expect_refused("--tasks piqa=" + dir.file("huge.jsonl"), {"huge.jsonl:1", "gold index 18446744073709551615"});
  mp::test::write_text(dir.file("arc.jsonl"), R"({"question": "q", "choices": {"text": ["a"], "label": ["A"]}, "answerKey": "B"})" "\n");
  expect_refused("--tasks arc_easy=" + dir.file("arc.jsonl"), {"arc.jsonl:1", "answerKey", "choices.label"});
  mp::test::write_text(dir.file("empty.jsonl"), R"({"question": "q", "choices": {"text": [], "label": []}, "answerKey": "A"})" "\n");
  expect_refused("--tasks arc_easy=" + dir.file("empty.jsonl"), {"empty.jsonl:1", "choices.text", "empty"});
  mp::test::write_text(dir.file("missing.jsonl"), R"({"goal": "g", "sol1": "a", "sol2": "b", "label": 0})" "\n\n"
                                                  R"({"goal": "g", "sol1": "a", "label": 0})" "\n");
  expect_refused("--tasks piqa=" + dir.file("missing.jsonl"), {"missing.jsonl:3", "'sol2'", "missing"});
  mp::test::write_text(dir.file("notjson.jsonl"), "{\"text\": \"ok\"}\n{\"text\": \n");
  expect_refused("--tasks perplexity=" + dir.file("notjson.jsonl"), {"notjson.jsonl:2", "not valid JSON"});
  // Unknown built-in, out-of-range --limit / --num-fewshot, more shots than the pool holds.
  expect_refused("--tasks arc_hard=" + dir.file("arc.jsonl"), {"arc_hard", "not a built-in"});
  const std::string piqa = " --tasks piqa=" + fixture("piqa.docs.jsonl");
  expect_refused(piqa + " piqa=" + fixture("piqa.docs.jsonl"), {"piqa", "twice"});
  expect_refused(piqa + " --limit 0", {"--limit"});
  expect_refused(piqa + " --num-fewshot -1", {"--num-fewshot"});
  expect_refused(piqa + " --num-fewshot 5", {"--num-fewshot 5", "piqa", "piqa.docs.jsonl"});
  expect_refused(" --tasks perplexity=" + fixture("perplexity.docs.jsonl") + " --num-fewshot 1",
                 {"--num-fewshot 1", "loglikelihood_rolling"});
}

TEST_F(EvalTasksCli, TokenizerMustFitTheModelsVocabulary) {
  // The tiny byte-level BPE has 261 ids; the model's vocabulary 256.
  mp::test::write_text(dir.file("model/tokenizer.json"), mp::test::tiny_byte_level_tokenizer().dump());
  expect_refused("--tasks piqa=" + fixture("piqa.docs.jsonl"), {"tokenizer.json", "up to 260", "vocab_size 256"});
  // A 61-token model has no tokenizer and cannot take bytes.
  mp::test::write_text(dir.file("small.json"), std::string(kByteConfig).replace(std::string(kByteConfig).find("256"), 3, "61"));
  auto r = run_cli("init --config " + dir.file("small.json") + " --output " + dir.file("small") + " --dtype fp32");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_cli("eval-tasks --quiet --model " + dir.file("small") + " --tasks piqa=" + fixture("piqa.docs.jsonl") +
              " --output " + dir.file("s.json"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("vocab_size 61 < 256"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir.file("s.json")));
}

TEST_F(EvalTasksCli, MadeTaskIsDeterministicAndWhatItSays) {
  const std::string words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho ";
  std::string docs;
  for (int d = 0; d < 3; ++d) {
    std::string text;
    for (int k = 0; k < 40; ++k) text += std::to_string(d) + "w" + std::to_string(k) + (k % 7 == 6 ? "\n\n" : "  ");
    mp::test::write_text(dir.file("doc" + std::to_string(d) + ".txt"), text + words);
    docs += " " + dir.file("doc" + std::to_string(d) + ".txt");
  }
  const std::string make = "data make-task --text-files" + docs + " --choices 3 --samples 25 --context-chars 40 --continuation-chars 12";
  auto r = run_cli(make + " --seed 5 --output " + dir.file("t1"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_EQ(run_cli(make + " --seed 5 --output " + dir.file("t2")).exit_code, 0);
  ASSERT_EQ(run_cli(make + " --seed 6 --output " + dir.file("t3")).exit_code, 0);
  EXPECT_EQ(slurp(dir.file("t1/data.jsonl")), slurp(dir.file("t2/data.jsonl")));
  EXPECT_NE(slurp(dir.file("t1/data.jsonl")), slurp(dir.file("t3/data.jsonl")));
  const auto recs = jsonl(dir.file("t1/data.jsonl"));
  ASSERT_EQ(recs.size(), 25u);
  std::vector<int> gold_seen(3, 0);
  for (const auto& rec : recs) {
    const auto choices = rec["choices"].get<std::vector<std::string>>();
    ASSERT_EQ(choices.size(), 3u);
    const int64_t g = rec["gold"];
    gold_seen[g] += 1;
    // The document's tokens carry its number: the passage and the true choice come from one
    // document, the others from other documents (words of the shared tail aside).
    const std::string context = rec["context"], truth = choices[g];
    EXPECT_LE(context.size(), 40u);
    const char doc = rec["source"].get<std::string>()[3];
    EXPECT_TRUE(truth[0] == doc || words.find(truth.substr(0, truth.find(' '))) != std::string::npos) << truth;
    for (size_t c = 0; c < choices.size(); ++c)
      if (static_cast<int64_t>(c) != g) EXPECT_NE(choices[c][0], doc) << choices[c];
  }
  EXPECT_GT(*std::min_element(gold_seen.begin(), gold_seen.end()), 0);
  r = run_cli(base() + "--tasks " + dir.file("t1/task.json") + " --output " + dir.file("t1.json"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // --split char: passage + true choice is a run of the source (whitespace collapsed); every
  // choice is exactly --continuation-chars long.
  ASSERT_EQ(run_cli(make + " --split char --seed 5 --output " + dir.file("tc")).exit_code, 0);
  for (const auto& rec : jsonl(dir.file("tc/data.jsonl"))) {
    std::string src = slurp(dir.file(rec["source"].get<std::string>())), norm;
    for (char ch : src) {
      const bool space = ch == ' ' || ch == '\n';
      if (!(space && (norm.empty() || norm.back() == ' '))) norm += space ? ' ' : ch;
    }
    const auto choices = rec["choices"].get<std::vector<std::string>>();
    for (const auto& c : choices) EXPECT_EQ(c.size(), 12u) << c;
    EXPECT_NE(norm.find(rec["context"].get<std::string>() + choices[rec["gold"].get<int64_t>()]), std::string::npos)
        << rec.dump();
  }
  EXPECT_NE(slurp(dir.file("tc/task.json")).find("\"target_delimiter\": \"\""), std::string::npos);
  // One document cannot give wrong choices from other documents.
  r = run_cli("data make-task --text-files " + dir.file("doc0.txt") + " --output " + dir.file("t4"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("at least 2 documents"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir.file("t4")));
  r = run_cli(make + " --seed 5 --output " + dir.file("t1"));
  EXPECT_EQ(r.exit_code, 2) << r.output;  // exists: needs --overwrite
}

// search --rank-by task:FILE: every ranked candidate carries the task's accuracy, they come out
// ordered by it, and the candidate that keeps the whole parent scores what eval-tasks gives the
// parent.
TEST_F(EvalTasksCli, SearchRanksCandidatesByATask) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += "Candidates ranked by a task, sentence " + std::to_string(i) + ". ";
  mp::test::write_text(dir.file("a.txt"), text);
  mp::test::write_text(dir.file("b.txt"), "Another document about pruning, distillation and search. " + text.substr(0, 3000));
  auto run = [&](const std::string& args) {
    auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.output;
    return r;
  };
  run("data from-text " + dir.file("a.txt") + " --output " + dir.file("tok"));
  run("data make-task --text-files " + dir.file("a.txt") + " " + dir.file("b.txt") +
      " --samples 12 --context-chars 60 --continuation-chars 20 --output " + dir.file("task"));
  run("score --model " + dir.file("model") + " --data " + dir.file("tok") + " --output " + dir.file("imp/importance.json") +
      " --samples 8 --layer-samples 4 --seq-len 64 --quiet");
  run("search --model " + dir.file("model") + " --importance " + dir.file("imp/importance.json") + " --data " +
      dir.file("tok") + " --eval-tokens 256 --seq-len 64 --mamba-layers 1:2 --attention-layers 1 --mlp-layers 1:2 " +
      "--ffn-hidden-size 24,48 --top 100 --quiet --rank-by task:" + dir.file("task/task.json") + " --output " + dir.file("out"));
  const auto j = nlohmann::json::parse(slurp(dir.file("out/candidates.json")));
  EXPECT_EQ(j["ranked_by"], "task_acc_norm");
  double prev = 2;
  bool parent_seen = false;
  run(base() + "--tasks " + dir.file("task/task.json") + " --output " + dir.file("parent.json"));
  const double parent_acc =
      nlohmann::json::parse(slurp(dir.file("parent.json")))["results"]["task"]["metrics"]["acc_norm"]["value"];
  for (const auto& c : j["candidates"]) {
    const double acc = c["metadata"]["metrics"]["task_acc_norm"].get<double>();
    EXPECT_LE(acc, prev);
    prev = acc;
    if (c["name"] == "M2-A1-F2-ffn48-d32-q4-h4x8") {
      parent_seen = true;
      EXPECT_DOUBLE_EQ(acc, parent_acc);
    }
  }
  EXPECT_TRUE(parent_seen);
}

}  // namespace
