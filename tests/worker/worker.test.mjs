// The edge worker, for real: worker/index.js + pkg-edge in workerd (Miniflare 4),
// against the Apiframe simulator. Every response a client receives is scanned
// for the API key. Prints `worker: N passed, M failed`.
//
//   cargo build --release -p apiframe-sim && bash scripts/build.sh edge && bash scripts/build.sh
//   node tests/worker/worker.test.mjs
import { createServer } from "node:http";
import { createHmac, randomUUID } from "node:crypto";
import { API_KEY, startSim, startWorker, sign, readEvents, rawRequest, within, sleep, freePort } from "./harness.mjs";

const TEST_TIMEOUT_MS = 60000;
const results = [];
const leaks = [];
let scanned = 0;
let nextIp = 1;

function assert(cond, message) {
  if (!cond) throw new Error(message);
}
function eq(actual, expected, what) {
  if (actual !== expected) throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

/** Fails (and records) when the key appears in anything a client received. */
function scan(where, text) {
  scanned += 1;
  if (typeof text === "string" && text.includes(API_KEY)) {
    leaks.push(where);
    throw new Error(`the API key leaked in ${where}`);
  }
}
function scanHeaders(where, headers) {
  for (const [name, value] of headers) scan(`${where} header ${name}`, `${name}: ${value}`);
}

/** A fetch for the client library that scans everything it receives (bodies via a clone). */
async function scanningFetch(input, init) {
  const res = await fetch(input, init);
  try {
    scanHeaders("library fetch", res.headers);
  } catch {
    // recorded in leaks
  }
  res
    .clone()
    .text()
    .then((text) => scan("library fetch body", text))
    .catch(() => {});
  return res;
}

/** The client's view of the worker: fetch, read, scan. A fresh CF-Connecting-IP per call unless given. */
function clientFor(base) {
  return async function client(path, init = {}) {
    const headers = { "cf-connecting-ip": `198.51.100.${nextIp++ % 250}`, ...(init.headers ?? {}) };
    const res = await within(20000, fetch(base + path, { ...init, headers }), `${init.method ?? "GET"} ${path}`);
    scanHeaders(`${init.method ?? "GET"} ${path}`, res.headers);
    const text = await within(20000, res.text(), `body of ${path}`);
    scan(`${init.method ?? "GET"} ${path} body`, text);
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: res.status, headers: res.headers, text, json };
  };
}

/** Opens an events stream and reads it to its end (or the timeout), scanning everything. */
async function subscribe(base, jobId, { lastEventId, timeoutMs = 20000, onEvent } = {}) {
  const headers = lastEventId === undefined ? {} : { "last-event-id": String(lastEventId) };
  const res = await within(20000, fetch(`${base}/api/v2/jobs/${jobId}/events`, { headers }), "events connect");
  scanHeaders("events", res.headers);
  if (res.status !== 200) {
    const text = await res.text();
    scan("events body", text);
    return { status: res.status, events: [], ended: true, text };
  }
  const comments = [];
  const out = await readEvents(res, { timeoutMs, onEvent, onComment: (c) => comments.push(c) });
  for (const ev of out.events) scan("events data", ev.data);
  return { status: 200, contentType: res.headers.get("content-type"), comments, ...out };
}

async function test(name, fn) {
  const started = performance.now();
  try {
    await within(TEST_TIMEOUT_MS, fn(), name);
    results.push({ name, ok: true });
    console.log(`ok   ${name} (${Math.round(performance.now() - started)} ms)`);
  } catch (e) {
    results.push({ name, ok: false });
    console.log(`FAIL ${name}: ${e && e.message}`);
  }
}

function upstreamCounts(stats) {
  const r = stats.requests;
  return `generate=${r.generate ?? 0} job=${r.job ?? 0} jobs=${r.jobs ?? 0} me=${r.me ?? 0} created=${stats.jobsCreated}`;
}

async function signedWebhook(client, body, signature = sign(body)) {
  return client("/api/webhooks/apiframe", {
    method: "POST",
    headers: { "content-type": "application/json", "x-webhook-signature": signature, "x-webhook-event": "progress" },
    body,
  });
}

