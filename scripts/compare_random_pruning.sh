#!/usr/bin/env bash
# The control experiment: prune a trained teacher to the same shape by importance and by
# random indices (several seeds), and compare held-out loss with no training afterwards.
#   scripts/compare_random_pruning.sh TEACHER IMPORTANCE VALID_PREFIX [OUT.md]
# Defaults fit the main job's outputs (runs/demo).
set -euo pipefail
MP=${MP:-build/minipuzzle}
T=${1:-runs/demo/teacher/final}
I=${2:-runs/demo/importance/importance.json}
V=${3:-runs/demo/tokens/valid}
OUT=${4:-/dev/stdout}
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
bits() {
  $MP eval --model "$1" --data "$V" --seq-len 256 --samples 64 --json --quiet | grep '"bits_per_token"' | tr -dc '0-9.' |
    awk '{printf "%.3f", $1}'
}
targets=(
  "--ffn-hidden-size 128"
  "--ffn-hidden-size 256 --mamba-head-dim 48 --num-attention-heads 2"
  "--keep-layers mamba=2,attention=1,mlp=3 --ffn-hidden-size 256 --hidden-size 96"
)
{
  echo "| target | by importance | random (seeds 1-5) | random mean | parent |"
  echo "|---|---|---|---|---|"
  parent=$(bits "$T")
  for t in "${targets[@]}"; do
    $MP prune --model "$T" --importance "$I" --output "$w/imp" $t --overwrite >/dev/null 2>&1
    imp=$(bits "$w/imp")
    rs=""; sum=0
    for s in 1 2 3 4 5; do
      $MP prune --model "$T" --importance "$I" --output "$w/r$s" $t --random-indices $s --overwrite >/dev/null 2>&1
      r=$(bits "$w/r$s"); rs="$rs $r"; sum=$(awk -v a="$sum" -v b="$r" 'BEGIN {print a + b}')
    done
    printf '| `%s` | %s | %s | %.3f | %s |\n' "$t" "$imp" "$(echo $rs | sed 's/ /, /g')" "$(awk -v a="$sum" 'BEGIN {print a / 5}')" "$parent"
  done
} > "$OUT"
