#include "distill/dist/dist_env.h"

#include "common/error.h"

#include <cstdlib>
#include <string>

namespace mp::dist {
namespace {

// A whole number >= lo from variable `name`, or `fallback` when unset.
int64_t whole(const std::function<const char*(const char*)>& get, const char* name, int64_t fallback, int64_t lo) {
  const char* v = get(name);
  if (!v) return fallback;
  const std::string s = v;
  size_t used = 0;
  long long x = 0;
  try {
    x = std::stoll(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (s.empty() || used != s.size() || x < lo)
    fail_usage("{}: expected a whole number >= {}, got '{}'", name, lo, s);
  return x;
}

double positive(const std::function<const char*(const char*)>& get, const char* name, double fallback) {
  const char* v = get(name);
  if (!v) return fallback;
  const std::string s = v;
  size_t used = 0;
  double x = 0.0;
  try {
    x = std::stod(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (s.empty() || used != s.size() || !(x > 0.0)) fail_usage("{}: expected a number of seconds > 0, got '{}'", name, s);
  return x;
}

}  // namespace

DistEnv dist_env_from(const std::function<const char*(const char*)>& get) {
  DistEnv e;
  if (get("RANK")) {
    if (!get("WORLD_SIZE")) fail_usage("RANK is set but WORLD_SIZE is not; a launcher sets both");
    e.rank = whole(get, "RANK", 0, 0);
    e.world_size = whole(get, "WORLD_SIZE", 1, 1);
    e.local_rank = whole(get, "LOCAL_RANK", whole(get, "SLURM_LOCALID", e.rank, 0), 0);
  } else if (get("SLURM_PROCID") && get("SLURM_NTASKS")) {
    e.rank_var = "SLURM_PROCID", e.world_var = "SLURM_NTASKS";
    e.rank = whole(get, "SLURM_PROCID", 0, 0);
    e.world_size = whole(get, "SLURM_NTASKS", 1, 1);
    e.local_rank = whole(get, "LOCAL_RANK", whole(get, "SLURM_LOCALID", e.rank, 0), 0);
  } else if (get("WORLD_SIZE") && whole(get, "WORLD_SIZE", 1, 1) > 1) {
    fail_usage("WORLD_SIZE is {} but RANK is not set; a launcher sets both", get("WORLD_SIZE"));
  }
  if (e.rank >= e.world_size)
    fail_usage("{} {} is out of range for {} {} (expected 0..{})", e.rank_var, e.rank, e.world_var, e.world_size,
               e.world_size - 1);
  e.timeout_s = positive(get, "MP_DIST_TIMEOUT", e.timeout_s);
  e.heartbeat_timeout_s = positive(get, "MP_DIST_HEARTBEAT_TIMEOUT", e.heartbeat_timeout_s);
  e.bucket_bytes = whole(get, "MP_DIST_BUCKET_MB", 25, 1) << 20;
  e.check_every = whole(get, "MP_DIST_CHECK_EVERY", e.check_every, 0);
  if (const char* b = get("MP_DIST_BACKEND")) {
    e.backend = b;
    if (e.backend != "auto" && e.backend != "nccl" && e.backend != "gloo" && e.backend != "nccl-raw")
      fail_usage("MP_DIST_BACKEND: expected auto, nccl, gloo or nccl-raw, got '{}'", e.backend);
  }
  if (!e.distributed()) return e;
  const char* addr = get("MASTER_ADDR");
  if (!addr || !*addr)
    fail_usage("{} {} but MASTER_ADDR is not set; set it to rank 0's host (and MASTER_PORT to a free port)",
               e.world_var, e.world_size);
  e.master_addr = addr;
  if (!get("MASTER_PORT")) fail_usage("{} {} but MASTER_PORT is not set; set it to a free TCP port on rank 0's host",
                                      e.world_var, e.world_size);
  const int64_t port = whole(get, "MASTER_PORT", 0, 1);
  if (port > 65535) fail_usage("MASTER_PORT: expected a TCP port 1..65535, got {}", port);
  e.master_port = static_cast<int>(port);
  return e;
}

DistEnv dist_env_from_environment() {
  return dist_env_from([](const char* name) -> const char* { return std::getenv(name); });
}

}  // namespace mp::dist
