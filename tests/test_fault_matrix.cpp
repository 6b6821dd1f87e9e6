// Faults from outside, against the built binary: SIGKILL at seeded random moments and at the
// moment a temporary output appears (a checkpoint or output being written), a full disk (the file
// size limit, RLIMIT_FSIZE, makes writes past it fail as ENOSPC would), and weights or optimizer
// state holding NaN. After a kill every output is either complete and loads, or is recognisably
// unfinished (nothing visible half-written; hidden temporaries only) and the next run cleans it
// or resumes it, bit-exact: final weights byte for byte those of an unbroken run.
#include "model/model.h"
#include "model/safetensors.h"
#include "tests/distill_fixture.h"
#include "tests/test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> split_args(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// Starts the CLI with output to `log`, one OpenMP thread, and (when > 0) a file size limit with
// SIGXFSZ ignored, so a write past it fails with EFBIG as a full disk fails one with ENOSPC.
pid_t spawn_cli(const std::string& args, const std::string& log, rlim_t file_size_limit = 0) {
  std::vector<std::string> words = split_args(args);
  std::vector<char*> argv;
  std::string exe = MP_CLI_PATH;
  argv.push_back(exe.data());
  for (std::string& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) ::dup2(fd, 1), ::dup2(fd, 2);
    ::setenv("OMP_NUM_THREADS", "1", 1);
    if (file_size_limit > 0) {
      ::signal(SIGXFSZ, SIG_IGN);
      const rlimit lim{file_size_limit, file_size_limit};
      ::setrlimit(RLIMIT_FSIZE, &lim);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

int exit_code_of(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status); }

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A file's bytes, or a folder's files (relative names and bytes, in name order).
std::string snapshot(const std::string& path) {
  if (!fs::is_directory(path)) return slurp(path);
  std::vector<std::string> names;
  for (const auto& e : fs::recursive_directory_iterator(path))
    if (e.is_regular_file()) names.push_back(fs::relative(e.path(), path).string());
  std::sort(names.begin(), names.end());
  std::string out;
  for (const std::string& n : names) out += n + "\n" + slurp(path + "/" + n) + "\n";
  return out;
}

struct CliRun {
  int exit_code;
  std::string output;
};

CliRun run_to_end(const std::string& args, const std::string& log, rlim_t file_size_limit = 0) {
  const pid_t pid = spawn_cli(args, log, file_size_limit);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {exit_code_of(status), slurp(log)};
}

// Hidden temporaries (".NAME.partial-PID", ".NAME.old-PID") in `dir`.
std::vector<std::string> temporaries(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (n[0] == '.' && (n.find(".partial-") != std::string::npos || n.find(".old-") != std::string::npos))
      out.push_back(n);
  }
  return out;
}

enum class KillAt { RandomTime, TemporaryAppears };

// Runs `args` and SIGKILLs it: after `delay` (RandomTime), or as soon as a hidden temporary
// shows up in `watch` (TemporaryAppears; the `nth` one seen, counting distinct names). Returns
// true when the process was killed, false when it had ended first.
bool run_and_kill(const std::string& args, const std::string& log, KillAt how, std::chrono::microseconds delay,
                  const std::string& watch, int nth = 1) {
  const pid_t pid = spawn_cli(args, log);
  const auto start = Clock::now();
  std::vector<std::string> seen;
  int status = 0;
  while (true) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return false;
    bool fire = false;
    if (how == KillAt::RandomTime) {
      fire = Clock::now() - start >= delay;
    } else {
      for (const std::string& t : temporaries(watch))
        if (std::find(seen.begin(), seen.end(), t) == seen.end()) seen.push_back(t);
      fire = static_cast<int>(seen.size()) >= nth || Clock::now() - start > std::chrono::seconds(60);
    }
    if (fire) break;
    ::usleep(how == KillAt::RandomTime ? 200 : 100);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return WIFSIGNALED(status);
}

