// Where this process stands in a data-parallel job, read from the launcher's environment.
//
// torchrun / Slurm conventions: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT. When RANK
// is absent, SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID stand in for RANK / WORLD_SIZE /
// LOCAL_RANK. LOCAL_RANK defaults to SLURM_LOCALID, else RANK (one host). No variables, or a
// world size of 1, means a single process: no store, no process group.
// Our own knobs (all optional):
//   MP_DIST_TIMEOUT      seconds to wait for the other ranks at start-up and for any one
//                        collective (default 300)
//   MP_DIST_HEARTBEAT_TIMEOUT  seconds without a heartbeat after which a rank counts as lost
//                        (default 5; a dead process on the same host is noticed at once)
//   MP_DIST_BUCKET_MB    gradient bucket size in MiB (default 25)
//   MP_DIST_CHECK_EVERY  compare a weight checksum across ranks every N steps (default 100; 0 off)
//   MP_DIST_BACKEND      auto (c10d's NCCL on CUDA, Gloo on CPU), nccl, gloo, or nccl-raw (NCCL
//                        called directly, without c10d)
// Invariants: a parsed DistEnv has 0 <= rank < world_size, local_rank >= 0, and, when
// world_size > 1, a master address and a port in 1..65535. Anything else is a usage error naming
// the variable, its value and what was expected (exit 2).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace mp::dist {

struct DistEnv {
  int64_t rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr;
  int master_port = 0;
  double timeout_s = 300.0;
  double heartbeat_timeout_s = 5.0;
  int64_t bucket_bytes = int64_t{25} << 20;
  int64_t check_every = 100;
  std::string backend = "auto";
  std::string rank_var = "RANK", world_var = "WORLD_SIZE";  // where rank and world size came from
  bool distributed() const { return world_size > 1; }
};

// `get` returns the value of a variable or nullptr (tests pass a map; the CLI passes getenv).
DistEnv dist_env_from(const std::function<const char*(const char*)>& get);
DistEnv dist_env_from_environment();

}  // namespace mp::dist
