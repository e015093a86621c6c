#!/usr/bin/env bash
# Builds the wasm package: the browser/Node/Workers package in pkg/. (The edge
# worker is its own crate: scripts/build-worker.sh.)
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:-web}
case "$variant" in
  web) features=(); out=pkg ;;
  *) echo "usage: $0 [web]" >&2; exit 2 ;;
esac
# Debian's binaryen (wasm-opt 108) emits wasm that fails to load: use npm's.
export PATH="$PWD/node_modules/.bin:$PATH"
# A nightly toolchain with rust-src rebuilds std for size with panics that
# abort at once (no panic message formatting, no file names in the binary):
# about 6.5 KB gzip less. Without one, or if that build fails (flags change
# between nightlies), stable builds the same package. SORA_TOOLCHAIN=stable
# forces stable; SORA_TOOLCHAIN=nightly refuses the fallback. Only the web
# variant: `-Zfmt-debug=none` prints every `{:?}` as nothing, so no message
# may use Debug there, and the edge build need not be small.
toolchain=${SORA_TOOLCHAIN:-auto}
[ "$variant" = web ] || toolchain=stable
nightly_ready() {
  local sysroot
  command -v rustup >/dev/null 2>&1 || return 1
  sysroot=$(rustup run nightly rustc --print sysroot 2>/dev/null) || return 1
  [ -f "$sysroot/lib/rustlib/src/rust/library/Cargo.lock" ]
}
build_nightly() {
  RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zfmt-debug=none -Zlocation-detail=none" \
    cargo +nightly build --quiet --release --target wasm32-unknown-unknown --lib "${features[@]}" \
    --target-dir "$target_dir" -Zbuild-std=std,panic_abort
}
# Each variant and toolchain has its own target dir, so builds never overwrite each other.
built=
if [ "$toolchain" != stable ] && nightly_ready; then
  target_dir=target/wasm-$variant-nightly
  if build_nightly; then
    built=nightly
  elif [ "$toolchain" = nightly ]; then
    exit 1
  else
    echo "build: the nightly size build failed; building with stable instead" >&2
  fi
elif [ "$toolchain" = nightly ]; then
  echo "build: SORA_TOOLCHAIN=nightly, but no nightly toolchain with rust-src is installed" >&2
  exit 1
fi
if [ -z "$built" ]; then
  target_dir=target/wasm-$variant
  cargo build --quiet --release --target wasm32-unknown-unknown --lib "${features[@]}" --target-dir "$target_dir"
  built=stable
fi
rm -rf "$out.tmp" && mkdir -p "$out.tmp"
wasm-bindgen --target web --out-dir "$out.tmp" --out-name sora_edge \
  "$target_dir/wasm32-unknown-unknown/release/sora_edge.wasm"
wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-reference-types --enable-multivalue --enable-mutable-globals --strip-debug --strip-producers -o "$out.tmp/sora_edge_bg.wasm" "$out.tmp/sora_edge_bg.wasm"
# The generated glue is readable JS; minified, it is 1.5 KB smaller gzipped.
if [ "$variant" = web ]; then
  esbuild "$out.tmp/sora_edge.js" --minify --format=esm --target=es2020 --log-level=warning \
    --outfile="$out.tmp/sora_edge.min.js"
  mv "$out.tmp/sora_edge.min.js" "$out.tmp/sora_edge.js"
fi
# The generated .d.ts says `any` everywhere; ship the precise, tested types.
cp npm/package.json npm/node.js npm/sora_edge.d.ts "$out.tmp/"
rm -f "$out.tmp/sora_edge_bg.wasm.d.ts" "$out.tmp/.gitignore"
rm -rf "$out" && mv "$out.tmp" "$out"
if [ "$variant" = web ]; then
  mkdir -p node_modules && ln -sfn ../pkg node_modules/sora-edge
fi
# `make size` holds each toolchain to its own ceiling.
echo "$built" > "target/$out.toolchain"
echo "built $out/ ($built)"
