// The wasm test cases, shared by Node (node.test.mjs) and Chromium
// (browser.test.mjs, which runs them in a page). They exercise the public JS
// API of docs/API.md against the local simulator (docs/ARCHITECTURE.md).
//
// Each case is { name, fn: async (lib, env) => void, timeoutMs } where
//   lib = the imported `sora-edge` module,
//   env = { simUrl, apiKey, sim: { stats, reset, faults, config } }.
// Both runners make each case a node:test test, run them one at a time in
// this order, and reset the simulator before each. Browser-safe: no Node
// imports, which is why the assertions below are our own, not node:assert.

// One table of result URLs for the client (here) and the worker
// (tests/worker/hardening.test.mjs, tests/result_urls.rs).
import resultUrls from "../support/result-urls.json" with { type: "json" };

export const WRONG_KEY = "afk_wrong_key_sim_test_ffffffffffffffff";

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const UUID_V4_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
const CODES = [
  "invalid_request", "unauthorized", "forbidden", "insufficient_credits", "not_found",
  "rate_limited", "upstream", "network", "timeout", "aborted", "deadline_exceeded",
  "job_failed", "bad_response", "auth_required", "token_invalid", "token_expired",
  "not_configured", "auth_unavailable", "turnstile_required", "turnstile_failed", "not_initialized",
];

// ------------------------------------------------------------------ helpers
class AssertionError extends Error {
  constructor(message) {
    super(message);
    this.name = "AssertionError";
  }
}

function show(v) {
  if (typeof v === "string") return JSON.stringify(v.length > 160 ? `${v.slice(0, 160)}…(${v.length} chars)` : v);
  if (typeof v === "function") return `[function ${v.name}]`;
  if (v instanceof Error) return `${v.name}: ${v.message}${v.code ? ` (code ${v.code})` : ""}`;
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 400 ? `${s.slice(0, 400)}…` : s;
  } catch {
    return String(v);
  }
}

/** A tiny assert that works in Node and browsers alike. */
export const assert = {
  ok(cond, msg) {
    if (!cond) throw new AssertionError(msg || "assertion failed");
  },
  eq(actual, expected, msg) {
    if (!Object.is(actual, expected)) {
      throw new AssertionError(`${msg || "values differ"}: expected ${show(expected)}, got ${show(actual)}`);
    }
  },
  oneOf(actual, list, msg) {
    if (!list.includes(actual)) throw new AssertionError(`${msg || "unexpected value"}: expected one of ${show(list)}, got ${show(actual)}`);
  },
  match(actual, re, msg) {
    if (typeof actual !== "string" || !re.test(actual)) {
      throw new AssertionError(`${msg || "no match"}: expected ${re} to match ${show(actual)}`);
    }
  },
  includes(haystack, needle, msg) {
    if (typeof haystack !== "string" || !haystack.includes(needle)) {
      throw new AssertionError(`${msg || "missing text"}: expected ${show(haystack)} to contain ${show(needle)}`);
    }
  },
  between(actual, lo, hi, msg) {
    if (typeof actual !== "number" || !(actual >= lo && actual <= hi)) {
      throw new AssertionError(`${msg || "out of range"}: expected ${lo} <= x <= ${hi}, got ${show(actual)}`);
    }
  },
};

const now = () => (globalThis.performance ? performance.now() : Date.now());
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const opts = (env, extra = {}) => ({ baseUrl: env.simUrl, apiKey: env.apiKey, ...extra });

function randomUuid() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const h = () => Math.floor(Math.random() * 16).toString(16);
  const s = (n) => Array.from({ length: n }, h).join("");
  return `${s(8)}-${s(4)}-4${s(3)}-${"89ab"[Math.floor(Math.random() * 4)]}${s(3)}-${s(12)}`;
}

// Every error any case provokes, for the final "the key never leaks" scan.
const seenErrors = [];

/** Await a promise that must reject; return the rejection (and remember it). */
async function rejects(promise, what) {
  let value;
  try {
    value = await promise;
  } catch (err) {
    seenErrors.push({ what, err });
    return err;
  }
  throw new AssertionError(`${what}: expected a rejection, but it resolved with ${show(value)}`);
}

/** Everything an error exposes, as one string: message, stack, own and contract fields. */
function errorText(err) {
  if (err === null || typeof err !== "object") return String(err);
  const keys = new Set([
    ...Object.getOwnPropertyNames(err), "name", "message", "stack", "code", "status", "field",
    "retryable", "retryAfterMs", "jobId", "idempotencyKey", "cause",
  ]);
  for (const k in err) keys.add(k);
  const parts = [];
  try { parts.push(String(err)); } catch { /* ignore */ }
  try { parts.push(JSON.stringify(err)); } catch { /* ignore */ }
  for (const k of keys) {
    let v;
    try { v = err[k]; } catch { continue; }
    if (v === undefined) continue;
    if (v && typeof v === "object") {
      parts.push(`${k}=${v instanceof Error ? errorText(v) : show(v)}`);
    } else {
      parts.push(`${k}=${String(v)}`);
    }
  }
  return parts.join("\n");
}

function assertNoSecrets(err, env, what) {
  const text = errorText(err);
  for (const secret of [env.apiKey, WRONG_KEY]) {
    // The whole key, and its distinctive tail (a masked key like "afk_…abcdef" leaks too).
    for (const s of [secret, secret.slice(-12)]) {
      if (text.includes(s)) throw new AssertionError(`${what}: error exposes an API key (${show(s.slice(0, 6))}…) in ${show(text)}`);
    }
  }
}

/** The error shape of docs/API.md ("Errors"), plus the expected fields. */
function checkError(err, expect, what) {
  assert.ok(err instanceof Error, `${what}: rejection is not an Error: ${show(err)}`);
  assert.eq(err.name, "SoraEdgeError", `${what}: name`);
  assert.oneOf(err.code, CODES, `${what}: code is one of the contract's codes`);
  assert.eq(typeof err.retryable, "boolean", `${what}: retryable is a boolean`);
  assert.ok(typeof err.message === "string" && err.message.length > 0, `${what}: message is non-empty`);
  for (const [k, v] of Object.entries(expect)) {
    assert.eq(err[k], v, `${what}: ${k} (message: ${show(err.message)})`);
  }
}

