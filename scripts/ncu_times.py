#!/usr/bin/env python3
"""Per-launch time and warp instructions (and, where collected, DRAM bytes read and the L2 hit
rate) from an Nsight Compute metrics CSV.

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
    i_u = head.index("Metric Unit") if "Metric Unit" in head else None
    launches = collections.OrderedDict()
    for r in table[1:]:
        v = float(r[i_v].replace(",", ""))
        unit = r[i_u] if i_u is not None else ""
        if unit.endswith("byte"):  # to bytes
            v *= {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}.get(unit[:1], 1)
        elif unit.endswith("second"):  # to ns
            v *= {"u": 1e3, "m": 1e6, "s": 1e9}.get(unit[:1], 1)
        launches.setdefault((r[i_id], short(r[i_k])), {})[r[i_m]] = v
    for (i, k), m in launches.items():
        extra = ""  # where the CSV has them: DRAM bytes read and the L2 hit rate
        if "dram__bytes_read.sum" in m:
            extra += f" {m['dram__bytes_read.sum'] / 1e9:7.3f} GB read"
        if "lts__t_sector_hit_rate.pct" in m:
            extra += f" L2 hits {m['lts__t_sector_hit_rate.pct']:5.1f}%"
        print(f"{i:>3} {k:34s} {m.get('gpu__time_duration.sum', 0) / 1e6:8.3f} ms "
              f"{m.get('smsp__inst_executed.sum', 0) / 1e6:8.1f} M instructions{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
