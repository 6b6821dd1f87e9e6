#!/usr/bin/env bash
# A kernel change against a reference tree of the project, in one call on one card (the GPU
# machine): both trees built here, the CUDA tests on this one, `bench_ssd --auto-only` of the
# two interleaved (A B A B A B, so drift hits both), then Nsight Compute's per-kernel times at 56B,
# b = 1, chunk 256 for each. Prints a table of the medians per shape; five files under $OUT.
#   Locally:  git archive <rev> --prefix=ab_ref/ | tar -x       (ab_ref/ is git-ignored)
#   There:    scripts/gpu_ab.sh [ab_ref]       (carry deps and ab_ref)
# Costs two builds (about 4 minutes cold) plus a minute of benchmarks.
set -u
# Device code for sm_90a (the SSD kernels' wgmma): LibTorch's CMake takes the architectures from
# TORCH_CUDA_ARCH_LIST (else from the card) and ignores CMAKE_CUDA_ARCHITECTURES.
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0a}
cd "$(dirname "$0")/.."
REF=${1:-ab_ref}
OUT=${OUT:-/tmp/mp_out}
LOGS=$(mktemp -d)  # logs and CSVs, as one tarball in $OUT (the device tool returns eight files)
mkdir -p "$OUT"
trap 'tar -czf "$OUT/logs.tar.gz" -C "$LOGS" . 2>/dev/null' EXIT
[ -f "$REF/CMakeLists.txt" ] || { echo "gpu_ab.sh: no project tree at $REF (expected its CMakeLists.txt)"; exit 2; }
prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
build() {  # source dir, build dir, targets...
  local src=$1 dir=$2; shift 2
  cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
    -DMP_DEPS_DIR="$PWD/deps" >"$LOGS/configure-$(basename "$dir").log" 2>&1 &&
    cmake --build "$dir" -j16 --target "$@" >"$LOGS/build-$(basename "$dir").log" 2>&1
}
t0=$(date +%s)
build . build-gpu mp_tests bench_ssd || { tail -20 "$LOGS/build-build-gpu.log"; exit 1; }
build "$REF" build-ref bench_ssd || { tail -20 "$LOGS/build-build-ref.log"; exit 1; }
echo "card: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1); builds $(( $(date +%s) - t0 )) s"
build-gpu/tests/mp_tests --gtest_filter='*Cuda*:*Ssd*:*Conv*:*Norm*:*Parity*:*Decode*:*Recompute*' \
  >"$LOGS/tests.log" 2>&1
echo "tests rc=$?: $(grep -E '^\[  (PASSED|FAILED) ' "$LOGS/tests.log" | tr '\n' ' ')"
: >"$OUT/ab_a.jsonl"; : >"$OUT/ab_b.jsonl"
for round in 1 2 3; do
  build-gpu/bench/bench_ssd --auto-only --out "$LOGS/a$round.jsonl" >/dev/null 2>&1 && cat "$LOGS/a$round.jsonl" >>"$OUT/ab_a.jsonl"
  build-ref/bench/bench_ssd --auto-only --out "$LOGS/b$round.jsonl" >/dev/null 2>&1 && cat "$LOGS/b$round.jsonl" >>"$OUT/ab_b.jsonl"
  rm -f "$LOGS/a$round.jsonl" "$LOGS/b$round.jsonl"
done
python3 scripts/ab_table.py "$OUT/ab_a.jsonl" "$OUT/ab_b.jsonl" | tee "$OUT/ab_table.txt"
if command -v ncu >/dev/null; then
  for side in gpu ref; do
    ncu --clock-control none --metrics gpu__time_duration.sum,smsp__inst_executed.sum -k regex:ssd_ --csv \
      build-$side/bench/bench_ssd --only 56B:1:256 --profile-once >"$LOGS/ncu_$side.csv" 2>/dev/null
    echo "== Nsight Compute, $side (56B b=1 chunk 256: forward, backward, then both with kept states)"
    python3 scripts/ncu_times.py "$LOGS/ncu_$side.csv"
  done | tee "$OUT/ab_ncu.txt"
fi
