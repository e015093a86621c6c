// Fault matrix (issue 5, part 2): jobs through the CLIENT library (`generate`,
// `waitForJob` from "sora-edge", in Node) against the simulator, with every
// injected fault at 20 %.
//
// Rows: one per fault (the simulator's faultSet is that fault alone, so every
// anomaly seen on the wire must be that fault), plus a "mixed" row with all of
// them. Each row has its own simulator (own seed, own stats); the rows' jobs are
// interleaved through one pool of CONCURRENCY workers. Jobs are short
// (`[ms=300]`); one in ten carries `[fail:...]` and must end `job_failed`.
//
// The caller does what a careful user does: `generate`; on a rejection that is
// `retryable` and carries `idempotencyKey`, wait `retryAfterMs` if given and call
// `generate` again with that key (at most GENERATE_ATTEMPTS calls); then
// `waitForJob`. Every request goes through a recording `fetch` (options.fetch),
// which sees each exchange on the wire.
//
// Checked, per row and in total (any violation exits 1):
// * every job completes, or fails with the right typed error: a `SoraEdgeError`
//   whose `code` (and `status`, `retryAfterMs`) matches what the wire saw on the
//   call's last exchange (5xx -> upstream, 429 -> rate_limited, reset/lost ->
//   network, hang -> timeout, malformed -> bad_response), FAILED jobs -> job_failed
//   with the job id; and every wire anomaly in a single-fault row is that fault
//   (a client timeout where no hang was injected means the machine is slow: up to
//   2 % of exchanges are tolerated and reported as "slow");
// * zero duplicate jobs: /__sim/stats idempotencyKeys has exactly 1 job per key the
//   client got an id for, and none for a key it never got an id for;
// * zero lost job ids: every job in the simulator's job list (GET /v2/jobs paging)
//   is one the client knows, and jobsCreated equals the client's count;
// * Retry-After observed: after every 429, the next request of the same job
//   starts no earlier than Retry-After allows (1 s, or the HTTP date).
//
// The jobs run in the suite's `before`; then each row is one node:test test.
//
//   node --test --test-reporter=spec tests/faults/matrix.mjs
//   (FAULT_JOBS=1000 FAULT_CONCURRENCY=100 FAULT_SEED=5 FAULT_TIMEOUT_MS=300)
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { generate, poll, waitForJob } from "sora-edge";
import { startSim } from "../support/sim.mjs";

const FAULTS = ["500", "502", "503", "429", "429-date", "reset", "hang", "malformed", "lost"];
const ROWS = [...FAULTS.map((f) => ({ name: f, set: [f] })), { name: "mixed", set: FAULTS }];
const JOBS = Number(process.env.FAULT_JOBS ?? 1000);
const CONCURRENCY = Number(process.env.FAULT_CONCURRENCY ?? 100);
const SEED = Number(process.env.FAULT_SEED ?? 5);
const RATE = Number(process.env.FAULT_RATE ?? 0.2);
const TIMEOUT_MS = Number(process.env.FAULT_TIMEOUT_MS ?? 300);
const JOB_MS = 300;
const GENERATE_ATTEMPTS = 8;
const RAMP_MS = 20;
const DEADLINE_MS = 30000;
const FAIL_REASON = "fault matrix says no";
/** Timer slack allowed when checking a Retry-After wait. */
const SLACK_MS = 5;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const started = performance.now();

/** What one exchange looked like on the wire. */
function classify(entry) {
  if (entry.error) return entry.aborted ? "timeout" : "reset";
  if (entry.status === 429) return /^\d+$/.test(entry.retryAfter ?? "") ? "429" : "429-date";
  if (entry.status >= 500) return String(entry.status);
  if (entry.status === 200 && !entry.json) return "malformed";
  return entry.status >= 200 && entry.status < 300 ? "ok" : `http-${entry.status}`;
}
/** The wire classes each fault may produce (lost looks like reset to a client). */
const WIRE_OF = { 500: ["500"], 502: ["502"], 503: ["503"], 429: ["429"], "429-date": ["429-date"], reset: ["reset"], lost: ["reset"], hang: ["timeout"], malformed: ["malformed"] };
/** Client timeouts outside a hang row (a loaded machine) tolerated, as a share of exchanges. */
const SLOW_SHARE = 0.02;

