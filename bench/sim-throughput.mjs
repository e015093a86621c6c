// Simulator throughput (issue 10): `GET /v2/jobs/{id}` requests/s with
// CONCURRENCY clients over keep-alive connections, for the simulator in
// target/release/apiframe-sim against a baseline binary (the hand-written
// std::net simulator of commit d7ec065), measured in this one process.
//
// Both simulators run at once; each warms up, then they take ROUNDS turns each
// in alternating order (A B B A A B ...), TOTAL requests per turn, so that a
// change in the machine's load falls on both. The job is still running (jobs
// last 10 min here), so every read computes a live status. Prints the median
// requests/s of each and their ratio, as markdown rows with `--rows`.
//
//   git worktree add /tmp/sim-old d7ec065
//   (cd /tmp/sim-old && cargo build --release -p apiframe-sim --target-dir /tmp/sim-old-target)
//   node bench/sim-throughput.mjs --baseline /tmp/sim-old-target/release/apiframe-sim [--rows]
//     (BENCH_SIM_TOTAL=20000 BENCH_SIM_CONCURRENCY=32 BENCH_SIM_ROUNDS=5)
//
// Without --baseline (or SIM_BASELINE_BIN) it measures the current simulator alone.
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { startSim, SIM_BIN, SIM_KEY } from "../tests/support/sim.mjs";
import { load, median, row } from "./lib.mjs";

const { values: args } = parseArgs({
  options: {
    baseline: { type: "string", default: process.env.SIM_BASELINE_BIN },
    candidate: { type: "string", default: process.env.SIM_BIN || SIM_BIN },
    rows: { type: "boolean", default: false },
  },
});
const TOTAL = Number(process.env.BENCH_SIM_TOTAL ?? 20000);
const CONCURRENCY = Number(process.env.BENCH_SIM_CONCURRENCY ?? 32);
const ROUNDS = Number(process.env.BENCH_SIM_ROUNDS ?? 5);
const WARMUP = Math.min(TOTAL, 2000);

const bins = [["tokio + hyper", args.candidate]];
if (args.baseline) {
  if (!existsSync(args.baseline)) throw new Error(`baseline binary ${args.baseline} is missing`);
  bins.unshift(["baseline (d7ec065)", args.baseline]);
}

const targets = [];
let code = 1;
try {
  for (const [name, bin] of bins) {
    const sim = await startSim({ bin, jobMs: 600000 });
    targets.push({ name, sim, rates: [], errors: 0 });
    const created = await fetch(`${sim.url}/v2/videos/generate`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": SIM_KEY },
      body: JSON.stringify({ prompt: "throughput bench", model: "sora-2" }),
    }).then((r) => r.json());
    targets.at(-1).path = `/v2/jobs/${created.jobId}`;
  }
  const run = (t, total) => load(t.sim.url, t.path, { total, concurrency: CONCURRENCY, headers: { "x-api-key": SIM_KEY } });
  for (const t of targets) await run(t, WARMUP);
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? targets : [...targets].reverse();
    for (const t of order) {
      const { seconds, errors } = await run(t, TOTAL);
      t.rates.push(TOTAL / seconds);
      t.errors += errors;
    }
  }
  const fmt = (v) => `${Math.round(v).toLocaleString("en-US")} req/s`;
  const result = targets.map((t) => ({ ...t, rate: median(t.rates) }));
  const setup = `${CONCURRENCY} keep-alive clients, ${ROUNDS} x ${TOTAL} requests alternating`;
  for (const t of result) {
    const spread = `${fmt(Math.min(...t.rates))} to ${fmt(Math.max(...t.rates))}`;
    if (args.rows) console.log(row("sim", `GET /v2/jobs/{id}, ${t.name} (${setup})`, `${fmt(t.rate)} median (${spread})`));
    else console.log(`${t.name}: ${fmt(t.rate)} median over ${ROUNDS} rounds (${spread}), ${t.errors} errors`);
  }
  if (result.length === 2) {
    const ratio = (result[1].rate / result[0].rate).toFixed(2);
    if (args.rows) console.log(row("sim", "throughput, tokio + hyper / baseline", `${ratio}x`));
    else console.log(`ratio tokio + hyper / baseline: ${ratio}x (same run, ${setup})`);
  }
  code = targets.some((t) => t.errors > 0) ? 1 : 0;
  if (code) console.error("sim-throughput: some requests failed");
} finally {
  for (const t of targets) await t.sim.stop();
}
process.exit(code);
