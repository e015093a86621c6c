// Relay (issue 5, part 1.2): runs tests/worker/relay-latency.mjs (the real worker
// in workerd against the simulator; see that file for the method) and turns its
// three result lines into markdown rows of the bench table.
//
//   node bench/relay.mjs   (BENCH_RELAY_JOBS=150 BENCH_RELAY_FANOUT=100; BENCH_RUNS / BENCH_JOB_MS / BENCH_FANOUT_ROUNDS pass through)
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { ROOT, row } from "./lib.mjs";

const JOBS = process.env.BENCH_RELAY_JOBS ?? "150";
const FANOUT = process.env.BENCH_RELAY_FANOUT ?? "100";
const r = spawnSync(process.execPath, [resolve(ROOT, "tests/worker/relay-latency.mjs"), JOBS, FANOUT], { cwd: ROOT, encoding: "utf8" });
const out = r.stdout ?? "";
const perJob = /upstream requests per job \((.+?)\): relay ([\d.]+) \((.+?)\), polling ([\d.]+) \((.+?)\)/.exec(out);
const latency = /webhook -> subscriber event over (\d+) jobs: p50 ([\d.]+ ms), p95 ([\d.]+ ms), max ([\d.]+ ms)/.exec(out);
const fanout = /one webhook -> (\d+) subscribers of one job: p50 ([\d.]+ ms), p95 ([\d.]+ ms), missed (\d+) \((.+?)\)\n/.exec(out);
if (r.status !== 0 || !perJob || !latency || !fanout) {
  console.log(row("1.2 relay", "tests/worker/relay-latency.mjs", `FAILED (exit ${r.status}): ${(out + (r.stderr ?? "")).trim().replace(/\s+/g, " ").slice(0, 300)}`));
  process.exit(1);
}
console.log(
  [
    row("1.2 relay", `upstream requests per job, client \`run()\` through the worker (${perJob[1]})`, `relay (events) **${perJob[2]}** (${perJob[3]}) vs polling ${perJob[4]} (${perJob[5]})`, "(no goal)"),
    row("1.2 relay", `signed webhook POST → \`COMPLETED\` event at a subscriber, ${latency[1]} jobs one at a time`, `p50 **${latency[2]}**, p95 **${latency[3]}** (max ${latency[4]})`, "(no goal)"),
    row("1.2 relay", `one webhook fanned out to ${fanout[1]} subscribers of one job`, `p50 **${fanout[2]}**, p95 **${fanout[3]}**, missed ${fanout[4]} (${fanout[5]})`, "p50 ≤ 10 ms"),
  ].join("\n"),
);
