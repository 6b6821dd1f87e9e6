#!/usr/bin/env bash
# Data-parallel acceptance on a machine with 2 GPUs: the same `train` job (configs/dp-bench, a
# 260M-parameter hybrid, bf16, random init with a fixed seed, byte tokens of this repository's
# sources) with one process and with --nproc 2 at the same global batch. Prints both runs'
# tokens/s (median over steps after warm-up), the speed-up, and the largest loss-curve difference.
# The goal: a speed-up >= 1.8 and loss curves within bf16 noise.
#   scripts/gpu_dp.sh [STEPS [SEQ_LEN [MICRO_BATCH [GLOBAL_BATCH]]]]     (default 40 2048 4 16)
# Builds into build-gpu/ first (as scripts/gpu_run.sh does) unless SKIP_BUILD=1. Logs, both runs'
# metrics.jsonl and dp_summary.txt go to $OUT (default /tmp/mp_out).
set -u
# Device code for sm_90a (the SSD kernels' wgmma): LibTorch's CMake takes the architectures from
# TORCH_CUDA_ARCH_LIST (else from the card) and ignores CMAKE_CUDA_ARCHITECTURES.
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0a}
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/mp_out}
mkdir -p "$OUT"
steps=${1:-40} seq=${2:-2048} micro=${3:-4} global=${4:-16}
B=build-gpu
gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
if [ "$gpus" -lt 2 ]; then echo "gpu_dp: needs 2 GPUs, found $gpus"; exit 2; fi
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader | tee "$OUT/dp_summary.txt"
nvidia-smi topo -m 2>/dev/null | head -4 >>"$OUT/dp_summary.txt"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
  cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
    -DMP_DEPS_DIR="$PWD/deps" >"$OUT/dp_configure.log" 2>&1 &&
    cmake --build $B -j16 --target minipuzzle >"$OUT/dp_build.log" 2>&1
  rc=$?
  grep -E "minipuzzle: (NCCL|no NCCL|nvcc)" "$OUT/dp_configure.log" | tee -a "$OUT/dp_summary.txt"
  if [ $rc != 0 ]; then echo "gpu_dp: build failed (rc $rc)"; grep -E "error|FAILED" "$OUT/dp_build.log" | head -20; exit 1; fi
fi

w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
$B/minipuzzle data from-text model/*.cpp model/*.h prune/*.cpp distill/*.cpp distill/dist/*.cpp search/*.cpp \
  docs/*.md --output "$w/tok" >/dev/null || exit 1
job="train --config configs/dp-bench/config.json --data $w/tok --steps $steps --seq-len $seq --micro-batch $micro
     --global-batch $global --device cuda --dtype bf16 --lr 3e-4 --min-lr 3e-5 --warmup 5 --seed 7 --quiet"
echo "job: minipuzzle $job" | tr -s ' \n' ' ' | tee -a "$OUT/dp_summary.txt"; echo | tee -a "$OUT/dp_summary.txt"

$B/minipuzzle $job --output "$w/one" >"$OUT/dp_one.log" 2>&1
rc1=$?
$B/minipuzzle $job --output "$w/two" --nproc 2 >"$OUT/dp_two.log" 2>&1
rc2=$?
cp "$w/one/metrics.jsonl" "$OUT/dp_one_metrics.jsonl" 2>/dev/null
cp "$w/two/metrics.jsonl" "$OUT/dp_two_metrics.jsonl" 2>/dev/null
echo "exit codes: 1 GPU $rc1, 2 GPUs $rc2" | tee -a "$OUT/dp_summary.txt"
if [ $rc1 != 0 ] || [ $rc2 != 0 ]; then tail -5 "$OUT/dp_one.log" "$OUT/dp_two.log"; exit 1; fi

python3 - "$OUT/dp_one_metrics.jsonl" "$OUT/dp_two_metrics.jsonl" <<'PY' | tee -a "$OUT/dp_summary.txt"
import json, statistics, sys
def train(path):
    return [r for r in map(json.loads, open(path)) if r["type"] == "train"]
one, two = train(sys.argv[1]), train(sys.argv[2])
skip = min(5, len(one) // 4)  # warm-up steps (allocator, kernels) do not count
tps1 = statistics.median(r["tokens_per_s"] for r in one[skip:])
tps2 = statistics.median(r["tokens_per_s"] for r in two[skip:])
d = [abs(a["loss"] - b["loss"]) for a, b in zip(one, two)]
rel = [x / abs(a["loss"]) for x, a in zip(d, one)]
i = max(range(len(d)), key=d.__getitem__)
print(f"tokens/s (median of steps {skip + 1}..{len(one)}): 1 GPU {tps1:,.0f}   2 GPUs {tps2:,.0f}   "
      f"speed-up {tps2 / tps1:.2f}x (want >= 1.8)")
print(f"loss: step 1 {one[0]['loss']:.4f} / {two[0]['loss']:.4f}, step {len(one)} {one[-1]['loss']:.4f} / "
      f"{two[-1]['loss']:.4f}; max |diff| {d[i]:.2e} at step {i + 1} (relative {max(rel):.2e}; bf16 eps 7.8e-03)")
PY
