#!/usr/bin/env bash
# The main job on its embedded default: MiniPuzzle end to end at CPU scale, on real text.
#   real text -> token data -> train a teacher -> score -> search -> prune -> distill -> report
# plus the rows a fair report needs: the pruned model untrained, pruned + plain cross-entropy
# fine-tuning, and the same shape trained from scratch on the same number of tokens.
# Every artefact is a file under runs/demo/ (override with RUN_DIR); each stage is one
# `minipuzzle` subcommand, so this script is the pipeline a newcomer copies.
set -euo pipefail
cd "$(dirname "$0")/.."
MP=${MP:-build/minipuzzle}
RUN=${RUN_DIR:-runs/demo}
STEPS=${STEPS:-113}   # recovery steps for distill / fine-tune / scratch (16 x 256 tokens each)
[ -x "$MP" ] || { echo "main_job: $MP not built (run scripts/build.sh)" >&2; exit 2; }
mkdir -p "$RUN/tokens"
t_start=$(date +%s)

echo "== 1. real text: State of the Union addresses; train 1790-2000, hold out 2001-2021"
scripts/fetch_text.sh "$RUN/text"
train=$(ls "$RUN"/text/sotu/*.txt | awk -F/ '{split($NF,a,"_"); if (a[1] <= 2000) print}')
valid=$(ls "$RUN"/text/sotu/*.txt | awk -F/ '{split($NF,a,"_"); if (a[1] > 2000) print}')
[ -f "$RUN/tokens/train.idx" ] || $MP data from-text $train --output "$RUN/tokens/train"
[ -f "$RUN/tokens/valid.idx" ] || $MP data from-text $valid --output "$RUN/tokens/valid"
# A 4-choice task from the held-out addresses: a passage, its true next 40 characters and three
# 40-character fragments of other addresses, split anywhere (docs/eval_tasks.md); every model of
# the report is scored on it.
$MP data make-task --text-files $valid --output "$RUN/task" --choices 4 --samples 400 --seed 1 --split char \
  --context-chars 300 --continuation-chars 40 --overwrite

echo "== 2. teacher: configs/demo (~1M parameters, pattern M-*-M-M-, bytes), trained from scratch"
$MP info configs/demo/config.json --context 256 | head -3
[ -d "$RUN/teacher/final" ] || $MP train --recipe configs/recipes/cpu-demo-train.json --config configs/demo/config.json \
  --data "$RUN/tokens/train" --eval-data "$RUN/tokens/valid" --output "$RUN/teacher" --resume --quiet

echo "== 3. score: importance of layers, channels, heads, neurons"
$MP score --model "$RUN/teacher/final" --data "$RUN/tokens/train" --output "$RUN/importance/importance.json" \
  --samples 128 --layer-samples 64 --seq-len 256 --quiet --overwrite

echo "== 4. search: shapes with at most 60% of the teacher's parameters, ranked by KL to the teacher"
$MP search --model "$RUN/teacher/final" --importance "$RUN/importance/importance.json" --data "$RUN/tokens/valid" \
  --eval-tokens 16384 --seq-len 256 --mamba-layers 1:3 --attention-layers 1 --mlp-layers 1:4 --ffn-hidden-size 128:512:64 \
  --max-params 0.000600 --top 100 --show 8 --quiet --output "$RUN/search" --overwrite | tee "$RUN/search.txt"

echo "== 5. prune the teacher to the best shape"
rm -rf "$RUN/pruned"
$MP prune --model "$RUN/teacher/final" --importance "$RUN/importance/importance.json" \
  --shape "$RUN/search/best.shape.json" --output "$RUN/pruned"

echo "== 6. recover: distill (forward KL, T = 1), and the baselines on the same tokens"
[ -d "$RUN/distilled/final" ] || $MP distill --recipe configs/recipes/cpu-demo-kd.json --teacher "$RUN/teacher/final" \
  --student "$RUN/pruned" --data "$RUN/tokens/train" --eval-data "$RUN/tokens/valid" --steps "$STEPS" \
  --output "$RUN/distilled" --resume --quiet
[ -d "$RUN/finetuned/final" ] || $MP train --recipe configs/recipes/cpu-demo-train.json --model "$RUN/pruned" \
  --data "$RUN/tokens/train" --eval-data "$RUN/tokens/valid" --steps "$STEPS" --output "$RUN/finetuned" --resume --quiet
[ -d "$RUN/scratch/final" ] || $MP train --recipe configs/recipes/cpu-demo-train.json --config "$RUN/pruned/config.json" \
  --data "$RUN/tokens/train" --eval-data "$RUN/tokens/valid" --steps "$STEPS" --output "$RUN/scratch" --resume --quiet

echo "== 7. held-out evaluation and report"
row() {  # name, checkpoint, what
  local j
  j=$($MP eval --model "$2" --data "$RUN/tokens/valid" --seq-len 256 --samples 64 --json --quiet)
  local loss acc params
  loss=$(echo "$j" | awk -F': ' '/"bits_per_token"/ {gsub(",","",$2); printf "%.3f", $2}')
  acc=$(echo "$j" | awk -F': ' '/"accuracy"/ {gsub(",","",$2); printf "%.1f", 100*$2}')
  params=$($MP info "$2" --json | grep -E '"total": [0-9]{5,}' | head -1 | tr -dc '0-9' | awk '{printf "%.0fk", $1/1000}')
  local out="$RUN/tasks/$(echo "$1" | tr -c 'a-z0-9\n' '_').json" task
  mkdir -p "$RUN/tasks"
  $MP eval-tasks --model "$2" --tasks "$RUN/task/task.json" --output "$out" --quiet --overwrite >/dev/null
  task=$(grep -A4 '"acc_norm": {' "$out" | awk -F': ' '/"stderr"/ {gsub(",","",$2); se=$2} /"value"/ {v=$2}
    END {printf "%.1f%% +/- %.1f", 100*v, 100*se}')
  echo "| $1 | $params | $loss | $acc% | $task | $3 |"
}
$MP plot "$RUN/distilled" "$RUN/finetuned" "$RUN/scratch" --labels distilled,"pruned + fine-tune","from scratch" \
  --field bits_per_token --title "Held-out bits/byte while recovering (teacher as a flat line)" \
  --output "$RUN/recovery.svg" --overwrite >/dev/null
{
  echo "# minipuzzle demo: MiniPuzzle at CPU scale"
  echo
  echo "Byte-level State of the Union text (train 1790-2000, held out 2001-2021); teacher trained here"
  echo "from scratch; student = the teacher pruned to the best searched shape (\`search/best.shape.json\`),"
  echo "recovered for $STEPS steps of 16 x 256 bytes. Held out: 64 windows of 256 bytes."
  echo
  echo "| model | parameters | held-out bits/byte | next-byte accuracy | held-out task acc_norm | how |"
  echo "|---|---|---|---|---|---|"
  row teacher "$RUN/teacher/final" "trained from scratch (configs/recipes/cpu-demo-train.json)"
  row pruned "$RUN/pruned" "teacher pruned by importance, no training"
  row distilled "$RUN/distilled/final" "pruned + distillation (forward KL, T = 1)"
  row "pruned + fine-tune" "$RUN/finetuned/final" "pruned + next-token cross-entropy, same tokens"
  row "from scratch" "$RUN/scratch/final" "same shape, random init, same tokens"
  echo
  echo "Task: \`task/\` (made by \`data make-task --split char\` from the held-out addresses): 400 passages of"
  echo "300 characters, each followed by its true next 40 characters and three 40-character fragments of other"
  echo "addresses, split at any character; acc_norm (log-likelihood per character, as lm-evaluation-harness)"
  echo "with its standard error; chance is 25%."
  echo
  echo "Search: $(grep -E '^ranked ' "$RUN/search.txt" || true) (held-out KL to the teacher; the chosen shape is pruned)."
  echo
  echo "Files: \`tasks/*.json\` (task results), \`importance/importance.json\`, \`importance/layers.svg\` (layer importance by index),"
  echo "\`search/candidates.csv\`, \`search/pareto.svg\` (memory against KL, front marked),"
  echo "\`recovery.svg\` (held-out bits/byte against training tokens for the three recoveries, teacher as a line),"
  echo "\`*/loss.svg\`, \`*/metrics.jsonl\` (every step), \`*/summary.json\`."
  echo
  echo "Took $(( $(date +%s) - t_start )) s on $(nproc) cores."
} > "$RUN/report.md.partial"
mv "$RUN/report.md.partial" "$RUN/report.md"
echo
cat "$RUN/report.md"
