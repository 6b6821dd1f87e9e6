#!/usr/bin/env bash
# The main job on its embedded default: real text -> token data -> a small Nemotron-H-shaped
# model -> evaluation, with every artefact a file under runs/demo/ (override with RUN_DIR).
# Each stage is one `minipuzzle` subcommand; this script is the pipeline a newcomer copies.
set -euo pipefail
cd "$(dirname "$0")/.."
MP=${MP:-build/minipuzzle}
RUN=${RUN_DIR:-runs/demo}
mkdir -p "$RUN"
[ -x "$MP" ] || { echo "main_job: $MP not built (run scripts/build.sh)" >&2; exit 2; }

echo "== 1. real text: State of the Union addresses 1790-2021"
scripts/fetch_text.sh "$RUN/text"
# Train on 1790-2000, hold out 2001-2021 (split by year, as data.md suggests).
train=$(ls "$RUN"/text/sotu/*.txt | awk -F/ '{split($NF,a,"_"); if (a[1] <= 2000) print}')
valid=$(ls "$RUN"/text/sotu/*.txt | awk -F/ '{split($NF,a,"_"); if (a[1] > 2000) print}')

echo "== 2. byte-level token data (Megatron .bin/.idx)"
mkdir -p "$RUN/tokens"
$MP data from-text $train --output "$RUN/tokens/sotu-train"
$MP data from-text $valid --output "$RUN/tokens/sotu-valid"
$MP data info "$RUN/tokens/sotu-valid"

echo "== 3. the model: configs/demo (pattern M-*-M-M-, byte vocabulary)"
$MP info configs/demo/config.json --context 256
$MP init --config configs/demo/config.json --output "$RUN/teacher" --dtype fp32 --seed 1

echo "== 4. held-out evaluation"
$MP eval --model "$RUN/teacher" --data "$RUN/tokens/sotu-valid" --seq-len 256 --samples 32 --json --quiet \
  | tee "$RUN/eval-teacher.json"

cat > "$RUN/report.md" <<MD
# minipuzzle demo run

| model | held-out loss (nats/byte) | accuracy |
|---|---|---|
| teacher (random init) | $(grep '"loss"' "$RUN/eval-teacher.json" | tr -dc '0-9.') | $(grep '"accuracy"' "$RUN/eval-teacher.json" | tr -dc '0-9.') |
MD
echo "== report: $RUN/report.md"
cat "$RUN/report.md"