/** The SoraEdgeError code (and status) a call must reject with after `wire` was its last exchange. */
function expectedError(wire) {
  switch (wire) {
    case "500":
    case "502":
    case "503":
      return { code: "upstream", status: Number(wire) };
    case "429":
    case "429-date":
      return { code: "rate_limited", status: 429 };
    case "reset":
      return { code: "network" };
    case "timeout":
      return { code: "timeout" };
    case "malformed":
      return { code: "bad_response" };
    default:
      return null;
  }
}

/** A fetch that records every exchange into `log`. The library calls it with one `Request`. */
function recorder(log) {
  return async (input, init) => {
    const request = new Request(input, init);
    const entry = { method: request.method, key: request.headers.get("Idempotency-Key") ?? undefined, t0: performance.now() };
    log.push(entry);
    try {
      const res = await fetch(request);
      entry.t1 = performance.now();
      entry.wall1 = Date.now();
      entry.status = res.status;
      entry.retryAfter = res.headers.get("retry-after");
      entry.replayed = res.headers.get("idempotent-replayed") === "true";
      if (res.status >= 200 && res.status < 300) {
        const text = await res.clone().text();
        try {
          entry.json = JSON.parse(text);
        } catch {
          entry.json = null;
        }
      }
      entry.wire = classify(entry);
      return res;
    } catch (e) {
      entry.t1 = performance.now();
      entry.error = e;
      entry.aborted = request.signal.aborted;
      if (process.env.FAULT_DEBUG && entry.aborted) console.log(`abort ${entry.method} at ${(entry.t0 - started).toFixed(0)} ms after ${(entry.t1 - entry.t0).toFixed(0)} ms`);
      entry.wire = classify(entry);
      throw e;
    }
  };
}

function rowState(row) {
  return {
    ...row,
    jobs: 0,
    completed: 0,
    failed: {},
    submitted: new Map(), // key -> jobId
    unsubmittedKeys: new Set(),
    wire: {},
    generateRetries: 0,
    rejections: {}, // generate rejections by code (each then retried with its key)
    replays: 0,
    waits429: 0,
    minRatio: Infinity,
    violations: [],
  };
}

function violation(row, text) {
  row.violations.push(text);
  if (row.violations.length <= 5) console.log(`faults: VIOLATION [${row.name}] ${text}`);
}

function isSoraError(e) {
  return e instanceof Error && e.name === "SoraEdgeError" && typeof e.code === "string" && typeof e.retryable === "boolean";
}

/** The call rejected with `e` after `log`: its error must match the last exchange. */
function checkRejection(row, what, e, log) {
  if (!isSoraError(e)) return violation(row, `${what}: not a SoraEdgeError: ${e && e.stack}`);
  row.rejections[e.code] = (row.rejections[e.code] ?? 0) + 1;
  const last = log.at(-1);
  const want = last && expectedError(last.wire);
  if (!want) return violation(row, `${what}: rejected ${e.code} after a ${last ? last.wire : "no"} exchange`);
  if (e.code !== want.code || (want.status !== undefined && e.status !== want.status)) {
    return violation(row, `${what}: after ${last.wire} expected ${want.code}/${want.status ?? "-"}, got ${e.code}/${e.status ?? "-"}`);
  }
  if (e.code === "rate_limited" && !(e.retryAfterMs >= 0 && e.retryAfterMs <= 2000)) {
    violation(row, `${what}: rate_limited without a sane retryAfterMs (${e.retryAfterMs})`);
  }
  if (!e.retryable) violation(row, `${what}: ${e.code} after ${last.wire} is not retryable`);
}

/** After each 429 in `log` (one job's requests in order), the next request honours Retry-After. */
function checkRetryAfter(row, what, log) {
  for (let i = 0; i + 1 < log.length; i++) {
    const e = log[i];
    if (e.status !== 429) continue;
    const next = log[i + 1];
    const waited = next.t0 - e.t1;
    const required = /^\d+$/.test(e.retryAfter) ? Number(e.retryAfter) * 1000 : Date.parse(e.retryAfter) - e.wall1;
    if (!Number.isFinite(required)) {
      violation(row, `${what}: unparseable Retry-After ${JSON.stringify(e.retryAfter)}`);
      continue;
    }
    row.waits429 += 1;
    if (required > 0) row.minRatio = Math.min(row.minRatio, waited / required);
    if (waited + SLACK_MS < required) {
      violation(row, `${what}: next request ${waited.toFixed(0)} ms after a 429 with Retry-After ${e.retryAfter} (${required} ms)`);
    }
  }
}

