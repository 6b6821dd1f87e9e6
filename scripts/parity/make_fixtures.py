#!/usr/bin/env python3
"""Golden references from Hugging Face transformers' NemotronH, for the parity tests.

For each case: a tiny random NemotronH made by transformers (every parameter perturbed with noise
so that layout bugs show), saved with save_pretrained (single file or shards), token ids, and the
reference logits. Long sequences take their reference from token-by-token decoding with the cache
(which follows the exact recurrence), short ones from the full forward; both are computed and
their agreement printed, so a transformers regression shows up here rather than in our tests.

Run where transformers is installed (the GPU machine):
    python3 scripts/parity/make_fixtures.py --out tests/fixtures/parity
Writes OUT/<case>/{model/, inputs.safetensors, logits.safetensors} and OUT/manifest.json.
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file
from transformers import NemotronHConfig, NemotronHForCausalLM

CASES = [
    # name, pattern, dims, sharded
    dict(name="gqa_g2_single", pattern="M*-M-", vocab=97, hidden=64, inter=96, heads=4, kv=2, hd=16,
         mheads=8, mhd=8, state=16, groups=2, conv=4, chunk=16, shard=False),
    dict(name="mqa_g1_sharded", pattern="*M-M", vocab=101, hidden=48, inter=80, heads=6, kv=1, hd=8,
         mheads=4, mhd=16, state=8, groups=1, conv=3, chunk=8, shard=True),
    dict(name="mha_gH_single", pattern="-M*M", vocab=64, hidden=32, inter=64, heads=2, kv=2, hd=16,
         mheads=4, mhd=8, state=32, groups=4, conv=2, chunk=32, shard=False),
]


def make_model(c, seed):
    torch.manual_seed(seed)
    cfg = NemotronHConfig(
        vocab_size=c["vocab"], hidden_size=c["hidden"], hybrid_override_pattern=c["pattern"],
        num_attention_heads=c["heads"], num_key_value_heads=c["kv"], head_dim=c["hd"],
        intermediate_size=c["inter"], mamba_num_heads=c["mheads"], mamba_head_dim=c["mhd"],
        ssm_state_size=c["state"], n_groups=c["groups"], conv_kernel=c["conv"], chunk_size=c["chunk"],
        use_mamba_kernels=False, time_step_min=1e-9, layer_norm_epsilon=1e-5)
    m = NemotronHForCausalLM(cfg).float().eval()
    m.set_attn_implementation("eager")
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("A_log"):
                p.add_(0.3 * torch.randn_like(p))
            elif name.endswith("dt_bias"):
                p.copy_(torch.randn_like(p) - 1.0)
            elif "norm" in name or name.endswith(".D"):
                p.add_(0.2 * torch.randn_like(p))
            else:
                p.add_(0.05 * torch.randn_like(p))
    return m


@torch.no_grad()
def decode_logits(m, ids):
    out = m(input_ids=ids[:, :1], use_cache=True)
    past, logits = out.past_key_values, [out.logits]
    for t in range(1, ids.shape[1]):
        out = m(input_ids=ids[:, t:t + 1], past_key_values=past, use_cache=True)
        past = out.past_key_values
        logits.append(out.logits)
    return torch.cat(logits, 1)


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    manifest = []
    for i, c in enumerate(CASES):
        d = os.path.join(args.out, c["name"])
        os.makedirs(d, exist_ok=True)
        m = make_model(c, 1000 + i)
        m.save_pretrained(os.path.join(d, "model"), max_shard_size="20KB" if c["shard"] else "1GB")
        g = torch.Generator().manual_seed(7 + i)
        tensors = {}
        for tag, L in (("short", max(2, c["chunk"] // 2 - 1)), ("long", 3 * c["chunk"] + 5)):
            ids = torch.randint(0, c["vocab"], (2, L), generator=g)
            with torch.no_grad():
                full = m(input_ids=ids).logits.float()
            dec = decode_logits(m, ids).float()
            print(f"{c['name']} {tag} L={L}: full vs decode rel err {rel(full, dec):.2e}")
            tensors[f"input_ids_{tag}"] = ids.contiguous()
            tensors[f"logits_{tag}"] = dec.contiguous()
            tensors[f"logits_full_{tag}"] = full.contiguous()
        save_file({k: v for k, v in tensors.items() if k.startswith("input")}, os.path.join(d, "inputs.safetensors"))
        save_file({k: v for k, v in tensors.items() if k.startswith("logits")}, os.path.join(d, "logits.safetensors"))
        manifest.append({"name": c["name"], "config": c})
    import transformers
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump({"transformers": transformers.__version__, "torch": torch.__version__, "cases": manifest}, f, indent=2)


if __name__ == "__main__":
    main()