function checkProgressSeries(seen, jobId, what) {
  assert.ok(seen.length >= 1, `${what}: onProgress was never called`);
  let last = -1;
  for (const j of seen) {
    assert.eq(j.id, jobId, `${what}: onProgress job id`);
    assert.between(j.progress, 0, 100, `${what}: onProgress progress`);
    assert.ok(j.progress >= last, `${what}: progress went backwards: ${show(seen.map((s) => s.progress))}`);
    last = j.progress;
  }
}

/** A COMPLETED job from the simulator, with the given result shape. */
function checkCompleted(job, env, { shape, model = "sora-2", creditCost = 4 }, what) {
  assert.ok(job && typeof job === "object", `${what}: job is an object`);
  assert.match(job.id, UUID_RE, `${what}: id`);
  assert.eq(job.status, "COMPLETED", `${what}: status`);
  assert.eq(job.progress, 100, `${what}: progress`);
  assert.eq(job.error, null, `${what}: error`);
  assert.eq(typeof job.videoUrl, "string", `${what}: videoUrl type`);
  assert.ok(job.videoUrl.startsWith(env.simUrl + "/"), `${what}: videoUrl ${show(job.videoUrl)} is on the simulator ${env.simUrl}`);
  assert.ok(job.videoUrl.endsWith(`/videos/sample.mp4?job=${job.id}`), `${what}: videoUrl ${show(job.videoUrl)} ends with /videos/sample.mp4?job=<id>`);
  assert.eq(job.model, model, `${what}: model`);
  assert.eq(job.creditCost, creditCost, `${what}: creditCost`);
  assert.ok(typeof job.createdAt === "string" && !Number.isNaN(Date.parse(job.createdAt)), `${what}: createdAt ${show(job.createdAt)}`);
  assert.ok(typeof job.completedAt === "string" && Date.parse(job.completedAt) >= Date.parse(job.createdAt), `${what}: completedAt ${show(job.completedAt)}`);
  // raw: the upstream object as received.
  assert.ok(job.raw && typeof job.raw === "object", `${what}: raw is an object`);
  assert.eq(job.raw.id, job.id, `${what}: raw.id`);
  assert.eq(job.raw.status, "COMPLETED", `${what}: raw.status`);
  assert.eq(job.raw.progress, 100, `${what}: raw.progress`);
  if (shape === "string") {
    assert.eq(job.raw.result, job.videoUrl, `${what}: raw.result is the bare URL string`);
  } else {
    assert.ok(job.raw.result && typeof job.raw.result === "object", `${what}: raw.result is an object: ${show(job.raw.result)}`);
    assert.eq(job.raw.result.videoUrl, job.videoUrl, `${what}: raw.result.videoUrl`);
  }
}

async function checkVideoFetches(url, what) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 5000);
  try {
    const res = await fetch(url, { signal: ctl.signal });
    assert.oneOf(res.status, [200, 206], `${what}: GET video status`);
    assert.match(res.headers.get("content-type") || "", /^video\/mp4\b/, `${what}: video content-type`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    assert.ok(bytes.length > 1000, `${what}: video body has ${bytes.length} bytes`);
    assert.eq(String.fromCharCode(...bytes.slice(4, 8)), "ftyp", `${what}: MP4 signature`);
  } finally {
    clearTimeout(timer);
  }
}

/** A job the simulator keeps running for long enough (10 s unless told otherwise). */
async function longJob(lib, env, ms = 10000) {
  const sub = await lib.generate({ prompt: `a slow pan over a glacier [ms=${ms}]` }, opts(env));
  assert.match(sub.jobId, UUID_RE, "generate jobId");
  return sub;
}

// -------------------------------------------------------------------- cases
export const cases = [];
const test = (name, fn, timeoutMs = 20000) => cases.push({ name, fn, timeoutMs });

// Chromium resends a request by itself when a REUSED keep-alive connection is
// reset before any response arrives, so the simulator sees an extra request the
// library never made. Cases built on `reset`/`lost` say so when they fail there.
function resetCase(env, fn) {
  return fn().catch((e) => {
    if (env.runtime === "chromium" && env.keepAlive) {
      e.message += " [note: Chromium transparently resends a request on a reused keep-alive connection that is reset" +
        " before any response; the simulator needs --no-keep-alive for this case to observe the library alone]";
    }
    throw e;
  });
}

for (const shape of ["string", "object"]) {
  test(`run(): [shape=${shape}] resolves COMPLETED, normalised videoUrl, raw upstream, onProgress non-decreasing, video fetches`, async (lib, env) => {
    const seen = [];
    const job = await lib.run(
      { prompt: `a red fox trotting through fresh snow [ms=1500] [shape=${shape}]` },
      opts(env, { onProgress: (j) => seen.push({ id: j.id, status: j.status, progress: j.progress }) }),
    );
    checkCompleted(job, env, { shape }, "run");
    checkProgressSeries(seen, job.id, "run");
    const st = await env.sim.stats();
    assert.eq(st.requests.generate, 1, "simulator generate requests");
    assert.eq(st.jobsCreated, 1, "simulator jobsCreated");
    assert.eq(Object.values(st.idempotencyKeys).join(","), "1", "one idempotency key, used for one job");
    assert.ok((st.statusReads[job.id] || 0) >= 1, `status reads of the job: ${show(st.statusReads)}`);
    assert.eq(st.auth.wrong + st.auth.missing, 0, "every request carried the right key");
    await checkVideoFetches(job.videoUrl, "run");
  });
}

