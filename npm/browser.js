// Browser and bundler entry. The wasm travels inside the JS (gzip, then base64,
// in sora_edge_bg.wasm.gz.js, which scripts/build.sh generates), so no bundler
// has to find, copy or serve a separate .wasm file: Vite (dev and build),
// esbuild, webpack, Rollup and Next.js all load it with their default
// configuration. Gzipped for the wire it costs 1 % more than the .wasm file.
import initWasm, * as wasm from "./sora_edge.js";
import { SoraEdgeError } from "./errors.js";

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
  const stream = new Blob([gzip]).stream().pipeThrough(new DecompressionStream("gzip"));
  // With this type, wasm-bindgen compiles while it decompresses (instantiateStreaming).
  return new Response(stream, { headers: { "content-type": "application/wasm" } });
}

// The calls, which return promises anyway, load the wasm themselves on first
// use, so none fails for want of an init() call. (These local exports take
// precedence over the same names in `export *`.) `new Client()` is synchronous:
// it needs `await init()` first, and says so with a SoraEdgeError.
const initFirst = (call) => async (...args) => {
  await init();
  return call(...args);
};
export const generate = initFirst(wasm.generate);
export const poll = initFirst(wasm.poll);
export const waitForJob = initFirst(wasm.waitForJob);
export const run = initFirst(wasm.run);
export const usage = initFirst(wasm.usage);

export class Client extends wasm.Client {
  constructor(options) {
    try {
      super(options);
    } catch (e) {
      if (e instanceof SoraEdgeError) throw e; // a bad option
      // Before the wasm has loaded, the glue's constructor has nothing to call.
      throw new SoraEdgeError(
        "the wasm is not loaded yet: `await init()` once before `new Client()`",
        { code: "not_initialized", retryable: true },
        { cause: e },
      );
    }
  }
}
