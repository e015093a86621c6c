#!/usr/bin/env node
// Start the Apiframe simulator (target/release/apiframe-sim) from the command
// line, through the tests' own helper (tests/support/sim.mjs).
//
//   node scripts/with-sim.mjs [--port N] [--job-ms N] [--result-shape string|object]
//                             [--api-key KEY] [--quiet] [--demo] [-- command args...]
//
// With a command: runs it with SIM_URL / SIM_API_KEY / APIFRAME_BASE_URL /
// APIFRAME_API_KEY set, then stops the simulator and exits with its code.
// Without one: keeps the simulator in the foreground until Ctrl-C (SIGINT)
// or SIGTERM, then stops it and exits 0. --demo prints curl examples.
import { spawn } from "node:child_process";
import { parseArgs } from "node:util";
import { SIM_KEY, startSim } from "../tests/support/sim.mjs";

const USAGE = "usage: node scripts/with-sim.mjs [--port N] [--job-ms N] [--result-shape string|object] [--api-key KEY] [--quiet] [--demo] [-- command args...]";

function options(argv) {
  const { values, positionals, tokens } = parseArgs({
    args: argv,
    allowPositionals: true,
    tokens: true,
    options: {
      port: { type: "string", default: "0" },
      "job-ms": { type: "string" },
      "result-shape": { type: "string" },
      "api-key": { type: "string", default: SIM_KEY },
      quiet: { type: "boolean", default: false },
      demo: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const number = (name, value) => {
    if (value === undefined) return undefined;
    if (!/^\d+$/.test(value)) throw new Error(`--${name} must be a whole number, got ${JSON.stringify(value)}`);
    return Number(value);
  };
  // A command comes after `--`; a bare word before it is a typo.
  const end = tokens.find((t) => t.kind === "option-terminator")?.index ?? Infinity;
  const stray = tokens.find((t) => t.kind === "positional" && t.index < end);
  if (stray) throw new Error(`unexpected argument ${JSON.stringify(stray.value)} (put a command after --)\n${USAGE}`);
  return {
    help: values.help,
    port: number("port", values.port),
    jobMs: number("job-ms", values["job-ms"]),
    resultShape: values["result-shape"],
    apiKey: values["api-key"],
    quiet: values.quiet,
    demo: values.demo,
    command: positionals,
  };
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
  const o = options(process.argv.slice(2));
  if (o.help) {
    console.log(USAGE);
    return;
  }
  const sim = await startSim({ port: o.port, jobMs: o.jobMs, resultShape: o.resultShape, apiKey: o.apiKey, quiet: o.quiet, echo: true });
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

main().catch((e) => {
  console.error(`with-sim: ${e.message}`);
  process.exit(1);
});