test("generate() + poll() once + waitForJob(): Submitted shape, a fresh UUID v4 idempotency key, one status read per poll", async (lib, env) => {
  const sub = await lib.generate({ prompt: "a lighthouse at dusk, waves crashing [ms=1500]" }, opts(env));
  assert.match(sub.jobId, UUID_RE, "jobId");
  assert.eq(sub.status, "QUEUED", "status");
  assert.match(sub.idempotencyKey, UUID_V4_RE, "default idempotencyKey is a UUID v4");
  let st = await env.sim.stats();
  assert.eq(st.requests.generate, 1, "generate requests");
  assert.eq(st.jobsCreated, 1, "jobsCreated");
  assert.eq(st.idempotencyKeys[sub.idempotencyKey], 1, "the Idempotency-Key the library sent is the one it reports");

  const p = await lib.poll(sub.jobId, opts(env));
  assert.eq(p.id, sub.jobId, "poll id");
  assert.oneOf(p.status, ["QUEUED", "PROCESSING"], "poll status of a fresh 1.5 s job");
  assert.between(p.progress, 0, 99, "poll progress");
  assert.eq(p.videoUrl, null, "videoUrl before completion");
  assert.eq(p.error, null, "error before completion");
  assert.eq(p.raw.id, sub.jobId, "poll raw.id");
  assert.eq(p.raw.result, null, "poll raw.result");
  st = await env.sim.stats();
  assert.eq(st.statusReads[sub.jobId], 1, "poll() is exactly one status read");

  const seen = [];
  const job = await lib.waitForJob(sub.jobId, opts(env, { onProgress: (j) => seen.push({ id: j.id, progress: j.progress }) }));
  checkCompleted(job, env, { shape: "string" }, "waitForJob");
  checkProgressSeries(seen, sub.jobId, "waitForJob");
  st = await env.sim.stats();
  assert.ok(st.statusReads[sub.jobId] >= 2, `waitForJob read the status: ${show(st.statusReads)}`);
  assert.eq(st.requests.generate, 1, "waiting never submits again");
  await checkVideoFetches(job.videoUrl, "waitForJob");
});

test("idempotency keys: a fresh one per generate() call, a caller's key is sent as given and dedupes", async (lib, env) => {
  const a = await lib.generate({ prompt: "idempotency a [ms=30000]" }, opts(env));
  const b = await lib.generate({ prompt: "idempotency a [ms=30000]" }, opts(env));
  assert.ok(a.idempotencyKey !== b.idempotencyKey, "two calls, two keys");
  assert.ok(a.jobId !== b.jobId, "two calls, two jobs");
  const key = `sora-edge-test-${randomUuid()}`;
  const c = await lib.generate({ prompt: "idempotency c [ms=30000]" }, opts(env, { idempotencyKey: key }));
  const d = await lib.generate({ prompt: "idempotency c [ms=30000]" }, opts(env, { idempotencyKey: key }));
  assert.eq(c.idempotencyKey, key, "caller's key reported back");
  assert.eq(d.jobId, c.jobId, "same key, same job");
  const st = await env.sim.stats();
  assert.eq(st.requests.generate, 4, "generate requests");
  assert.eq(st.jobsCreated, 3, "jobsCreated");
  assert.eq(st.idempotencyKeys[key], 1, "jobs created with the caller's key");
});

test("Client: options fixed once apply to generate/poll/waitForJob/run", async (lib, env) => {
  const client = new lib.Client({ baseUrl: env.simUrl, apiKey: env.apiKey });
  for (const m of ["generate", "poll", "waitForJob", "run"]) {
    assert.eq(typeof client[m], "function", `Client#${m}`);
  }
  const job = await client.run({ prompt: "a hot-air balloon over vineyards [ms=1200] [shape=object]" });
  checkCompleted(job, env, { shape: "object" }, "Client#run");
  const sub = await client.generate({ prompt: "a tram in Lisbon [ms=1200]", duration: 8 });
  assert.match(sub.idempotencyKey, UUID_V4_RE, "Client#generate idempotencyKey");
  const p = await client.poll(sub.jobId);
  assert.eq(p.id, sub.jobId, "Client#poll id");
  const done = await client.waitForJob(sub.jobId);
  checkCompleted(done, env, { shape: "string", creditCost: 8 }, "Client#waitForJob");

  const wrong = new lib.Client({ baseUrl: env.simUrl, apiKey: WRONG_KEY });
  const e1 = await rejects(wrong.poll(sub.jobId), "Client(wrong key)#poll");
  checkError(e1, { code: "unauthorized", status: 401 }, "Client(wrong key)#poll");
  const faulty = new lib.Client({ baseUrl: env.simUrl, apiKey: env.apiKey, maxRetries: 0, headers: { "X-Sim-Fault": "malformed" } });
  const e2 = await rejects(faulty.poll(sub.jobId), "Client(headers)#poll");
  checkError(e2, { code: "bad_response" }, "Client(headers: X-Sim-Fault malformed)#poll");

  const st = await env.sim.stats();
  assert.eq(st.requests.generate, 2, "generate requests");
  assert.eq(st.jobsCreated, 2, "jobsCreated");
  assert.eq(st.auth.wrong, 1, "the wrong-key client's one request");
});

test("a FAILED job rejects job_failed with jobId and the upstream reason (run and waitForJob)", async (lib, env) => {
  const err = await rejects(lib.run({ prompt: "a cat [fail:content policy violation] [ms=800]" }, opts(env)), "run([fail:...])");
  checkError(err, { code: "job_failed" }, "run([fail:...])");
  assert.match(err.jobId, UUID_RE, "jobId on job_failed");
  assert.includes(err.message, "content policy violation", "message carries the upstream reason");
  let st = await env.sim.stats();
  assert.eq(st.jobsCreated, 1, "jobsCreated");
  assert.ok(st.statusReads[err.jobId] >= 1, `the failed job was read: ${show(st.statusReads)}`);

  const sub = await lib.generate({ prompt: "a dog [fail:the moon is made of cheese] [ms=600]" }, opts(env));
  const err2 = await rejects(lib.waitForJob(sub.jobId, opts(env)), "waitForJob([fail:...])");
  checkError(err2, { code: "job_failed", jobId: sub.jobId }, "waitForJob([fail:...])");
  assert.includes(err2.message, "the moon is made of cheese", "message carries this job's reason");
  st = await env.sim.stats();
  assert.eq(st.jobsCreated, 2, "jobsCreated");
});

