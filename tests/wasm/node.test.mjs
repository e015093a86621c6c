// The wasm cases (cases.mjs) in Node, one node:test test each, against a
// freshly started simulator, with `sora-edge` imported BY NAME
// (node_modules/sora-edge -> ../pkg, made by scripts/build.sh).
//   node --test --test-reporter=spec tests/wasm/node.test.mjs
//   (--test-name-pattern=<regex> runs a subset)
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
