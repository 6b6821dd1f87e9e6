// The data-parallel plumbing without a GPU: launcher variables, rendezvous (and its refusals),
// the TCP all-reduce against a plain sum, the liveness monitor, and a lost or silent peer.
// Ranks are threads of this process talking over 127.0.0.1.
#include "common/error.h"
#include "distill/dist/control_channel.h"
#include "distill/dist/dist_env.h"
#include "distill/dist/local_launch.h"
#include "distill/dist/tcp_communicator.h"
#include "tests/dist_test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <thread>

namespace {

using mp::dist::ControlChannel;
using mp::dist::DistEnv;
using mp::dist::TcpCommunicator;
using mp::test::thread_rank_env;

DistEnv env_of(const std::map<std::string, std::string>& vars) {
  return mp::dist::dist_env_from([&](const char* k) -> const char* {
    auto it = vars.find(k);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

std::string usage_error(const std::map<std::string, std::string>& vars) {
  try {
    env_of(vars);
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.kind(), mp::ErrorKind::Usage) << e.what();
    return e.what();
  }
  return "no error";
}

// Runs f(rank) for every rank on its own thread; returns each rank's error text ("" if none).
std::vector<std::string> run_ranks(int64_t world, const std::function<void(int64_t)>& f) {
  std::vector<std::future<std::string>> fs;
  for (int64_t r = 0; r < world; ++r)
    fs.push_back(std::async(std::launch::async, [&, r]() -> std::string {
      try {
        f(r);
      } catch (const std::exception& e) {
        return e.what();
      }
      return "";
    }));
  std::vector<std::string> out;
  for (auto& x : fs) out.push_back(x.get());
  return out;
}

TEST(DistEnv, ReadsLauncherVariables) {
  EXPECT_FALSE(env_of({}).distributed());
  EXPECT_FALSE(env_of({{"RANK", "0"}, {"WORLD_SIZE", "1"}}).distributed());
  DistEnv e = env_of({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "29500"},
                      {"MP_DIST_TIMEOUT", "2.5"}, {"MP_DIST_BUCKET_MB", "4"}});
  EXPECT_EQ(e.rank, 1);
  EXPECT_EQ(e.world_size, 2);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.master_addr, "node7");
  EXPECT_EQ(e.master_port, 29500);
  EXPECT_EQ(e.timeout_s, 2.5);
  EXPECT_EQ(e.bucket_bytes, 4 << 20);
  e = env_of({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"}, {"MASTER_ADDR", "n0"},
              {"MASTER_PORT", "6000"}});
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.rank_var, "SLURM_PROCID");
}

