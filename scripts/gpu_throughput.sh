#!/usr/bin/env bash
# The throughput model on this card: measure single-type stacks and fit (bench_throughput
# measure), then predicted against measured speed-ups of whole models:
#   - 8B parent, 4 candidates from a search under the 5090 budget spread over predicted speed-ups;
#   - 56B parent against the published 47B (one at a time: 112 + 94 GB; prompt 16384 so the 56B fits);
#   - the demo teacher against the candidate the README's main job chooses (runs/demo/pruned).
#   scripts/gpu_throughput.sh BUILD_DIR CARD OUT
set -u
B=$1 card=$2 out=$3
model=$out/throughput_model.json
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
$B/bench/bench_throughput measure --families demo,8b,56b --card "$card" --commit "$commit" --date "$(date -u +%F)" \
  --out-samples "$out/throughput_samples.json" --out-model "$model" || exit 1
$B/bench/bench_throughput check --throughput-model "$model" --parent configs/nemotron-h-8b/config.json \
  --budget configs/budgets/rtx5090-fp4-1m.json --auto 4 --reps 5 --out "$out/throughput_check_8b.json"
demo_child=bench/results/demo_chosen_candidate.json  # runs/demo/pruned/config.json of the main job
$B/bench/bench_throughput check --throughput-model "$model" --parent configs/demo/config.json \
  --candidate "$demo_child" --out "$out/throughput_check_demo.json"
$B/bench/bench_throughput check --throughput-model "$model" --parent configs/nemotron-h-56b/config.json \
  --candidate configs/nemotron-h-47b/config.json --prompt-tokens 16384 --sequential --out "$out/throughput_check_56b.json"