async function oneJob(row, i) {
  row.jobs += 1;
  const expectFail = i % 10 === 9;
  const req = { prompt: `fault matrix ${row.name} #${i} [ms=${JOB_MS}]${expectFail ? ` [fail:${FAIL_REASON}]` : ""}` };
  const base = { baseUrl: row.sim.url, apiKey: row.sim.apiKey, timeoutMs: TIMEOUT_MS };
  const what = `job ${i}`;
  const genLog = [];
  let key;
  let submitted = null;
  let lastError = null;
  for (let attempt = 1; attempt <= GENERATE_ATTEMPTS && !submitted; attempt++) {
    const callLog = [];
    try {
      submitted = await generate(req, { ...base, fetch: recorder(callLog), idempotencyKey: key });
    } catch (e) {
      lastError = e;
      checkRejection(row, `${what} generate #${attempt}`, e, callLog);
      if (!(isSoraError(e) && e.retryable && e.idempotencyKey)) break;
      if (key !== undefined && e.idempotencyKey !== key) violation(row, `${what}: idempotencyKey changed between attempts`);
      key = e.idempotencyKey;
      if (e.retryAfterMs) await sleep(e.retryAfterMs);
      row.generateRetries += 1;
    } finally {
      genLog.push(...callLog);
    }
  }
  const keys = new Set(genLog.map((e) => e.key));
  if (keys.size !== 1 || keys.has(undefined)) violation(row, `${what}: generate requests used ${keys.size} Idempotency-Keys`);
  row.replays += genLog.filter((e) => e.replayed).length;
  for (const e of genLog) row.wire[e.wire] = (row.wire[e.wire] ?? 0) + 1;
  checkRetryAfter(row, `${what} generate`, genLog);

  if (!submitted) {
    row.unsubmittedKeys.add(key ?? lastError?.idempotencyKey);
    const code = lastError?.code ?? "unknown";
    row.failed[`generate:${code}`] = (row.failed[`generate:${code}`] ?? 0) + 1;
    return;
  }
  if (submitted.idempotencyKey !== [...keys][0]) violation(row, `${what}: generate resolved with another idempotencyKey`);
  for (const [k, id] of row.submitted) if (id === submitted.jobId) violation(row, `${what}: job id ${id} also came back for key ${k}`);
  row.submitted.set(submitted.idempotencyKey, submitted.jobId);

  const waitLog = [];
  try {
    const job = await waitForJob(submitted.jobId, { ...base, fetch: recorder(waitLog), deadlineMs: DEADLINE_MS, transport: "poll" });
    if (expectFail) violation(row, `${what}: a [fail] job resolved ${job.status}`);
    else if (job.status !== "COMPLETED" || job.id !== submitted.jobId || !job.videoUrl) {
      violation(row, `${what}: resolved ${job.status} ${job.id} videoUrl ${job.videoUrl}`);
    } else row.completed += 1;
  } catch (e) {
    const code = isSoraError(e) ? e.code : "not-a-SoraEdgeError";
    row.failed[code] = (row.failed[code] ?? 0) + 1;
    if (!expectFail) violation(row, `${what}: waitForJob rejected ${code}: ${e && e.message}`);
    else if (code !== "job_failed" || e.jobId !== submitted.jobId || !e.message.includes(FAIL_REASON) || e.retryable) {
      violation(row, `${what}: expected job_failed for ${submitted.jobId}, got ${code} ${e && e.jobId}: ${e && e.message}`);
    }
  } finally {
    for (const e of waitLog) row.wire[e.wire] = (row.wire[e.wire] ?? 0) + 1;
    checkRetryAfter(row, `${what} wait`, waitLog);
  }
}

