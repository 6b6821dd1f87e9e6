// Tokenizer speed: MB/s of text encoded by mp::Tokenizer, one document per input file, on one
// thread and on N threads (documents shared out by index). Each measurement loads the
// tokenizer afresh, so its word cache starts empty, as Hugging Face's does in
// scripts/tokenizer_reference.js speed. Prints one JSON object per measurement.
//   bench_tokenizer TOKENIZER THREADS[,THREADS...] FILE...
#include "common/error.h"
#include "data/tokenizer/tokenizer.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: bench_tokenizer TOKENIZER THREADS[,THREADS...] FILE...\n");
    return 2;
  }
  try {
    std::vector<int> thread_counts;
    std::stringstream list(argv[2]);
    for (std::string t; std::getline(list, t, ',');) thread_counts.push_back(std::stoi(t));
    std::vector<std::string> docs;
    size_t bytes = 0;
    for (int k = 3; k < argc; ++k) {
      std::ifstream f(argv[k], std::ios::binary);
      std::stringstream ss;
      ss << f.rdbuf();
      docs.push_back(ss.str());
      bytes += docs.back().size();
    }
    for (int threads : thread_counts) {
      auto tok = mp::Tokenizer::load(argv[1]);
      std::atomic<size_t> next{0}, tokens{0};
      auto work = [&] {
        size_t n = 0;
        for (size_t i; (i = next.fetch_add(1)) < docs.size();) n += tok->encode(docs[i]).size();
        tokens += n;
      };
      auto t0 = std::chrono::steady_clock::now();
      std::vector<std::thread> pool;
      for (int t = 1; t < threads; ++t) pool.emplace_back(work);
      work();
      for (auto& t : pool) t.join();
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("{\"implementation\": \"minipuzzle\", \"tokenizer\": \"%s\", \"threads\": %d, \"documents\": %zu, "
                  "\"bytes\": %zu, \"tokens\": %zu, \"seconds\": %.4f, \"mb_per_s\": %.3f}\n",
                  argv[1], threads, docs.size(), bytes, tokens.load(), s, bytes / 1e6 / s);
      std::fflush(stdout);
    }
  } catch (const mp::Error& e) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
    return e.exit_code();
  }
  return 0;
}
