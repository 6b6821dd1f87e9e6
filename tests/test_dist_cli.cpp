// Data-parallel `train` / `distill` through the binary, on the CPU (c10d's Gloo):
// --nproc 2 against one process at the same global batch (loss curve and final weights), only
// rank 0 writing, a rank that dies (the test-only MP_TEST_DIE=RANK:STEP fault) stopping the
// others within seconds with one clear line, ranks started with other settings and bad launcher
// settings refused with exit 2.
#include "common/atomic_output.h"
#include "distill/dist/net.h"
#include "tests/dist_test_util.h"
#include "model/model.h"
#include "tests/distill_fixture.h"
#include "tests/test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>

extern char** environ;
namespace fs = std::filesystem;
using mp::test::run_cli;
using mp::test::run_cli_env;

namespace {

using Clock = std::chrono::steady_clock;

// The binary in the background: `env ENV minipuzzle ARGS > log 2>&1` (exec'd, so the pid is the
// binary's own).
pid_t spawn_cli(const std::string& env, const std::string& args, const std::string& log) {
  const std::string cmd = "exec env " + env + " " + MP_CLI_PATH + " " + args + " > " + log + " 2>&1";
  const char* argv[] = {"sh", "-c", cmd.c_str(), nullptr};
  pid_t pid = -1;
  EXPECT_EQ(::posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ), 0);
  return pid;
}

// Exit code, -signal when killed, or -1000 when still running after `seconds` (then killed).
int wait_for(pid_t pid, double seconds) {
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
    if (Clock::now() > end) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      return -1000;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::set<std::string> entries(const std::string& dir) {
  std::set<std::string> s;
  for (const auto& e : fs::directory_iterator(dir)) s.insert(e.path().filename().string());
  return s;
}

double max_rel_weight_diff(const std::string& a, const std::string& b) {
  mp::Model ma = mp::load_model(a), mb = mp::load_model(b);
  double worst = 0.0;
  for (const auto& [n, t] : ma.weights) {
    const double scale = std::max(t.abs().max().item<double>(), 1e-12);
    worst = std::max(worst, (t - mb.w(n)).abs().max().item<double>() / scale);
  }
  return worst;
}

class DistCli : public ::testing::Test {
 protected:
  void SetUp() override { mp::test::write_byte_model_and_tokens(dir); }
  // `from`: --config (random init) by default, or --model DIR.
  std::string train(const std::string& out, int steps, const std::string& from = "") const {
    return "train " + (from.empty() ? "--config " + dir.file("config.json") : from) + " --data " + dir.file("tok") + " --output " + dir.file(out) +
           " --seq-len 32 --micro-batch 1 --global-batch 4 --steps " + std::to_string(steps) +
           " --lr 3e-3 --warmup 1 --quiet";
  }
  // Same steps, losses within `tol` (relative), and the same files. KL is a small difference of
  // CE-sized terms (~1e-4 here), so its error is measured against the loss it is part of.
  void expect_same_run(const std::string& one, const std::string& two, double tol) {
    auto a = mp::test::read_metrics(dir.file(one), "train"), b = mp::test::read_metrics(dir.file(two), "train");
    ASSERT_EQ(a.size(), b.size());
    double worst = 0.0;
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i]["step"], b[i]["step"]);
      EXPECT_EQ(a[i]["tokens"], b[i]["tokens"]);
      for (const char* k : {"loss", "kl", "ce", "grad_norm"}) {
        const double x = a[i][k], y = b[i][k], loss = a[i]["loss"];
        worst = std::max(worst, std::abs(x - y) / std::max({std::abs(x), std::abs(loss), 1e-12}));
        if (std::getenv("MP_TEST_VERBOSE")) std::printf("%s step %zu %s %.10g %.10g\n", one.c_str(), i, k, x, y);
      }
    }
    EXPECT_LE(worst, tol);
    const double w = max_rel_weight_diff(dir.file(one + "/final"), dir.file(two + "/final"));
    EXPECT_LE(w, tol);
    std::printf("[ observed ] %s vs %s: loss/kl/ce/grad-norm max rel diff %.3g, final weights max rel diff %.3g\n",
                one.c_str(), two.c_str(), worst, w);
    EXPECT_EQ(entries(dir.file(one)), entries(dir.file(two)));
  }
  static void expect_one_line_error(const mp::test::CliResult& r, const std::string& needle) {
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
  mp::test::ScratchDir dir;
};

