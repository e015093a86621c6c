// Cold start (issue 5, part 1.5), median of RUNS:
// * Node: RUNS fresh `node` processes, each timing its own `await import("sora-edge")`
//   (the package's Node entry: read the .wasm from disk, compile, instantiate,
//   initSync), measured inside the process with performance.now(); node's own
//   boot is not included. Also the whole `node -e 'await import("sora-edge")'`
//   process against an empty `node -e ''`, wall clock, for the total cost.
// * workerd: RUNS fresh Miniflare instances of our worker (worker/build: the
//   workers-rs wasm, compiled at load) and, alternately, of the plain JS worker
//   (bench/plain-worker.js, no wasm): `new Miniflare()` to the first response, and
//   the first request's latency alone (ready -> response). The first request is
//   a route answered inside the worker (404), so no upstream is involved.
//
//   node bench/coldstart.mjs   (BENCH_COLD_RUNS=20)
import { execFileSync, spawnSync } from "node:child_process";
import { Miniflare } from "miniflare";
import { ROOT, API_KEY, median, ms, row, plainWorkerOptions } from "./lib.mjs";
import { freePort, within, workerOptions } from "../tests/worker/harness.mjs";

const RUNS = Number(process.env.BENCH_COLD_RUNS ?? 20);

// ---------------------------------------------------------------- Node
const importMs = [];
const withImport = [];
const empty = [];
const wall = (args) => {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`node ${args.join(" ")}: ${r.stderr}`);
  return performance.now() - t0;
};
for (let i = 0; i < RUNS; i++) {
  const out = execFileSync(
    process.execPath,
    ["--input-type=module", "-e", 'const t = performance.now(); await import("sora-edge"); console.log(performance.now() - t);'],
    { cwd: ROOT, encoding: "utf8" },
  );
  importMs.push(Number(out.trim()));
  empty.push(wall(["--input-type=module", "-e", ""]));
  withImport.push(wall(["--input-type=module", "-e", 'await import("sora-edge");']));
}

// ---------------------------------------------------------------- workerd
async function coldWorker(kind) {
  const port = await freePort();
  // No upstream is called: the first request is a 404 answered inside the worker.
  const upstream = "http://127.0.0.1:9";
  const t0 = performance.now();
  const mf = new Miniflare(
    kind === "ours"
      ? workerOptions(port, { APIFRAME_API_KEY: API_KEY, APIFRAME_BASE_URL: upstream, ALLOWED_ORIGINS: "https://app.test", AUTH_ANONYMOUS: "on" })
      : plainWorkerOptions(port, upstream),
  );
  try {
    const ready = await within(30000, mf.ready, "miniflare start");
    const t1 = performance.now();
    const res = await fetch(new URL("/api/v2/nope", ready));
    await res.text();
    const t2 = performance.now();
    if (res.status !== 404) throw new Error(`${kind}: first request answered ${res.status}`);
    return { start: t2 - t0, first: t2 - t1 };
  } finally {
    await within(10000, mf.dispose(), "miniflare stop");
  }
}
const cold = { ours: [], plain: [] };
for (let i = 0; i < RUNS; i++) {
  for (const kind of i % 2 ? ["plain", "ours"] : ["ours", "plain"]) cold[kind].push(await coldWorker(kind));
}
const med = (list, key) => median(list.map((x) => x[key]));

console.log(
  [
    row(
      "1.5 cold start",
      `Node: \`await import("sora-edge")\` in a fresh process (read + compile + instantiate + initSync), median of ${RUNS}`,
      `**${ms(median(importMs))}**`,
      "(no goal)",
    ),
    row(
      "1.5 cold start",
      `Node: whole process \`node -e 'await import("sora-edge")'\` vs empty \`node -e ''\`, median of ${RUNS}`,
      `${ms(median(withImport))} vs ${ms(median(empty))} (+${ms(median(withImport) - median(empty))})`,
      "",
    ),
    row(
      "1.5 cold start",
      `workerd: fresh Miniflare, \`new Miniflare()\` → first response, ours vs plain JS worker, median of ${RUNS}`,
      `**${ms(med(cold.ours, "start"))}** vs ${ms(med(cold.plain, "start"))} (+${ms(med(cold.ours, "start") - med(cold.plain, "start"))})`,
      "(no goal)",
    ),
    row(
      "1.5 cold start",
      `workerd: first request of a fresh instance (ready → response), ours vs plain, median of ${RUNS}`,
      `**${ms(med(cold.ours, "first"))}** vs ${ms(med(cold.plain, "first"))}`,
      "",
    ),
  ].join("\n"),
);
process.exit(0);