/** Every job in the simulator's list, through the paging API (never faulted). */
async function listJobs(sim) {
  const ids = [];
  let cursor = null;
  for (let page = 0; page < 1000; page++) {
    const url = `${sim.url}/v2/jobs?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
    const res = await fetch(url, { headers: { "x-api-key": sim.apiKey, "x-sim-fault": "none" } });
    if (res.status !== 200) throw new Error(`GET /v2/jobs: HTTP ${res.status}`);
    const body = await res.json();
    ids.push(...body.jobs.map((j) => j.id));
    if (!body.hasMore) return ids;
    cursor = body.nextCursor;
  }
  throw new Error("GET /v2/jobs: more than 1000 pages");
}

async function audit(row) {
  const stats = await row.sim.control.stats();
  const duplicates = Object.entries(stats.idempotencyKeys).filter(([, n]) => n !== 1);
  for (const [k, n] of duplicates) violation(row, `duplicate: key ${k} created ${n} jobs`);
  for (const k of row.submitted.keys()) {
    if (stats.idempotencyKeys[k] !== 1) violation(row, `key ${k} got a job id but the simulator counts ${stats.idempotencyKeys[k] ?? 0} jobs for it`);
  }
  const known = new Set(row.submitted.values());
  const listed = await listJobs(row.sim);
  const lost = listed.filter((id) => !known.has(id));
  for (const id of lost) violation(row, `lost: the simulator has job ${id}, the client never learnt it`);
  if (stats.jobsCreated !== known.size || listed.length !== known.size) {
    violation(row, `the simulator created ${stats.jobsCreated} jobs (lists ${listed.length}), the client knows ${known.size}`);
  }
  // Each single-fault row must see its fault, and only its fault, on the wire.
  const allowed = new Set(["ok", ...row.set.flatMap((f) => WIRE_OF[f])]);
  // A timeout where no hang was injected: the answer came later than timeoutMs.
  // Still the right typed error; tolerated in small numbers, reported.
  const exchanges = Object.values(row.wire).reduce((a, b) => a + b, 0);
  row.slow = allowed.has("timeout") ? 0 : row.wire.timeout ?? 0;
  if (row.slow <= SLOW_SHARE * exchanges) allowed.add("timeout");
  for (const [w, n] of Object.entries(row.wire)) if (!allowed.has(w)) violation(row, `${n} exchange(s) looked like ${w}, not in [${row.set}]`);
  for (const f of row.set) if (!WIRE_OF[f].some((w) => row.wire[w] > 0)) violation(row, `fault ${f} was never seen on the wire`);
  if (row.set.includes("lost") && row.replays === 0) violation(row, `lost: no generate was answered as an idempotent replay`);
  if (row.set.some((f) => f.startsWith("429")) && row.waits429 === 0) violation(row, `no 429 was followed by a retry`);
  return { duplicates: duplicates.length, lost: lost.length, requests: stats.requests };
}

const jobTimes = [];
const rows = ROWS.map(rowState);
/** The jobs row `r` gets: job n goes to row n % rows. */
const jobsOfRow = (r) => Math.floor(JOBS / rows.length) + (r < JOBS % rows.length ? 1 : 0);
const failedCount = (failed) => Object.values(failed).reduce((a, b) => a + b, 0);

/** Starts a simulator per row, runs every job, audits each row and prints the table. */
async function runMatrix() {
  await Promise.all(
    rows.map(async (row, r) => {
      row.sim = await startSim({ jobMs: JOB_MS });
      await row.sim.control.config({ faultRate: RATE, faultSet: row.set, seed: SEED * 100 + r });
    }),
  );
  // Warm-up (JIT, wasm, keep-alive connections): unfaulted status reads of an unknown job.
  const warm = { timeoutMs: 5000, headers: { "X-Sim-Fault": "none" } };
  for (let round = 0; round < 3; round++) {
    await Promise.all(
      Array.from({ length: CONCURRENCY }, (_, k) => rows[k % rows.length]).map((row) =>
        poll("00000000-0000-4000-8000-000000000000", { ...warm, baseUrl: row.sim.url, apiKey: row.sim.apiKey }).catch((e) => {
          if (!isSoraError(e) || e.code !== "not_found") throw e;
        }),
      ),
    );
  }
  // Rows interleaved: job n goes to row n % rows.
  const tasks = Array.from({ length: JOBS }, (_, n) => [rows[n % rows.length], Math.floor(n / rows.length)]);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, JOBS) }, async (_, w) => {
      await sleep(w * RAMP_MS); // a ramp, as real traffic has, rather than one burst
      while (next < tasks.length) {
        const [row, i] = tasks[next++];
        const t0 = performance.now();
        await oneJob(row, i);
        jobTimes.push(performance.now() - t0);
      }
    }),
  );
  const ran = (performance.now() - started) / 1000;

  console.log(`\nfault matrix: ${JOBS} jobs, each fault at ${RATE * 100}% of /v2 requests, timeoutMs ${TIMEOUT_MS}, concurrency ${CONCURRENCY}, seed ${SEED}\n`);
  console.log("| faults | jobs | completed | failed (by code) | wire exchanges (ok / faulted) | generate rejections → retried with the key | replays | 429 waits (min waited/asked) | dup | lost | violations |");
  console.log("|---|---:|---:|---|---|---:|---:|---|---:|---:|---:|");
  const total = { jobs: 0, completed: 0, failed: {}, duplicates: 0, lost: 0, violations: 0, slow: 0 };
  for (const row of rows) {
    const { duplicates, lost } = await audit(row);
    const faulted = Object.entries(row.wire).filter(([w]) => w !== "ok").map(([w, n]) => `${w} ${n}`).join(", ");
    const failed = Object.entries(row.failed).map(([c, n]) => `${c} ${n}`).join(", ");
    const waits = row.waits429 ? `${row.waits429} (${row.minRatio.toFixed(2)}×)` : "-";
    console.log(
      `| ${row.name === "mixed" ? "all 9" : row.name} | ${row.jobs} | ${row.completed} | ${failed || "-"} | ${row.wire.ok ?? 0} / ${faulted || "-"} | ${Object.entries(row.rejections).map(([c, n]) => `${c} ${n}`).join(", ") || "-"} → ${row.generateRetries} | ${row.replays} | ${waits} | ${duplicates} | ${lost} | ${row.violations.length} |`,
    );
    total.jobs += row.jobs;
    total.completed += row.completed;
    for (const [c, n] of Object.entries(row.failed)) total.failed[c] = (total.failed[c] ?? 0) + n;
    total.duplicates += duplicates;
    total.lost += lost;
    total.violations += row.violations.length;
    total.slow += row.slow;
  }
  jobTimes.sort((a, b) => a - b);
  const at = (p) => (jobTimes[Math.min(jobTimes.length - 1, Math.floor(p * jobTimes.length))] / 1000).toFixed(1);
  console.log(`\nfaults: time per job (generate + wait): p50 ${at(0.5)} s, p95 ${at(0.95)} s, max ${at(1)} s`);
  const byCode = Object.entries(total.failed).map(([c, n]) => `${c} ${n}`).join(", ");
  console.log(
    `\nfaults: ${total.jobs} jobs, ${total.completed} completed, ${failedCount(total.failed)} failed (${byCode || "none"}), duplicates ${total.duplicates}, lost ${total.lost}, ${total.violations} violations, ${total.slow} slow, ${ran.toFixed(1)} s`,
  );
}

describe(`fault matrix: ${JOBS} jobs through the client, each fault at ${RATE * 100} % of /v2 requests`, () => {
  before(runMatrix);
  after(() => Promise.all(rows.map((row) => row.sim?.stop())));

  rows.forEach((row, r) => {
    const faults = row.name === "mixed" ? "all 9 faults" : `fault ${row.name}`;
    const waits = row.set.some((f) => f.startsWith("429")) ? ", every 429 retry waits its Retry-After" : "";
    test(`${faults}: ${jobsOfRow(r)} jobs end right, 0 lost ids, 0 duplicate jobs${waits}`, () => {
      assert.deepEqual(row.violations, [], `${row.violations.length} violations in row ${row.name}`);
      assert.equal(row.jobs, jobsOfRow(r), "jobs run in the row");
      assert.equal(row.completed + failedCount(row.failed), row.jobs, "jobs that completed or failed with a typed error");
    });
  });
});