test("401: a wrong or missing key rejects unauthorized, not retryable, and no key appears in the error", async (lib, env) => {
  const e1 = await rejects(lib.generate({ prompt: "a wrong key" }, { baseUrl: env.simUrl, apiKey: WRONG_KEY }), "generate(wrong key)");
  checkError(e1, { code: "unauthorized", status: 401, retryable: false }, "generate(wrong key)");
  assert.match(e1.idempotencyKey, UUID_V4_RE, "generate failure carries its idempotencyKey");
  const e2 = await rejects(lib.poll(randomUuid(), { baseUrl: env.simUrl, apiKey: WRONG_KEY }), "poll(wrong key)");
  checkError(e2, { code: "unauthorized", status: 401, retryable: false }, "poll(wrong key)");
  const e3 = await rejects(lib.poll(randomUuid(), { baseUrl: env.simUrl }), "poll(no key)");
  checkError(e3, { code: "unauthorized", status: 401, retryable: false }, "poll(no key)");
  for (const [e, what] of [[e1, "generate(wrong key)"], [e2, "poll(wrong key)"], [e3, "poll(no key)"]]) {
    assertNoSecrets(e, env, what);
  }
  const st = await env.sim.stats();
  assert.eq(st.requests.generate, 1, "a 401 is not retried (generate)");
  assert.eq(st.requests.job, 2, "a 401 is not retried (poll)");
  assert.eq(st.auth.wrong, 2, "wrong-key requests");
  assert.eq(st.auth.missing, 1, "missing-key requests");
  assert.eq(st.jobsCreated, 0, "jobsCreated");
});

const INVALID = [
  ["empty prompt", { prompt: "" }, "prompt"],
  ["missing prompt", {}, "prompt"],
  ["prompt not a string", { prompt: 42 }, "prompt"],
  ["4001-character prompt", { prompt: "a".repeat(4001) }, "prompt"],
  ["4001 multibyte characters", { prompt: "é".repeat(4001) }, "prompt"],
  ["duration 5", { prompt: "x", duration: 5 }, "duration"],
  ["duration \"8\" (a string)", { prompt: "x", duration: "8" }, "duration"],
  ["duration 8.5", { prompt: "x", duration: 8.5 }, "duration"],
  ["aspectRatio 1:1", { prompt: "x", aspectRatio: "1:1" }, "aspectRatio"],
  ["resolution high with sora-2", { prompt: "x", model: "sora-2", resolution: "high" }, "resolution"],
  ["resolution high with the default model", { prompt: "x", resolution: "high" }, "resolution"],
  ["resolution unknown", { prompt: "x", model: "sora-2-pro", resolution: "4k" }, "resolution"],
  ["startImage relative", { prompt: "x", startImage: "images/cat.png" }, "startImage"],
  ["startImage javascript:", { prompt: "x", startImage: "javascript:alert(1)" }, "startImage"],
  ["startImage data:", { prompt: "x", startImage: "data:image/png;base64,iVBORw0KGgo=" }, "startImage"],
  ["webhookUrl http to a public host", { prompt: "x", webhookUrl: "http://hooks.example.com/sora" }, "webhookUrl"],
  ["webhookUrl relative", { prompt: "x", webhookUrl: "/hooks/sora" }, "webhookUrl"],
  ["webhookEvents unknown event", { prompt: "x", webhookUrl: "https://hooks.example.com/sora", webhookEvents: ["done"] }, "webhookEvents"],
  ["webhookEvents not an array", { prompt: "x", webhookUrl: "https://hooks.example.com/sora", webhookEvents: "completed" }, "webhookEvents"],
  ["unknown model", { prompt: "x", model: "sora-3" }, "model"],
  // What JSON has no value for (read by wasm::value_of, as serde-wasm-bindgen would).
  ["a function in soraParams", { prompt: "x", soraParams: { seed() {} } }, "request"],
  ["a Set as soraParams", { prompt: "x", soraParams: new Set([7]) }, "request"],
];

const VALID = [
  ["4000 two-byte characters", { prompt: "é".repeat(4000) }],
  ["4000 three-byte characters", { prompt: "日".repeat(4000) }],
  ["4000 astral characters (8000 UTF-16 units)", { prompt: "🎬".repeat(4000) }],
  ["resolution high with sora-2-pro", { prompt: "x", model: "sora-2-pro", resolution: "high" }],
  ["startImage https", { prompt: "x", startImage: "https://images.example.com/first-frame.png" }],
  ["webhookUrl http to localhost", { prompt: "x", webhookUrl: "http://localhost:9/hook", webhookEvents: ["completed", "failed"] }],
  ["optional fields left undefined", { prompt: "x", duration: undefined, aspectRatio: undefined }],
  ["duration as a BigInt", { prompt: "x", duration: 8n }],
  ["a Map as soraParams", { prompt: "x", soraParams: new Map([["seed", 7]]) }],
];

test(`validation: ${INVALID.length} invalid requests reject invalid_request with the camelCase field, before any request`, async (lib, env) => {
  for (const [why, req, field] of INVALID) {
    const err = await rejects(lib.generate(req, opts(env)), `generate(${why})`);
    checkError(err, { code: "invalid_request", field, retryable: false }, `generate(${why})`);
    assert.ok(err.status === undefined || err.status === null, `generate(${why}): no HTTP status (no request was sent), got ${show(err.status)}`);
    assert.includes(err.message, field, `generate(${why}): message names the field`);
  }
  // run() validates the same way.
  const err = await rejects(lib.run({ prompt: "x", duration: 5 }, opts(env)), "run(duration 5)");
  checkError(err, { code: "invalid_request", field: "duration" }, "run(duration 5)");
  assert.includes(err.message, "4, 8, 10, 12, 15", "the message lists what is allowed");
  const st = await env.sim.stats();
  assert.eq(st.requests.generate, 0, "an invalid request costs no network call");
  assert.eq(st.jobsCreated, 0, "jobsCreated");
});