TEST(DistEnv, BadVariablesAreUsageErrorsNamingThem) {
  const std::map<std::string, std::string> m = {{"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}};
  auto with = [&](std::map<std::string, std::string> v) {
    v.insert(m.begin(), m.end());
    return v;
  };
  EXPECT_EQ(usage_error(with({{"RANK", "5"}, {"WORLD_SIZE", "2"}})),
            "RANK 5 is out of range for WORLD_SIZE 2 (expected 0..1)");
  EXPECT_EQ(usage_error(with({{"RANK", "one"}, {"WORLD_SIZE", "2"}})), "RANK: expected a whole number >= 0, got 'one'");
  EXPECT_EQ(usage_error(with({{"RANK", "0"}, {"WORLD_SIZE", "0"}})), "WORLD_SIZE: expected a whole number >= 1, got '0'");
  EXPECT_NE(usage_error({{"RANK", "0"}, {"WORLD_SIZE", "2"}}).find("MASTER_ADDR is not set"), std::string::npos);
  EXPECT_NE(usage_error({{"RANK", "0"}}).find("WORLD_SIZE is not"), std::string::npos);
  EXPECT_NE(usage_error(with({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}})).find("1..65535"),
            std::string::npos);
  EXPECT_NE(usage_error({{"MP_DIST_BACKEND", "mpi"}}).find("MP_DIST_BACKEND"), std::string::npos);
  EXPECT_NE(usage_error({{"MP_DIST_TIMEOUT", "0"}}).find("MP_DIST_TIMEOUT"), std::string::npos);
}

TEST(DistEnv, NprocIsRemovedFromTheChildCommandLine) {
  using V = std::vector<std::string>;
  EXPECT_EQ(mp::dist::without_option(V{"train", "--nproc", "2", "--steps", "3"}, "--nproc"), (V{"train", "--steps", "3"}));
  EXPECT_EQ(mp::dist::without_option(V{"train", "--nproc=4", "--quiet"}, "--nproc"), (V{"train", "--quiet"}));
}

TEST(DistTcp, AllReduceEqualsThePlainSumOnEveryRank) {
  const int64_t W = 3;
  const int port = mp::dist::find_free_port();
  at::manual_seed(3);
  std::vector<std::vector<at::Tensor>> in(W);  // [rank][op]
  for (int64_t r = 0; r < W; ++r)
    in[r] = {at::randn({1000}), at::randn({77}).to(at::kBFloat16), at::randn({5}, at::kDouble), at::randn({0})};
  std::vector<at::Tensor> plain;
  for (size_t k = 0; k < in[0].size(); ++k) {
    at::Tensor s = in[0][k].clone();
    for (int64_t r = 1; r < W; ++r) s.add_(in[r][k]);
    plain.push_back(s);
  }
  std::vector<std::vector<at::Tensor>> out(W);
  std::vector<std::vector<double>> small(W);
  std::vector<std::string> blobs(W);
  auto errors = run_ranks(W, [&](int64_t r) {
    ControlChannel ch(thread_rank_env(r, W, port), 42);
    blobs[r] = ch.broadcast(r == 0 ? std::string("id\0from rank 0", 15) : std::string());
    TcpCommunicator comm(r, W, ch.data_peers(), 60.0, [&](int64_t q) { return ch.pid_of(q); });
    std::vector<std::shared_ptr<mp::dist::CommWork>> works;
    for (const at::Tensor& t : in[r]) out[r].push_back(t.clone()), works.push_back(comm.start_all_reduce_sum(out[r].back()));
    for (auto& w : works) w->wait();  // all four were in flight together
    small[r] = {1.0 * r, 0.5};
    comm.all_reduce_sum(small[r]);
    ch.finish();
  });
  for (int64_t r = 0; r < W; ++r) {
    EXPECT_EQ(errors[r], "") << "rank " << r;
    ASSERT_EQ(out[r].size(), plain.size());
    for (size_t k = 0; k < plain.size(); ++k) EXPECT_TRUE(at::equal(out[r][k], plain[k])) << "rank " << r << " op " << k;
    EXPECT_EQ(small[r], (std::vector<double>{3.0, 1.5}));
    EXPECT_EQ(blobs[r], std::string("id\0from rank 0", 15));
  }
}

TEST(DistTcp, RendezvousRefusesMismatchesOnEveryRank) {
  int port = mp::dist::find_free_port();
  auto errors = run_ranks(2, [&](int64_t r) { ControlChannel ch(thread_rank_env(r, r == 0 ? 2 : 3, port, 20), 1); });
  for (const std::string& e : errors) {
    EXPECT_NE(e.find("rank 1 (pid"), std::string::npos) << e;
    EXPECT_NE(e.find("world size 3 but rank 0 with 2"), std::string::npos) << e;
  }
  port = mp::dist::find_free_port();
  errors = run_ranks(2, [&](int64_t r) { ControlChannel ch(thread_rank_env(r, 2, port, 20), r == 0 ? 1 : 2); });
  for (const std::string& e : errors) EXPECT_NE(e.find("other training settings"), std::string::npos) << e;
}

TEST(DistTcp, MissingRanksTimeOutWithAClearMessage) {
  const int port = mp::dist::find_free_port();
  try {
    ControlChannel ch(thread_rank_env(0, 3, port, 0.3), 1);
    ADD_FAILURE() << "rendezvous with nobody else succeeded";
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.kind(), mp::ErrorKind::Runtime);
    EXPECT_NE(std::string(e.what()).find("rank(s) 1, 2 did not join"), std::string::npos) << e.what();
  }
  try {
    ControlChannel ch(thread_rank_env(1, 2, port, 0.3), 1);
    ADD_FAILURE() << "rendezvous without rank 0 succeeded";
  } catch (const mp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("could not reach rank 0 at 127.0.0.1"), std::string::npos) << e.what();
  }
}

