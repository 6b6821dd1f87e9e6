#!/usr/bin/env python3
"""The other direction of parity: transformers loads a checkpoint that minipuzzle wrote and
produces the logits minipuzzle produced.

    python3 scripts/parity/check_hf_loads_ours.py --model DIR --inputs IDS.safetensors \
        --ours LOGITS.safetensors [--tol 1e-4]
IDS holds 'input_ids' (int64 [B, L]); LOGITS holds 'logits' from `minipuzzle forward`.
Exits non-zero when the relative error exceeds the tolerance or loading reports missing /
unexpected tensors.
"""
import argparse
import sys

import torch
from safetensors.torch import load_file
from transformers import NemotronHForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--ours", required=True)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    m, info = NemotronHForCausalLM.from_pretrained(a.model, dtype=torch.float32, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if bad:
        print(f"FAIL {a.model}: loading info {bad}")
        return 1
    m = m.float().eval()
    m.set_attn_implementation("eager")
    ids = load_file(a.inputs)["input_ids"]
    ours = load_file(a.ours)["logits"].float()
    with torch.no_grad():
        out = m(input_ids=ids, use_cache=True)  # short inputs: full forward is exact
    ref = out.logits.float()
    err = ((ours - ref).norm() / ref.norm()).item()
    ok = err <= a.tol
    print(f"{'PASS' if ok else 'FAIL'} {a.model}: transformers vs minipuzzle logits rel err {err:.3e} (tol {a.tol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
