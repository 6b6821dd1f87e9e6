// `--nproc N` on `train` / `distill`: run N ranks of the same command on this host and wait.
//
// Each child is this executable (/proc/self/exe) with the same arguments minus --nproc and the
// launcher variables set: RANK = LOCAL_RANK = r, WORLD_SIZE = LOCAL_WORLD_SIZE = N,
// MASTER_ADDR = 127.0.0.1, MASTER_PORT = a port that was free a moment ago; OMP_NUM_THREADS =
// cores / N unless it is set already (the N processes share the cores).
// SIGINT / SIGTERM sent to the launcher go on to every child. When a child fails (a non-zero
// exit or a signal) the launcher prints one line naming its rank, gives the others a few seconds
// to stop on their own (they notice and say which rank went), then terminates the rest (SIGTERM,
// then SIGKILL) and returns that child's exit code (1 when a signal killed it).
#pragma once

#include <string>
#include <vector>

namespace mp::dist {

// args: the command line after the program name, without --nproc. Returns the exit code for
// the launcher: 0 when every rank succeeded, 128 + signal when it was interrupted.
int launch_local_ranks(int nproc, const std::vector<std::string>& args);

// argv without the option `name` and its value ("--nproc 2" and "--nproc=2" forms).
std::vector<std::string> without_option(const std::vector<std::string>& argv, const std::string& name);

}  // namespace mp::dist
