#include "eval/make_task.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/output_guard.h"
#include "data/tokenizer/tokenizer.h"
#include "data/tokenizer/unicode.h"
#include "eval/python_text.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <random>

namespace mp::eval {
namespace {

struct Doc {
  std::string file;
  std::vector<std::string> words;
  std::string text;              // words joined by single spaces
  std::vector<size_t> offsets;   // byte offset of every character of text, and text.size()
};

// text[from, to) in characters.
std::string chars(const Doc& d, size_t from, size_t to) { return d.text.substr(d.offsets[from], d.offsets[to] - d.offsets[from]); }

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> words;
  std::string cur;
  size_t i = 0;
  while (i < text.size()) {
    const size_t at = i;
    const char32_t c = tok::next_code_point(text, i);
    if (py_isspace(c)) {
      if (!cur.empty()) words.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.append(text, at, i - at);
    }
  }
  if (!cur.empty()) words.push_back(std::move(cur));
  return words;
}

// Words from `start` onwards, as many as fit in `chars` characters (at least one).
std::string words_forward(const std::vector<std::string>& w, size_t start, int64_t chars) {
  std::string out = w[start];
  int64_t len = py_len(out);
  for (size_t i = start + 1; i < w.size(); ++i) {
    const int64_t next = len + 1 + py_len(w[i]);
    if (next > chars) break;
    out += " " + w[i];
    len = next;
  }
  return out;
}

// Words ending just before `end`, as many as fit in `chars` characters (at least one).
std::string words_backward(const std::vector<std::string>& w, size_t end, int64_t chars) {
  size_t first = end - 1;
  int64_t len = py_len(w[first]);
  while (first > 0) {
    const int64_t next = len + 1 + py_len(w[first - 1]);
    if (next > chars) break;
    len = next;
    --first;
  }
  std::vector<std::string> part(w.begin() + first, w.begin() + end);
  return py_join(part, " ");
}

std::string task_name(const std::string& dir) {
  std::string name = std::filesystem::path(dir).filename().string();
  if (name.empty()) name = std::filesystem::path(dir).parent_path().filename().string();
  for (char& c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) c = '_';
  return name.empty() ? "made_task" : name;
}

}  // namespace

MakeTaskStats make_task(const MakeTaskOptions& o) {
  if (o.choices < 2) fail_usage("--choices {}: expected at least 2", o.choices);
  std::vector<Doc> docs;
  for (const std::string& f : o.files) {
    const std::string text = read_file(f);
    if (auto bad = invalid_utf8_offset(text)) fail_input("{}: not valid UTF-8 at byte {}; expected UTF-8 text", f, *bad);
    Doc d{f, words_of(text), "", {}};
    d.text = py_join(d.words, " ");
    for (size_t i = 0; i < d.text.size();) {
      d.offsets.push_back(i);
      tok::next_code_point(d.text, i);
    }
    d.offsets.push_back(d.text.size());
    if (!d.words.empty()) docs.push_back(std::move(d));
  }
  if (docs.size() < 2)
    fail_input("{}: {} of the {} files hold words; expected at least 2 documents, so that wrong choices come from "
               "other documents",
               o.files.empty() ? std::string("--text-files") : o.files[0], docs.size(), o.files.size());
  if (o.split != "word" && o.split != "char") fail_usage("--split {}: expected word or char", o.split);
  const bool by_char = o.split == "char";
  // Positions a passage can end at: word p in [1, words), or character p in [1, chars - M] so that
  // the true continuation has its M characters.
  auto positions = [&](const Doc& d) -> uint64_t {
    if (!by_char) return d.words.size() - 1;
    const int64_t n = static_cast<int64_t>(d.offsets.size()) - 1;
    return n > o.continuation_chars ? static_cast<uint64_t>(n - o.continuation_chars) : 0;
  };
  std::vector<uint64_t> cum;
  uint64_t total = 0;
  for (const Doc& d : docs) cum.push_back(total += positions(d));
  if (total == 0)
    fail_input("--text-files: no document is long enough; expected passages of several words (or more than "
               "--continuation-chars characters with --split char)");

  std::mt19937_64 rng(o.seed);
  auto below = [&](uint64_t n) { return rng() % n; };
  std::string jsonl;
  for (int64_t s = 0; s < o.samples; ++s) {
    const uint64_t pick = below(total);
    const size_t di = std::upper_bound(cum.begin(), cum.end(), pick) - cum.begin();
    const Doc& d = docs[di];
    const size_t p = 1 + (pick - (di ? cum[di - 1] : 0));
    const size_t M = static_cast<size_t>(o.continuation_chars);
    const std::string context = by_char ? chars(d, p - std::min<size_t>(p, o.context_chars), p)
                                        : words_backward(d.words, p, o.context_chars);
    const std::string truth = by_char ? chars(d, p, p + M) : words_forward(d.words, p, o.continuation_chars);
    std::vector<std::string> choices = {truth};
    for (int64_t tries = 0; static_cast<int64_t>(choices.size()) < o.choices; ++tries) {
      if (tries > 1000 * o.choices)
        fail_input("--text-files: cannot find {} distinct continuations from other documents; give more text or fewer "
                   "--choices",
                   o.choices - 1);
      size_t oi = below(docs.size() - 1);
      if (oi >= di) ++oi;  // any document but the passage's
      const Doc& other = docs[oi];
      const size_t n = other.offsets.size() - 1;
      if (by_char && n < M) continue;
      std::string c;
      if (by_char) {
        const size_t q = below(n - M + 1);
        c = chars(other, q, q + M);
      } else {
        c = words_forward(other.words, below(other.words.size()), o.continuation_chars);
      }
      if (std::find(choices.begin(), choices.end(), c) == choices.end()) choices.push_back(c);
    }
    const int64_t gold = static_cast<int64_t>(below(o.choices));
    std::swap(choices[0], choices[gold]);
    nlohmann::json rec = {{"context", context},
                          {"choices", choices},
                          {"gold", gold},
                          {"source", std::filesystem::path(d.file).filename().string()},
                          {"word", p}};
    jsonl += rec.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict) + "\n";
  }
  const nlohmann::json task = {{"name", task_name(o.output)},
                               {"kind", "multiple_choice"},
                               {"data", "data.jsonl"},
                               {"prompt", "{{context}}"},
                               {"choices", {{"field", "choices"}}},
                               {"gold", "gold"},
                               {"target_delimiter", by_char ? "" : " "},
                               {"metrics", {"acc", "acc_norm"}}};
  std::filesystem::path parent = std::filesystem::absolute(o.output).parent_path();
  NewFolders folders(parent.string());
  AtomicDir out(o.output);
  {
    std::ofstream(out.path_in_temp("task.json")) << task.dump(2) << "\n";
    std::ofstream f(out.path_in_temp("data.jsonl"));
    f << jsonl;
    if (!f) fail_runtime("{}: cannot write data.jsonl", out.temp_path());
  }
  out.commit();
  folders.keep();
  return {static_cast<int64_t>(docs.size()), o.samples};
}

}  // namespace mp::eval
