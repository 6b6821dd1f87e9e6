#!/usr/bin/env bash
# The readers of every input format and their tests (mp_format_tests: no LibTorch, so they build in
# a few minutes) under AddressSanitizer and UndefinedBehaviorSanitizer, in build-sanitize/. Any
# report aborts the test that tripped it. scripts/test.sh runs this after the main suite; the
# whole suite under the sanitizers is: scripts/build.sh -DMP_SANITIZE=address,undefined (see
# README), a much longer build.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
# -O0: compiles in about half the time of -O1 (what CI pays for); assertions stay on.
cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE=-O0 \
  -DMP_FORMATS_ONLY=ON -DMP_SANITIZE=address,undefined >/dev/null
cmake --build build-sanitize -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-sanitize -j"$jobs" --output-on-failure --timeout 900
echo "sanitized format tests: ok"