test(`validation: ${VALID.length} edge-of-valid requests are accepted (incl. a 4000-character multibyte prompt)`, async (lib, env) => {
  for (const [why, req] of VALID) {
    let sub;
    try {
      sub = await lib.generate(req, opts(env));
    } catch (e) {
      throw new AssertionError(`generate(${why}) should be valid but rejected: ${show(e)} field=${e && e.field}`);
    }
    assert.match(sub.jobId, UUID_RE, `generate(${why}) jobId`);
  }
  const st = await env.sim.stats();
  assert.eq(st.requests.generate, VALID.length, "generate requests");
  assert.eq(st.jobsCreated, VALID.length, "jobsCreated: the simulator accepted every body");
});

test("wire mapping: duration/aspectRatio/resolution/startImage/model and soraParams extras reach the upstream", async (lib, env) => {
  // The simulator prices a sora-2 job at its duration, so creditCost shows the
  // duration arrived as soraParams.duration; it rejects (400) a bad
  // aspect_ratio, resolution or start_image, so acceptance shows those arrived valid.
  for (const duration of [4, 8, 10, 12, 15]) {
    const sub = await lib.generate({
      prompt: `wire mapping ${duration} [ms=60000]`,
      duration,
      aspectRatio: duration % 2 ? "16:9" : "9:16",
      resolution: "standard",
      startImage: "https://images.example.com/first-frame.png",
      soraParams: { seed: 7, reference_image: "https://images.example.com/ref.png" },
    }, opts(env));
    const p = await lib.poll(sub.jobId, opts(env));
    assert.eq(p.model, "sora-2", "default model is sent");
    assert.eq(p.creditCost, duration, `creditCost of a ${duration} s sora-2 job`);
    assert.eq(p.raw.creditCost, duration, "raw.creditCost");
  }
  const pro = await lib.generate({ prompt: "wire pro [ms=60000]", model: "sora-2-pro", duration: 10, resolution: "high", aspectRatio: "16:9" }, opts(env));
  const pp = await lib.poll(pro.jobId, opts(env));
  assert.eq(pp.model, "sora-2-pro", "model sora-2-pro");
  assert.ok(pp.creditCost >= 10 && pp.creditCost % 10 === 0, `sora-2-pro creditCost scales with duration 10: ${pp.creditCost}`);
  // Extra soraParams pass through untouched: a duration given only there is honoured.
  const extra = await lib.generate({ prompt: "wire extras [ms=60000]", soraParams: { duration: 12 } }, opts(env));
  const pe = await lib.poll(extra.jobId, opts(env));
  assert.eq(pe.creditCost, 12, "soraParams.duration passed through untouched");
  const st = await env.sim.stats();
  assert.eq(st.jobsCreated, 7, "jobsCreated");
});

test("429 with Retry-After: 1 on generate is retried after >= 1 s with the same idempotency key (one job)", async (lib, env) => {
  await env.sim.faults("generate", ["429"]);
  const t0 = now();
  const sub = await lib.generate({ prompt: "rate limited once [ms=30000]" }, opts(env));
  const elapsed = now() - t0;
  assert.ok(elapsed >= 900, `waited ${Math.round(elapsed)} ms, Retry-After asked for 1000`);
  assert.ok(elapsed < 8000, `waited ${Math.round(elapsed)} ms`);
  const st = await env.sim.stats();
  assert.eq(st.requests.generate, 2, "generate requests (429 + retry)");
  assert.eq(st.jobsCreated, 1, "jobsCreated");
  assert.eq(st.idempotencyKeys[sub.idempotencyKey], 1, "jobs for the key");
});

test("429 with Retry-After as an HTTP date on a status read: poll waits, then resolves", async (lib, env) => {
  const sub = await longJob(lib, env);
  await env.sim.faults("job", ["429-date"]);
  const t0 = now();
  const p = await lib.poll(sub.jobId, opts(env));
  const elapsed = now() - t0;
  assert.eq(p.id, sub.jobId, "poll id");
  assert.ok(elapsed >= 900, `waited ${Math.round(elapsed)} ms for a Retry-After date ~2 s ahead`);
  assert.ok(elapsed < 8000, `waited ${Math.round(elapsed)} ms`);
  const st = await env.sim.stats();
  assert.eq(st.statusReads[sub.jobId], 2, "status reads (429 + retry)");
});

test("503 then 502 on status reads: poll retries and resolves (3 reads)", async (lib, env) => {
  const sub = await longJob(lib, env);
  await env.sim.faults("job", ["503", "502"]);
  const p = await lib.poll(sub.jobId, opts(env));
  assert.eq(p.id, sub.jobId, "poll id");
  assert.oneOf(p.status, ["QUEUED", "PROCESSING"], "status");
  const st = await env.sim.stats();
  assert.eq(st.statusReads[sub.jobId], 3, "status reads");
});

test("connection reset once on a status read is retried; a persistent reset (header) rejects network", (lib, env) => resetCase(env, async () => {
  const sub = await longJob(lib, env);
  await env.sim.faults("job", ["reset"]);
  const p = await lib.poll(sub.jobId, opts(env));
  assert.eq(p.id, sub.jobId, "poll id after one reset");
  let st = await env.sim.stats();
  assert.eq(st.statusReads[sub.jobId], 2, "status reads (reset + retry)");

  const err = await rejects(lib.poll(sub.jobId, opts(env, { maxRetries: 1, headers: { "X-Sim-Fault": "reset" } })), "poll(persistent reset)");
  checkError(err, { code: "network", retryable: true, jobId: sub.jobId }, "poll(persistent reset)");
  st = await env.sim.stats();
  assert.eq(st.statusReads[sub.jobId], 4, "maxRetries 1: two more reads");
}));

test("a hung status read with timeoutMs 300, maxRetries 0 rejects timeout promptly", async (lib, env) => {
  const sub = await longJob(lib, env);
  await env.sim.faults("job", ["hang"]);
  const t0 = now();
  const err = await rejects(lib.poll(sub.jobId, opts(env, { timeoutMs: 300, maxRetries: 0 })), "poll(hang)");
  const elapsed = now() - t0;
  checkError(err, { code: "timeout", jobId: sub.jobId }, "poll(hang)");
  assert.between(elapsed, 250, 2500, "time to the timeout (ms)");
  const st = await env.sim.stats();
  assert.eq(st.statusReads[sub.jobId], 1, "maxRetries 0: one read");
});

