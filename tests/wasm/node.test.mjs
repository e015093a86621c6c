// The wasm cases (cases.mjs) in Node, one node:test test each, against a
// freshly started simulator, with `sora-edge` imported BY NAME
// (node_modules/sora-edge -> ../pkg, made by scripts/build.sh).
//   node --test --test-reporter=spec tests/wasm/node.test.mjs
//   (--test-name-pattern=<regex> runs a subset)
import { execFileSync } from "node:child_process";
import { after, before, beforeEach, test } from "node:test";
import { startSim } from "../support/sim.mjs";
import { cases } from "./cases.mjs";

let lib;
let sim;
let env;

before(async () => {
  sim = await startSim();
  lib = await import("sora-edge");
  env = { simUrl: sim.url, apiKey: sim.apiKey, sim: sim.control, runtime: "node" };
});
after(() => sim?.stop());
beforeEach(() => env.sim.reset());

for (const c of cases) {
  test(c.name, { timeout: c.timeoutMs }, () => c.fn(lib, env));
}

// Node's entry loads the wasm at import, so `not_initialized` is met through the
// browser entry in a fresh process (Chromium's page has loaded it for the cases).
test("browser entry: new Client() before init() throws SoraEdgeError not_initialized; after init() it works", () => {
  const script = `
    import { Client, SoraEdgeError, isSoraEdgeError, default as init } from "./pkg/browser.js";
    let err;
    try { new Client(); } catch (e) { err = e; }
    const out = { instance: err instanceof SoraEdgeError, guard: isSoraEdgeError(err), code: err?.code,
      retryable: err?.retryable, cause: err?.cause instanceof Error };
    await init();
    new Client({ baseUrl: "/api" }).free();
    out.afterInit = true;
    console.log(JSON.stringify(out));`;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    cwd: new URL("../..", import.meta.url),
    encoding: "utf8",
  });
  const got = JSON.parse(out);
  const want = { instance: true, guard: true, code: "not_initialized", retryable: true, cause: true, afterInit: true };
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(`expected ${JSON.stringify(want)}, got ${out}`);
  }
});
