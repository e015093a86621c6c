#!/usr/bin/env bash
# Builds the wasm package. `web` (default): the browser/Node/Workers package in
# pkg/. `edge`: the same library plus the edge worker's exports, in pkg-edge/.
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:-web}
case "$variant" in
  web) features=(); out=pkg ;;
  edge) features=(--features edge); out=pkg-edge ;;
  *) echo "usage: $0 [web|edge]" >&2; exit 2 ;;
esac
# Debian's binaryen (wasm-opt 108) emits wasm that fails to load: use npm's.
export PATH="$PWD/node_modules/.bin:$PATH"
# Each variant has its own target dir, so the two builds never overwrite each other.
target_dir=target/wasm-$variant
cargo build --quiet --release --target wasm32-unknown-unknown --lib "${features[@]}" --target-dir "$target_dir"
rm -rf "$out.tmp" && mkdir -p "$out.tmp"
wasm-bindgen --target web --out-dir "$out.tmp" --out-name sora_edge \
  "$target_dir/wasm32-unknown-unknown/release/sora_edge.wasm"
wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-reference-types --enable-multivalue --enable-mutable-globals --strip-debug --strip-producers -o "$out.tmp/sora_edge_bg.wasm" "$out.tmp/sora_edge_bg.wasm"
# The generated .d.ts says `any` everywhere; ship the precise, tested types.
cp npm/package.json npm/node.js npm/sora_edge.d.ts "$out.tmp/"
rm -f "$out.tmp/sora_edge_bg.wasm.d.ts" "$out.tmp/.gitignore"
rm -rf "$out" && mv "$out.tmp" "$out"
if [ "$variant" = web ]; then
  mkdir -p node_modules && ln -sfn ../pkg node_modules/sora-edge
fi
echo "built $out/"
