#!/usr/bin/env bash
# `minipuzzle score` on CUDA, in memory and with --stream, on a ~0.4 B-parameter random model with
# the 8B's 52-layer pattern: both must give the same importance (compared field by field) and the
# streamed run must need far less peak GPU memory. Run from the repo root after a build:
#   scripts/gpu_prune_check.sh build-gpu/minipuzzle [OUTDIR]
set -u
MP=${1:?path to minipuzzle}
OUT=${2:-/tmp/mp_prune_check}
mkdir -p "$OUT"
work=$(mktemp -d)
python3 - "$work/config.json" <<'PY'
import json, sys
c = json.load(open("configs/nemotron-h-8b/config.json"))
c.update(vocab_size=256, hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_key_value_heads=8,
         head_dim=64, mamba_num_heads=32, mamba_head_dim=64, ssm_state_size=64, n_groups=8)
json.dump(c, open(sys.argv[1], "w"))
PY
"$MP" init --config "$work/config.json" --output "$work/model" --dtype bf16 --max-shard-size 200MB || exit 1
"$MP" data from-text prune/*.cpp prune/*.h model/*.cpp model/*.h --output "$work/tok" || exit 1
args="--model $work/model --data $work/tok --samples 64 --layer-samples 8 --seq-len 512 --device cuda --dtype bf16 --quiet"
rc=0
"$MP" score $args --output "$OUT/memory/importance.json" 2>&1 | tee "$OUT/score_memory.log" || rc=1
"$MP" score $args --stream --output "$OUT/stream/importance.json" 2>&1 | tee "$OUT/score_stream.log" || rc=1
python3 - "$OUT/memory/importance.json" "$OUT/stream/importance.json" <<'PY' || rc=1
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
def flat(x, pre=""):
    if isinstance(x, dict):
        for k, v in x.items(): yield from flat(v, pre + "." + k)
    elif isinstance(x, list):
        for i, v in enumerate(x): yield from flat(v, f"{pre}[{i}]")
    else: yield pre, x
fa = dict(flat({k: v for k, v in a.items() if k != "settings"}))
fb = dict(flat({k: v for k, v in b.items() if k != "settings"}))
worst = max((abs(fa[k] - fb[k]) / (abs(fa[k]) + 1e-12), k) for k in fa if isinstance(fa[k], float))
same = sum(fa[k] == fb[k] for k in fa)
print(f"stream vs memory on cuda: {same}/{len(fa)} values identical; worst relative difference {worst[0]:.3e} at {worst[1]}")
sys.exit(0 if worst[0] < 1e-2 else 1)
PY
rm -rf "$work"
exit $rc
