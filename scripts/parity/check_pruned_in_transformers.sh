#!/usr/bin/env bash
# Pruned checkpoints load and run in transformers. For each parity fixture: write random token
# data below its vocabulary, `minipuzzle score` it, `minipuzzle prune` cutting every axis at once
# (hidden, MLP width, query heads per kv group where a group has more than one, Mamba heads per
# group where a group has more than one, Mamba head channels, one layer), then `minipuzzle forward`
# on the child and scripts/parity/check_hf_loads_ours.py: transformers must load the child with
# no missing/unexpected/mismatched tensors and reproduce our logits.
#   scripts/parity/check_pruned_in_transformers.sh build/minipuzzle     (run from the repo root)
set -u
MP=${1:?path to minipuzzle}
work=$(mktemp -d)
rc=0
for fx in tests/fixtures/parity/*/; do
  name=$(basename "$fx")
  # Token data + input ids + the target shape, from the fixture's config.
  flags=$(python3 - "$fx" "$work/$name" <<'PY'
import json, random, struct, sys
from array import array
fx, out = sys.argv[1], sys.argv[2]   # plain Python: the data steps also run where torch is absent
c = json.load(open(fx + "/model/config.json"))
rng = random.Random(0)
docs = [array("H", (rng.randrange(c["vocab_size"]) for _ in range(1024))) for _ in range(4)]
with open(out + ".tokens.bin", "wb") as f:
    for d in docs: f.write(d.tobytes())
with open(out + ".tokens.idx", "wb") as f:
    f.write(b"MMIDIDX\x00\x00" + struct.pack("<QBQQ", 1, 8, len(docs), len(docs) + 1))
    f.write(array("i", [len(d) for d in docs]).tobytes())
    f.write(array("q", [i * 1024 * 2 for i in range(len(docs))]).tobytes())
    f.write(array("q", range(len(docs) + 1)).tobytes())
ids = array("q", (rng.randrange(c["vocab_size"]) for _ in range(2 * 24)))
head = json.dumps({"input_ids": {"dtype": "I64", "shape": [2, 24], "data_offsets": [0, len(ids) * 8]}}).encode()
head += b" " * (-len(head) % 8)
with open(out + ".ids.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(head)) + head + ids.tobytes())
kv, g = c["num_key_value_heads"], c["n_groups"]
heads = kv * max(1, (c["num_attention_heads"] // kv) // 2)
mheads = g * max(1, (c["mamba_num_heads"] // g) // 2)
types = c.get("layers_block_type") or list(c["hybrid_override_pattern"])
print(f"--hidden-size {c['hidden_size'] * 3 // 4} --ffn-hidden-size {c['intermediate_size'] // 2} "
      f"--num-attention-heads {heads} --mamba-num-heads {mheads} --mamba-head-dim {c['mamba_head_dim'] // 2} "
      f"--drop-layers {len(types) - 1}")
PY
) || { echo "FAIL $name: could not prepare data"; rc=1; continue; }
  "$MP" score --model "$fx/model" --data "$work/$name.tokens" --output "$work/$name.importance.json" \
    --samples 16 --layer-samples 8 --seq-len 32 --quiet || { rc=1; continue; }
  # shellcheck disable=SC2086
  "$MP" prune --model "$fx/model" --importance "$work/$name.importance.json" --output "$work/$name.child" $flags \
    || { rc=1; continue; }
  "$MP" forward --model "$work/$name.child" --input "$work/$name.ids.safetensors" \
    --output "$work/$name.child.logits.safetensors" || { rc=1; continue; }
  python3 scripts/parity/check_hf_loads_ours.py --model "$work/$name.child" --inputs "$work/$name.ids.safetensors" \
    --ours "$work/$name.child.logits.safetensors" || rc=1
done
rm -rf "$work"
exit $rc
