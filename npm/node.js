// Node entry: instantiate the wasm synchronously from disk, so that
// `import { generate } from "sora-edge"` works with no init call.
import { readFileSync } from "node:fs";
import { initSync } from "./sora_edge.js";

initSync({ module: readFileSync(new URL("./sora_edge_bg.wasm", import.meta.url)) });

export * from "./sora_edge.js";
export { default } from "./sora_edge.js";
