#!/usr/bin/env python3
"""Times state-spaces/mamba's Triton SSD (mamba_chunk_scan_combined) at the shapes bench_ssd.cpp
uses: bf16 x/B/C/dt, fp32 A/D/dt_bias, dt_softplus, no z. Needs a checkout of the public repo in
third_party_ref/mamba (git-ignored; never committed); its package __init__ is bypassed, so the
compiled extensions are not needed. Writes one JSON object per line.
  bench_ssd_triton.py --out FILE [--quick] [--only MODEL:b:chunk ...] [--ref DIR]
On a fresh machine Triton compiles and autotunes every shape first: the five take 4-5 minutes on
an H200. --only (as bench_ssd's) times a subset, e.g. a shape an earlier run did not reach.
"""
import argparse, json, os, sys, time, types

import torch


def load_triton_ssd(ref):
    pkg = types.ModuleType("mamba_ssm")
    pkg.__path__ = [os.path.join(ref, "mamba_ssm")]
    sys.modules["mamba_ssm"] = pkg
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    return mamba_chunk_scan_combined


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench_ssd_triton.jsonl")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", action="append", default=[], metavar="MODEL:b:chunk",
                    help="time only these shapes (repeatable), e.g. 56B:1:256")
    ap.add_argument("--ref", default=os.path.join(os.path.dirname(__file__), "..", "third_party_ref", "mamba"))
    a = ap.parse_args()
    # The shapes first, so that a bad --only fails before Triton loads.
    shapes = [("8B", 128, 64, 128, 8, 1, 8192, 128), ("8B", 128, 64, 128, 8, 4, 8192, 256),
              ("56B", 256, 64, 256, 8, 1, 8192, 128), ("56B", 256, 64, 256, 8, 1, 8192, 256),
              ("56B", 256, 64, 256, 8, 4, 8192, 256)]
    tag = lambda s: f"{s[0]}:{s[5]}:{s[7]}"
    if a.only:
        known = {tag(s) for s in shapes}
        unknown = sorted(set(a.only) - known)
        if unknown:
            sys.exit(f"bench_ssd_triton: unknown shape {unknown[0]}; expected one of {', '.join(sorted(known))}")
        shapes = [s for s in shapes if tag(s) in a.only]
    if a.quick:
        shapes = shapes[:1]
    import triton.testing
    scan = load_triton_ssd(os.path.abspath(a.ref))
    card = torch.cuda.get_device_name()
    t_start = time.time()
    with open(a.out, "w") as f:
        for name, H, P, N, G, b, L, chunk in shapes:
            dev, bf = "cuda", torch.bfloat16
            x = torch.randn(b, L, H, P, device=dev, dtype=bf)
            dt = torch.randn(b, L, H, device=dev, dtype=bf)
            B = torch.randn(b, L, G, N, device=dev, dtype=bf)
            C = torch.randn(b, L, G, N, device=dev, dtype=bf)
            A = -torch.exp(torch.randn(H, device=dev) * 0.5)
            D = torch.randn(H, device=dev)
            bias = torch.randn(H, device=dev) - 1.0
            fwd = lambda: scan(x, dt, A, B, C, chunk, D=D, dt_bias=bias, dt_softplus=True)
            ms_f = triton.testing.do_bench(fwd, warmup=50, rep=300, return_mode="median")
            leaves = [t.detach().requires_grad_(True) for t in (x, dt, A, B, C, D, bias)]
            gy = torch.randn_like(x)

            def fb():
                y = scan(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], chunk, D=leaves[5], dt_bias=leaves[6],
                         dt_softplus=True)
                torch.autograd.grad(y, leaves, gy)
            ms_fb = triton.testing.do_bench(fb, warmup=50, rep=300, return_mode="median")
            rec = dict(kind="triton", card=card, model=name, b=b, L=L, chunk=chunk, fwd_ms=ms_f, fwdbwd_ms=ms_fb)
            print(json.dumps(rec), f"({time.time() - t_start:.0f} s)", flush=True)
            f.write(json.dumps(rec) + "\n")
            f.flush()


if __name__ == "__main__":
    main()