double seconds_of(const std::function<void()>& f) {
  const auto t = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Exactly one line of output, an error line holding `needle`.
void expect_one_error_line(const CliRun& r, const std::string& needle) {
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_EQ(r.output.rfind("minipuzzle: error: ", 0), 0u) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
}

class FaultMatrix : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new mp::test::ScratchDir();
    const mp::test::ScratchDir& d = *dir_;
    mp::test::write_byte_model_and_tokens(d);  // config.json (vocab 256), tok
    for (const char* who : {"teacher", "student"}) {
      const CliRun r = run_to_end("init --config " + d.file("config.json") + " --output " + d.file(who) +
                                   " --dtype fp32 --seed " + (std::string(who) == "teacher" ? "1" : "2"),
                               d.file("init.log"));
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
    // Text for the data commands: large enough that writing it takes a moment.
    std::string text;
    for (int i = 0; i < 6000; ++i) text += "We the People of the United States, in Order to form a more perfect Union. ";
    std::ofstream(d.file("corpus.txt")) << text;
    std::ofstream jsonl(d.file("corpus.jsonl"));
    for (int i = 0; i < 3000; ++i) jsonl << "{\"text\": \"Four score and seven years ago our fathers brought forth.\"}\n";
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string file(const std::string& name) { return dir_->file(name); }

  static std::string train_args(const std::string& out) {
    return "train --config " + file("config.json") + " --data " + file("tok") + " --output " + out +
           " --steps 6 --save-every 1 --seq-len 16 --global-batch 4 --micro-batch 2 --lr 1e-2 --warmup 2 --seed 5"
           " --quiet";
  }
  static std::string distill_args(const std::string& out) {
    return "distill --teacher " + file("teacher") + " --student " + file("student") + " --data " + file("tok") +
           " --output " + out +
           " --steps 6 --save-every 1 --seq-len 16 --global-batch 4 --micro-batch 2 --lr 1e-2 --warmup 2 --quiet";
  }

  // Every visible entry of a run folder is whole: checkpoints and final/ load, latest names a
  // checkpoint that is there, summary.json only beside final/.
  static void expect_run_folder_consistent(const std::string& out, const std::string& context) {
    if (!fs::exists(out)) return;
    for (const auto& e : fs::directory_iterator(out)) {
      const std::string n = e.path().filename().string();
      if (n[0] == '.') continue;
      if (n.rfind("checkpoint-", 0) == 0 || n == "final") {
        EXPECT_NO_THROW(mp::load_model(e.path().string())) << context << ": " << n;
        if (n != "final")
          for (const char* f : {"optimizer.safetensors", "trainer_state.json"})
            EXPECT_TRUE(fs::exists(e.path() / f)) << context << ": " << n << " lacks " << f;
      }
    }
    if (fs::exists(out + "/latest")) {
      std::string name = slurp(out + "/latest");
      while (!name.empty() && name.back() == '\n') name.pop_back();
      EXPECT_TRUE(fs::is_directory(out + "/" + name)) << context << ": latest names " << name;
    }
    if (fs::exists(out + "/summary.json")) EXPECT_TRUE(fs::exists(out + "/final")) << context;
  }

  // 20 kills of a train or distill run, each continuing (--resume) whatever the last one left;
  // a run that finished is checked against the reference and started over. Half the kills land
  // at random moments (seeded), half the moment the k-th temporary appears (a checkpoint being
  // written, or latest, final/, summary.json). Then one run to the end.
  static void kill_matrix(const std::function<std::string(const std::string&)>& args, const std::string& name) {
    const std::string ref = file(name + "_ref"), out = file(name + "_killed");
    double full = 0;
    full = seconds_of([&] {
      const CliRun r = run_to_end(args(ref), file(name + "_ref.log"));
      ASSERT_EQ(r.exit_code, 0) << r.output;
    });
    const std::string reference = slurp(ref + "/final/model.safetensors");
    ASSERT_FALSE(reference.empty());
    std::mt19937 rng(20241207);
    int killed = 0, finished = 0, during_writes = 0;
    for (int k = 0; k < 20; ++k) {
      if (fs::exists(out + "/summary.json")) {
        EXPECT_EQ(slurp(out + "/final/model.safetensors"), reference) << name << " kill " << k;
        fs::remove_all(out);
        ++finished;
      }
      const std::string a = args(out) + " --resume";
      const bool random_time = k % 2 == 0;
      const auto delay = std::chrono::microseconds(
          static_cast<int64_t>(std::uniform_real_distribution<double>(0.0, full)(rng) * 1e6));
      const int nth = std::uniform_int_distribution<int>(1, 8)(rng);
      if (run_and_kill(a, file(name + "_kill.log"), random_time ? KillAt::RandomTime : KillAt::TemporaryAppears,
                       delay, out, nth)) {
        ++killed;
        if (!temporaries(out).empty()) ++during_writes;
      }
      expect_run_folder_consistent(out, name + " kill " + std::to_string(k));
    }
    if (!fs::exists(out + "/summary.json")) {
      const CliRun r = run_to_end(args(out) + " --resume", file(name + "_last.log"));
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
    EXPECT_EQ(slurp(out + "/final/model.safetensors"), reference) << name << ": resumed run differs";
    EXPECT_TRUE(temporaries(out).empty()) << name << ": " << temporaries(out).front();
    expect_run_folder_consistent(out, name + " end");
    std::printf("[ fault    ] %s: %d of 20 runs killed (%d while a temporary existed), %d chains finished; an "
                "unbroken run takes %.2f s\n",
                name.c_str(), killed, during_writes, finished, full);
    EXPECT_GT(during_writes, 0) << name << ": no kill landed while something was being written";
  }

  // 20 kills of a command writing one output (a folder, or a prefix's files): after each, the
  // output is absent or complete (and equal to an unbroken run's), and at most the last killed
  // run's temporaries are left beside it. `outputs` names what it writes in the parent folder.
  static void kill_one_shot(const std::function<std::string(const std::string&)>& args, const std::string& name,
                            const std::vector<std::string>& outputs, bool prefix_output = false) {
    const std::string parent = file(name + "_dir");
    fs::create_directories(parent);
    const std::string ref_parent = file(name + "_refdir");
    fs::create_directories(ref_parent);
    double full = 0;
    full = seconds_of([&] {
      const CliRun r = run_to_end(args(ref_parent + "/out"), file(name + "_ref.log"));
      ASSERT_EQ(r.exit_code, 0) << r.output;
    });
    std::vector<std::string> reference;
    for (const std::string& f : outputs) reference.push_back(snapshot(ref_parent + "/" + f));
    std::mt19937 rng(7 + name.size());
    const std::string out = parent + "/out";
    int killed = 0, complete = 0;
    for (int k = 0; k < 20; ++k) {
      const bool random_time = k % 2 == 0;
      const auto delay = std::chrono::microseconds(
          static_cast<int64_t>(std::uniform_real_distribution<double>(0.0, full)(rng) * 1e6));
      // Every other pair of runs writes a new output; the rest replace a whole one (--overwrite).
      if (k % 4 >= 2)
        for (const std::string& o : outputs) fs::remove_all(parent + "/" + o);
      killed += run_and_kill(args(out) + " --overwrite", file(name + "_kill.log"),
                             random_time ? KillAt::RandomTime : KillAt::TemporaryAppears, delay, parent);
      const std::string context = name + " kill " + std::to_string(k);
      // Whole or absent: every output file is the reference's, or (for a prefix, whose .bin is
      // renamed into place just before its .idx) the .idx is missing and the next run says so.
      size_t present = 0;
      for (size_t i = 0; i < outputs.size(); ++i) {
        if (!fs::exists(parent + "/" + outputs[i])) continue;
        ++present;
        EXPECT_EQ(snapshot(parent + "/" + outputs[i]), reference[i]) << context << ": " << outputs[i];
      }
      if (present == outputs.size()) {
        ++complete;
      } else if (prefix_output && present == 1 && fs::exists(parent + "/out.bin")) {
        const CliRun r = run_to_end(args(out), file(name + "_again.log"));
        EXPECT_EQ(r.exit_code, 2) << context;
        EXPECT_NE(r.output.find("exists without"), std::string::npos) << context << ": " << r.output;
      } else {
        EXPECT_EQ(present, 0u) << context;
      }
      // The killed run swept the earlier runs' temporaries: only its own can remain.
      std::vector<std::string> left = temporaries(parent);
      std::sort(left.begin(), left.end());
      std::set<std::string> pids;
      for (const std::string& t : left) pids.insert(t.substr(t.rfind('-') + 1));
      EXPECT_LE(pids.size(), 1u) << context << ": " << left.size() << " temporaries";
    }
    const CliRun r = run_to_end(args(out) + " --overwrite", file(name + "_last.log"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    for (size_t i = 0; i < outputs.size(); ++i)
      EXPECT_EQ(snapshot(parent + "/" + outputs[i]), reference[i]) << name << ": " << outputs[i];
    EXPECT_TRUE(temporaries(parent).empty()) << name;
    std::printf("[ fault    ] %s: %d of 20 runs killed, %d left a complete output; an unbroken run takes %.2f s\n",
                name.c_str(), killed, complete, full);
  }

  static mp::test::ScratchDir* dir_;
};

mp::test::ScratchDir* FaultMatrix::dir_ = nullptr;

TEST_F(FaultMatrix, KilledTrainingResumesBitExact) { kill_matrix(train_args, "train"); }

TEST_F(FaultMatrix, KilledDistillationResumesBitExact) { kill_matrix(distill_args, "distill"); }

TEST_F(FaultMatrix, KilledConvertLeavesNothingOrAWholeCheckpoint) {
  kill_one_shot([](const std::string& out) { return "convert --model " + file("student") + " --output " + out +
                                                    " --max-shard-size 20KB"; },
                "convert", {"out"});
}

TEST_F(FaultMatrix, KilledPruneLeavesNothingOrAWholeCheckpoint) {
  const CliRun s = run_to_end("score --model " + file("teacher") + " --data " + file("tok") + " --output " +
                               file("importance.json") + " --samples 8 --layer-samples 4 --seq-len 16 --quiet",
                           file("score.log"));
  ASSERT_EQ(s.exit_code, 0) << s.output;
  kill_one_shot([](const std::string& out) { return "prune --model " + file("teacher") + " --importance " +
                                                    file("importance.json") + " --output " + out +
                                                    " --hidden-size 16 --ffn-hidden-size 24"; },
                "prune", {"out"});
}

TEST_F(FaultMatrix, KilledDataFromTextLeavesNothingOrWholeTokenData) {
  kill_one_shot([](const std::string& out) { return "data from-text " + file("corpus.txt") + " --quiet --output " + out; },
                "from_text", {"out.bin", "out.idx"}, true);
}

TEST_F(FaultMatrix, KilledDataFromJsonlLeavesNothingOrWholeTokenData) {
  kill_one_shot([](const std::string& out) { return "data from-jsonl " + file("corpus.jsonl") + " --quiet --output " + out; },
                "from_jsonl", {"out.bin", "out.idx"}, true);
}

// A full disk: writes past the limit fail. One error line, no checkpoint or output half-written,
// no temporary left; a training run so stopped is resumed (without the limit) bit-exact.
TEST_F(FaultMatrix, AFullDiskStopsWithOneLineAndNothingHalfWritten) {
  const std::string ref = file("disk_ref"), out = file("disk_run");
  ASSERT_EQ(run_to_end(train_args(ref), file("disk_ref.log")).exit_code, 0);
  // The student's weights take ~135 KB: a checkpoint cannot be written under 64 KB.
  CliRun r = run_to_end(train_args(out), file("disk.log"), 64 << 10);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  expect_one_error_line(r, "write failed");
  EXPECT_FALSE(fs::exists(out + "/checkpoint-1"));
  EXPECT_FALSE(fs::exists(out + "/latest"));
  EXPECT_TRUE(temporaries(out).empty()) << temporaries(out).front();
  r = run_to_end(train_args(out) + " --resume", file("disk_resume.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(slurp(out + "/final/model.safetensors"), slurp(ref + "/final/model.safetensors"));

  // Commands writing one output: nothing at the output, nothing beside it.
  const std::string parent = file("disk_outputs");
  fs::create_directories(parent);
  const std::pair<std::string, std::string> commands[] = {
      {"convert", "convert --model " + file("student") + " --output " + parent + "/converted"},
      {"init", "init --config " + file("config.json") + " --output " + parent + "/init --dtype fp32"},
      {"data", "data from-text " + file("corpus.txt") + " --quiet --output " + parent + "/tokens"},
  };
  for (const auto& [what, args] : commands) {
    r = run_to_end(args, file("disk_" + what + ".log"), 16 << 10);
    EXPECT_NE(r.exit_code, 0) << what << ": " << r.output;
    expect_one_error_line(r, "write failed");
    EXPECT_TRUE(fs::is_empty(parent)) << what << ": " << fs::directory_iterator(parent)->path();
  }
}

// NaN and infinity: in a checkpoint's weights or optimizer state, a resume is refused with one
// line naming the tensor and the folder is left as it was; a loss that turns non-finite stops at
// the last good checkpoint, which a resume reaches again the same way.
TEST_F(FaultMatrix, NonFiniteStateStopsAtTheLastGoodCheckpoint) {
  const std::string out = file("nan_run");
  CliRun r = run_to_end(train_args(out) + " --stop-at 2", file("nan.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string ckpt = out + "/checkpoint-2";
  const std::string opt_file = ckpt + "/optimizer.safetensors", model_file = ckpt + "/model.safetensors";
  const std::string opt_bytes = slurp(opt_file), model_bytes = slurp(model_file);

  auto poison = [](const std::string& path, const std::string& tensor, float value) {
    auto f = mp::SafetensorsFile::open(path);
    std::vector<std::pair<std::string, at::Tensor>> ts;
    for (const auto& t : f->tensors()) {
      at::Tensor v = f->load(t.name);
      if (t.name == tensor) v.view(-1)[0] = value;
      ts.emplace_back(t.name, v);
    }
    f.reset();
    mp::write_safetensors(path, ts, {{"format", "pt"}});
  };
  poison(opt_file, "exp_avg.lm_head.weight", NAN);
  r = run_to_end(train_args(out) + " --resume", file("nan_opt.log"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  expect_one_error_line(r, "optimizer tensor 'exp_avg.lm_head.weight' holds NaN or infinite values");
  EXPECT_FALSE(fs::exists(out + "/checkpoint-3"));

  std::ofstream(opt_file, std::ios::binary) << opt_bytes;
  poison(model_file, "backbone.embeddings.weight", INFINITY);
  r = run_to_end(train_args(out) + " --resume", file("nan_model.log"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  expect_one_error_line(r, "tensor 'backbone.embeddings.weight' holds NaN or infinite values");
  EXPECT_FALSE(fs::exists(out + "/checkpoint-3"));

  // A learning rate that makes the loss overflow after the first steps.
  std::ofstream(model_file, std::ios::binary) << model_bytes;
  const std::string wild = file("nan_wild");
  r = run_to_end(train_args(wild) + " --lr 1000 --clip 0 --warmup 0", file("nan_wild.log"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  expect_one_error_line(r, "stopped before updating the weights; last good checkpoint ");
  const size_t at = r.output.find("last good checkpoint ") + 21;
  const std::string last_good = r.output.substr(at, r.output.find(' ', at) - at);
  EXPECT_NO_THROW(mp::load_model(last_good)) << last_good;
  const CliRun again = run_to_end(train_args(wild) + " --lr 1000 --clip 0 --warmup 0 --resume", file("nan_wild2.log"));
  EXPECT_EQ(again.exit_code, 2) << again.output;
  EXPECT_EQ(again.output, r.output);
}

// score reads weights one layer at a time with --stream: a NaN there, or activations that
// overflow, stop it with one line and no importance file.
TEST_F(FaultMatrix, ScoreStopsOnNonFiniteWeightsAndActivations) {
  mp::Model m = mp::load_model(file("teacher"));
  m.weights["backbone.layers.2.mixer.up_proj.weight"][0][0] = NAN;
  mp::save_model(m, file("score_nan_model"));
  for (const char* stream : {"", " --stream"}) {
    const CliRun r = run_to_end("score --model " + file("score_nan_model") + " --data " + file("tok") + " --output " +
                                 file("score_nan.json") + " --samples 4 --layer-samples 2 --seq-len 16 --quiet" +
                                 stream,
                             file("score_nan.log"));
    EXPECT_EQ(r.exit_code, 2) << r.output;
    expect_one_error_line(r, "tensor 'backbone.layers.2.mixer.up_proj.weight' holds NaN or infinite values");
    EXPECT_FALSE(fs::exists(file("score_nan.json")));
  }
  // Finite weights whose activations overflow float32: a huge MLP.
  m = mp::load_model(file("teacher"));
  m.weights["backbone.layers.2.mixer.up_proj.weight"].fill_(1e30);
  m.weights["backbone.layers.2.mixer.down_proj.weight"].fill_(1e30);
  mp::save_model(m, file("score_big_model"));
  for (const char* stream : {"", " --stream"}) {
    const CliRun r = run_to_end("score --model " + file("score_big_model") + " --data " + file("tok") + " --output " +
                                 file("score_big.json") + " --samples 4 --layer-samples 2 --seq-len 16 --quiet" +
                                 stream,
                             file("score_big.log"));
    EXPECT_EQ(r.exit_code, 1) << r.output;
    expect_one_error_line(r, "the output of layer 2 holds NaN or infinity");
    EXPECT_FALSE(fs::exists(file("score_big.json")));
  }
}

}  // namespace
