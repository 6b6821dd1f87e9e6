#!/usr/bin/env python3
"""Per-launch time and warp instructions from an Nsight Compute metrics CSV.

On the GPU machine:
  ncu --clock-control none --metrics gpu__time_duration.sum,smsp__inst_executed.sum \\
      -k regex:ssd_ --csv build-gpu/bench/bench_ssd --only 56B:1:256 --profile-once > ncu.csv
Then: scripts/ncu_times.py ncu.csv
"""
import collections, csv, re, sys


def short(name):
    name = re.sub(r"^void\s+", "", name)
    name = name.replace("<unnamed>::", "").replace("(anonymous namespace)::", "")
    return re.split(r"[<(]", name)[0]


def main(path):
    lines = [l for l in open(path) if l.startswith('"')]
    if not lines:
        print(f"{path}: no Nsight Compute rows (did the profiled command fail?)")
        return 1
    table = list(csv.reader(lines))
    head = table[0]
    i_id, i_k, i_m, i_v = (head.index(c) for c in ("ID", "Kernel Name", "Metric Name", "Metric Value"))
    launches = collections.OrderedDict()
    for r in table[1:]:
        launches.setdefault((r[i_id], short(r[i_k])), {})[r[i_m]] = float(r[i_v].replace(",", ""))
    for (i, k), m in launches.items():
        print(f"{i:>3} {k:34s} {m.get('gpu__time_duration.sum', 0) / 1e6:8.3f} ms "
              f"{m.get('smsp__inst_executed.sum', 0) / 1e6:8.1f} M instructions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
