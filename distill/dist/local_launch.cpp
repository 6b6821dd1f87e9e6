#include "distill/dist/local_launch.h"

#include "common/error.h"
#include "distill/dist/net.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace mp::dist {
namespace {

volatile std::sig_atomic_t g_signal = 0;
void on_signal(int sig) { g_signal = sig; }

using Clock = std::chrono::steady_clock;

std::string self_exe() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) fail_runtime("--nproc: cannot find this executable (/proc/self/exe): {}", std::strerror(errno));
  return std::string(buf, static_cast<size_t>(n));
}

// The environment of rank r: ours without any launcher variables, plus the rank's own.
std::vector<std::string> child_env(int r, int n, int port) {
  static const char* ours[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"};
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    bool drop = false;
    for (const char* k : ours) drop |= kv.rfind(std::string(k) + "=", 0) == 0;
    if (!drop) env.push_back(kv);
  }
  env.push_back("RANK=" + std::to_string(r));
  env.push_back("LOCAL_RANK=" + std::to_string(r));
  env.push_back("WORLD_SIZE=" + std::to_string(n));
  env.push_back("LOCAL_WORLD_SIZE=" + std::to_string(n));
  env.push_back("MASTER_ADDR=127.0.0.1");
  env.push_back("MASTER_PORT=" + std::to_string(port));
  if (!std::getenv("OMP_NUM_THREADS")) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    env.push_back("OMP_NUM_THREADS=" + std::to_string(std::max(1u, cores / static_cast<unsigned>(n))));
  }
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (std::string& s : v) out.push_back(&s[0]);
  out.push_back(nullptr);
  return out;
}

}  // namespace

std::vector<std::string> without_option(const std::vector<std::string>& argv, const std::string& name) {
  std::vector<std::string> out;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (argv[i] == name) {
      ++i;  // and its value
      continue;
    }
    if (argv[i].rfind(name + "=", 0) == 0) continue;
    out.push_back(argv[i]);
  }
  return out;
}

int launch_local_ranks(int n, const std::vector<std::string>& args) {
  const std::string exe = self_exe();
  const int port = find_free_port();
  std::fflush(stdout), std::fflush(stderr);
  struct sigaction sa{}, old_int{}, old_term{};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);
  g_signal = 0;

  std::vector<pid_t> pids(static_cast<size_t>(n), -1);
  std::vector<bool> running(static_cast<size_t>(n), false);
  auto signal_running = [&](int sig) {
    for (int r = 0; r < n; ++r)
      if (running[r]) ::kill(pids[r], sig);
  };
  for (int r = 0; r < n; ++r) {
    std::vector<std::string> argv = {exe};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string> env = child_env(r, n, port);
    std::vector<char*> cargv = c_strings(argv), cenv = c_strings(env);
    const int rc = ::posix_spawn(&pids[r], exe.c_str(), nullptr, nullptr, cargv.data(), cenv.data());
    if (rc != 0) {
      signal_running(SIGKILL);
      for (int q = 0; q < r; ++q) ::waitpid(pids[q], nullptr, 0);
      fail_runtime("--nproc: cannot start rank {} ({}): {}", r, exe, std::strerror(rc));
    }
    running[r] = true;
  }

  int live = n, failed_rank = -1, code = 0, forwarded = 0;
  Clock::time_point term_at{}, kill_at{};
  bool termed = false;
  while (live > 0) {
    int status = 0;
    const pid_t p = ::waitpid(-1, &status, WNOHANG);
    if (p > 0) {
      for (int r = 0; r < n; ++r) {
        if (pids[r] != p || !running[r]) continue;
        running[r] = false, --live;
        const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok && failed_rank < 0 && !forwarded) {
          failed_rank = r;
          code = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
          if (WIFEXITED(status))
            std::fprintf(stderr, "minipuzzle: rank %d (pid %d) exited with code %d%s\n", r, static_cast<int>(p), code,
                         live ? "; stopping the other ranks" : "");
          else
            std::fprintf(stderr, "minipuzzle: error: rank %d (pid %d) was killed by signal %d (%s)%s\n", r,
                         static_cast<int>(p), WTERMSIG(status), strsignal(WTERMSIG(status)),
                         live ? "; stopping the other ranks" : "");
          std::fflush(stderr);
          term_at = Clock::now() + std::chrono::seconds(3);
        }
      }
      continue;
    }
    if (p < 0 && errno == ECHILD) break;
    const int sig = g_signal;
    if (sig && !forwarded) {
      forwarded = sig;
      signal_running(sig);
      kill_at = Clock::now() + std::chrono::seconds(10);
    }
    const auto now = Clock::now();
    if (failed_rank >= 0 && !termed && now >= term_at) {
      termed = true;
      signal_running(SIGTERM);
      kill_at = now + std::chrono::seconds(5);
    }
    if (kill_at != Clock::time_point{} && now >= kill_at) signal_running(SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  if (forwarded) {
    std::fprintf(stderr, "minipuzzle: stopped by signal %d (%s), passed on to every rank\n", forwarded,
                 strsignal(forwarded));
    return 128 + forwarded;
  }
  return failed_rank >= 0 ? code : 0;
}

}  // namespace mp::dist