test("malformed JSON (persistent, header) on poll with maxRetries 0 rejects bad_response", async (lib, env) => {
  const sub = await longJob(lib, env);
  const err = await rejects(lib.poll(sub.jobId, opts(env, { maxRetries: 0, headers: { "X-Sim-Fault": "malformed" } })), "poll(malformed)");
  checkError(err, { code: "bad_response", jobId: sub.jobId }, "poll(malformed)");
  const st = await env.sim.stats();
  assert.eq(st.statusReads[sub.jobId], 1, "one read");
});

const GENERATE_FAULTS = [
  ["503", "upstream", {}],
  ["reset", "network", {}],
  ["hang", "timeout", { timeoutMs: 400 }],
  ["lost", "network", {}],
];
for (const [fault, code, extra] of GENERATE_FAULTS) {
  test(`generate with fault ${fault}: rejects ${code} with idempotencyKey, never retried silently; retrying with the key makes one job`, (lib, env) => resetCase(env, async () => {
    await env.sim.faults("generate", [fault]);
    const req = { prompt: `ambiguous submit ${fault} [ms=30000]`, duration: 8 };
    const t0 = now();
    const err = await rejects(lib.generate(req, opts(env, extra)), `generate(${fault})`);
    checkError(err, { code }, `generate(${fault})`);
    if (fault === "503") assert.eq(err.status, 503, "status");
    if (fault === "hang") assert.between(now() - t0, 350, 3000, "time to the timeout (ms)");
    assert.match(err.idempotencyKey, UUID_V4_RE, "idempotencyKey on the generate failure");
    let st = await env.sim.stats();
    assert.eq(st.requests.generate, 1, "exactly one generate request: no silent retry of a submit");
    assert.eq(st.jobsCreated, fault === "lost" ? 1 : 0, "jobsCreated after the failure");

    const sub = await lib.generate(req, opts(env, { idempotencyKey: err.idempotencyKey }));
    assert.eq(sub.idempotencyKey, err.idempotencyKey, "the retry used the caller's key");
    st = await env.sim.stats();
    assert.eq(st.requests.generate, 2, "generate requests");
    assert.eq(st.idempotencyKeys[err.idempotencyKey], 1, "one job for the key");
    assert.eq(st.jobsCreated, 1, "one job in total");
  }));
}

test("abort: aborting 500 ms into a 10 s waitForJob rejects aborted within 300 ms; an aborted signal sends nothing", async (lib, env) => {
  const sub = await longJob(lib, env);
  const ctl = new AbortController();
  let tAbort = 0;
  const timer = setTimeout(() => { tAbort = now(); ctl.abort(); }, 500);
  try {
    const err = await rejects(lib.waitForJob(sub.jobId, opts(env, { signal: ctl.signal })), "waitForJob(abort)");
    const lag = now() - tAbort;
    assert.ok(tAbort > 0, "rejected before the abort happened");
    checkError(err, { code: "aborted", jobId: sub.jobId }, "waitForJob(abort)");
    assert.between(lag, 0, 300, "ms from abort() to the rejection");
  } finally {
    clearTimeout(timer);
  }
  const before = await env.sim.stats();

  const dead = new AbortController();
  dead.abort();
  const e1 = await rejects(lib.generate({ prompt: "never sent" }, opts(env, { signal: dead.signal })), "generate(aborted)");
  checkError(e1, { code: "aborted" }, "generate(aborted signal)");
  assert.eq(e1.idempotencyKey, undefined, "no idempotencyKey when nothing was sent");
  const e2 = await rejects(lib.poll(sub.jobId, opts(env, { signal: dead.signal })), "poll(aborted)");
  checkError(e2, { code: "aborted" }, "poll(aborted signal)");
  const e3 = await rejects(lib.run({ prompt: "never sent" }, opts(env, { signal: dead.signal })), "run(aborted)");
  checkError(e3, { code: "aborted" }, "run(aborted signal)");
  await sleep(100);
  const after = await env.sim.stats();
  assert.eq(after.requests.generate, 1, "no generate request with an aborted signal");
  assert.eq(after.requests.job, before.requests.job, "no status read with an aborted signal");
});

test("deadline: deadlineMs 1200 on a 10 s job rejects deadline_exceeded with jobId", async (lib, env) => {
  const sub = await longJob(lib, env);
  const t0 = now();
  const err = await rejects(lib.waitForJob(sub.jobId, opts(env, { deadlineMs: 1200 })), "waitForJob(deadline)");
  const elapsed = now() - t0;
  checkError(err, { code: "deadline_exceeded", jobId: sub.jobId }, "waitForJob(deadline)");
  assert.between(elapsed, 1000, 3000, "ms until deadline_exceeded");
});

test("waitForJob keeps to Retry-After when status reads stay rate-limited", async (lib, env) => {
  const sub = await longJob(lib, env, 30000);
  const before = (await env.sim.stats()).requests.job ?? 0;
  const limited = { "X-Sim-Fault": "429", "X-Sim-Retry-After": "7" };
  const t0 = now();
  const err = await rejects(
    lib.waitForJob(sub.jobId, opts(env, { deadlineMs: 11000, maxRetries: 0, headers: limited })),
    "waitForJob(429 with Retry-After 7)",
  );
  checkError(err, { code: "deadline_exceeded", jobId: sub.jobId }, "waitForJob(429 with Retry-After 7)");
  assert.between(now() - t0, 10500, 13000, "ms until deadline_exceeded");
  // The first read (at 5 s) is refused with Retry-After 7, so the next read
  // would come at 12 s, past the deadline. Ignoring Retry-After gives a second read at ~10 s.
  const reads = (await env.sim.stats()).requests.job - before;
  assert.eq(reads, 1, "status reads while rate-limited");
}, 20000);

