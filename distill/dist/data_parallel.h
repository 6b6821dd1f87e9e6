// One rank of a data-parallel `train` / `distill` job: join the other ranks, train with
// gradients averaged over ranks, end together.
//
// Every rank holds a full replica and takes its own rows of each micro-batch (trainer.h). The
// gradients of a step are averaged over ranks in buckets whose all-reduce overlaps the backward
// (grad_buckets.h); the step's loss, KL and CE are averaged too. Every rank then clips, checks
// for NaN and updates on identical numbers, so the replicas stay identical; an exact weight
// checksum is compared across ranks at the first step and every MP_DIST_CHECK_EVERY steps
// (runtime error on a mismatch). Only rank 0 writes files, evaluates and prints; the others'
// error messages start with "rank N: ".
// Collectives: LibTorch's c10d, ProcessGroupNCCL for CUDA devices (rank r uses cuda:LOCAL_RANK
// when --device is "cuda") and ProcessGroupGloo for the CPU, joined through c10d's TCPStore
// (membership.h; dist_env.h: MP_DIST_BACKEND).
// Failure: when a rank dies or stops with an error, every other rank prints one line naming it
// and the step ("rank 1 (pid 4242) died or lost connection after step 2; stopping"), aborts its
// collectives and exits: code 1, or the failing rank's own code when it reported one. Nobody
// waits in a collective for a rank that is gone.
// Test-only: MP_TEST_DIE=R:S makes rank R kill itself (SIGKILL) when step S (1-based) begins.
#pragma once

#include "distill/dist/dist_env.h"
#include "distill/train_config.h"
#include "distill/trainer.h"

#include <cstdint>

namespace mp::dist {

// Requires env.distributed(). Usage / bad-input errors (settings, batch arithmetic, launcher
// variables) come before any connection is made.
TrainSummary run_data_parallel(TrainConfig config, const DistEnv& env, TrainHooks hooks = {});

// A hash of the settings that must agree across ranks (those that shape the result, and dtype).
uint64_t job_fingerprint(const TrainConfig& config);

}  // namespace mp::dist