// Rank 1 goes away (its channel closes without finish) or reports a failure: rank 0's monitor
// says so, naming the rank, its pid and the step.
TEST(DistTcp, MonitorNoticesALostOrFailingRank) {
  for (const bool fails : {false, true}) {
    const int port = mp::dist::find_free_port();
    std::promise<std::pair<std::string, int>> seen;
    std::shared_future<std::pair<std::string, int>> f = seen.get_future().share();
    auto errors = run_ranks(2, [&](int64_t r) {
      ControlChannel ch(thread_rank_env(r, 2, port), 1);
      if (r == 0) {
        ch.set_steps_done(7);
        ch.start_monitor([&](const std::string& line, int code) { seen.set_value({line, code}); });
        f.wait_for(std::chrono::seconds(20));
      } else if (fails) {
        ch.set_steps_done(7);
        ch.announce_failure(2);
      }
    });
    ASSERT_EQ(f.wait_for(std::chrono::seconds(20)), std::future_status::ready);
    auto [line, code] = f.get();
    if (fails) {
      EXPECT_EQ(line, "rank 1 stopped with an error (its message says why); stopping");
      EXPECT_EQ(code, 2);
    } else {
      EXPECT_NE(line.find("rank 1 (pid "), std::string::npos) << line;
      EXPECT_NE(line.find(") died or lost connection after step 7; stopping"), std::string::npos) << line;
      EXPECT_EQ(code, 1);
    }
  }
}

TEST(DistTcp, OrderlyFinishWithMonitorsIsNotALoss) {
  const int port = mp::dist::find_free_port();
  std::atomic<int> losses{0};
  auto errors = run_ranks(3, [&](int64_t r) {
    ControlChannel ch(thread_rank_env(r, 3, port), 1);
    ch.start_monitor([&](const std::string&, int) { ++losses; });
    std::this_thread::sleep_for(std::chrono::milliseconds(50 * r));
    ch.finish();
  });
  for (const std::string& e : errors) EXPECT_EQ(e, "");
  EXPECT_EQ(losses.load(), 0);
}

TEST(DistTcp, AllReduceFailsClearlyWhenAPeerIsGoneOrSilent) {
  for (const bool silent : {false, true}) {
    const int port = mp::dist::find_free_port();
    std::string error;
    run_ranks(2, [&](int64_t r) {
      ControlChannel ch(thread_rank_env(r, 2, port), 1);
      if (r == 1) {
        if (silent) std::this_thread::sleep_for(std::chrono::seconds(2));
        return;  // gone: its sockets close
      }
      TcpCommunicator comm(0, 2, ch.data_peers(), silent ? 0.3 : 60.0, [&](int64_t q) { return ch.pid_of(q); });
      at::Tensor x = at::ones({10});
      try {
        comm.start_all_reduce_sum(x)->wait();
      } catch (const mp::Error& e) {
        error = e.what();
      }
    });
    if (silent) EXPECT_NE(error.find("made no progress for 0.3 s in an all-reduce (MP_DIST_TIMEOUT)"), std::string::npos) << error;
    else EXPECT_NE(error.find("died or lost connection"), std::string::npos) << error;
    EXPECT_NE(error.find("rank 1 (pid "), std::string::npos) << error;
  }
}

}  // namespace