TEST_F(DistCli, TwoRanksMatchOneRankAtTheSameGlobalBatch) {
  MP_SKIP_WITHOUT_GLOO();
  auto r1 = run_cli(train("one", 5) + " --save-every 3");
  ASSERT_EQ(r1.exit_code, 0) << r1.output;
  auto r2 = run_cli_env("MP_DIST_CHECK_EVERY=1", train("two", 5) + " --save-every 3 --nproc 2");
  ASSERT_EQ(r2.exit_code, 0) << r2.output;
  expect_same_run("one", "two", 1e-5);
  // Only rank 0 wrote and printed: one summary, the same files, one record per step.
  EXPECT_EQ(entries(dir.file("two")), (std::set<std::string>{"checkpoint-3", "final", "latest", "loss.svg",
                                                             "metrics.jsonl", "summary.json", "train_config.json"}));
  EXPECT_EQ(mp::test::read_metrics(dir.file("two"), "train").size(), 5u);
  size_t summaries = 0;
  for (size_t p = 0; (p = r2.output.find("final student:", p)) != std::string::npos; ++p) ++summaries;
  EXPECT_EQ(summaries, 1u) << r2.output;
  EXPECT_EQ(r2.output.find("rank 1"), std::string::npos) << r2.output;

  // distill from the trained model, the same way.
  const std::string d = " --teacher " + dir.file("one/final") + " --student " + dir.file("one/checkpoint-3") +
                        " --data " + dir.file("tok") + " --seq-len 32 --micro-batch 1 --global-batch 4 --steps 3" +
                        " --lr 1e-3 --warmup 1 --loss kl+ce --quiet";
  r1 = run_cli("distill" + d + " --output " + dir.file("d1"));
  ASSERT_EQ(r1.exit_code, 0) << r1.output;
  r2 = run_cli("distill" + d + " --output " + dir.file("d2") + " --nproc 2");
  ASSERT_EQ(r2.exit_code, 0) << r2.output;
  expect_same_run("d1", "d2", 1e-5);
}

// Ranks started by hand, as torchrun would: rank 1 dies at step 3, rank 0 notices on its own.
TEST_F(DistCli, ADeadRankStopsTheOthersWithinSeconds) {
  MP_SKIP_WITHOUT_GLOO();
  const int port = mp::dist::find_free_port();
  const std::string env = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) +
                          " WORLD_SIZE=2 MP_TEST_DIE=1:3 MP_DIST_TIMEOUT=120 OMP_NUM_THREADS=1";
  const pid_t p0 = spawn_cli("RANK=0 " + env, train("run", 500), dir.file("rank0.log"));
  const pid_t p1 = spawn_cli("RANK=1 " + env, train("run", 500), dir.file("rank1.log"));
  EXPECT_EQ(wait_for(p1, 120), -SIGKILL) << mp::read_file(dir.file("rank1.log"));
  const auto t = Clock::now();
  EXPECT_EQ(wait_for(p0, 60), 1) << mp::read_file(dir.file("rank0.log"));
  const double took = std::chrono::duration<double>(Clock::now() - t).count();
  EXPECT_LT(took, 10.0) << "rank 0 should stop within seconds, not wait for the 120 s timeout";
  const std::string log = mp::read_file(dir.file("rank0.log"));
  EXPECT_EQ(log, "minipuzzle: error: rank 1 (pid " + std::to_string(p1) +
                     ") died or lost connection after step 2; stopping\n");
  std::printf("[ observed ] rank 0 stopped %.2f s after rank 1 died\n", took);
}

