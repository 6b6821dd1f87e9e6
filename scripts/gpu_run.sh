#!/usr/bin/env bash
# Everything the GPU machine is for, in one call (its time is short): build against the LibTorch
# inside the machine's torch, regenerate the transformers parity fixtures, run the whole test
# suite (GPU tests included), check that transformers loads what we write, run the benchmarks.
#   scripts/gpu_run.sh [build] [fixtures] [tests] [reverse] [bench] [throughput] [mfu] ...
#   [shard] [plan] (default: build tests reverse prune distill bench)
# MP_BUILD_TARGETS (space-separated CMake targets) narrows the build step.
# Logs and results go to $OUT (the device tool brings that folder back).
set -u
# Device code for sm_90a (the SSD kernels' wgmma): LibTorch's CMake takes the architectures from
# TORCH_CUDA_ARCH_LIST (else from the card) and ignores CMAKE_CUDA_ARCHITECTURES.
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0a}
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/mp_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
steps=${*:-build tests reverse prune distill bench}
card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
echo "card: ${card:-none}; steps: $steps" | tee "$OUT/summary.txt"
B=build-gpu
note() { echo "== $*" | tee -a "$OUT/summary.txt"; }

for step in $steps; do
  case $step in
    build)
      prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
      t0=$(date +%s)
      cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
        -DMP_DEPS_DIR="$PWD/deps" >"$OUT/configure.log" 2>&1 &&
        cmake --build $B -j16 ${MP_BUILD_TARGETS:+--target $MP_BUILD_TARGETS} >"$OUT/build.log" 2>&1
      note "build rc=$? in $(( $(date +%s) - t0 )) s"; tail -30 "$OUT/build.log" | grep -E "error|FAILED" | head -20
      ;;
    fixtures)
      python3 scripts/parity/make_fixtures.py --out tests/fixtures/parity 2>&1 | tee "$OUT/fixtures.log" | grep -v Warning
      tar czf "$OUT/fixtures.tgz" tests/fixtures/parity
      note "fixtures rc=${PIPESTATUS[0]}"
      ;;
    tests)
      # MP_TEST_FILTER (a gtest filter) narrows the run when the machine's time is short.
      stdbuf -oL -eL $B/tests/mp_tests --gtest_filter="${MP_TEST_FILTER:-*}" >"$OUT/tests.log" 2>&1
      note "tests rc=$?"; grep -E "^(parity|cuda) |FAILED|PASSED|SKIPPED" "$OUT/tests.log" | head -40
      ;;
    reverse)
      bash scripts/parity/reverse_check.sh "$B/minipuzzle" 2>&1 | tee "$OUT/reverse.log" | grep -E "PASS|FAIL|error"
      note "reverse rc=${PIPESTATUS[0]}"
      ;;
    prune)
      bash scripts/parity/check_pruned_in_transformers.sh "$B/minipuzzle" 2>&1 | tee "$OUT/pruned_hf.log" | grep -E "PASS|FAIL|error"
      note "pruned-in-transformers rc=${PIPESTATUS[0]}"
      bash scripts/parity/check_tokenizer_follows_prune.sh "$B/minipuzzle" 2>&1 | tee "$OUT/tokenizer_follows.log" | tail -3
      note "tokenizer-follows-prune rc=${PIPESTATUS[0]}"
      bash scripts/gpu_prune_check.sh "$B/minipuzzle" "$OUT/prune_check" 2>&1 | tee "$OUT/prune_stream.log" | grep -E "stream|peak|error|took"
      note "stream-vs-memory rc=${PIPESTATUS[0]}"
      ;;
    distill)
      # Train and distill on CUDA in bf16 for a few steps on real-ish text (the sources), both paths.
      w=$(mktemp -d)
      $B/minipuzzle data from-text model/*.cpp prune/*.cpp distill/*.cpp search/*.cpp --output $w/tok >/dev/null &&
      $B/minipuzzle train --recipe configs/recipes/cpu-demo-train.json --config configs/demo/config.json --data $w/tok \
        --eval-data $w/tok --steps 30 --device cuda --dtype bf16 --output $w/teacher 2>&1 | tail -4 &&
      $B/minipuzzle distill --recipe configs/recipes/cpu-demo-kd.json --teacher $w/teacher/final --student $w/teacher/final \
        --data $w/tok --eval-data $w/tok --steps 10 --device cuda --dtype bf16 --output $w/student 2>&1 | tail -4
      note "distill-on-cuda rc=${PIPESTATUS[0]}"
      rm -rf $w
      ;;
    bench)
      $B/bench/bench_kd_loss --tokens 32768 --card "$card" --out "$OUT/bench_kd_loss_32k.json" 2>&1 | tee -a "$OUT/summary.txt"
      $B/bench/bench_kd_loss --tokens 4096 --card "$card" --out "$OUT/bench_kd_loss_4k.json" 2>&1 | tee -a "$OUT/summary.txt"
      $B/bench/bench_eval --config configs/nemotron-h-8b/config.json --seq-len 4096 --batch 1 \
        --card "$card" --out "$OUT/bench_eval_8b.json" 2>&1 | tee -a "$OUT/summary.txt"
      ;;
    tokenizer)
      # Tokenizer speed: minipuzzle on 1..N threads against Hugging Face tokenizers (Python).
      cmake --build $B -j16 --target bench_tokenizer >/dev/null 2>&1
      bash bench/tokenizer_speed.sh $B/bench/bench_tokenizer .tokenizers "$OUT/tokenizer_speed" gpt2 qwen3 llama2 \
        > "$OUT/tokenizer_speed.log" 2>&1
      note "tokenizer-speed rc=$?"; tail -5 "$OUT/tokenizer_speed.log"
      bash scripts/parity/check_tokenizer_follows_prune.sh "$B/minipuzzle" 2>&1 | tee "$OUT/tokenizer_follows.log" | tail -3
      note "tokenizer-follows-prune rc=${PIPESTATUS[0]}"
      ;;
    shard)
      # --shard full against none at world size 1: tokens/s, peak memory, loss curves.
      bash bench/shard_one_gpu.sh $B/minipuzzle "$OUT/shard_one_gpu" 2>&1 | tee "$OUT/shard_one_gpu.log" | tail -8
      note "shard-one-gpu rc=${PIPESTATUS[0]}"
      ;;
    plan)
      # The memory planner against measured peaks (three students, --recompute off and on).
      SKIP_BUILD=1 bash scripts/gpu_plan_check.sh 2>&1 | tee "$OUT/plan_check.log" | tail -12
      note "plan-check rc=${PIPESTATUS[0]}"
      ;;
    throughput)
      # Fit the throughput model on this card, then check it on whole candidates (docs/search.md).
      bash scripts/gpu_throughput.sh "$B" "$card" "$OUT" 2>&1 | tee "$OUT/throughput.log" | grep -vE "^ *(demo|8b|56b) "
      note "throughput rc=${PIPESTATUS[0]}"
      ;;
    mfu)
      $B/bench/bench_distill_mfu --card "$card" --out "$OUT/bench_distill_mfu.json" 2>&1 | tail -3 | tee -a "$OUT/summary.txt"
      note "mfu rc=${PIPESTATUS[0]}"
      ;;
  esac
done