const cleanups = [];
let exitCode = 1;
try {
  const sim = await startSim(["--job-ms", "1500"]);
  cleanups.push(sim.stop);
  const worker = await startWorker({ simUrl: sim.url, vars: { RELAY_HEARTBEAT_MS: "500" } });
  cleanups.push(worker.stop);
  const W = worker.url;
  const port = Number(new URL(W).port);
  const client = clientFor(W);
  const raw = async (target, extra = "") => {
    const r = await rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${extra}Connection: close\r\n\r\n`);
    scan(`raw ${target}`, r.raw);
    return r;
  };
  const genBody = (prompt, extra = {}) => JSON.stringify({ prompt, model: "sora-2", ...extra });
  const generate = (body, headers = {}) =>
    client("/api/v2/videos/generate", { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
  console.log(`worker ${W}, simulator ${sim.url}`);

  await test("key: injected from the secret, client credentials stripped, the simulator sees a good key", async () => {
    const before = await sim.control.stats();
    const res = await generate(genBody("key check [ms=300]"), {
      "x-api-key": "afk_client_supplied_wrong_key",
      authorization: "Bearer client-token",
      cookie: "session=1",
      "x-sim-fault": "500",
      "x-forwarded-host": "evil.test",
      "idempotency-key": `key-check-${randomUUID()}`,
    });
    eq(res.status, 202, "status");
    assert(/^[0-9a-f-]{36}$/.test(res.json.jobId), `jobId ${res.text}`);
    const after = await sim.control.stats();
    eq(after.auth.ok - before.auth.ok, 1, "auth.ok delta");
    eq(after.auth.wrong - before.auth.wrong, 0, "auth.wrong delta");
    eq(after.auth.missing - before.auth.missing, 0, "auth.missing delta");
  });

  // Every row: what the client sends, the answer it must get, and no upstream request.
  const UUID = "0b6a3c52-1f7e-4a8e-9c1d-2f3e4a5b6c7d";
  const json = { "content-type": "application/json" };
  const big = genBody("x".repeat(20000));
  const bad = [
    ["unknown path /", () => client("/"), 404, "not_found"],
    ["unknown path /api/v2/me", () => client("/api/v2/me"), 404, "not_found"],
    ["upstream path without /api", () => client(`/v2/jobs/${UUID}`), 404, "not_found"],
    ["job list /api/v2/jobs", () => client("/api/v2/jobs"), 404, "not_found"],
    ["trailing slash", () => client("/api/v2/videos/generate/", { method: "POST", headers: json, body: "{}" }), 404, "not_found"],
    ["PUT generate", () => client("/api/v2/videos/generate", { method: "PUT", headers: json, body: "{}" }), 405, "method_not_allowed"],
    ["GET generate", () => client("/api/v2/videos/generate"), 405, "method_not_allowed"],
    ["DELETE job", () => client(`/api/v2/jobs/${UUID}`, { method: "DELETE" }), 405, "method_not_allowed"],
    ["POST events", () => client(`/api/v2/jobs/${UUID}/events`, { method: "POST", body: "x" }), 405, "method_not_allowed"],
    ["GET webhook", () => client("/api/webhooks/apiframe"), 405, "method_not_allowed"],
    ["traversal /api/v2/jobs/../me (runtime normalises to /api/v2/me)", () => raw("/api/v2/jobs/../me"), 404, "not_found"],
    ["traversal %2e%2e (runtime normalises)", () => raw("/api/v2/jobs/%2e%2e/me"), 404, "not_found"],
    ["traversal %2E%2E upper case (runtime normalises)", () => raw("/api/v2/jobs/%2E%2E/me"), 404, "not_found"],
    ["traversal with backslashes (runtime normalises)", () => raw("/api/v2/jobs/..\\me"), 404, "not_found"],
    ["encoded slash ..%2Fme", () => raw("/api/v2/jobs/..%2Fme"), 400, "invalid_request"],
    ["encoded slash lower %2e%2e%2fme", () => raw("/api/v2/jobs/%2e%2e%2fme"), 400, "invalid_request"],
    ["double encoding ..%252Fme", () => raw("/api/v2/jobs/..%252Fme"), 400, "invalid_request"],
    ["double encoding %252e%252e", () => raw("/api/v2/jobs/%252e%252e/me"), 400, "invalid_request"],
    ["encoded slash before events", () => raw(`/api/v2/jobs/${UUID}%2Fevents`), 400, "invalid_request"],
    ["protocol-relative //evil.test/...", () => raw("//evil.test/api/v2/me"), 400, "invalid_request"],
    ["absolute URL in path /api/v2/jobs/http://evil.test", () => raw("/api/v2/jobs/http://evil.test/x"), 400, "invalid_request"],
    ["encoded absolute URL http:%2F%2Fevil.test", () => raw("/api/v2/jobs/http:%2F%2Fevil.test"), 400, "invalid_request"],
    ["absolute-form target http://evil.test/... (refused by workerd itself)", () => raw(`http://evil.test/api/v2/jobs/${UUID}`), 500, null],
    ["non-UUID id", () => client("/api/v2/jobs/not-a-uuid"), 400, "invalid_request", "jobId"],
    ["non-UUID id: numbers", () => client("/api/v2/jobs/12345"), 400, "invalid_request", "jobId"],
    ["non-UUID id: 37 chars", () => client(`/api/v2/jobs/${UUID}0`), 400, "invalid_request", "jobId"],
    ["non-UUID id: non-hex", () => client("/api/v2/jobs/0b6a3c52-1f7e-4a8e-9c1d-2f3e4a5b6c7g"), 400, "invalid_request", "jobId"],
    ["non-UUID id: no dashes", () => client("/api/v2/jobs/0b6a3c521f7e4a8e9c1d2f3e4a5b6c7d"), 400, "invalid_request", "jobId"],
    ["non-UUID id on events", () => client("/api/v2/jobs/me/events"), 400, "invalid_request", "jobId"],
    ["oversized body (Content-Length)", () => generate(big), 413, "payload_too_large"],
    [
      "oversized body (chunked, no Content-Length)",
      () =>
        client("/api/v2/videos/generate", {
          method: "POST",
          headers: json,
          duplex: "half",
          body: new ReadableStream({
            start(c) {
              for (let i = 0; i < 5; i++) c.enqueue(new TextEncoder().encode("x".repeat(5000)));
              c.close();
            },
          }),
        }),
      413,
      "payload_too_large",
    ],
    ["invalid JSON", () => generate('{"prompt": "a", '), 400, "invalid_request", "body"],
    ["JSON array body", () => generate("[]"), 400, "invalid_request", "body"],
    ["wrong content type text/plain", () => client("/api/v2/videos/generate", { method: "POST", headers: { "content-type": "text/plain" }, body: genBody("a") }), 415, "unsupported_media_type"],
    ["wrong content type form", () => client("/api/v2/videos/generate", { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "prompt=a" }), 415, "unsupported_media_type"],
    ["missing content type", () => client("/api/v2/videos/generate", { method: "POST", body: new Blob([genBody("a")]) }), 415, "unsupported_media_type"],
    ["missing prompt", () => generate(JSON.stringify({ model: "sora-2" })), 400, "invalid_request", "prompt"],
    ["prompt over 4000 characters", () => generate(genBody("y".repeat(4001))), 400, "invalid_request", "prompt"],
    ["duration 5", () => generate(genBody("a", { soraParams: { duration: 5 } })), 400, "invalid_request", "soraParams.duration"],
    ["model sora-3", () => generate(JSON.stringify({ prompt: "a", model: "sora-3" })), 400, "invalid_request", "model"],
    ["client webhookUrl", () => generate(genBody("a", { webhookUrl: "https://evil.test/hook" })), 400, "invalid_request", "webhookUrl"],
    ["client webhook_url", () => generate(genBody("a", { webhook_url: "https://evil.test/hook" })), 400, "invalid_request", "webhook_url"],
    ["Idempotency-Key of 300 characters", () => generate(genBody("a"), { "idempotency-key": "k".repeat(300) }), 400, "invalid_request", "Idempotency-Key"],
    ["disallowed origin on generate", () => generate(genBody("a"), { origin: "https://evil.test" }), 403, "forbidden"],
    ["disallowed origin on a job read", () => client(`/api/v2/jobs/${UUID}`, { headers: { origin: "https://evil.test" } }), 403, "forbidden"],
    ["disallowed origin preflight", () => client("/api/v2/videos/generate", { method: "OPTIONS", headers: { origin: "https://evil.test", "access-control-request-method": "POST" } }), 403, "forbidden"],
    ["origin 'null'", () => generate(genBody("a"), { origin: "null" }), 403, "forbidden"],
    ["look-alike origin https://app.test.evil.test", () => generate(genBody("a"), { origin: "https://app.test.evil.test" }), 403, "forbidden"],
    ["webhook without signature", () => client("/api/webhooks/apiframe", { method: "POST", headers: json, body: JSON.stringify({ event: "completed", jobId: UUID, status: "COMPLETED" }) }), 401, "unauthorized"],
    ["webhook with a forged signature", () => signedWebhook(client, JSON.stringify({ event: "completed", jobId: UUID, status: "COMPLETED" }), "ab".repeat(32)), 401, "unauthorized"],
    ["webhook signed with another key", () => { const b = JSON.stringify({ event: "completed", jobId: UUID, status: "COMPLETED" }); return signedWebhook(client, b, sign(b, "afk_attacker_key")); }, 401, "unauthorized"],
    ["webhook signature over another body", () => signedWebhook(client, JSON.stringify({ event: "completed", jobId: UUID, status: "COMPLETED", result: "https://evil.test/x.mp4" }), sign(JSON.stringify({ event: "completed", jobId: UUID, status: "COMPLETED" }))), 401, "unauthorized"],
    ["webhook with a malformed signature", () => signedWebhook(client, "{}", "not-hex"), 401, "unauthorized"],
    ["webhook signed with the bare key as HMAC key", () => { const b = JSON.stringify({ event: "completed", jobId: UUID, status: "COMPLETED" }); return signedWebhook(client, b, createHmacBare(b)); }, 401, "unauthorized"],
    ["webhook signed but not a UUID job", () => signedWebhook(client, JSON.stringify({ event: "completed", jobId: "../me", status: "COMPLETED" })), 400, "invalid_request", "jobId"],
  ];

  const beforeBad = await sim.control.stats();
  for (const [name, send, status, code, field] of bad) {
    await test(`bad input: ${name} -> ${status}${code ? ` ${code}` : ""}${field ? ` (${field})` : ""}`, async () => {
      const res = await send();
      if (res.status !== status) throw new Error(`status ${res.status}, expected ${status}: ${(res.text ?? res.body ?? "").slice(0, 160)}`);
      if (code) {
        const body = res.json ?? JSON.parse(res.body);
        eq(body?.error?.code, code, "error.code");
        assert(typeof body.error.message === "string" && body.error.message.length > 0, "error.message");
        if (field) eq(body.error.field, field, "error.field");
      }
      if (status === 405) assert(/OPTIONS/.test(res.headers.get("allow") ?? ""), "Allow header");
    });
  }
  await test(`bad inputs: none of the ${bad.length} made an upstream request`, async () => {
    const after = await sim.control.stats();
    eq(upstreamCounts(after), upstreamCounts(beforeBad), "upstream requests during bad inputs");
    eq(after.auth.ok, beforeBad.auth.ok, "authenticated upstream requests during bad inputs");
  });

  await test("CORS: allowed and same-origin preflights get 204 with the origin echoed; errors carry CORS headers", async () => {
    for (const origin of ["https://app.test", worker.origin]) {
      const res = await client("/api/v2/videos/generate", {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type, idempotency-key" },
      });
      eq(res.status, 204, `preflight status for ${origin}`);
      eq(res.headers.get("access-control-allow-origin"), origin, "allow-origin");
      assert(/POST/.test(res.headers.get("access-control-allow-methods")), "allow-methods");
      assert(/idempotency-key/i.test(res.headers.get("access-control-allow-headers")), "allow-headers");
    }
    const res = await client("/api/v2/jobs/nope", { headers: { origin: "https://app.test" } });
    eq(res.status, 400, "status");
    eq(res.headers.get("access-control-allow-origin"), "https://app.test", "errors are readable cross-origin");
  });

  await test("rate limit: generate per CF-Connecting-IP, 429 with Retry-After, no upstream request", async () => {
    const before = await sim.control.stats();
    const ip = { "cf-connecting-ip": "203.0.113.77" };
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await generate("{not json", ip)).status);
    const last = await generate("{not json", ip);
    eq(statuses.slice(0, 5).join(","), "400,400,400,400,400", "first five pass the limiter (then fail validation)");
    eq(statuses[5], 429, "sixth status");
    eq(last.status, 429, "seventh status");
    eq(last.json.error.code, "rate_limited", "code");
    eq(last.headers.get("retry-after"), "60", "Retry-After");
    eq((await generate("{not json", { "cf-connecting-ip": "203.0.113.78" })).status, 400, "another client is not limited");
    eq(upstreamCounts(await sim.control.stats()), upstreamCounts(before), "upstream requests");
  });

  let relayedJob = null;
  await test("relay end to end: client run() with transport auto through the worker: 1 generate, 0 status reads", async () => {
    const { run } = await import("sora-edge");
    const before = await sim.control.stats();
    const job = await within(
      30000,
      run({ prompt: "relay end to end [ms=1500]" }, { baseUrl: `${W}/api`, transport: "auto", deadlineMs: 25000, fetch: scanningFetch }),
      "run()",
    );
    scan("run() result", JSON.stringify(job));
    eq(job.status, "COMPLETED", "status");
    assert(typeof job.videoUrl === "string" && job.videoUrl.includes(job.id), `videoUrl ${job.videoUrl}`);
    relayedJob = job.id;
    const after = await sim.control.stats();
    eq(after.requests.generate - before.requests.generate, 1, "generate requests");
    eq(after.statusReads[job.id] ?? 0, 0, `status reads for job ${job.id}`);
  });

  await test("finished job: GET /api/v2/jobs/{id} answered from the Durable Object, no upstream read", async () => {
    let id = relayedJob;
    if (!id) {
      const res = await generate(genBody("finished [ms=300]"));
      id = res.json.jobId;
      const sub = await subscribe(W, id);
      assert(sub.ended, "stream ended");
    }
    const before = await sim.control.stats();
    for (let i = 0; i < 3; i++) {
      const res = await client(`/api/v2/jobs/${id}`);
      eq(res.status, 200, "status");
      eq(res.json.status, "COMPLETED", "job status");
      eq(res.json.id, id, "id");
    }
    eq((await sim.control.stats()).requests.job, before.requests.job, "upstream job reads");
  });

  await test("running job: GET /api/v2/jobs/{id} is forwarded (one upstream read) and merged", async () => {
    const res = await generate(genBody("running [ms=8000]"));
    eq(res.status, 202, "generate");
    const before = await sim.control.stats();
    const read = await client(`/api/v2/jobs/${res.json.jobId}`);
    eq(read.status, 200, "status");
    assert(["QUEUED", "PROCESSING"].includes(read.json.status), `status ${read.json.status}`);
    eq((await sim.control.stats()).requests.job - before.requests.job, 1, "upstream job reads");
    const unknown = await client(`/api/v2/jobs/${randomUUID()}`);
    eq(unknown.status, 404, "unknown job passes the upstream's 404 through");
  });

  await test("events stream: text/event-stream, current state at once, every change, ends after the terminal event", async () => {
    const res = await generate(genBody("stream [ms=1500]"));
    const sub = await subscribe(W, res.json.jobId);
    eq(sub.status, 200, "status");
    assert(sub.contentType.startsWith("text/event-stream"), `content-type ${sub.contentType}`);
    assert(sub.ended, "the server ended the stream");
    const jobs = sub.events.map((e) => JSON.parse(e.data));
    assert(sub.events.every((e) => e.event === "job"), "event names");
    eq(jobs[0].status, "QUEUED", "first event is the current state");
    eq(jobs.at(-1).status, "COMPLETED", "last event");
    assert(jobs.at(-1).result, "result in the terminal event");
    const ids = sub.events.map((e) => Number(e.id));
    assert(ids.every((id, i) => i === 0 || id > ids[i - 1]), `ids grow: ${ids}`);
    const progress = jobs.map((j) => j.progress);
    assert(progress.every((p, i) => i === 0 || p >= progress[i - 1]), `progress never decreases: ${progress}`);
    assert(jobs.length >= 3, `saw ${jobs.length} events`);
  });

  await test("events stream: heartbeat comments while waiting (RELAY_HEARTBEAT_MS=500 here; 15 s by default)", async () => {
    const res = await generate(genBody("heartbeat [ms=2500]"));
    const sub = await subscribe(W, res.json.jobId);
    assert(sub.comments.filter((c) => c === ": heartbeat").length >= 2, `heartbeats: ${sub.comments.length}`);
  });

  await test("events stream: Last-Event-ID resume sends only newer state; a finished stream resumes to nothing", async () => {
    const res = await generate(genBody("resume [ms=2500]"));
    const id = res.json.jobId;
    // Read the first two events, then drop the connection.
    const ctl = new AbortController();
    const first = await fetch(`${W}/api/v2/jobs/${id}/events`, { signal: ctl.signal });
    const seen = [];
    await readEvents(first, {
      timeoutMs: 10000,
      onEvent: (ev) => {
        seen.push(ev);
        if (seen.length === 2) ctl.abort();
      },
    });
    eq(seen.length, 2, "events before the disconnect");
    const lastId = Number(seen[1].id);
    const resumed = await subscribe(W, id, { lastEventId: lastId });
    assert(resumed.events.length > 0, "events after resuming");
    assert(resumed.events.every((e) => Number(e.id) > lastId), `resumed ids ${resumed.events.map((e) => e.id)} > ${lastId}`);
    const final = resumed.events.at(-1);
    eq(JSON.parse(final.data).status, "COMPLETED", "terminal event after resuming");
    const again = await subscribe(W, id, { lastEventId: final.id });
    eq(again.events.length, 0, "nothing newer than the terminal event");
    assert(again.ended, "and the stream ends at once");
    const fresh = await subscribe(W, id, { lastEventId: "garbage" });
    eq(fresh.events.length, 1, "an unreadable Last-Event-ID gets the current state");
    eq(fresh.events[0].id, final.id, "which is the terminal one");
  });

  await test("events stream for a job the relay never saw: one upstream read, then the object polls for everyone", async () => {
    const missing = await subscribe(W, randomUUID());
    eq(missing.status, 404, "a job the upstream does not know either");
    // A job submitted straight to the upstream (not through this worker): no webhook will come.
    const direct = await within(
      10000,
      fetch(`${sim.url}/v2/videos/generate`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": API_KEY },
        body: genBody("direct [ms=2000]"),
      }).then((r) => r.json()),
      "direct generate",
    );
    const subs = await Promise.all([0, 1, 2].map(() => subscribe(W, direct.jobId)));
    for (const sub of subs) {
      eq(sub.status, 200, "status");
      assert(sub.ended, "stream ended");
      eq(JSON.parse(sub.events.at(-1).data).status, "COMPLETED", "terminal event");
    }
    const reads = (await sim.control.stats()).statusReads[direct.jobId] ?? 0;
    assert(reads >= 2 && reads <= 6, `upstream reads for 3 subscribers: ${reads}`);
    console.log(`       3 subscribers, ${reads} upstream reads in all`);
  });

  await test("webhooks: replayed and out-of-order deliveries never move a job backwards", async () => {
    const id = randomUUID(); // a job the simulator has never heard of: only these webhooks move it
    const progress = (p) => JSON.stringify({ event: "progress", jobId: id, status: "PROCESSING", progress: p, model: "sora-2" });
    const completed = JSON.stringify({ event: "completed", jobId: id, status: "COMPLETED", progress: 100, result: "https://cdn.test/v.mp4", model: "sora-2", creditCost: 4 });
    const steps = [
      [progress(60), true],
      [progress(60), false], // replayed
      [progress(40), false], // out of order
      [completed, true],
      [completed, false], // replayed terminal
      [progress(70), false], // progress after COMPLETED
      [JSON.stringify({ event: "failed", jobId: id, status: "FAILED", error: "late" }), false],
      [JSON.stringify({ event: "progress", jobId: id, status: "QUEUED" }), false],
    ];
    const changes = [];
    for (const [body] of steps) {
      const res = await signedWebhook(client, body);
      eq(res.status, 200, `webhook status for ${body}`);
      changes.push(res.json.changed);
    }
    eq(changes.join(","), steps.map((s) => s[1]).join(","), "changed flags");
    const before = await sim.control.stats();
    const read = await client(`/api/v2/jobs/${id}`);
    eq(read.status, 200, "answered from the object (the simulator would say 404)");
    eq(read.json.status, "COMPLETED", "status");
    eq(read.json.progress, 100, "progress");
    eq(read.json.result, "https://cdn.test/v.mp4", "result");
    eq((await sim.control.stats()).requests.job, before.requests.job, "no upstream read");
    const sub = await subscribe(W, id);
    eq(sub.events.length, 1, "one event: the current (terminal) state");
    eq(Number(sub.events[0].id), 2, "two changes in all");
    // A webhook signed with the raw-digest HMAC key is accepted too (the docs leave the encoding open).
    const other = randomUUID();
    const body = progress(10).replace(id, other);
    const rawSigned = await signedWebhook(client, body, sign(body, API_KEY, "raw"));
    eq(rawSigned.status, 200, "raw-digest key");
  });

  await test("fallback: with the simulator dropping webhooks the job still completes (the object polls on its alarm)", async () => {
    await sim.control.config({ dropWebhooks: true });
    try {
      const before = await sim.control.stats();
      const res = await generate(genBody("fallback [ms=1000]"));
      eq(res.status, 202, "generate");
      const id = res.json.jobId;
      const started = performance.now();
      const sub = await subscribe(W, id, { timeoutMs: 20000 });
      const took = performance.now() - started;
      assert(sub.ended, "stream ended");
      const last = JSON.parse(sub.events.at(-1).data);
      eq(last.status, "COMPLETED", "terminal status");
      const after = await sim.control.stats();
      eq(after.webhooks.delivered, before.webhooks.delivered, "no webhook was delivered");
      assert((after.statusReads[id] ?? 0) >= 1, "the object read the job itself");
      assert((after.statusReads[id] ?? 0) <= 3, `few fallback reads: ${after.statusReads[id]}`);
      console.log(`       completed after ${Math.round(took)} ms with ${after.statusReads[id]} fallback read(s) (RELAY_FALLBACK_MS=4000)`);
      // The library too, with auto transport.
      const { run } = await import("sora-edge");
      const job = await within(30000, run({ prompt: "fallback run [ms=800]" }, { baseUrl: `${W}/api`, transport: "auto", deadlineMs: 25000, fetch: scanningFetch }), "run()");
      eq(job.status, "COMPLETED", "run() status");
    } finally {
      await sim.control.config({ dropWebhooks: false });
    }
  });

  await test("fan-out: 120 concurrent subscribers to one job all receive the terminal event", async () => {
    const res = await generate(genBody("fan-out [ms=3000]"));
    const id = res.json.jobId;
    const N = 120;
    const subs = await Promise.all(Array.from({ length: N }, () => subscribe(W, id, { timeoutMs: 20000 })));
    const finals = subs.map((s) => (s.events.length ? JSON.parse(s.events.at(-1).data).status : "none"));
    const ok = finals.filter((f) => f === "COMPLETED").length;
    eq(ok, N, "subscribers that saw COMPLETED");
    assert(subs.every((s) => s.ended), "every stream ended");
    const lastIds = new Set(subs.map((s) => s.events.at(-1).id));
    eq(lastIds.size, 1, "the same terminal event id everywhere");
    eq((await sim.control.stats()).statusReads[id] ?? 0, 0, "no upstream reads for the fan-out");
  });

  // A hostile or broken upstream: redirects, and a body that echoes the key.
  await test("upstream redirects are not followed and an echoed key is redacted", async () => {
    let thiefHits = 0;
    const thief = createServer((req, res) => {
      thiefHits += 1;
      res.end("stolen");
    });
    const thiefPort = await freePort();
    await new Promise((r) => thief.listen(thiefPort, "127.0.0.1", r));
    const evil = createServer((req, res) => {
      if (req.url.startsWith("/v2/jobs/")) {
        res.writeHead(401, { "content-type": "application/json", "set-cookie": "k=1", "x-echo": String(req.headers["x-api-key"]) });
        res.end(JSON.stringify({ message: `Invalid API key ${req.headers["x-api-key"]}` }));
        return;
      }
      res.writeHead(302, { location: `http://127.0.0.1:${thiefPort}/steal` });
      res.end();
    });
    const evilPort = await freePort();
    await new Promise((r) => evil.listen(evilPort, "127.0.0.1", r));
    const w2 = await startWorker({ simUrl: `http://127.0.0.1:${evilPort}`, rateLimit: null });
    try {
      const c2 = clientFor(w2.url);
      const gen = await c2("/api/v2/videos/generate", { method: "POST", headers: json, body: genBody("redirect me") });
      eq(gen.status, 502, "a redirect becomes 502");
      eq(gen.json.error.code, "upstream", "code");
      eq(thiefHits, 0, "the redirect target got no request");
      const read = await c2(`/api/v2/jobs/${UUID}`);
      eq(read.status, 401, "the upstream's status passes through");
      assert(read.text.includes("[redacted]"), `redacted body: ${read.text}`);
      eq(read.headers.get("set-cookie"), null, "no upstream Set-Cookie");
      eq(read.headers.get("x-echo"), null, "no unlisted upstream header");
    } finally {
      await w2.stop();
      evil.close();
      thief.close();
    }
  });

  await test("relay off (no PUBLIC_URL): events and webhook answer 404, generate carries no webhook", async () => {
    const w3 = await startWorker({ simUrl: sim.url, vars: { PUBLIC_URL: undefined }, rateLimit: null });
    try {
      const c3 = clientFor(w3.url);
      const before = await sim.control.stats();
      const gen = await c3("/api/v2/videos/generate", { method: "POST", headers: json, body: genBody("no relay [ms=200]") });
      eq(gen.status, 202, "generate");
      eq((await c3(`/api/v2/jobs/${gen.json.jobId}/events`)).status, 404, "events");
      eq((await c3("/api/webhooks/apiframe", { method: "POST", headers: json, body: "{}" })).status, 404, "webhook");
      await sleep(600);
      const read = await c3(`/api/v2/jobs/${gen.json.jobId}`);
      eq(read.json.status, "COMPLETED", "polling works");
      const after = await sim.control.stats();
      eq(after.webhooks.attempted, before.webhooks.attempted, "the simulator sent no webhook");
      const { run } = await import("sora-edge");
      const job = await within(20000, run({ prompt: "auto falls back [ms=300]" }, { baseUrl: `${w3.url}/api`, transport: "auto", deadlineMs: 15000, fetch: scanningFetch }), "run()");
      eq(job.status, "COMPLETED", "run() with transport auto falls back to polling");
    } finally {
      await w3.stop();
    }
  });

  await test(`the API key appeared in no response (${scanned}+ bodies and headers scanned)`, async () => {
    eq(leaks.length, 0, `leaks: ${leaks.join(", ")}`);
    assert(scanned > 100, `only ${scanned} scanned`);
  });
  exitCode = 0;
} catch (e) {
  console.log(`FAIL setup: ${e && e.stack}`);
  results.push({ name: "setup", ok: false });
} finally {
  for (const stop of cleanups.reverse()) await stop().catch((e) => console.log(`cleanup: ${e.message}`));
}

/** HMAC keyed with the API key itself rather than its SHA-256: must be refused. */
function createHmacBare(body) {
  return createHmac("sha256", API_KEY).update(body).digest("hex");
}

const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
console.log(`worker: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 && exitCode === 0 ? 0 : 1);