test("poll of an unknown job id rejects not_found, status 404", async (lib, env) => {
  const id = randomUuid();
  const err = await rejects(lib.poll(id, opts(env)), "poll(unknown)");
  checkError(err, { code: "not_found", status: 404, retryable: false }, "poll(unknown)");
  const st = await env.sim.stats();
  assert.eq(st.statusReads[id], 1, "one read, a 404 is not retried");
});

test("transport auto against the bare simulator (no events endpoint) completes by polling; transport poll too", async (lib, env) => {
  const a = await lib.run({ prompt: "auto transport [ms=1500]" }, opts(env, { transport: "auto" }));
  checkCompleted(a, env, { shape: "string" }, "run(transport auto)");
  const b = await lib.run({ prompt: "poll transport [ms=1200] [shape=object]" }, opts(env, { transport: "poll" }));
  checkCompleted(b, env, { shape: "object" }, "run(transport poll)");
  const st = await env.sim.stats();
  assert.ok(st.statusReads[a.id] >= 1, "auto: the job was polled");
  assert.ok(st.statusReads[b.id] >= 1, "poll: the job was polled");
  assert.eq(st.jobsCreated, 2, "jobsCreated");
});

test("result URLs: the table the worker also keeps (tests/support/result-urls.json): kept ones are the job's videoUrl; refused ones reject bad_response from poll (and waitForJob, for the first), read once", async (lib, env) => {
  const sub = await lib.generate({ prompt: "result URL table [ms=200]" }, opts(env));
  await sleep(500);
  assert.ok(resultUrls.length >= 15, "the table has its rows");
  let waited = false;
  for (const { name, result, video } of resultUrls) {
    let reads = 0;
    // The caller's fetch swaps the simulator's finished result for the row's,
    // as a compromised or look-alike upstream would send it.
    const fetch = async (request) => {
      reads += 1;
      const res = await globalThis.fetch(request);
      const job = await res.json();
      job.result = result;
      return new Response(JSON.stringify(job), { status: res.status, headers: { "content-type": "application/json" } });
    };
    if (video !== null) {
      const job = await lib.poll(sub.jobId, opts(env, { fetch }));
      assert.eq(job.status, "COMPLETED", `${name}: status`);
      assert.eq(job.videoUrl, video, `${name}: videoUrl`);
      continue;
    }
    const err = await rejects(lib.poll(sub.jobId, opts(env, { fetch })), `poll(${name})`);
    checkError(err, { code: "bad_response", retryable: false, jobId: sub.jobId }, `poll(${name})`);
    assert.includes(err.message, "result URL", `poll(${name}): the message says what was refused`);
    // waitForJob's first read comes after its first poll interval (seconds):
    // one row shows it refuses the same way, without asking again.
    if (waited) continue;
    waited = true;
    const err2 = await rejects(lib.waitForJob(sub.jobId, opts(env, { fetch, transport: "poll" })), `waitForJob(${name})`);
    checkError(err2, { code: "bad_response", retryable: false, jobId: sub.jobId }, `waitForJob(${name})`);
    assert.eq(reads, 2, `${name}: one read each, a finished job's result is not asked for again`);
  }
  assert.ok(waited, "a refused row went through waitForJob");
});

test("errors: a network failure keeps fetch's error as cause and names the method and URL; bad JSON keeps the SyntaxError", async (lib, env) => {
  // Port 9 (discard) on loopback: nothing listens, and browsers block it too.
  const dead = "http://127.0.0.1:9";
  const err = await rejects(lib.poll("job-1", { baseUrl: dead, maxRetries: 0 }), "poll(dead port)");
  checkError(err, { code: "network", method: "GET", url: `${dead}/v2/jobs/job-1` }, "poll(dead port)");
  assert.ok(err.cause instanceof TypeError, `cause is fetch's TypeError: ${show(err.cause)}`);
  assert.includes(err.message, `GET ${dead}/v2/jobs/job-1`, "the message names the request");
  const fetch = async () => new Response("{not json", { status: 200 });
  const bad = await rejects(lib.poll("job-1", { baseUrl: "https://api.example", fetch, maxRetries: 0 }), "poll(bad JSON)");
  checkError(bad, { code: "bad_response", method: "GET" }, "poll(bad JSON)");
  assert.ok(bad.cause instanceof SyntaxError, `cause is the parse error: ${show(bad.cause)}`);
});

test("errors: HTTP errors carry method and URL (never the key); the upstream's are told from the edge worker's", async (lib, env) => {
  const id = randomUuid();
  const nf = await rejects(lib.poll(id, opts(env)), "poll(unknown id)");
  checkError(nf, { code: "not_found", status: 404, method: "GET", url: `${env.simUrl}/v2/jobs/${id}`, source: "upstream" }, "poll(unknown id)");
  assert.includes(nf.message, `GET ${env.simUrl}/v2/jobs/${id}`, "message names the request");
  const un = await rejects(lib.generate({ prompt: "wrong key" }, { baseUrl: env.simUrl, apiKey: WRONG_KEY }), "generate(wrong key)");
  checkError(un, { code: "unauthorized", method: "POST", url: `${env.simUrl}/v2/videos/generate`, source: "upstream" }, "generate(wrong key)");
  assert.includes(un.message, "Apiframe answered 401", "the upstream's refusal says so");
  assertNoSecrets(un, env, "generate(wrong key)");
  assertNoSecrets(nf, env, "poll(unknown id)");
  // The edge worker's own refusals (src/edge/reply.rs) carry "source":"edge".
  const edgeBody = { error: { code: "forbidden", message: "origin https://evil.example is not allowed", source: "edge" } };
  const fetch = async () => new Response(JSON.stringify(edgeBody), { status: 403, headers: { "content-type": "application/json" } });
  const edge = await rejects(lib.poll("job-1", { baseUrl: "https://app.example/api", fetch }), "poll(edge 403)");
  checkError(edge, { code: "forbidden", status: 403, source: "edge", method: "GET", url: "https://app.example/api/v2/jobs/job-1" }, "poll(edge 403)");
  assert.includes(edge.message, "sora-edge worker answered 403", "the worker's refusal says it is the worker's");
  assert.ok(!edge.message.includes("Apiframe"), `not blamed on Apiframe: ${show(edge.message)}`);
});

