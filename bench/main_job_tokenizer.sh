#!/usr/bin/env bash
# Bytes against a BPE tokenizer for the main job's teacher, at CPU scale: the demo shape
# (configs/demo: hidden 128, pattern M-*-M-M-) trained with the demo recipe on the same State of
# the Union split as examples/main_job.sh, once on bytes (vocab 256) and once with a real BPE
# tokenizer.json (vocab from the tokenizer), then scored on the held-out addresses as whole
# documents with eval-tasks' rolling `perplexity` task: bits per UTF-8 byte, a figure that does not
# depend on the tokenizer. Each arm is given the same compute: the CPU seconds (user + system, all
# threads) the bytes arm took for STEPS steps, which unlike wall time does not depend on what else
# the machine runs.
#   bench/main_job_tokenizer.sh MINIPUZZLE TOKENIZER_JSON OUTDIR [STEPS]     (default 200)
# Writes OUTDIR/main_job_tokenizer.json and prints a table.
set -euo pipefail
mp=$(realpath "$1") tok=$(realpath "$2") out=$3 steps=${4:-200}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
w=${WORK:-$(mktemp -d)}
mkdir -p "$w"
bash "$here/scripts/fetch_text.sh" "$w/text" >/dev/null
train=$(ls "$w"/text/sotu/*.txt | awk -F/ '{split($NF,a,"_"); if (a[1] <= 2000) print}')
valid=$(ls "$w"/text/sotu/*.txt | awk -F/ '{split($NF,a,"_"); if (a[1] > 2000) print}')
# The held-out addresses as one JSONL document each, for the perplexity task.
python3 - $valid > "$w/valid.jsonl" <<'PY'
import json, sys
for p in sys.argv[1:]:
    print(json.dumps({"text": open(p, encoding="utf-8").read()}))
PY
vocab=$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); m=t["model"]["vocab"]; ids=list(m.values()) + [a["id"] for a in t.get("added_tokens", [])]; print(max(ids) + 1)' "$tok")
python3 - "$here/configs/demo/config.json" "$vocab" "$w/bpe-config.json" <<'PY'
import json, sys
src, vocab, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3]
text = open(src).read()
c = json.loads(text.replace('{"__float__": "Infinity"}', '"inf"'))
text = text.replace('"vocab_size": %d' % c["vocab_size"], '"vocab_size": %d' % vocab)
open(dst, "w").write(text)
PY
"$mp" data from-text $train --output "$w/bytes-train" --overwrite >/dev/null
"$mp" data from-text $train --tokenizer "$tok" --output "$w/bpe-train" --overwrite >/dev/null
cp "$tok" "$w/tokenizer.json"

# Runs a command; prints the CPU seconds it and its threads used.
cpu_seconds() {
  python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(r.ru_utime + r.ru_stime)' "$@"
}
arm() {  # NAME CONFIG DATA STEPS [TOKENIZER]
  local name=$1 config=$2 data=$3 n=$4 cpu
  cpu=$(cpu_seconds "$mp" train --recipe "$here/configs/recipes/cpu-demo-train.json" --config "$config" --data "$data" \
    --steps "$n" --save-every 0 --eval-every 0 --output "$w/$name" --overwrite --quiet)
  [ -n "${5:-}" ] && cp "$5" "$w/$name/final/tokenizer.json"
  "$mp" eval-tasks --model "$w/$name/final" --tasks perplexity="$w/valid.jsonl" --max-length 256 \
    --output "$w/$name-ppl.json" --quiet --overwrite >/dev/null
  python3 - "$name" "$w/$name-ppl.json" "$w/$name/summary.json" "$cpu" "$n" >> "$w/arms.jsonl" <<'PY'
import json, sys
name, ppl, summ, cpu, n = sys.argv[1:]
r = json.load(open(ppl))["results"]["perplexity"]["metrics"]
s = json.load(open(summ))
print(json.dumps({"arm": name, "steps": int(n), "cpu_seconds": float(cpu), "parameters": s.get("parameters"),
                  "train_tokens": s.get("tokens"), "bits_per_byte": r["bits_per_byte"]["value"],
                  "byte_perplexity": r["byte_perplexity"]["value"]}))
PY
}
rm -f "$w/arms.jsonl"
arm bytes "$here/configs/demo/config.json" "$w/bytes-train" "$steps"
# The BPE arm's steps: a 10-step probe gives its CPU seconds per step; the arm gets the bytes arm's.
probe=$(cpu_seconds "$mp" train --recipe "$here/configs/recipes/cpu-demo-train.json" --config "$w/bpe-config.json" \
  --data "$w/bpe-train" --steps 10 --save-every 0 --eval-every 0 --output "$w/probe" --overwrite --quiet)
bpe_steps=$(python3 -c 'import json, sys
bytes_cpu = json.loads(open(sys.argv[1]).readline())["cpu_seconds"]
print(max(10, int(bytes_cpu / (float(sys.argv[2]) / 10))))' "$w/arms.jsonl" "$probe")
arm bpe "$w/bpe-config.json" "$w/bpe-train" "$bpe_steps" "$w/tokenizer.json"
# With SAME_STEPS=1, the BPE model also trains for STEPS steps (about 14 times the compute).
[ "${SAME_STEPS:-0}" = 1 ] && arm bpe-same-steps "$w/bpe-config.json" "$w/bpe-train" "$steps" "$w/tokenizer.json"
python3 - "$w/arms.jsonl" "$out/main_job_tokenizer.json" "$tok" "$(nproc)" <<'PY'
import json, sys
arms = [json.loads(l) for l in open(sys.argv[1])]
json.dump({"tokenizer": sys.argv[3], "cores": int(sys.argv[4]), "arms": arms}, open(sys.argv[2], "w"), indent=2)
print(f"{'arm':<16}{'steps':>7}{'CPU s':>9}{'params':>10}{'train tokens':>14}{'bits/byte':>11}")
for a in arms:
    print(f"{a['arm']:<16}{a['steps']:>7}{a['cpu_seconds']:>9.0f}{a['parameters'] / 1e6:>9.2f}M{a['train_tokens']:>14}"
          f"{a['bits_per_byte']:>11.3f}")
PY
