#!/usr/bin/env bash
# `--shard full` against `--shard none` on one GPU (world size 1): the same distillation (a 1B
# student from a 1.5B teacher, configs/distill-bench, random bf16 weights, byte tokens of this
# repository's sources) for STEPS steps, once per mode. Full sharding at one rank splits nothing
# but runs everything that sharding costs: per-unit gathers into fresh buffers, the recomputing
# backward, the reduce-scatter path and the sharded optimizer; so its tokens/s against none (with
# and without --recompute) is the price of the machinery itself. Loss curves are compared step by
# step (bf16 noise expected: the recompute and the flat gradient buffers change summation order).
#   bench/shard_one_gpu.sh MINIPUZZLE OUTDIR [STEPS [SEQ_LEN]]     (default 20 4096)
# Writes OUTDIR/shard_one_gpu.json (per-mode tokens/s, peak memory, the loss curves and their
# largest relative difference) and prints a table.
set -uo pipefail
mp=$1 out=$2 steps=${3:-20} seq=${4:-4096}
mkdir -p "$out"
here=$(cd "$(dirname "$0")/.." && pwd)
w=${WORK:-$(mktemp -d)}
mkdir -p "$w"
"$mp" data from-text "$here"/model/*.cpp "$here"/distill/*.cpp "$here"/prune/*.cpp "$here"/search/*.cpp \
  "$here"/docs/*.md --output "$w/tok" --overwrite >/dev/null || exit 1
for m in teacher-1.5b student-1b; do
  [ -f "$w/$m/config.json" ] || "$mp" init --config "$here/configs/distill-bench/$m/config.json" --output "$w/$m" \
    --dtype bf16 --seed 0 >/dev/null || exit 1
done
job=(distill --teacher "$w/teacher-1.5b" --student "$w/student-1b" --data "$w/tok" --steps "$steps" --seq-len "$seq"
     --micro-batch 1 --global-batch 2 --device cuda --dtype bf16 --warmup 2 --quiet --overwrite)
run() {  # NAME FLAGS...
  local name=$1
  shift
  "$mp" "${job[@]}" --output "$w/run_$name" "$@" >"$out/run_$name.log" 2>&1 || { echo "run $name failed"; tail -3 "$out/run_$name.log"; }
  cp "$w/run_$name/metrics.jsonl" "$out/metrics_$name.jsonl" 2>/dev/null
  cp "$w/run_$name/summary.json" "$out/summary_$name.json" 2>/dev/null
}
run none --shard none
run none_recompute --shard none --recompute
run full --shard full
python3 - "$out" "$steps" "$seq" <<'PY'
import json, os, statistics, subprocess, sys
out, steps, seq = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def load(name):
    m = [json.loads(l) for l in open(os.path.join(out, f"metrics_{name}.jsonl"))]
    s = json.load(open(os.path.join(out, f"summary_{name}.json")))
    train = [r for r in m if r.get("type") == "train"]
    # steady state: the first two steps hold allocator growth and kernel selection
    tps = statistics.median(r["tokens_per_s"] for r in train[2:]) if len(train) > 2 else None
    return {"loss": [r["loss"] for r in train], "tokens_per_s": tps, "peak_gpu_bytes": s.get("peak_gpu_bytes"),
            "state_bytes_per_rank": s.get("state_bytes_per_rank"), "shard": s.get("shard")}
runs = {n: load(n) for n in ("none", "none_recompute", "full")}
def max_rel(a, b):
    return max(abs(x - y) / max(abs(y), 1e-12) for x, y in zip(a, b))
card = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True).stdout.strip().splitlines()[0]
res = {"card": card, "steps": steps, "seq_len": seq, "micro_batch": 1, "global_batch": 2,
       "student": "configs/distill-bench/student-1b", "teacher": "configs/distill-bench/teacher-1.5b", "runs": runs,
       "full_vs_none_max_rel_loss_diff": max_rel(runs["full"]["loss"], runs["none"]["loss"]),
       "full_vs_none_recompute_max_rel_loss_diff": max_rel(runs["full"]["loss"], runs["none_recompute"]["loss"]),
       "full_tokens_per_s_vs_none": runs["full"]["tokens_per_s"] / runs["none"]["tokens_per_s"],
       "full_tokens_per_s_vs_none_recompute": runs["full"]["tokens_per_s"] / runs["none_recompute"]["tokens_per_s"]}
json.dump(res, open(os.path.join(out, "shard_one_gpu.json"), "w"), indent=2)
print(f"{card}, {steps} steps, seq {seq}, global batch 2")
print(f"{'mode':<16}{'tokens/s':>12}{'peak GiB':>10}{'final loss':>12}")
for n, r in runs.items():
    print(f"{n:<16}{r['tokens_per_s']:>12.0f}{(r['peak_gpu_bytes'] or 0) / 2**30:>10.2f}{r['loss'][-1]:>12.5f}")
print(f"full / none {res['full_tokens_per_s_vs_none']:.3f}, full / none+recompute {res['full_tokens_per_s_vs_none_recompute']:.3f}; "
      f"loss max rel diff vs none {res['full_vs_none_max_rel_loss_diff']:.2e}")
PY
