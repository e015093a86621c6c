// Browser and bundler entry. The wasm travels inside the JS (gzip, then base64,
// in sora_edge_bg.wasm.gz.js, which scripts/build.sh generates), so no bundler
// has to find, copy or serve a separate .wasm file: Vite (dev and build),
// esbuild, webpack and Rollup all load it with their default configuration.
// Gzipped for the wire it costs 1 % more than the .wasm file itself.
import initWasm from "./sora_edge.js";

export * from "./sora_edge.js";

let ready;

/**
 * Loads the wasm once; every later call returns the same promise. With no
 * argument it uses the copy inlined in the package. `{ module_or_path }` (a URL,
 * a Response, bytes or a WebAssembly.Module) loads it from elsewhere instead.
 */
export default function init(input) {
  ready ??= initWasm(input ?? { module_or_path: inlinedWasm() }).catch((e) => {
    ready = undefined; // a failed load (say, offline) may be tried again
    throw e;
  });
  return ready;
}

// A dynamic import: a caller who passes its own URL never downloads the copy.
async function inlinedWasm() {
  const { default: base64 } = await import("./sora_edge_bg.wasm.gz.js");
  const gzip = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const wasm = new Blob([gzip]).stream().pipeThrough(new DecompressionStream("gzip"));
  // With this type, wasm-bindgen compiles while it decompresses (instantiateStreaming).
  return new Response(wasm, { headers: { "content-type": "application/wasm" } });
}
