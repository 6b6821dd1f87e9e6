#!/usr/bin/env bash
# The CUDA kernels on the GPU machine in one command: time Triton's SSD at Nemotron-H shapes
# while building against the torch's LibTorch (CUDA), then run the CUDA kernel tests, time ours and
# our RMSNorm against the LibTorch ops it replaces, print short tables, then (with Nsight Compute)
# the SSD's per-kernel times at 56B. About 7-8 minutes on a fresh machine.
#   scripts/gpu_kernels.sh [--quick]        results under $OUT (default /tmp/mp_out)
# $OUT gets seven files (few, so that they are quick to copy back): the JSON lines of each
# benchmark, the table, the per-kernel times, a summary, and every log in logs.tar.gz.
# Needs deps/ (scripts/bundle_deps.sh) and third_party_ref/mamba (public state-spaces/mamba
# checkout, git-ignored) carried along.
set -u
# Device code for sm_90a (the SSD kernels' wgmma): LibTorch's CMake takes the architectures from
# TORCH_CUDA_ARCH_LIST (else from the card) and ignores CMAKE_CUDA_ARCHITECTURES.
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0a}
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/mp_out}
LOGS=$(mktemp -d)
mkdir -p "$OUT"
trap 'tar -czf "$OUT/logs.tar.gz" -C "$LOGS" . 2>/dev/null' EXIT
Q=${1:-}
B=build-gpu
card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
echo "card: ${card:-none}" | tee "$OUT/kernels_summary.txt"
# Triton's reference first, in the background from the start: on a fresh machine it compiles and
# autotunes every shape (~300 s). Our build runs meanwhile at the lowest CPU priority (so that
# Triton's launches are not starved while it times), and nothing else uses the GPU until it ends.
t0=$(date +%s)
timeout ${TRITON_TIMEOUT:-480} python3 bench/bench_ssd_triton.py --out "$OUT/bench_ssd_triton.jsonl" $Q \
  >"$LOGS/bench_triton.log" 2>&1 &
triton_pid=$!
prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  -DMP_DEPS_DIR="$PWD/deps" >"$LOGS/configure.log" 2>&1 &&
  nice -n 19 cmake --build $B -j16 --target mp_tests bench_ssd bench_norm >"$LOGS/build.log" 2>&1
rc=$?
echo "build rc=$rc in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/kernels_summary.txt"
wait $triton_pid
echo "triton rc=$? after $(( $(date +%s) - t0 )) s" | tee -a "$OUT/kernels_summary.txt"
tail -3 "$LOGS/bench_triton.log"
if [ $rc -ne 0 ]; then grep -E "error|FAILED" "$LOGS/build.log" | head -30; exit 1; fi
grep -E "spill|stack frame" "$LOGS/build.log" | grep -v " 0 bytes" | head -5
t0=$(date +%s)
$B/tests/mp_tests --gtest_filter='*Cuda*' >"$LOGS/cuda_tests.log" 2>&1
echo "cuda tests rc=$? in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/kernels_summary.txt"
grep -E "^\[  (PASSED|FAILED|SKIPPED) |Failure|rel_err|Which is" "$LOGS/cuda_tests.log" | head -40
$B/bench/bench_ssd --out "$OUT/bench_ssd.jsonl" $Q >"$LOGS/bench_ssd.log" 2>&1
echo "bench_ssd rc=$?" | tee -a "$OUT/kernels_summary.txt"
$B/bench/bench_norm --out "$OUT/bench_norm.jsonl" >"$LOGS/bench_norm.log" 2>&1
echo "bench_norm rc=$?" | tee -a "$OUT/kernels_summary.txt"
cat "$LOGS/bench_ssd.log" "$LOGS/bench_norm.log"
python3 bench/ssd_table.py "$OUT/bench_ssd.jsonl" "$OUT/bench_ssd_triton.jsonl" | tee "$OUT/kernels_table.txt"
# Per-kernel times and warp instructions at 56B, b = 1, chunk 256 (one forward+backward, at the
# card's own clocks), where Nsight Compute is installed.
if command -v ncu >/dev/null; then
  ncu --clock-control none --metrics gpu__time_duration.sum,smsp__inst_executed.sum -k regex:ssd_ --csv \
    $B/bench/bench_ssd --only 56B:1:256 --profile-once >"$LOGS/ncu_56b.csv" 2>"$LOGS/ncu_56b.log"
  python3 scripts/ncu_times.py "$LOGS/ncu_56b.csv" | tee "$OUT/ncu_56b.txt"
fi
