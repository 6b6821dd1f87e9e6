#!/usr/bin/env python3
"""Medians per shape of two sets of bench_ssd JSON lines (A: the change, B: the reference), as a
table: forward, forward+backward and forward+backward with kept states, in ms, and A/B.
   scripts/ab_table.py A.jsonl B.jsonl"""
import json
import statistics
import sys

FIELDS = ("fwd_ms", "fwdbwd_ms", "fwdbwd_kept_states_ms")


def load(path):
    runs = {}
    try:
        f = open(path)
    except OSError as e:
        sys.exit(f"ab_table.py: cannot read {path} ({e.strerror}); expected bench_ssd JSON lines")
    with f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"ab_table.py: {path}:{n} is not JSON ({e})")
            if r.get("kind") != "ssd_best":
                continue
            k = (r["model"], r["b"], r["chunk"])
            for f_ in FIELDS:
                runs.setdefault(k, {}).setdefault(f_, []).append(r[f_])
    return runs


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: ab_table.py A.jsonl B.jsonl")
    a, b = load(sys.argv[1]), load(sys.argv[2])
    shared = sorted(set(a) & set(b))
    if not shared:
        sys.exit("ab_table.py: no shape is in both files (expected kind ssd_best lines from bench_ssd)")
    runs = min(len(a[k][FIELDS[0]]) for k in shared)
    print(f"medians of {runs}+ runs each, ms: A (the change) against B (the reference)")
    print(f"{'shape':5s} {'b':>2s} {'chunk':>5s} | {'fwd A':>7s} {'fwd B':>7s} {'A/B':>6s} | "
          f"{'f+b A':>7s} {'f+b B':>7s} {'A/B':>6s} | {'kept A':>7s} {'kept B':>7s} {'A/B':>6s}")
    for k in shared:
        cells = []
        for f_ in FIELDS:
            x, y = statistics.median(a[k][f_]), statistics.median(b[k][f_])
            cells.append(f"{x:7.3f} {y:7.3f} {x / y:6.3f}")
        print(f"{k[0]:5s} {k[1]:>2d} {k[2]:>5d} | " + " | ".join(cells))


if __name__ == "__main__":
    main()
