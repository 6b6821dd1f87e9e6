#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan; fuzz/) into build-fuzz/ and runs one:
#   scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]
# TARGET is a format of fuzz/format_readers.h (safetensors, config, shard_index, megatron_idx,
# importance, shape, recipe, budget, tokenizer, task). One process at nice 15; its corpus grows in
# build-fuzz/corpus/TARGET (seeded by scripts/fuzz_corpus.sh), inputs that crash land in
# build-fuzz/crashes/TARGET/. Prints the executions, the seconds and every crash; exits 1 on a crash.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]" >&2
  exit 2
fi
target=$1
seconds=$2
shift 2
case "$target" in
  safetensors|config|shard_index|importance|tokenizer|task) max_len=16384 ;;
  megatron_idx|recipe|budget|shape) max_len=4096 ;;
  *) echo "scripts/fuzz.sh: unknown target '$target'" >&2; exit 2 ;;
esac
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "scripts/fuzz.sh: SECONDS must be a whole number >= 1, got '$seconds'" >&2
  exit 2
fi

cc=$(command -v clang || command -v clang-14 || true)
cxx=$(command -v clang++ || command -v clang++-14 || true)
if [ -z "$cxx" ]; then
  echo "scripts/fuzz.sh: clang++ not found (Debian: apt-get install clang)" >&2
  exit 2
fi
if [ ! -f build-fuzz/build.ninja ]; then
  CC=$cc CXX=$cxx cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMP_FUZZ=ON \
    -DMP_BUILD_TESTS=OFF >/dev/null
fi
nice -n 10 cmake --build build-fuzz --target "fuzz_$target" -j2 >/dev/null

[ -d build-fuzz/seeds/"$target" ] || bash scripts/fuzz_corpus.sh build-fuzz/seeds >/dev/null
mkdir -p build-fuzz/corpus/"$target" build-fuzz/crashes/"$target"
log=build-fuzz/fuzz-"$target".log
set +e
nice -n 15 build-fuzz/fuzz/fuzz_"$target" build-fuzz/corpus/"$target" build-fuzz/seeds/"$target" \
  -dict=fuzz/dict/"$target".dict -max_len="$max_len" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix=build-fuzz/crashes/"$target"/ "$@" >"$log" 2>&1
rc=$?
set -e
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
echo "fuzz_$target: ${runs:-?} executions in ${took:-?} s (log $log)"
if [ $rc -ne 0 ]; then
  grep -E 'ERROR: |runtime error|terminate called|what\(\)|Test unit written|SUMMARY' "$log" | head -20
  echo "fuzz_$target: crashed (exit $rc)"
  exit 1
fi
echo "fuzz_$target: no crash"
