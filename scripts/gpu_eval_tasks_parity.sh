#!/usr/bin/env bash
# eval-tasks against transformers on the GPU machine: for each real tokenizer in .tokenizers/
# (GPT-2: byte-level, no BOS; Llama 2: SentencePiece-style with a BOS post-processor; Qwen3: a
# 151,669-token vocabulary), a small random Nemotron-H whose vocabulary is the tokenizer's
# (minipuzzle init) gets the tokenizer files copied in; eval-tasks scores every built-in task on
# the fixture documents (tests/fixtures/eval_tasks, the datasets' layouts) in fp32 with
# --log-samples, on CUDA with and without context reuse, on the CPU, and with few-shot prompts;
# scripts/parity/eval_tasks_reference.py then scores the same requests with transformers and
# must agree on every log-likelihood (relative error <= 1e-5) and on acc / acc_norm exactly.
# --max-length 48 makes the long LAMBADA and BoolQ contexts lose tokens from the left, and the
# LAMBADA passages scored as rolling perplexity span several windows, so the truncation and
# window rules are checked too.
# Then bench_eval_tasks (beside the binary, in bench/) times context reuse on the card.
#   scripts/gpu_eval_tasks_parity.sh build-gpu/minipuzzle [OUTDIR]
# Needs .tokenizers/{gpt2,llama2,qwen3} (scripts/fetch_tokenizers.sh; carry the folder).
set -u
MP=${1:?path to minipuzzle}
OUT=${2:-/tmp/mp_eval_tasks_parity}
mkdir -p "$OUT"
F=tests/fixtures/eval_tasks
ML=48
rc=0
zero_shot="--tasks arc_easy=$F/arc_easy.docs.jsonl arc_challenge=$F/arc_challenge.docs.jsonl
  hellaswag=$F/hellaswag.docs.jsonl winogrande=$F/winogrande.docs.jsonl piqa=$F/piqa.docs.jsonl
  boolq=$F/boolq.docs.jsonl mmlu=$F/mmlu.docs.jsonl lambada_openai=$F/lambada_openai.docs.jsonl
  perplexity=$F/perplexity.docs.jsonl"
few_shot="--tasks arc_easy=$F/arc_easy_2shot.docs.jsonl mmlu=$F/mmlu_2shot.docs.jsonl
  winogrande=$F/winogrande_1shot.docs.jsonl lambada_openai=$F/lambada_openai_1shot_self.docs.jsonl
  --fewshot-data arc_easy=$F/arc_easy_2shot.pool.jsonl mmlu=$F/mmlu_2shot.pool.jsonl
  winogrande=$F/winogrande_1shot.pool.jsonl --num-fewshot 2"
for tok in gpt2 llama2 qwen3; do
  src=.tokenizers/$tok
  if [ ! -f "$src/tokenizer.json" ]; then
    echo "FAIL $tok: $src/tokenizer.json absent (run scripts/fetch_tokenizers.sh and carry .tokenizers)"
    rc=1
    continue
  fi
  d="$OUT/$tok"
  rm -rf "$d" && mkdir -p "$d"
  python3 - "$src/tokenizer.json" "$d/config.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
ids = list(t["model"]["vocab"].values()) + [a["id"] for a in t.get("added_tokens") or []]
json.dump({"hybrid_override_pattern": "M*-M-*M-", "vocab_size": max(ids) + 1, "hidden_size": 64,
           "intermediate_size": 96, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
           "mamba_num_heads": 4, "mamba_head_dim": 16, "ssm_state_size": 16, "n_groups": 2, "conv_kernel": 4,
           "chunk_size": 16, "dtype": "float32"}, open(sys.argv[2], "w"))
PY
  "$MP" init --config "$d/config.json" --output "$d/model" --dtype fp32 --seed 7 || { rc=1; continue; }
  cp "$src/tokenizer.json" "$src/tokenizer_config.json" "$d/model/"
  runs=("cuda $zero_shot --device cuda"
        "cuda_separate $zero_shot --device cuda --no-context-reuse --batch-tokens 96"
        "cpu $zero_shot --device cpu"
        "cuda_fewshot $few_shot --device cuda"
        "cuda_rolling --tasks perplexity=$F/lambada_openai.docs.jsonl --device cuda")
  for spec in "${runs[@]}"; do
    name=${spec%% *}
    args=${spec#* }
    # shellcheck disable=SC2086
    "$MP" eval-tasks --model "$d/model" $args --dtype fp32 --max-length $ML --log-samples --quiet \
      --output "$d/$name.json" > "$d/$name.txt" 2>&1 || { echo "FAIL $tok $name: eval-tasks"; cat "$d/$name.txt"; rc=1; continue; }
    python3 scripts/parity/eval_tasks_reference.py --model "$d/model" --samples "$d/$name.samples.jsonl" \
      --results "$d/$name.json" --max-length $ML --tol 1e-5 > "$d/$name.reference.txt" 2>&1 || rc=1
    echo "$tok $name: $(tail -1 "$d/$name.reference.txt")"
  done
done
# Context reuse on the card: a 4-choice task on a random model of the 8B's shape (bf16, contexts
# of 512 tokens, choices of 8-24) and on the demo model in fp32, both ways on the same requests.
bench=$(dirname "$MP")/bench/bench_eval_tasks
if [ -x "$bench" ]; then
  "$bench" --config configs/nemotron-h-8b/config.json --device cuda --dtype bf16 --questions 64 --context 512 \
    --batch-tokens 16384 --card "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" \
    --out "$OUT/bench-eval-tasks-8b-bf16.json" || rc=1
  "$bench" --config configs/demo/config.json --device cuda --dtype fp32 --questions 64 --context 256 \
    --out "$OUT/bench-eval-tasks-demo-fp32.json" || rc=1
fi
exit $rc
