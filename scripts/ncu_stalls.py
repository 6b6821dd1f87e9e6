#!/usr/bin/env python3
"""Where a kernel's warps wait, from Nsight Compute's per-instruction source page.

On the GPU machine:
  ncu --clock-control none --section SourceCounters -k regex:KERNEL --launch-count 1 \\
      --page source --csv --print-source sass BINARY ARGS > src.csv
Then:
  scripts/ncu_stalls.py src.csv [--window 50] [--top 20]

Prints the stall reasons over all samples, the executed-instruction mix, the instruction
windows that hold the most samples (with the executed count most of their instructions share:
1 x blocks is once per block, warps x blocks x heads once per warp and head, and so on), and the
single instructions with the most samples. A barrier wait shows up on the instruction after
the barrier; compare the executed counts to tell whose work the other warps are waiting for.
"""
import argparse, collections, csv, sys


def rows(path):
    lines = [l for l in open(path) if l.startswith('"')]
    table = list(csv.reader(lines[1:]))  # the first quoted line names the kernel
    head = table[0]
    return head, [dict(zip(head, r)) for r in table[1:]]


def opcode(src):
    words = src.split()
    if not words:
        return ""
    op = words[1] if words[0].startswith("@") and len(words) > 1 else words[0]
    return op.split(".")[0]


def num(v):
    return int(v.replace(",", "")) if v else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--top", type=int, default=20)
    a = ap.parse_args()
    head, R = rows(a.csv)
    stalls = [c for c in head if c.startswith("stall_") and "Not Issued" not in c]
    samples = [num(r["# Samples"]) for r in R]
    total = sum(samples) or 1
    by_reason = collections.Counter()
    for r in R:
        for c in stalls:
            by_reason[c[6:]] += num(r[c])
    print(f"{total} samples; by reason: " + ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in by_reason.most_common(8)))
    mix = collections.Counter()
    for r in R:
        mix[opcode(r["Source"])] += num(r["Instructions Executed"])
    executed = sum(mix.values()) or 1
    print(f"{executed / 1e6:.1f} M warp instructions: " + ", ".join(f"{k} {100 * v / executed:.1f}%" for k, v in mix.most_common(12)))
    print(f"\nwindows of {a.window} instructions with >= 1% of the samples:")
    for i in range(0, len(R), a.window):
        w = R[i:i + a.window]
        s = sum(samples[i:i + a.window])
        if s < 0.01 * total:
            continue
        ex = collections.Counter(num(r["Instructions Executed"]) for r in w).most_common(1)[0][0]
        ops = collections.Counter(opcode(r["Source"]) for r in w).most_common(4)
        print(f"  {i:5d}-{i + len(w) - 1:5d} {100 * s / total:5.1f}%  executed x{ex:<9d} " + " ".join(f"{o}:{n}" for o, n in ops))
    print(f"\nthe {a.top} instructions with the most samples:")
    for i in sorted(sorted(range(len(R)), key=lambda i: -samples[i])[:a.top]):
        r = R[i]
        why = sorted(((num(r[c]), c[6:]) for c in stalls), reverse=True)[:2]
        print(f"  {i:5d} {100 * samples[i] / total:5.2f}% x{num(r['Instructions Executed']):<9d} {r['Source'].strip()[:56]:56s} "
              + ", ".join(f"{n} {c}" for n, c in why if n))


if __name__ == "__main__":
    sys.exit(main())
