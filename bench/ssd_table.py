#!/usr/bin/env python3
"""Joins bench_ssd (ours) and bench_ssd_triton (Triton) JSON lines into one short table.

"kept": forward+backward with the forward's chunk states kept for the backward (more memory:
"+GiB"); the columns before it are the default, which recomputes them as Triton does."""
import json, sys


def rows(path):
    try:
        return [json.loads(l) for l in open(path) if l.strip()]
    except OSError:
        return []


def fwdbwd_floor_ms(r, ceil):
    """The forward+backward floor (as bench_ssd.cpp computes it) for records written before it did."""
    if "fwdbwd_floor_ms" in r:
        return r["fwdbwd_floor_ms"]
    H, P, N, G = {"8B": (128, 64, 128, 8), "56B": (256, 64, 256, 8)}[r["model"]]
    b, L, Q = r["b"], r["L"], r["chunk"]
    fl = 4.0 * b * L * H * P * N + 2.0 * b * L * G * Q * N + 2.0 * b * L * H * Q * P
    fl += 10.0 * b * L * H * P * N + 2.0 * b * L * G * Q * N + 4.0 * b * L * H * Q * P + 4.0 * b * L * H * Q * N
    by = 2.0 * (5 * b * L * H * P + 3 * b * L * H + 6 * b * L * G * N)
    return max(by / (ceil["copy_TBps"] * 1e12), fl / (ceil["matmul_TFLOPs"] * 1e12)) * 1e3


ours, tri = rows(sys.argv[1]), rows(sys.argv[2])
ceil = next((r for r in ours if r.get("kind") == "ceilings"), None)
t = {(r["model"], r["b"], r["chunk"]): r for r in tri if r.get("kind") == "triton"}
cards = {r["card"] for r in ours + tri}
print("card(s):", ", ".join(sorted(cards)), "| SSD products:",
      {True: "wgmma", False: "mma.sync"}.get(ceil.get("ssd_wgmma") if ceil else None, "unknown"))
auto = {(r["model"], r["b"], r["chunk"]): r for r in ours if r.get("kind") == "ssd_fwd" and r.get("auto")}
print(f"{'shape':<6}{'b':>2}{'chunk':>6} | {'ours auto':>9} {'Q/PT/S':>10} {'best':>7} {'Q/PT/S':>10} {'triton':>7}"
      f" {'x auto':>6} {'x best':>6} {'floor%':>6} | {'ours f+b':>9} {'triton':>7} {'x':>5} {'floor%':>6}"
      f" | {'kept':>6} {'x':>5} {'+GiB':>5}")
for r in ours:
    if r.get("kind") != "ssd_best":
        continue
    k = (r["model"], r["b"], r["chunk"])
    tr = t.get(k, {})
    au = auto.get(k, r)
    tf, tfb = tr.get("fwd_ms"), tr.get("fwdbwd_ms")
    cfg = lambda x: f"{x['Q']}/{x['PT']}/{x.get('S', 1)}"
    sp = f"{tf / au['ms' if 'ms' in au else 'fwd_ms']:.2f}" if tf else "-"
    spb_ = f"{tf / r['fwd_ms']:.2f}" if tf else "-"
    spb = f"{tfb / r['fwdbwd_ms']:.2f}" if tfb and r["fwdbwd_ms"] > 0 else "-"
    am = au.get("ms", r["fwd_ms"])
    print(f"{r['model']:<6}{r['b']:>2}{r['chunk']:>6} | {am:9.3f} {cfg(au):>10} {r['fwd_ms']:7.3f} {cfg(r):>10} "
          f"{tf if tf else float('nan'):7.3f} {sp:>6} {spb_:>6} {100 * r['floor_ms'] / r['fwd_ms']:6.0f} |"
          f" {r['fwdbwd_ms']:9.2f} {tfb if tfb else float('nan'):7.2f} {spb:>5}"
          f" {100 * fwdbwd_floor_ms(r, ceil) / r['fwdbwd_ms'] if ceil and r['fwdbwd_ms'] > 0 else float('nan'):6.0f}"
          + (f" | {r['fwdbwd_kept_states_ms']:6.2f} {tfb / r['fwdbwd_kept_states_ms'] if tfb else float('nan'):5.2f}"
             f" {r['kept_states_GiB']:5.2f}" if r.get("fwdbwd_kept_states_ms", -1) > 0 else ""))
for r in ours:
    if r.get("kind") == "conv1d":
        print(f"conv1d b={r['b']} C={r['C']}: fwd {r['fwd_ms']:.3f} ms ({100 * r['fwd_bw_frac']:.0f}% copy bw), "
              f"ATen {r['ops_fwd_ms']:.3f} ms, fwd+bwd {r['fwdbwd_ms']:.3f} ms ({100 * r['fwdbwd_bw_frac']:.0f}%)")
