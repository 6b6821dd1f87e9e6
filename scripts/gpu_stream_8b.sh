#!/usr/bin/env bash
# A scale check: score an 8B-shaped checkpoint (random weights, bf16, ~16 GB on disk) with
# --stream on the GPU and report the peak GPU memory against the weight size (goal: below a
# quarter). Run from the repo root after a build:  scripts/gpu_stream_8b.sh build-gpu/minipuzzle
set -u
MP=${1:?path to minipuzzle}
OUT=${OUT:-/tmp/mp_out}
w=${WORK:-/tmp/mp_8b}
mkdir -p "$w" "$OUT/score8b"
t0=$(date +%s)
[ -f "$w/model/model.safetensors.index.json" ] || "$MP" init --config configs/nemotron-h-8b/config.json \
  --output "$w/model" --dtype bf16 --seed 0 --max-shard-size 4GB || exit 1
echo "init: $(( $(date +%s) - t0 )) s, $(du -sh "$w/model" | cut -f1) on disk"
"$MP" data from-text model/*.cpp prune/*.cpp search/*.cpp distill/*.cpp kernels/*.cpp --output "$w/tok" >/dev/null || exit 1
t0=$(date +%s)
"$MP" score --model "$w/model" --data "$w/tok" --output "$OUT/score8b/importance.json" --stream --device cuda \
  --dtype bf16 --samples 16 --layer-samples 4 --seq-len 1024 --micro-batch 1 --quiet 2>&1 | tail -3
echo "score --stream: $(( $(date +%s) - t0 )) s wall (samples 16, layer samples 4, seq 1024)"
python3 - "$w/model" <<'PY'
import json, os, sys
idx = json.load(open(os.path.join(sys.argv[1], "model.safetensors.index.json")))
print(f"weights: {idx['metadata']['total_size'] / 2**30:.2f} GiB (a quarter: {idx['metadata']['total_size'] / 4 / 2**30:.2f} GiB)")
PY
