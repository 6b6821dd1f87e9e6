#!/usr/bin/env bash
# Installs what minipuzzle needs on a fresh Debian 12 machine (CPU build): compiler, CMake,
# Debian's LibTorch 1.13, OpenBLAS (the reference BLAS is ~9x slower), the header libraries,
# Gloo's headers (c10d's CPU process group, for data parallel on the CPU), GoogleTest, PCRE2 and
# utf8proc (the tokenizer's regexes and Unicode normalization), and npm (used to fetch the
# public-domain text the demo trains on and the tokenizer test files).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
pkgs="build-essential cmake ninja-build ccache libtorch-dev libopenblas0-pthread libcli11-dev libfmt-dev
      libeigen3-dev nlohmann-json3-dev libgtest-dev googletest libgloo-dev libpcre2-dev libutf8proc-dev
      pkg-config ca-certificates"
command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "setup: installing$missing"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
echo "setup: all packages present"