test("errors: the abort reason is kept as cause; an abort or a validation error before any request has no idempotencyKey", async (lib, env) => {
  const reason = new Error("user left the page");
  const dead = new AbortController();
  dead.abort(reason);
  const e1 = await rejects(lib.generate({ prompt: "never sent" }, opts(env, { signal: dead.signal })), "generate(aborted with reason)");
  checkError(e1, { code: "aborted", idempotencyKey: undefined }, "generate(aborted with reason)");
  assert.eq(e1.cause, reason, "cause is the signal's reason");
  const sub = await longJob(lib, env);
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort("stop"), 300);
  try {
    const e2 = await rejects(lib.waitForJob(sub.jobId, opts(env, { signal: ctl.signal, transport: "poll" })), "waitForJob(abort mid-wait)");
    checkError(e2, { code: "aborted", jobId: sub.jobId }, "waitForJob(abort mid-wait)");
    assert.eq(e2.cause, "stop", "cause is the reason given to abort()");
  } finally {
    clearTimeout(timer);
  }
  for (const req of [{ prompt: "" }, { prompt: "x", duration: 7 }, { prompt: "x", soraParams: { duration: 7 } }]) {
    for (const call of ["generate", "run"]) {
      const e = await rejects(lib[call](req, opts(env)), `${call}(${show(req)})`);
      checkError(e, { code: "invalid_request", idempotencyKey: undefined }, `${call}(${show(req)})`);
      assert.ok(!("idempotencyKey" in e), `${call}: no idempotencyKey field at all`);
    }
  }
  const st = await env.sim.stats();
  assert.eq(st.requests.generate, 1, "only longJob's generate was sent");
});

const BAD_OPTIONS = [
  ["baseUrl", { baseUrl: 42 }],
  ["timeoutMs", { timeoutMs: -1 }],
  ["maxRetries", { maxRetries: "x" }],
  ["transport", { transport: "sse" }],
  ["fetch", { fetch: "fetch" }],
  ["onProgress", { onProgress: {} }],
  ["signal", { signal: { aborted: "no" } }],
  ["signal", { signal: "abort" }],
  ["headers", { headers: "X-A: 1" }],
  ["headers.X-Count", { headers: { "X-Count": 1 } }],
  ["deadlineMs", { deadlineMs: 0 }],
  ["token", { token: 42 }],
  ["token", { token: "two words" }],
  ["options", 42],
];

test(`options: ${BAD_OPTIONS.length} bad options reject invalid_request naming the option, in new Client() and in calls, with 0 requests`, async (lib, env) => {
  for (const [field, bad] of BAD_OPTIONS) {
    let thrown;
    try {
      new lib.Client(bad);
    } catch (e) {
      thrown = e;
    }
    assert.ok(thrown, `new Client(${show(bad)}) was accepted`);
    checkError(thrown, { code: "invalid_request", field, retryable: false }, `new Client(${show(bad)})`);
    assert.ok(thrown instanceof lib.SoraEdgeError, "a SoraEdgeError");
    assert.includes(thrown.message, field.split(".")[0], "the message names the option");
    assert.ok(!("idempotencyKey" in thrown), "no idempotencyKey");
    if (bad && typeof bad === "object") {
      const merged = { baseUrl: env.simUrl, apiKey: env.apiKey, ...bad };
      const e = await rejects(lib.generate({ prompt: "x" }, merged), `generate(options ${show(bad)})`);
      checkError(e, { code: "invalid_request", field, idempotencyKey: undefined }, `generate(options ${show(bad)})`);
      const p = await rejects(lib.poll("job-1", merged), `poll(options ${show(bad)})`);
      checkError(p, { code: "invalid_request", field }, `poll(options ${show(bad)})`);
    }
  }
  const st = await env.sim.stats();
  assert.eq(st.requests.generate + st.requests.job, 0, "no request was sent");
});

test("onProgress: an exception ends the wait with code aborted and the exception as cause; the job goes on", async (lib, env) => {
  const boom = new RangeError("progress bar broke");
  let calls = 0;
  const err = await rejects(lib.run({ prompt: "a throwing callback [ms=1500]" }, opts(env, {
    onProgress: () => { calls += 1; throw boom; },
  })), "run(onProgress throws)");
  checkError(err, { code: "aborted", retryable: false }, "run(onProgress throws)");
  assert.eq(err.cause, boom, "cause is what onProgress threw");
  assert.eq(calls, 1, "the wait ended at the first throw");
  assert.ok(typeof err.jobId === "string" && err.jobId.length > 0, "the error names the job");
  const done = await lib.waitForJob(err.jobId, opts(env));
  assert.eq(done.status, "COMPLETED", "the job itself went on");
});

test("SoraEdgeError: every rejection seen is instanceof the exported class and passes isSoraEdgeError; others do not", async (lib) => {
  assert.eq(typeof lib.SoraEdgeError, "function", "SoraEdgeError is exported");
  assert.ok(seenErrors.length >= 10, "the earlier cases collected errors");
  for (const { what, err } of seenErrors) {
    assert.ok(err instanceof lib.SoraEdgeError, `${what}: instanceof SoraEdgeError`);
    assert.ok(err instanceof Error, `${what}: instanceof Error`);
    assert.ok(lib.isSoraEdgeError(err), `${what}: isSoraEdgeError`);
    assert.eq(err.name, "SoraEdgeError", `${what}: name`);
  }
  for (const other of [new Error("x"), { name: "SoraEdgeError", code: "timeout" }, null, "SoraEdgeError"]) {
    assert.ok(!lib.isSoraEdgeError(other), `isSoraEdgeError(${show(other)}) is false`);
  }
}, 5000);

test("no error produced by any case exposes the API key (right or wrong)", async (_lib, env) => {
  assert.ok(seenErrors.length >= 1, "no errors were collected: the earlier cases did not run");
  for (const { what, err } of seenErrors) assertNoSecrets(err, env, what);
}, 5000);
