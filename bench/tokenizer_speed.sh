#!/usr/bin/env bash
# Tokenizer speed on the State of the Union text (233 files, one document each): minipuzzle's
# bench_tokenizer on 1..N threads, and Hugging Face tokenizers on one thread on the same text and
# machine (node's @anush008/tokenizers when node is there, Python's tokenizers when it is there:
# encode per document; and its encode_batch on all cores). Raw JSON lines go to OUTDIR.
#   bench/tokenizer_speed.sh BENCH_BINARY TOKENIZERS_DIR OUTDIR [NAME...]
set -uo pipefail
bin=$1 tokdir=$2 out=$3
shift 3
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(gpt2 qwen3 llama2)
mkdir -p "$out"
files=$(ls "$tokdir"/text/sotu/*.txt)
cores=$(nproc)
threads=1
for t in 2 4 8 16 32 64; do [ "$t" -le "$cores" ] && threads="$threads,$t"; done
here=$(cd "$(dirname "$0")/.." && pwd)
for n in "${names[@]}"; do
  tj="$tokdir/$n/tokenizer.json"
  "$bin" "$tj" "$threads" $files > "$out/$n-minipuzzle.jsonl"
  if command -v node >/dev/null 2>&1 && [ -d "$tokdir/node_modules/@anush008/tokenizers" ]; then
    NODE_PATH="$tokdir/node_modules" node "$here/scripts/tokenizer_reference.js" speed "$tj" $files > "$out/$n-hf-node.jsonl"
  fi
  if python3 -c "import tokenizers" >/dev/null 2>&1; then
    python3 - "$tj" $files > "$out/$n-hf-python.jsonl" <<'PY'
import json, sys, time, tokenizers
tok_path, files = sys.argv[1], sys.argv[2:]
texts = [open(f, encoding="utf-8").read() for f in files]
nbytes = sum(len(t.encode("utf-8")) for t in texts)
for mode in ("encode", "encode_batch"):
    tok = tokenizers.Tokenizer.from_file(tok_path)
    t0 = time.perf_counter()
    if mode == "encode":
        n = sum(len(tok.encode(t, add_special_tokens=False).ids) for t in texts)
    else:
        n = sum(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False))
    s = time.perf_counter() - t0
    print(json.dumps({"implementation": f"hf-tokenizers {tokenizers.__version__} (python {mode})", "tokenizer": tok_path,
                      "threads": 1 if mode == "encode" else "all", "bytes": nbytes, "tokens": n, "seconds": s,
                      "mb_per_s": nbytes / 1e6 / s}))
PY
  fi
done
{ nproc; lscpu | grep -E "Model name|^CPU\(s\)"; } > "$out/machine.txt" 2>/dev/null
cat "$out"/*.jsonl
