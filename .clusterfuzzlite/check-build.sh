#!/bin/bash -eu
# Runs build.sh as ClusterFuzzLite would, with scratch $SRC and $OUT, and checks that every
# fuzz target landed in $OUT with its seed corpus and runs one of its seed inputs. CI runs it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export SRC="$scratch/src" OUT="$scratch/out"
mkdir -p "$SRC" "$OUT"
ln -s "$repo" "$SRC/selectlab"
"$repo/.clusterfuzzlite/build.sh"
targets=$(cd "$repo" && cargo fuzz list)
if [ -z "$targets" ]; then
  echo "cargo fuzz list named no targets" >&2
  exit 1
fi
for target in $targets; do
  if [ ! -x "$OUT/$target" ] || [ ! -s "$OUT/${target}_seed_corpus.zip" ]; then
    echo "build.sh left no $target (or no seed corpus) in \$OUT" >&2
    exit 1
  fi
  one=$(find "$repo/fuzz/corpus/$target" -type f | sort | head -1)
  if ! "$OUT/$target" -runs=1 "$one" >"$scratch/$target.log" 2>&1; then
    cat "$scratch/$target.log" >&2
    echo "$target, as build.sh built it, failed on $one" >&2
    exit 1
  fi
done
echo "build.sh: $(echo $targets | wc -w) targets in \$OUT, each with its seed corpus, each ran one input"
