#!/usr/bin/env bash
# For each parity fixture: minipuzzle convert (single file and sharded), minipuzzle forward, then
# transformers loads our checkpoint and must reproduce our logits (check_hf_loads_ours.py).
# Also runs `forward --device cuda --dtype bf16` against the fp32 CPU logits.
set -u
MP=${1:?path to minipuzzle}
work=$(mktemp -d)
rc=0
for fx in tests/fixtures/parity/*/; do
  name=$(basename "$fx")
  python3 - "$fx" "$work/$name.ids.safetensors" <<'PY'
import sys, torch
from safetensors.torch import load_file, save_file
ids = load_file(sys.argv[1] + "/inputs.safetensors")["input_ids_short"]
save_file({"input_ids": ids.contiguous()}, sys.argv[2])
PY
  for shard in 1GB 16KB; do
    out="$work/$name.$shard"
    "$MP" convert --model "$fx/model" --output "$out" --max-shard-size $shard || rc=1
    "$MP" forward --model "$out" --input "$work/$name.ids.safetensors" --output "$out.logits.safetensors" || rc=1
    python3 scripts/parity/check_hf_loads_ours.py --model "$out" --inputs "$work/$name.ids.safetensors" \
      --ours "$out.logits.safetensors" || rc=1
  done
  if python3 -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    "$MP" forward --model "$fx/model" --input "$work/$name.ids.safetensors" --output "$work/$name.bf16.safetensors" \
      --device cuda --dtype bf16 || rc=1
    python3 - "$work/$name.1GB.logits.safetensors" "$work/$name.bf16.safetensors" "$name" <<'PY' || rc=1
import sys
from safetensors.torch import load_file
a = load_file(sys.argv[1])["logits"].double(); b = load_file(sys.argv[2])["logits"].double()
e = ((a - b).norm() / a.norm()).item()
print(f"{'PASS' if e <= 2e-2 else 'FAIL'} {sys.argv[3]}: forward --device cuda --dtype bf16 vs cpu fp32 rel err {e:.3e}")
sys.exit(0 if e <= 2e-2 else 1)
PY
  fi
done
rm -rf "$work"
exit $rc
