#!/bin/bash -eu
# Builds every cargo-fuzz target of fuzz/ into $OUT, each with its committed seed corpus, as
# ClusterFuzzLite and OSS-Fuzz expect. It also runs outside their image (on stable, no
# sanitizer): .clusterfuzzlite/check-build.sh runs it with scratch $SRC and $OUT, and CI runs that.
#
# $SRC/selectlab is the checkout. $SANITIZER is set by ClusterFuzzLite (address, or coverage for
# coverage reports); without it, or on a stable toolchain, the targets build without one.

set -euo pipefail

# The physical path: cargo keys its build cache on it, so a checkout reached through a link (as
# check-build.sh does) shares the builds of `selectlab bench fuzz`.
cd "$(cd "$SRC/selectlab" && pwd -P)"

# The targets built without compare tracing; src/fuzzing.rs (traces_compares) says why, and a
# test keeps this list equal to it.
untraced_targets="chat_adversary"

sanitizer="${SANITIZER:-none}"
coverage=false
# Rust's sanitizers need nightly. The coverage build is made by the OSS-Fuzz builder's cargo
# wrapper, which turns `cargo fuzz build` into a plain `cargo build` in the default target
# directory (it ignores --target-dir).
if [ "$sanitizer" = coverage ]; then
  coverage=true
fi
if ! rustc --version | grep -q nightly || $coverage; then
  sanitizer=none
fi

targets=$(cargo fuzz list)
if [ -z "$targets" ]; then
  echo "build.sh: cargo fuzz list named no targets" >&2
  exit 1
fi
for target in $targets; do
  flags=(-O --debug-assertions -s "$sanitizer")
  traced=traced
  if [[ " $untraced_targets " == *" $target "* ]]; then
    flags+=(--no-trace-compares)
    traced=untraced
  fi
  # The same directories as `selectlab bench fuzz`, so a local run reuses its builds.
  target_dir="fuzz/target/$traced-$sanitizer"
  if $coverage; then
    target_dir="fuzz/target"
  fi
  cargo fuzz build "${flags[@]}" --target-dir "$target_dir" "$target"
  cp "$target_dir"/*/release/"$target" "$OUT/"
  if [ -d "fuzz/corpus/$target" ]; then
    (cd "fuzz/corpus/$target" && python3 -m zipfile -c "$OUT/${target}_seed_corpus.zip" ./*)
  fi
done
