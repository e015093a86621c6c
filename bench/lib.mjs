// Shared plumbing for the bench scripts: percentiles, a keep-alive HTTP load
// generator, the two baseline workers in workerd (the plain pass-through and
// the checking JS worker), and markdown rows.
import http from "node:http";
import { resolve } from "node:path";
import { Miniflare } from "miniflare";
import { ROOT, API_KEY, freePort, within } from "../tests/worker/harness.mjs";

export { ROOT, API_KEY };

/** The p-th percentile (nearest rank) of an ascending array. */
export const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
export const median = (values) => pct([...values].sort((a, b) => a - b), 50);
export const ms = (v) => `${v.toFixed(v < 10 ? 2 : 1)} ms`;

/** One markdown row of the bench table: `| part | measure | result | goal |`. */
export const row = (part, measure, result, goal = "") => `| ${part} | ${measure} | ${result} | ${goal} |`;

/**
 * A job generated at `url` (the simulator's `/v2/...` with the key, or a
 * worker's `/api/v2/...` without one): the upstream's answer, with `jobId`.
 */
export const generateJob = (url, prompt, headers = {}) =>
  fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ prompt, model: "sora-2" }),
  }).then((r) => r.json());

/**
 * Miniflare options that send workerd's console output (our worker logs its
 * identity mode) to stderr, so that a bench's `--rows` on stdout stay a table.
 */
export const logsToStderr = {
  handleRuntimeStdio(stdout, stderr) {
    for (const stream of [stdout, stderr]) stream.on("data", (text) => process.stderr.write(text));
  },
};
export const logToStderr = (text) => process.stderr.write(text);

/** Miniflare options that run the plain pass-through worker (bench/plain-worker.js). */
export function plainWorkerOptions(port, simUrl) {
  return {
    host: "127.0.0.1",
    port,
    modules: true,
    scriptPath: resolve(ROOT, "bench/plain-worker.js"),
    compatibilityDate: "2026-04-01",
    bindings: { APIFRAME_API_KEY: API_KEY, APIFRAME_BASE_URL: simUrl },
  };
}

/**
 * Miniflare options that run the checking JS worker (bench/checking-worker.js):
 * the same bindings as our worker in bench/cpu.mjs, less those it has no use for.
 */
export function checkingWorkerOptions(port, simUrl) {
  return { ...plainWorkerOptions(port, simUrl), scriptPath: resolve(ROOT, "bench/checking-worker.js") };
}

/** The checking JS worker in workerd, on a free port. */
export async function startCheckingWorker(simUrl) {
  const port = await freePort();
  const mf = new Miniflare(checkingWorkerOptions(port, simUrl));
  const ready = await within(30000, mf.ready, "miniflare start (checking worker)");
  return { url: ready.href.replace(/\/$/, ""), mf, stop: () => within(10000, mf.dispose(), "miniflare stop") };
}

/** The plain pass-through worker in workerd, on a free port. */
export async function startPlainWorker(simUrl) {
  const port = await freePort();
  const mf = new Miniflare(plainWorkerOptions(port, simUrl));
  const ready = await within(30000, mf.ready, "miniflare start (plain worker)");
  return { url: ready.href.replace(/\/$/, ""), mf, stop: () => within(10000, mf.dispose(), "miniflare stop") };
}

/**
 * `total` GETs of `path` at `base` (with `headers`), `concurrency` at a time
 * over keep-alive connections. Resolves with `{latencies (ms, unsorted), seconds, errors}`.
 */
export async function load(base, path, { total, concurrency, headers = {} }) {
  const { hostname, port } = new URL(base);
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const one = () =>
    new Promise((resolveOne) => {
      const t0 = performance.now();
      const req = http.get({ hostname, port, path, agent, headers }, (res) => {
        res.on("data", () => {});
        res.on("end", () => resolveOne({ t: performance.now() - t0, ok: res.statusCode === 200 }));
      });
      req.on("error", () => resolveOne({ t: performance.now() - t0, ok: false }));
    });
  const latencies = [];
  let errors = 0;
  let issued = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (issued < total) {
        issued += 1;
        const { t, ok } = await one();
        latencies.push(t);
        if (!ok) errors += 1;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  agent.destroy();
  return { latencies, seconds, errors };
}
