#!/usr/bin/env bash
# The memory planner (`distill --plan`, docs/distributed.md) against the peak GPU memory measured
# on one GPU: `distill` runs a few steps for three student sizes, --recompute off and on, and its
# summary.json reports the caching allocator's peaks (peak_gpu_bytes: allocated; peak_gpu_reserved_bytes:
# held from the card). Printed next to the plan's peak for the same settings and card.
#   students: dp-bench (0.26B, its own teacher), distill-bench student-1b (teacher-1.5b), and the
#   8B config cut to its first 14 layers (2.9B, teacher-1.5b); random bf16 weights, byte tokens.
#   scripts/gpu_plan_check.sh [STEPS [SEQ_LEN [MICRO_BATCH]]]     (default 3 8192 1)
# At the defaults the plan's peaks are 8-61 GiB (an H100 holds them all), reached in the forward,
# the load or the optimizer step.
# The plan's peak includes the allocator slack; the allocated peak does not, the reserved one does.
# The runs set MP_MEMORY_CHECK=0 so that a pessimistic plan does not stop the measurement.
# Builds into build-gpu/ first (as scripts/gpu_run.sh does) unless SKIP_BUILD=1. Logs and
# plan_check.txt go to $OUT (default /tmp/mp_out).
set -u
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0a}
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/mp_out}
mkdir -p "$OUT"
steps=${1:-3} seq=${2:-8192} micro=${3:-1}
B=build-gpu
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader | head -1 | tee "$OUT/plan_check.txt"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
  cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
    -DMP_DEPS_DIR="$PWD/deps" >"$OUT/plan_configure.log" 2>&1 &&
    cmake --build $B -j16 --target minipuzzle >"$OUT/plan_build.log" 2>&1
  rc=$?
  if [ $rc != 0 ]; then echo "gpu_plan_check: build failed (rc $rc)"; grep -E "error|FAILED" "$OUT/plan_build.log" | head -20; exit 1; fi
fi
MP=$B/minipuzzle

w=${WORK:-$(mktemp -d)}
mkdir -p "$w"
$MP data from-text model/*.cpp prune/*.cpp distill/*.cpp search/*.cpp docs/*.md --output "$w/tok" >/dev/null || exit 1
python3 - "$w/student-2.9b" <<'PY' || exit 1
import json, os, sys
c = json.load(open("configs/nemotron-h-8b/config.json"))
c["hybrid_override_pattern"] = c["hybrid_override_pattern"][:14]
c["num_hidden_layers"] = 14
os.makedirs(sys.argv[1], exist_ok=True)
json.dump(c, open(os.path.join(sys.argv[1], "config.json"), "w"), indent=2)
PY
init() {  # CONFIG_DIR NAME: a random bf16 checkpoint under $w/NAME (kept between calls)
  [ -f "$w/$2/config.json" ] && [ -n "$(ls "$w/$2"/*.safetensors* 2>/dev/null)" ] && return 0
  $MP init --config "$1/config.json" --output "$w/$2" --dtype bf16 --seed 0 >"$OUT/plan_init_$2.log" 2>&1
}
init configs/dp-bench dp-bench || exit 1
init configs/distill-bench/teacher-1.5b teacher-1.5b || exit 1
init configs/distill-bench/student-1b student-1b || exit 1
init "$w/student-2.9b" student-2.9b-ckpt || exit 1

echo "distill, $steps steps, sequence $seq x micro-batch $micro, one GPU, --shard none" | tee -a "$OUT/plan_check.txt"
: >"$OUT/plan_check.jsonl"
for pair in "dp-bench dp-bench" "teacher-1.5b student-1b" "teacher-1.5b student-2.9b-ckpt"; do
  set -- $pair
  for rc in off on; do
    flag=""; [ $rc = on ] && flag="--recompute"
    job="distill --teacher $w/$1 --student $w/$2 --data $w/tok --steps $steps --seq-len $seq --micro-batch $micro
         --global-batch $micro --device cuda --dtype bf16 --warmup 1 --quiet $flag"
    plan=$($MP $job --plan --json 2>"$OUT/plan_${2}_$rc.err")
    run="$w/run_${2}_$rc"
    rm -rf "$run"
    MP_MEMORY_CHECK=0 $MP $job --output "$run" >"$OUT/plan_run_${2}_$rc.log" 2>&1
    code=$?
    python3 - "$2" "$rc" "$code" "$run/summary.json" "$plan" <<'PY' | tee -a "$OUT/plan_check.jsonl"
import json, sys
name, rc, code, summary, plan = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
r = {"student": name, "recompute": rc == "on", "exit": code}
try:
    p = json.loads(plan)
    r["plan_peak_bytes"] = p["per_rank"]["none"]["peak_bytes"]
    r["plan_phase"] = p["per_rank"]["none"]["peak_phase"]
    r["plan_slack_bytes"] = p["per_rank"]["none"]["workspace_bytes"]
    r["student_parameters"] = p["student"]["parameters"]
except Exception as e:
    r["plan_error"] = str(e)
try:
    s = json.load(open(summary))
    r["peak_gpu_bytes"] = s.get("peak_gpu_bytes")
    r["peak_gpu_reserved_bytes"] = s.get("peak_gpu_reserved_bytes")
except Exception:
    pass
print(json.dumps(r))
PY
  done
done

python3 - "$OUT/plan_check.jsonl" <<'PY' | tee -a "$OUT/plan_check.txt"
import json, sys
G = 2**30
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{'student':<18}{'params':>8}{'recompute':>10}{'plan GiB':>10}{'phase':>10}{'alloc GiB':>11}{'reserved':>10}"
      f"{'plan/alloc':>11}{'plan/res':>9}")
for r in rows:
    plan, a, res = r.get("plan_peak_bytes"), r.get("peak_gpu_bytes"), r.get("peak_gpu_reserved_bytes")
    f = lambda x: f"{x / G:.2f}" if x else "-"
    q = lambda x, y: f"{x / y:.3f}" if x and y else "-"
    print(f"{r['student']:<18}{r.get('student_parameters', 0) / 1e9:>7.2f}B{('on' if r['recompute'] else 'off'):>10}"
          f"{f(plan):>10}{r.get('plan_phase', '-'):>10}{f(a):>11}{f(res):>10}{q(plan, a):>11}{q(plan, res):>9}"
          + ("" if r["exit"] == 0 else f"   run exit {r['exit']}"))
print("acceptance: the plan within 15% of the measured peak (plan/reserved between 0.85 and 1.15)")
PY
