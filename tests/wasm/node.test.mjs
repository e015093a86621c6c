// Runs tests/wasm/cases.mjs in Node against a freshly started simulator, with
// `sora-edge` imported BY NAME (node_modules/sora-edge -> ../pkg, made by
// scripts/build.sh). Prints `wasm-node: N passed, M failed`.
//   node tests/wasm/node.test.mjs            (CASES=<regex> to run a subset)
import { startSim, SIM_KEY } from "../../scripts/with-sim.mjs";
import { cases, runCases } from "./cases.mjs";
import { simControl } from "./sim-control.mjs";

const WATCHDOG_MS = Number(process.env.WASM_TEST_WATCHDOG_MS || 8 * 60 * 1000);

let sim;
let exitCode = 1;
let passed = 0;
let failed = 0;
const watchdog = setTimeout(() => {
  console.error(`wasm-node: watchdog: not finished after ${WATCHDOG_MS} ms`);
  finish(1);
}, WATCHDOG_MS);

async function finish(code) {
  clearTimeout(watchdog);
  try {
    await sim?.stop();
  } catch (e) {
    console.error(`wasm-node: stopping the simulator: ${e.message}`);
  }
  console.log(`wasm-node: ${passed} passed, ${failed} failed`);
  // Exit explicitly: a library bug may leave timers or sockets alive.
  process.exit(code);
}
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => finish(130));

try {
  sim = await startSim({ apiKey: SIM_KEY });
  console.log(`wasm-node: simulator at ${sim.url}; ${cases.length} cases defined`);
  const lib = await import("sora-edge");
  const env = { simUrl: sim.url, apiKey: sim.apiKey, sim: simControl(sim.url) };
  const out = await runCases(lib, env, {
    filter: process.env.CASES,
    onResult: (r) => {
      console.log(`${r.ok ? "ok  " : "FAIL"} ${String(r.ms).padStart(6)} ms  ${r.name}`);
      if (!r.ok) console.log(`      ${r.error}`);
    },
  });
  passed = out.passed;
  failed = out.failed;
  exitCode = failed === 0 && passed > 0 ? 0 : 1;
  if (passed + failed === 0) console.error("wasm-node: no case ran");
} catch (e) {
  console.error(`wasm-node: fatal: ${e && e.stack ? e.stack : e}`);
  exitCode = 1;
}
await finish(exitCode);
