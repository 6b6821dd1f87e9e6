// Prompt rendering of the built-in tasks against the lm-evaluation-harness: for each task, the
// context and continuation strings of every request (and the gold index) equal what the harness's
// task configuration renders (tests/fixtures/eval_tasks, made by
// scripts/parity/make_eval_task_fixtures.py with Jinja2, Python's string methods and Python's
// random), zero-shot and few-shot (random draws from a pool, from the evaluated file itself, and
// MMLU's first_n of the same subject). Also the pieces underneath: Python's random.Random,
// Python's string semantics, templates, task files.
#include "common/error.h"
#include "eval/preprocess.h"
#include "eval/prompt_template.h"
#include "eval/python_random.h"
#include "eval/python_text.h"
#include "eval/task_metrics.h"
#include "eval/task_requests.h"
#include "eval/task_spec.h"
#include "tests/expect_error.h"
#include "tests/test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <functional>

namespace {

using mp::eval::BuildOptions;
using mp::eval::TaskSpec;

struct Case {
  const char* fixture;
  const char* task;
  int64_t shots;
  bool pool;  // the fixture has a few-shot pool file
};

std::string fixture(const std::string& name) { return mp::test::source_path("tests/fixtures/eval_tasks/" + name); }

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

TEST(EvalPrompts, BuiltinTasksRenderWhatTheHarnessRenders) {
  const std::vector<Case> cases = {
      {"arc_easy", "arc_easy", 0, false},          {"arc_easy_2shot", "arc_easy", 2, true},
      {"arc_challenge", "arc_challenge", 0, false}, {"hellaswag", "hellaswag", 0, false},
      {"winogrande", "winogrande", 0, false},       {"winogrande_1shot", "winogrande", 1, true},
      {"piqa", "piqa", 0, false},                   {"boolq", "boolq", 0, false},
      {"mmlu", "mmlu", 0, false},                   {"mmlu_2shot", "mmlu", 2, true},
      {"lambada_openai", "lambada_openai", 0, false}, {"lambada_openai_1shot_self", "lambada_openai", 1, false},
      {"perplexity", "perplexity", 0, false},
  };
  for (const Case& c : cases) {
    TaskSpec spec = *mp::eval::builtin_task(c.task);
    spec.data = fixture(std::string(c.fixture) + ".docs.jsonl");
    BuildOptions b;
    b.num_fewshot = c.shots;
    if (c.pool) b.fewshot_data = fixture(std::string(c.fixture) + ".pool.jsonl");
    const mp::eval::TaskRequests got = mp::eval::build_task_requests(spec, b);
    const nlohmann::json want = read_json(fixture(std::string(c.fixture) + ".expected.json"));
    ASSERT_EQ(got.docs.size(), want.size()) << c.fixture;
    for (size_t d = 0; d < want.size(); ++d) {
      const auto& wr = want[d]["requests"];
      ASSERT_EQ(got.docs[d].requests.size(), wr.size()) << c.fixture << " doc " << d;
      for (size_t r = 0; r < wr.size(); ++r) {
        EXPECT_EQ(got.docs[d].requests[r].context, wr[r][0].get<std::string>()) << c.fixture << " doc " << d << " req " << r;
        EXPECT_EQ(got.docs[d].requests[r].continuation, wr[r][1].get<std::string>()) << c.fixture << " doc " << d << " req " << r;
      }
      EXPECT_EQ(got.docs[d].gold, want[d]["gold"].get<int64_t>()) << c.fixture << " doc " << d;
      if (want[d].contains("words")) {  // word_perplexity / byte_perplexity counts
        const auto o = mp::eval::doc_outcome(spec, got.docs[d], {-1.0}, {false});
        EXPECT_EQ(o.words, want[d]["words"].get<int64_t>()) << c.fixture << " doc " << d;
        EXPECT_EQ(o.bytes, want[d]["bytes"].get<int64_t>()) << c.fixture << " doc " << d;
      }
    }
  }
}

// Python 3.11: random.Random(seed).sample(range(n), k) and getrandbits(32).
TEST(EvalPrompts, PythonRandomDrawsWhatPythonDraws) {
  mp::eval::PyRandom a(1234);
  EXPECT_EQ(a.sample(100, 5), (std::vector<int64_t>{99, 56, 14, 0, 11}));
  EXPECT_EQ(a.sample(100, 5), (std::vector<int64_t>{74, 4, 85, 88, 10}));
  mp::eval::PyRandom b(0);
  EXPECT_EQ(b.sample(10, 3), (std::vector<int64_t>{6, 9, 0}));
  mp::eval::PyRandom c(42);
  EXPECT_EQ(c.getrandbits(32), 2746317213u);
  EXPECT_EQ(c.getrandbits(32), 478163327u);
  EXPECT_EQ(c.getrandbits(32), 107420369u);
  mp::eval::PyRandom d((uint64_t{1} << 40) + 7);  // a seed of two 32-bit words; a set-based draw
  EXPECT_EQ(d.sample(1000, 8), (std::vector<int64_t>{628, 765, 834, 960, 967, 654, 584, 722}));
  mp::eval::PyRandom e(1234);
  EXPECT_EQ(e.sample(3, 3), (std::vector<int64_t>{1, 0, 2}));
  EXPECT_EQ(e.sample(50, 6), (std::vector<int64_t>{5, 37, 2, 42, 44, 49}));
}

// Values from Python 3.11.
TEST(EvalPrompts, PythonStringSemantics) {
  using namespace mp::eval;
  EXPECT_EQ(py_strip("\x1c\t a b \xE3\x80\x80\n"), "a b");  // U+001C and U+3000 are str.isspace()
  EXPECT_EQ(py_rstrip("  x \xC2\xA0"), "  x");
  EXPECT_EQ(py_capitalize("hELLO wORLD"), "Hello world");
  EXPECT_EQ(py_capitalize("\xC3\xA9T\xC3\x89"), "\xC3\x89t\xC3\xA9");  // éTÉ -> Été
  EXPECT_EQ(py_len("caf\xC3\xA9 \xE6\x97\xA5"), 6);
  EXPECT_EQ(py_count_words("  Leading spaces and\ttabs\nnew lines  "), 8);  // len(re.split(r"\s+", s))
  EXPECT_EQ(py_count_words("one"), 1);
  EXPECT_EQ(py_split_on_space("a  b "), (std::vector<std::string>{"a", "", "b", ""}));
  EXPECT_EQ(mp::eval::hellaswag_clean(" [header] A [title] B  [x] c [open\nd] "), " A. B  c [open\nd]");  // Python gives exactly this
}

using mp::test::expect_bad_input;

TEST(EvalPrompts, TemplatesAndTaskFiles) {
  const nlohmann::json doc = {{"q", "  Why?  "}, {"s", "high_school_x"}, {"c", {{"t", {"a", "b"}}}}, {"n", 3}, {"b", true}};
  EXPECT_EQ(mp::eval::render_template("{{ q|strip }}|{{s|replace('_', ' ')}}|{{c.t[1]}}{{n}}{{b}}", doc, "d"),
            "Why?|high school x|b3True");
  // Python prints any integer exactly, the largest a document can hold and the smallest too.
  EXPECT_EQ(mp::eval::render_template("{{u}} {{i}}", nlohmann::json::parse(R"({"u": 18446744073709551615, "i": -9223372036854775808})"), "d"),
            "18446744073709551615 -9223372036854775808");
  expect_bad_input([&] { mp::eval::render_template("{{c.t[2]}}", doc, "data.jsonl:7"); }, {"data.jsonl:7", "c.t[2]"});
  expect_bad_input([&] { mp::eval::render_template("{{missing}}", doc, "data.jsonl:3"); }, {"data.jsonl:3", "'missing'"});
  expect_bad_input([&] { mp::eval::check_template("{{q|upper}}", "t.json: field 'prompt'"); }, {"prompt", "upper"});
  expect_bad_input([&] { mp::eval::check_template("{{q", "t.json: field 'prompt'"); }, {"no closing"});
  const auto parse = [](const char* text) { return mp::eval::parse_task(nlohmann::json::parse(text), "t.json", "/d"); };
  const TaskSpec t = parse(R"({"name": "x", "kind": "multiple_choice", "data": "x.jsonl", "prompt": "{{q}}",
    "choices": ["{{a}}", "B"], "gold": {"field": "g", "map": {"yes": 0, "no": 1}}, "target_delimiter": "",
    "fewshot": {"data": "train.jsonl", "sampler": "first_n", "seed": 7}, "metrics": ["acc"]})");
  EXPECT_EQ(t.data, "/d/x.jsonl");
  EXPECT_EQ(t.fewshot.data, "/d/train.jsonl");
  EXPECT_EQ(t.fewshot.seed.value(), 7u);
  EXPECT_EQ(t.target_delimiter, "");
  expect_bad_input([&] { parse(R"({"name": "x", "kind": "multiple_choice", "prompt": "", "choices": [], "gold": "g"})"); },
                   {"t.json", "'choices'", "empty"});
  expect_bad_input([&] { parse(R"({"name": "x", "kind": "multiple_choice", "prompt": "", "choice": ["a"]})"); },
                   {"t.json", "'choice'", "not known"});
  expect_bad_input([&] { parse(R"({"name": "x", "kind": "loglikelihood", "prompt": "", "target": "", "metrics": ["acc_norm"]})"); },
                   {"metrics[0]", "acc_norm", "perplexity, acc"});
  expect_bad_input([&] { parse(R"({"name": "x", "kind": "generate_until"})"); }, {"'kind'", "generate_until"});
  for (const std::string& n : mp::eval::builtin_task_names()) EXPECT_TRUE(mp::eval::builtin_task(n).has_value()) << n;
}

}  // namespace
