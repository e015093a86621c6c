#!/usr/bin/env node
// Start the Apiframe simulator (target/release/apiframe-sim) and stop it again.
//
// As a module (used by the test runners):
//   import { startSim, SIM_KEY } from "../../scripts/with-sim.mjs";
//   const sim = await startSim({ jobMs: 2000 });   // sim.url, sim.apiKey, sim.stop()
//
// As a command:
//   node scripts/with-sim.mjs [--port N] [--job-ms N] [--result-shape string|object]
//                             [--api-key KEY] [--quiet] [--demo] [-- command args...]
//   With a command: runs it with SIM_URL / SIM_API_KEY / APIFRAME_BASE_URL /
//   APIFRAME_API_KEY set, then stops the simulator and exits with its code.
//   Without one: keeps the simulator in the foreground until Ctrl-C (SIGINT)
//   or SIGTERM, then stops it and exits 0. --demo prints curl examples.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const SIM_BIN = join(ROOT, "target", "release", "apiframe-sim");
/** A simulator-only key: test keys must contain "sim" or "test". */
export const SIM_KEY = "afk_sim_test_key_0123456789abcdef";

const live = new Set();
process.on("exit", () => {
  // Last resort (uncaught error, process.exit): never leave a simulator behind.
  for (const child of live) {
    try { child.kill("SIGKILL"); } catch { /* already gone */ }
  }
});

/**
 * Start the simulator and wait for its `SIM_URL=` line.
 * @returns {Promise<{url: string, port: number, apiKey: string, child: import("node:child_process").ChildProcess, stop: () => Promise<void>}>}
 */
export async function startSim({
  port = 0,
  apiKey = SIM_KEY,
  jobMs,
  resultShape,
  quiet = true,
  extraArgs = [],
  bin = process.env.SIM_BIN || SIM_BIN,
  startTimeoutMs = 15000,
  echoStdout = !quiet,
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
  let exited = null;
  const exitPromise = new Promise((res) => {
    child.once("exit", (code, signal) => {
      exited = { code, signal };
      live.delete(child);
      res(exited);
    });
  });

  const lines = createInterface({ input: child.stdout });
  const url = await new Promise((res, rej) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      rej(new Error(`simulator printed no SIM_URL line within ${startTimeoutMs} ms`));
    }, startTimeoutMs);
    let found = false;
    lines.on("line", (line) => {
      if (!found) {
        const m = /^SIM_URL=(http:\/\/127\.0\.0\.1:\d+)\s*$/.exec(line);
        if (m) {
          found = true;
          clearTimeout(timer);
          res(m[1]);
          return;
        }
      }
      if (echoStdout) process.stdout.write(`[sim] ${line}\n`);
    });
    child.once("error", (e) => { clearTimeout(timer); rej(e); });
    exitPromise.then(({ code, signal }) => {
      if (!found) {
        clearTimeout(timer);
        rej(new Error(`simulator exited before printing SIM_URL (code ${code}, signal ${signal}); args: ${args.filter((a) => a !== apiKey).join(" ")}`));
      }
    });
  });

  async function stop() {
    if (exited) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
    await exitPromise;
    clearTimeout(timer);
  }
  return { url, port: Number(new URL(url).port), apiKey, child, stop };
}

// ---------------------------------------------------------------- command line
function parseArgs(argv) {
  const o = { port: 0, quiet: false, demo: false, command: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--") { o.command = argv.slice(i + 1); break; }
    else if (a === "--port") o.port = Number(val());
    else if (a === "--job-ms") o.jobMs = Number(val());
    else if (a === "--result-shape") o.resultShape = val();
    else if (a === "--api-key") o.apiKey = val();
    else if (a === "--quiet") o.quiet = true;
    else if (a === "--demo") o.demo = true;
    else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

function demoText(url, key) {
  return `
The Apiframe v2 simulator is listening on ${url}  (jobs take ~15 s; Ctrl-C stops it)

  # submit a job (202 {"jobId": ..., "status": "QUEUED"})
  curl -s -X POST ${url}/v2/videos/generate \\
    -H 'X-API-Key: ${key}' -H 'Content-Type: application/json' \\
    -d '{"prompt":"A paper boat drifting down a rainy street","model":"sora-2","soraParams":{"duration":8}}'

  # read its status (repeat until COMPLETED; result is the video URL)
  curl -s ${url}/v2/jobs/<jobId> -H 'X-API-Key: ${key}'

  # prompt markers: "[fail]" or "[fail:reason]" ends FAILED, "[ms=3000]" sets the duration,
  # "[shape=object]" returns result as {"videoUrl": ...}; header "X-Sim-Fault: 503|429|reset|hang|malformed|lost"
  curl -s ${url}/__sim/stats
`;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const sim = await startSim({ port: o.port, jobMs: o.jobMs, resultShape: o.resultShape, apiKey: o.apiKey || SIM_KEY, quiet: o.quiet, echoStdout: true });
  let stopping = false;
  const shutdown = async (code) => {
    if (stopping) return;
    stopping = true;
    await sim.stop();
    process.exit(code);
  };
  process.on("SIGINT", () => shutdown(0));
  process.on("SIGTERM", () => shutdown(0));
  sim.child.once("exit", (code, signal) => {
    if (!stopping) {
      console.error(`simulator exited (code ${code}, signal ${signal})`);
      process.exit(code === 0 || signal === "SIGINT" ? 0 : 1);
    }
  });

  if (o.command.length > 0) {
    const env = { ...process.env, SIM_URL: sim.url, SIM_API_KEY: sim.apiKey, APIFRAME_BASE_URL: sim.url, APIFRAME_API_KEY: sim.apiKey };
    const cmd = spawn(o.command[0], o.command.slice(1), { stdio: "inherit", env });
    cmd.once("error", (e) => { console.error(`with-sim: ${e.message}`); shutdown(127); });
    cmd.once("exit", (code, signal) => shutdown(code ?? (signal ? 128 : 1)));
    return;
  }
  console.log(o.demo ? demoText(sim.url, sim.apiKey) : `SIM_URL=${sim.url}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`with-sim: ${e.message}`);
    process.exit(1);
  });
}
