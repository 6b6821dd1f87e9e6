#!/usr/bin/env bash
# Runs the whole test suite through CTest (GPU tests skip themselves without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
ctest --test-dir build -j"$(nproc)" --output-on-failure --timeout 900