// Ranks started by hand with other settings (here the seed): both refuse at start-up, one line,
// exit 2, nothing written.
TEST_F(DistCli, RanksStartedWithOtherSettingsAreRefused) {
  MP_SKIP_WITHOUT_GLOO();
  const int port = mp::dist::find_free_port();
  const std::string env = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) +
                          " WORLD_SIZE=2 MP_DIST_TIMEOUT=60 OMP_NUM_THREADS=1";
  const pid_t p0 = spawn_cli("RANK=0 " + env, train("run", 3), dir.file("rank0.log"));
  const pid_t p1 = spawn_cli("RANK=1 " + env, train("run", 3) + " --seed 5", dir.file("rank1.log"));
  EXPECT_EQ(wait_for(p0, 60), 2) << mp::read_file(dir.file("rank0.log"));
  EXPECT_EQ(wait_for(p1, 60), 2) << mp::read_file(dir.file("rank1.log"));
  const std::string expected = "minipuzzle: error: rank 1 (pid " + std::to_string(p1) +
                               ") was started with other training settings than rank 0 (data, batch, steps, learning "
                               "rate, ...); start every rank with the same command\n";
  EXPECT_EQ(mp::read_file(dir.file("rank0.log")), expected);
  EXPECT_EQ(mp::read_file(dir.file("rank1.log")), expected);
  EXPECT_FALSE(fs::exists(dir.file("run/final")));
}

// Through --nproc: rank 0 dies; rank 1 says so and the launcher names the rank and exits 1.
TEST_F(DistCli, ALauncherStopsWhenARankDies) {
  MP_SKIP_WITHOUT_GLOO();
  const auto t = Clock::now();
  auto r = run_cli_env("MP_TEST_DIE=0:2 MP_DIST_TIMEOUT=120", train("run", 500) + " --nproc 2");
  const double took = std::chrono::duration<double>(Clock::now() - t).count();
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(") was killed by signal 9"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("minipuzzle: error: rank 0 (pid"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("minipuzzle: error: rank 1: rank 0 (pid"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("died or lost connection after step 1; stopping"), std::string::npos) << r.output;
  EXPECT_LT(took, 60.0);
  EXPECT_FALSE(fs::exists(dir.file("run/final")));
}

// An error every rank meets at once (a NaN loss, bad input) keeps its exit code 2 through the
// launcher, and nothing is left that looks finished.
TEST_F(DistCli, ANanLossStopsEveryRankWithExitTwo) {
  MP_SKIP_WITHOUT_GLOO();
  auto r = run_cli("init --config " + dir.file("config.json") + " --output " + dir.file("model") + " --dtype fp32");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  mp::Model m = mp::load_model(dir.file("model"));
  m.weights["lm_head.weight"][0][0] = NAN;
  mp::save_model(m, dir.file("nan_model"));
  // A checkpoint holding NaN is refused as it loads, on every rank (a NaN loss mid-run stops the
  // same way; test_distill_trainer.cpp raises one in process).
  r = run_cli(train("run", 3, "--model " + dir.file("nan_model")) + " --nproc 2");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("tensor 'lm_head.weight' holds NaN"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir.file("run/final")));
}

TEST_F(DistCli, BadLauncherSettingsAreOneLineAndExitTwo) {
  const std::string m = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(mp::dist::find_free_port());
  expect_one_line_error(run_cli_env("WORLD_SIZE=2 RANK=5 " + m, train("o", 2)),
                        "RANK 5 is out of range for WORLD_SIZE 2 (expected 0..1)");
  expect_one_line_error(run_cli_env("WORLD_SIZE=2 RANK=x " + m, train("o", 2)),
                        "RANK: expected a whole number >= 0, got 'x'");
  expect_one_line_error(run_cli_env("WORLD_SIZE=2 RANK=0", train("o", 2)), "MASTER_ADDR is not set");
  // Checked before any rank starts (--nproc) or waits for the others (launcher variables).
  expect_one_line_error(run_cli(train("o", 2) + " --micro-batch 2 --global-batch 6 --nproc 2"),
                        "global batch 6 is not a multiple of micro batch 2 x 2 rank(s)");
  expect_one_line_error(run_cli_env("WORLD_SIZE=2 RANK=0 " + m, train("o", 2) + " --micro-batch 2 --global-batch 6"),
                        "global batch 6 is not a multiple of micro batch 2 x 2 rank(s)");
  expect_one_line_error(run_cli(train("o", 2) + " --nproc 0"), "--nproc: expected a number of processes >= 1");
  expect_one_line_error(run_cli(train("o", 2) + " --nproc 2 --device cuda:1"), "pass --device cuda instead of cuda:1");
  expect_one_line_error(run_cli_env("WORLD_SIZE=2 RANK=0 " + m, train("o", 2) + " --nproc 2"),
                        "--nproc 2 inside a launched job");
  EXPECT_FALSE(fs::exists(dir.file("o")));
}

}  // namespace
