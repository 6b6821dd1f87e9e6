#!/usr/bin/env bash
# Copies the header-only dependencies (CLI11, fmt, nlohmann-json, Eigen) and GoogleTest's sources
# from this Debian machine into deps/ (git-ignored), for machines without these packages (the
# GPU machine). CMake picks them up through MP_DEPS_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
for p in libcli11-dev libfmt-dev nlohmann-json3-dev libeigen3-dev googletest libpcre2-dev libutf8proc-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || { echo "bundle_deps: package $p is not installed (run scripts/setup_debian.sh)"; exit 2; }
done
rm -rf deps && mkdir -p deps/include
cp -r /usr/include/CLI /usr/include/fmt /usr/include/nlohmann deps/include/
cp -r /usr/include/eigen3/Eigen deps/include/
cp -r /usr/src/googletest deps/googletest
# The tokenizer's PCRE2 and utf8proc: headers and shared libraries (Debian 12's glibc is older than
# the GPU machine's, so they load there); the build finds them through MP_DEPS_DIR.
mkdir -p deps/lib
cp /usr/include/pcre2.h /usr/include/utf8proc.h deps/include/
cp -P /usr/lib/x86_64-linux-gnu/libpcre2-8.so* /usr/lib/x86_64-linux-gnu/libutf8proc.so* deps/lib/
du -sh deps
