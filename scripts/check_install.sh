#!/usr/bin/env bash
# Checks an installation as a user meets it: `cmake --install` of build/ (or the build folder given)
# into a temporary prefix, then the installed `minipuzzle --version`, `info` on an installed
# config and the bash completion script, then a small C++ program (tests/install_consumer/) configured against the installed
# CMake package with find_package(minipuzzle), built and run. Nothing is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
start=$SECONDS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail() { echo "check_install: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >/dev/null
mp="$prefix/bin/minipuzzle"
config="$prefix/share/minipuzzle/configs/nemotron-h-8b/config.json"
[ -x "$mp" ] || fail "no bin/minipuzzle in the installed tree"
[ -f "$config" ] || fail "no share/minipuzzle/configs/nemotron-h-8b/config.json in the installed tree"

# The version printed is the one CMake's project() declares.
want=$(sed -n 's/^project(minipuzzle VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
version=$("$mp" --version)
[ "$(head -n1 <<<"$version")" = "minipuzzle $want" ] || fail "--version printed '$(head -n1 <<<"$version")', expected 'minipuzzle $want'"
info=$("$mp" info "$config")
grep -q "8.10 B" <<<"$info" || fail "info on the installed 8B config does not report 8.10 B parameters"
# The installed binary predicts speed from the throughput model installed beside it: a copy whose
# card is renamed must be the one it reads.
sed -i 's/"card": "[^"]*"/"card": "installed model"/' "$prefix/share/minipuzzle/configs/throughput/h200-bf16.json"
"$mp" info "$config" --predict-speed | grep -q "predicted on installed model" ||
  fail "the installed binary does not read the throughput model under share/minipuzzle/configs"
completion="$prefix/share/bash-completion/completions/minipuzzle"
[ -f "$completion" ] || fail "no share/bash-completion/completions/minipuzzle in the installed tree"
grep -q -- '--ffn-hidden-size' "$completion" || fail "the installed bash completion does not name search's options"

# A C++ program against the installed package (the compiler launcher is left out: this measures
# a cold build, as on a fresh machine).
cmake -S tests/install_consumer -B "$tmp/consumer" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/configure.log" 2>&1 || { cat "$tmp/configure.log"; fail "consumer: configure failed"; }
cmake --build "$tmp/consumer" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "consumer: build failed"; }
out=$("$tmp/consumer/consumer" "$config")
[ "$out" = "layers 52 tensors 311" ] || fail "consumer printed '$out'"

echo "check_install: ok, $(head -n1 <<<"$version") ($(sed -n 2p <<<"$version")), $((SECONDS - start)) s"
