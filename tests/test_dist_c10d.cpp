// Data parallelism's plumbing without a GPU: launcher variables; joining through c10d's TCPStore
// (and its refusals); Gloo collectives at 2 and 4 ranks against sums computed here; the liveness
// monitor; a peer that is gone or silent; abort. Ranks are threads of this process, each with its
// own store connection and process group, talking over 127.0.0.1.
#include "common/error.h"
#include "distill/dist/c10d_communicator.h"
#include "distill/dist/dist_env.h"
#include "distill/dist/local_launch.h"
#include "distill/dist/membership.h"
#include "distill/dist/net.h"
#include "tests/dist_test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <thread>

namespace {

using mp::dist::DistEnv;
using mp::dist::Membership;
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
                      {"MP_DIST_TIMEOUT", "2.5"}, {"MP_DIST_BUCKET_MB", "4"}, {"MP_DIST_HEARTBEAT_TIMEOUT", "7"},
                      {"MP_DIST_BACKEND", "gloo"}});
  EXPECT_EQ(e.rank, 1);
  EXPECT_EQ(e.world_size, 2);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.master_addr, "node7");
  EXPECT_EQ(e.master_port, 29500);
  EXPECT_EQ(e.timeout_s, 2.5);
  EXPECT_EQ(e.heartbeat_timeout_s, 7.0);
  EXPECT_EQ(e.bucket_bytes, 4 << 20);
  EXPECT_EQ(e.backend, "gloo");
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
  EXPECT_EQ(usage_error({{"MP_DIST_BACKEND", "tcp"}}), "MP_DIST_BACKEND: expected auto, nccl, gloo or nccl-raw, got 'tcp'");
  EXPECT_NE(usage_error({{"MP_DIST_TIMEOUT", "0"}}).find("MP_DIST_TIMEOUT"), std::string::npos);
  EXPECT_NE(usage_error({{"MP_DIST_HEARTBEAT_TIMEOUT", "-1"}}).find("MP_DIST_HEARTBEAT_TIMEOUT"), std::string::npos);
}

TEST(DistEnv, NprocIsRemovedFromTheChildCommandLine) {
  using V = std::vector<std::string>;
  EXPECT_EQ(mp::dist::without_option(V{"train", "--nproc", "2", "--steps", "3"}, "--nproc"), (V{"train", "--steps", "3"}));
  EXPECT_EQ(mp::dist::without_option(V{"train", "--nproc=4", "--quiet"}, "--nproc"), (V{"train", "--quiet"}));
}

