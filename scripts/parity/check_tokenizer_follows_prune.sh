#!/usr/bin/env bash
# A checkpoint pruned from a folder that has tokenizer files loads in transformers with no extra
# step: a small random Nemotron-H parent with GPT-2's vocabulary gets GPT-2's tokenizer.json and
# tokenizer_config.json and a generation_config.json; `minipuzzle score` on text tokenized with it
# and `minipuzzle prune` make the child; then transformers' AutoTokenizer and
# AutoModelForCausalLM load the child as it is, AutoTokenizer's ids for a few texts equal
# `minipuzzle tokenize` with the child folder, and the model's logits equal `minipuzzle forward`
# (scripts/parity/check_hf_loads_ours.py).
#   scripts/parity/check_tokenizer_follows_prune.sh build/minipuzzle [TOKENIZERS_DIR]   (repo root)
set -u
MP=${1:?path to minipuzzle}
TOK=${2:-.tokenizers}
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
python3 - "$w/parent.json" <<'PY' || exit 1
import json, sys
json.dump({"architectures": ["NemotronHForCausalLM"], "model_type": "nemotron_h", "vocab_size": 50257,
           "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
           "head_dim": 16, "mamba_num_heads": 8, "mamba_head_dim": 8, "ssm_state_size": 16, "n_groups": 2,
           "conv_kernel": 4, "chunk_size": 16, "hybrid_override_pattern": "M*M-M-",
           "num_hidden_layers": 6, "bos_token_id": 50256, "eos_token_id": 50256, "pad_token_id": 50256},
          open(sys.argv[1], "w"), indent=2)
PY
"$MP" init --config "$w/parent.json" --output "$w/parent" --seed 1 >/dev/null || exit 1
cp "$TOK/gpt2/tokenizer.json" "$TOK/gpt2/tokenizer_config.json" "$w/parent/" || exit 1
echo '{"bos_token_id": 50256, "eos_token_id": 50256, "max_new_tokens": 16}' > "$w/parent/generation_config.json"
"$MP" data from-text docs/*.md --tokenizer "$w/parent" --output "$w/tok" >/dev/null || exit 1
"$MP" score --model "$w/parent" --data "$w/tok" --output "$w/importance.json" --samples 8 --layer-samples 4 \
  --seq-len 64 --quiet || exit 1
"$MP" prune --model "$w/parent" --importance "$w/importance.json" --output "$w/child" --hidden-size 48 \
  --ffn-hidden-size 64 --mamba-num-heads 4 --drop-layers 5 || exit 1
ls "$w/child"
texts=("Hello world" "The 47B keeps the 56B's accuracy — mostly." "naïve café 東京 🤖 1234567")
: > "$w/ours.jsonl"
for t in "${texts[@]}"; do "$MP" tokenize --tokenizer "$w/child" --text "$t" --json >> "$w/ours.jsonl" || exit 1; done
python3 - "$w" "${texts[@]}" <<'PY' || exit 1
import json, struct, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
w, texts = sys.argv[1], sys.argv[2:]
tok = AutoTokenizer.from_pretrained(w + "/child")
ours = [json.loads(l)["ids"] for l in open(w + "/ours.jsonl")]
for t, o in zip(texts, ours):
    theirs = tok(t, add_special_tokens=False)["input_ids"]
    assert theirs == o, f"ids differ for {t!r}: transformers {theirs}, minipuzzle {o}"
model = AutoModelForCausalLM.from_pretrained(w + "/child", torch_dtype=torch.float32)
ids = tok(texts[1], return_tensors="pt")["input_ids"]
with torch.no_grad():
    logits = model(ids).logits
ids_list = ids[0].tolist()
head = json.dumps({"input_ids": {"dtype": "I64", "shape": [1, len(ids_list)], "data_offsets": [0, 8 * len(ids_list)]}}).encode()
head += b" " * (-len(head) % 8)
with open(w + "/ids.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(head)) + head + struct.pack(f"<{len(ids_list)}q", *ids_list))
print(f"AutoTokenizer: {type(tok).__name__}, ids equal for {len(texts)} texts; AutoModelForCausalLM: "
      f"{type(model).__name__}, logits {tuple(logits.shape)}")
PY
"$MP" forward --model "$w/child" --input "$w/ids.safetensors" --output "$w/logits.safetensors" || exit 1
python3 scripts/parity/check_hf_loads_ours.py --model "$w/child" --inputs "$w/ids.safetensors" --ours "$w/logits.safetensors"
