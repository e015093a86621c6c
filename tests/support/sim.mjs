// Starts and stops the Apiframe simulator (target/release/apiframe-sim) for the
// tests, the benches and scripts/with-sim.mjs: the one place that knows its
// command line and its `SIM_URL=` start-up line.
//
//   import { startSim } from "../support/sim.mjs";
//   const sim = await startSim({ jobMs: 2000 });
//   sim.url; sim.apiKey; await sim.control.stats(); await sim.stop();
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { once } from "node:events";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { simControl } from "./sim-control.mjs";

export { simControl };
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const SIM_BIN = join(ROOT, "target", "release", "apiframe-sim");
/** A simulator-only key: the simulator accepts only keys that contain "sim" or "test". */
export const SIM_KEY = "afk_sim_test_key_0123456789abcdef";

const SIM_URL_LINE = /^SIM_URL=(http:\/\/127\.0\.0\.1:\d+)\s*$/;

// However this process ends (an uncaught error, process.exit, Ctrl-C, the test
// runner's SIGTERM), no simulator outlives it.
const live = new Set();
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, function dieOfSignal() {
    // A caller with its own handler (scripts/with-sim.mjs) stops and exits itself.
    if (process.listenerCount(signal) > 1) return;
    // Otherwise die of the signal, as without this handler, but never leave a simulator.
    for (const child of live) child.kill("SIGKILL");
    process.removeListener(signal, dieOfSignal);
    process.kill(process.pid, signal);
  });
}

/**
 * Starts the simulator on a free port and waits for its `SIM_URL=` line.
 * Its stdout's other lines go to ours when `echo`; its stderr always does.
 * @returns {Promise<{url: string, apiKey: string, child: import("node:child_process").ChildProcess,
 *   control: ReturnType<typeof simControl>, stop: () => Promise<void>}>}
 */
export async function startSim({
  port = 0,
  apiKey = SIM_KEY,
  jobMs,
  resultShape,
  quiet = true,
  echo = false,
  extraArgs = [],
  bin = process.env.SIM_BIN || SIM_BIN,
  startTimeoutMs = 15000,
} = {}) {
  if (!existsSync(bin)) {
    throw new Error(`simulator binary not found at ${bin}: run \`cargo build --release -p apiframe-sim\` (or \`make build\`)`);
  }
  const args = ["--port", String(port), "--api-key", apiKey];
  if (jobMs !== undefined) args.push("--job-ms", String(jobMs));
  if (resultShape !== undefined) args.push("--result-shape", resultShape);
  if (quiet) args.push("--quiet");
  args.push(...extraArgs);

  const child = spawn(bin, args, { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
  live.add(child);
  const exited = once(child, "exit").finally(() => live.delete(child));

  let onUrl;
  const printed = new Promise((res) => { onUrl = res; });
  createInterface({ input: child.stdout }).on("line", (line) => {
    const m = SIM_URL_LINE.exec(line);
    if (m && onUrl) {
      onUrl(m[1]);
      onUrl = null;
    } else if (echo) {
      process.stdout.write(`[sim] ${line}\n`);
    }
  });
  let timer;
  const url = await Promise.race([
    printed,
    once(child, "error").then(([e]) => { throw e; }),
    exited.then(([code, signal]) => {
      throw new Error(`simulator exited before printing SIM_URL (code ${code}, signal ${signal}); args: ${args.filter((a) => a !== apiKey).join(" ")}`);
    }),
    new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error(`simulator printed no SIM_URL line within ${startTimeoutMs} ms`)), startTimeoutMs);
    }),
  ]).catch((e) => {
    child.kill("SIGKILL");
    throw e;
  }).finally(() => clearTimeout(timer));

  async function stop() {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const force = setTimeout(() => child.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(force);
  }
  return { url, apiKey, child, control: simControl(url), stop };
}