// Every collective of the Communicator interface through Gloo, all in flight together, against
// sums and copies computed here. Integer values make every summation order exact, so the results
// must equal the reference bit for bit; random values check that every rank gets the same bits.
void expect_collectives_match_reference(int64_t W) {
  const int port = mp::dist::find_free_port();
  const int64_t n = 37;
  at::manual_seed(11 + W);
  std::vector<std::vector<at::Tensor>> in(W);  // [rank][k]
  for (int64_t r = 0; r < W; ++r)
    in[r] = {at::randint(-1000, 1000, {1000}).to(at::kFloat), at::randint(-30, 30, {77}).to(at::kBFloat16),
             at::randint(-1000, 1000, {5}).to(at::kDouble), at::randn({0}), at::randn({4096})};
  std::vector<at::Tensor> sum;
  for (size_t k = 0; k < in[0].size(); ++k) {
    at::Tensor s = in[0][k].clone();
    for (int64_t r = 1; r < W; ++r) s.add_(in[r][k]);
    sum.push_back(s);
  }
  std::vector<at::Tensor> gather_in, scatter_in, bcast(W);
  for (int64_t r = 0; r < W; ++r) {
    gather_in.push_back(at::randn({n}).to(r % 2 ? at::kBFloat16 : at::kFloat).to(at::kFloat));
    scatter_in.push_back(at::randint(-100, 100, {W * n}).to(at::kFloat));
    bcast[r] = at::randn({n}).to(at::kBFloat16);
  }
  at::Tensor scatter_sum = scatter_in[0].clone();
  for (int64_t r = 1; r < W; ++r) scatter_sum.add_(scatter_in[r]);

  std::vector<std::vector<at::Tensor>> out(W);
  std::vector<at::Tensor> gathered(W), scattered(W), bf16_gathered(W), received(W);
  std::vector<std::vector<double>> small(W);
  std::vector<std::string> names(W);
  auto errors = run_ranks(W, [&](int64_t r) {
    Membership m(thread_rank_env(r, W, port), 42);
    auto comm = mp::dist::make_c10d_communicator("gloo", m, at::kCPU);
    names[r] = comm->name();
    std::vector<std::shared_ptr<mp::dist::CommWork>> works;
    for (const at::Tensor& t : in[r]) out[r].push_back(t.clone()), works.push_back(comm->start_all_reduce_sum(out[r].back()));
    gathered[r] = at::empty({W * n});
    works.push_back(comm->start_all_gather(gathered[r], gather_in[r]));
    bf16_gathered[r] = at::empty({W * n}, at::kBFloat16);
    works.push_back(comm->start_all_gather(bf16_gathered[r], gather_in[r].to(at::kBFloat16)));
    scattered[r] = at::empty({n});
    works.push_back(comm->start_reduce_scatter_sum(scattered[r], scatter_in[r]));
    received[r] = bcast[r].clone();
    works.push_back(comm->start_broadcast(received[r], W - 1));
    for (auto& w : works) w->wait();
    small[r] = {1.0 * r, 0.5};
    comm->all_reduce_sum(small[r]);
    comm->finish();
    m.finish();
  });
  const at::Tensor gathered_ref = at::cat(gather_in);
  for (int64_t r = 0; r < W; ++r) {
    ASSERT_EQ(errors[r], "") << "rank " << r;
    EXPECT_EQ(names[r], "gloo");
    for (size_t k = 0; k + 1 < sum.size(); ++k) EXPECT_TRUE(at::equal(out[r][k], sum[k])) << "rank " << r << " op " << k;
    EXPECT_TRUE(at::equal(out[r].back(), out[0].back())) << "rank " << r << ": other bits than rank 0";
    EXPECT_TRUE(at::allclose(out[r].back(), sum.back(), 1e-5, 1e-5)) << "rank " << r;
    EXPECT_TRUE(at::equal(gathered[r], gathered_ref)) << "rank " << r;
    EXPECT_TRUE(at::equal(bf16_gathered[r], gathered_ref.to(at::kBFloat16))) << "rank " << r;
    EXPECT_TRUE(at::equal(scattered[r], scatter_sum.narrow(0, r * n, n))) << "rank " << r;
    EXPECT_TRUE(at::equal(received[r], bcast[W - 1])) << "rank " << r;
    EXPECT_EQ(small[r], (std::vector<double>{W * (W - 1) / 2.0, 0.5 * W}));
  }
}

TEST(DistC10d, CollectivesMatchAReferenceAtTwoRanks) {
  MP_SKIP_WITHOUT_GLOO();
  expect_collectives_match_reference(2);
}
TEST(DistC10d, CollectivesMatchAReferenceAtFourRanks) {
  MP_SKIP_WITHOUT_GLOO();
  expect_collectives_match_reference(4);
}

TEST(DistC10d, BadShapesAreClearErrors) {
  MP_SKIP_WITHOUT_GLOO();
  const int port = mp::dist::find_free_port();
  auto errors = run_ranks(2, [&](int64_t r) {
    Membership m(thread_rank_env(r, 2, port), 1);
    auto comm = mp::dist::make_c10d_communicator("gloo", m, at::kCPU);
    at::Tensor a = at::zeros({3}), b = at::zeros({5});
    if (r == 0) comm->start_all_gather(b, a);
    else comm->start_all_reduce_sum(at::zeros({2, 2}));
  });
  EXPECT_EQ(errors[0], "gloo all-gather: the output must hold 2 x the input's 3 elements of its dtype (got 5)");
  EXPECT_EQ(errors[1], "gloo all-reduce: expected a 1-D contiguous tensor on cpu");
}

TEST(DistC10d, JoiningRefusesMismatchesOnEveryRank) {
  int port = mp::dist::find_free_port();
  auto errors = run_ranks(2, [&](int64_t r) { Membership m(thread_rank_env(r, r == 0 ? 2 : 3, port, 20), 1); });
  for (const std::string& e : errors) {
    EXPECT_NE(e.find("rank 1 (pid"), std::string::npos) << e;
    EXPECT_NE(e.find("world size 3 but rank 0 with 2"), std::string::npos) << e;
  }
  port = mp::dist::find_free_port();
  errors = run_ranks(2, [&](int64_t r) { Membership m(thread_rank_env(r, 2, port, 20), r == 0 ? 1 : 2); });
  for (const std::string& e : errors) EXPECT_NE(e.find("other training settings"), std::string::npos) << e;
  port = mp::dist::find_free_port();
  errors = run_ranks(3, [&](int64_t r) { Membership m(thread_rank_env(r == 2 ? 1 : r, 3, port, 2), 1); });
  int twice = 0;
  for (const std::string& e : errors) twice += e.find("two processes say they are rank 1") != std::string::npos;
  EXPECT_GE(twice, 1) << errors[0] << " | " << errors[1] << " | " << errors[2];
}

TEST(DistC10d, MissingRanksTimeOutWithAClearMessage) {
  const int port = mp::dist::find_free_port();
  try {
    Membership m(thread_rank_env(0, 3, port, 0.3), 1);
    ADD_FAILURE() << "joining with nobody else succeeded";
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.kind(), mp::ErrorKind::Runtime);
    EXPECT_NE(std::string(e.what()).find("rank(s) 1, 2 did not join"), std::string::npos) << e.what();
  }
  try {
    Membership m(thread_rank_env(1, 2, port, 0.3), 1);
    ADD_FAILURE() << "joining without rank 0 succeeded";
  } catch (const mp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("could not reach rank 0 at 127.0.0.1"), std::string::npos) << e.what();
  }
}

// Rank 1 goes away (its heartbeats stop) or reports a failure: rank 0's monitor says so, naming
// the rank, its pid and the step.
TEST(DistC10d, MonitorNoticesALostOrFailingRank) {
  for (const bool fails : {false, true}) {
    const int port = mp::dist::find_free_port();
    std::promise<std::pair<std::string, int>> seen;
    std::shared_future<std::pair<std::string, int>> f = seen.get_future().share();
    auto errors = run_ranks(2, [&](int64_t r) {
      DistEnv env = thread_rank_env(r, 2, port);
      env.heartbeat_timeout_s = 0.5;
      Membership m(env, 1);
      if (r == 0) {
        m.set_steps_done(7);
        m.start_monitor([&](const std::string& line, int code) { seen.set_value({line, code}); });
        f.wait_for(std::chrono::seconds(20));
      } else if (fails) {
        m.set_steps_done(7);
        m.announce_failure(2);
      }
    });
    for (const std::string& e : errors) EXPECT_EQ(e, "");
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

TEST(DistC10d, OrderlyFinishWithMonitorsIsNotALoss) {
  const int port = mp::dist::find_free_port();
  std::atomic<int> losses{0};
  auto errors = run_ranks(3, [&](int64_t r) {
    Membership m(thread_rank_env(r, 3, port), 1);
    m.start_monitor([&](const std::string&, int) { ++losses; });
    std::this_thread::sleep_for(std::chrono::milliseconds(300 * r));
    m.finish();
  });
  for (const std::string& e : errors) EXPECT_EQ(e, "");
  EXPECT_EQ(losses.load(), 0);
}

// A peer that is gone (its process group closed) makes the collective fail at once; one that is
// silent makes it fail at the timeout; abort() ends a wait at once.
TEST(DistC10d, CollectivesFailClearlyWhenAPeerIsGoneOrSilent) {
  MP_SKIP_WITHOUT_GLOO();
  for (const char* how : {"gone", "silent", "abort"}) {
    const int port = mp::dist::find_free_port();
    std::string error;
    std::promise<void> rank0_done;
    auto done = rank0_done.get_future().share();
    const std::string mode = how;
    auto errors = run_ranks(2, [&](int64_t r) {
      Membership m(thread_rank_env(r, 2, port, mode == "silent" ? 1.0 : 60.0), 1);
      auto comm = mp::dist::make_c10d_communicator("gloo", m, at::kCPU);
      if (r == 1) {
        if (mode != "gone") done.wait_for(std::chrono::seconds(30));
        return;
      }
      at::Tensor x = at::ones({10});
      std::thread aborter;
      if (mode == "abort")
        aborter = std::thread([&] {
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          comm->abort();
        });
      try {
        comm->start_all_reduce_sum(x)->wait();
      } catch (const mp::Error& e) {
        error = e.what();
      }
      if (aborter.joinable()) aborter.join();
      rank0_done.set_value();
    });
    for (const std::string& e : errors) EXPECT_EQ(e, "") << how;
    if (mode == "abort") EXPECT_EQ(error, "gloo all-reduce was aborted");
    else EXPECT_EQ(error.rfind("gloo all-reduce failed: ", 0), 0u) << how << ": " << error;
    std::printf("[ observed ] %s: %s\n", how, error.c_str());
  }
}

}  // namespace
