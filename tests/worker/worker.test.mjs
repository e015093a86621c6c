// The edge worker, for real: worker/build (Rust on workers-rs) in workerd
// (Miniflare 4), against the Apiframe simulator. Every response a client
// receives is scanned for the API key.
//
//   cargo build --release -p apiframe-sim && bash scripts/build-worker.sh && bash scripts/build.sh
//   node --test --test-reporter=spec tests/worker/
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createHmac, randomUUID } from "node:crypto";
import { API_KEY, startSim, startWorker, startFakeUpstream, sign, readEvents, rawRequest, within, sleep, freePort } from "./harness.mjs";
import { leaks, scan, scannedCount, scanningFetch, clientFor, subscribe, signedWebhook, upstreamCounts, createJob } from "./client.mjs";

/** Every test is bounded. */
const T = { timeout: 60000 };
const UUID = "0b6a3c52-1f7e-4a8e-9c1d-2f3e4a5b6c7d";
const json = { "content-type": "application/json" };
const genBody = (prompt, extra = {}) => JSON.stringify({ prompt, model: "sora-2", ...extra });

let sim;
let worker;
let W;
let client;
let raw;
const generate = (body, headers = {}) =>
  client("/api/v2/videos/generate", { method: "POST", headers: { "content-type": "application/json", ...headers }, body });

before(async () => {
  sim = await startSim(["--job-ms", "1500"]);
  worker = await startWorker({ simUrl: sim.url, vars: { RELAY_HEARTBEAT_MS: "500" } });
  W = worker.url;
  const port = Number(new URL(W).port);
  client = clientFor(W);
  raw = async (target, extra = "") => {
    const r = await rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${extra}Connection: close\r\n\r\n`);
    scan(`raw ${target}`, r.raw);
    return r;
  };
});

after(async () => {
  await worker?.stop();
  await sim?.stop();
});

describe("bad input", () => {
  let beforeBad;
  before(async () => {
    beforeBad = await sim.control.stats();
  });
  // Every row: what the client sends, the answer it must get, and no upstream request.
  const big = () => genBody("x".repeat(20000));
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
    ["oversized body (Content-Length)", () => generate(big()), 413, "payload_too_large"],
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

  for (const [name, send, status, code, field] of bad) {
    test(`bad input: ${name} -> ${status}${code ? ` ${code}` : ""}${field ? ` (${field})` : ""}`, async () => {
      const res = await send();
      if (res.status !== status) throw new Error(`status ${res.status}, expected ${status}: ${(res.text ?? res.body ?? "").slice(0, 160)}`);
      if (code) {
        const body = res.json ?? JSON.parse(res.body);
        assert.equal(body?.error?.code, code, "error.code");
        assert.ok(typeof body.error.message === "string" && body.error.message.length > 0, "error.message");
        if (field) assert.equal(body.error.field, field, "error.field");
      }
      if (status === 405) assert.ok(/OPTIONS/.test(res.headers.get("allow") ?? ""), "Allow header");
    });
  }
  test(`bad inputs: none of the ${bad.length} made an upstream request`, T, async () => {
    const after = await sim.control.stats();
    assert.equal(upstreamCounts(after), upstreamCounts(beforeBad), "upstream requests during bad inputs");
    assert.equal(after.auth.ok, beforeBad.auth.ok, "authenticated upstream requests during bad inputs");
  });
});

test("key: injected from the secret, client credentials stripped, the simulator sees a good key", T, async () => {
  const before = await sim.control.stats();
  const res = await generate(genBody("key check [ms=300]"), {
    "x-api-key": "afk_client_supplied_wrong_key",
    authorization: "Bearer client-token",
    cookie: "session=1",
    "x-sim-fault": "500",
    "x-forwarded-host": "evil.test",
    "idempotency-key": `key-check-${randomUUID()}`,
  });
  assert.equal(res.status, 202, "status");
  assert.ok(/^[0-9a-f-]{36}$/.test(res.json.jobId), `jobId ${res.text}`);
  const after = await sim.control.stats();
  assert.equal(after.auth.ok - before.auth.ok, 1, "auth.ok delta");
  assert.equal(after.auth.wrong - before.auth.wrong, 0, "auth.wrong delta");
  assert.equal(after.auth.missing - before.auth.missing, 0, "auth.missing delta");
});

test("idempotency: a generate without an Idempotency-Key reaches the upstream with one of the worker's own", T, async () => {
  const before = await sim.control.stats();
  const res = await generate(genBody("no key of its own [ms=300]"));
  assert.equal(res.status, 202, res.text);
  const after = await sim.control.stats();
  const added = Object.keys(after.idempotencyKeys).filter((k) => !(k in before.idempotencyKeys));
  assert.equal(added.length, 1, `new keys at the simulator: ${added}`);
  assert.match(added[0], /^[0-9a-f-]{36}$/, "a fresh UUID");
});

test("CORS: allowed and same-origin preflights get 204 with the origin echoed; errors carry CORS headers", T, async () => {
  for (const origin of ["https://app.test", worker.origin]) {
    const res = await client("/api/v2/videos/generate", {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type, idempotency-key" },
    });
    assert.equal(res.status, 204, `preflight status for ${origin}`);
    assert.equal(res.headers.get("access-control-allow-origin"), origin, "allow-origin");
    assert.ok(/POST/.test(res.headers.get("access-control-allow-methods")), "allow-methods");
    assert.ok(/idempotency-key/i.test(res.headers.get("access-control-allow-headers")), "allow-headers");
  }
  const res = await client("/api/v2/jobs/nope", { headers: { origin: "https://app.test" } });
  assert.equal(res.status, 400, "status");
  assert.equal(res.headers.get("access-control-allow-origin"), "https://app.test", "errors are readable cross-origin");
});

test("rate limit: generate per CF-Connecting-IP, 429 with Retry-After, no upstream request", T, async () => {
  const before = await sim.control.stats();
  const ip = { "cf-connecting-ip": "203.0.113.77" };
  const statuses = [];
  for (let i = 0; i < 6; i++) statuses.push((await generate("{not json", ip)).status);
  const last = await generate("{not json", ip);
  assert.equal(statuses.slice(0, 5).join(","), "400,400,400,400,400", "first five pass the limiter (then fail validation)");
  assert.equal(statuses[5], 429, "sixth status");
  assert.equal(last.status, 429, "seventh status");
  assert.equal(last.json.error.code, "rate_limited", "code");
  assert.equal(last.headers.get("retry-after"), "60", "Retry-After");
  assert.equal((await generate("{not json", { "cf-connecting-ip": "203.0.113.78" })).status, 400, "another client is not limited");
  assert.equal(upstreamCounts(await sim.control.stats()), upstreamCounts(before), "upstream requests");
});

let relayedJob = null;
test("relay end to end: client run() with transport auto through the worker: 1 generate, 0 status reads", T, async () => {
  const { run } = await import("sora-edge");
  const before = await sim.control.stats();
  const job = await within(
    30000,
    run({ prompt: "relay end to end [ms=1500]" }, { baseUrl: `${W}/api`, transport: "auto", deadlineMs: 25000, fetch: scanningFetch }),
    "run()",
  );
  scan("run() result", JSON.stringify(job));
  assert.equal(job.status, "COMPLETED", "status");
  assert.ok(typeof job.videoUrl === "string" && job.videoUrl.includes(job.id), `videoUrl ${job.videoUrl}`);
  relayedJob = job.id;
  const after = await sim.control.stats();
  assert.equal(after.requests.generate - before.requests.generate, 1, "generate requests");
  assert.equal(after.statusReads[job.id] ?? 0, 0, `status reads for job ${job.id}`);
});

test("finished job: GET /api/v2/jobs/{id} answered from the Durable Object, no upstream read", T, async () => {
  let id = relayedJob;
  if (!id) {
    const res = await generate(genBody("finished [ms=300]"));
    id = res.json.jobId;
    const sub = await subscribe(W, id);
    assert.ok(sub.ended, "stream ended");
  }
  const before = await sim.control.stats();
  for (let i = 0; i < 3; i++) {
    const res = await client(`/api/v2/jobs/${id}`);
    assert.equal(res.status, 200, "status");
    assert.equal(res.json.status, "COMPLETED", "job status");
    assert.equal(res.json.id, id, "id");
  }
  assert.equal((await sim.control.stats()).requests.job, before.requests.job, "upstream job reads");
});

test("running job: GET /api/v2/jobs/{id} is forwarded (one upstream read) and merged", T, async () => {
  const res = await generate(genBody("running [ms=8000]"));
  assert.equal(res.status, 202, "generate");
  const before = await sim.control.stats();
  const read = await client(`/api/v2/jobs/${res.json.jobId}`);
  assert.equal(read.status, 200, "status");
  assert.ok(["QUEUED", "PROCESSING"].includes(read.json.status), `status ${read.json.status}`);
  assert.equal((await sim.control.stats()).requests.job - before.requests.job, 1, "upstream job reads");
  const unknown = await client(`/api/v2/jobs/${randomUUID()}`);
  assert.equal(unknown.status, 404, "unknown job passes the upstream's 404 through");
});

test("running job, relay on: every read goes upstream, and a webhook's news shows on the next read at once", T, async () => {
  const res = await generate(genBody("reads [ms=30000]"));
  assert.equal(res.status, 202, "generate");
  const id = res.json.jobId;
  const reads = async () => (await sim.control.stats()).statusReads[id] ?? 0;
  const before = await reads();
  for (let i = 0; i < 4; i++) {
    const read = await client(`/api/v2/jobs/${id}`);
    assert.equal(read.status, 200, `read ${i}: status`);
    assert.ok(["QUEUED", "PROCESSING"].includes(read.json.status), `read ${i}: ${read.json.status}`);
  }
  assert.equal((await reads()) - before, 4, "upstream reads");
  const body = JSON.stringify({ event: "progress", jobId: id, status: "PROCESSING", progress: 95, model: "sora-2" });
  const hook = await signedWebhook(client, body);
  assert.equal(hook.json.changed, true, "the webhook changed the job");
  const read = await client(`/api/v2/jobs/${id}`);
  assert.equal(read.json.status, "PROCESSING", "status");
  assert.equal(read.json.progress, 95, "the webhook's progress, not the upstream's older one");
});

test("events stream: text/event-stream, current state at once, every change, ends after the terminal event", T, async () => {
  const res = await generate(genBody("stream [ms=1500]"));
  const sub = await subscribe(W, res.json.jobId);
  assert.equal(sub.status, 200, "status");
  assert.ok(sub.contentType.startsWith("text/event-stream"), `content-type ${sub.contentType}`);
  assert.ok(sub.ended, "the server ended the stream");
  const jobs = sub.events.map((e) => JSON.parse(e.data));
  assert.ok(sub.events.every((e) => e.event === "job"), "event names");
  assert.equal(jobs[0].status, "QUEUED", "first event is the current state");
  assert.equal(jobs.at(-1).status, "COMPLETED", "last event");
  assert.ok(jobs.at(-1).result, "result in the terminal event");
  const ids = sub.events.map((e) => Number(e.id));
  assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]), `ids grow: ${ids}`);
  const progress = jobs.map((j) => j.progress);
  assert.ok(progress.every((p, i) => i === 0 || p >= progress[i - 1]), `progress never decreases: ${progress}`);
  assert.ok(jobs.length >= 3, `saw ${jobs.length} events`);
});

test("events stream: heartbeat comments while waiting (RELAY_HEARTBEAT_MS=500 here; 15 s by default)", T, async () => {
  const res = await generate(genBody("heartbeat [ms=2500]"));
  const sub = await subscribe(W, res.json.jobId);
  assert.ok(sub.comments.filter((c) => c === "heartbeat").length >= 2, `heartbeats: ${sub.comments.length}`);
});

test("events stream: Last-Event-ID resume sends only newer state; a finished stream resumes to nothing", T, async () => {
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
  assert.equal(seen.length, 2, "events before the disconnect");
  const lastId = Number(seen[1].id);
  const resumed = await subscribe(W, id, { lastEventId: lastId });
  assert.ok(resumed.events.length > 0, "events after resuming");
  assert.ok(resumed.events.every((e) => Number(e.id) > lastId), `resumed ids ${resumed.events.map((e) => e.id)} > ${lastId}`);
  const final = resumed.events.at(-1);
  assert.equal(JSON.parse(final.data).status, "COMPLETED", "terminal event after resuming");
  const again = await subscribe(W, id, { lastEventId: final.id });
  assert.equal(again.events.length, 0, "nothing newer than the terminal event");
  assert.ok(again.ended, "and the stream ends at once");
  const fresh = await subscribe(W, id, { lastEventId: "garbage" });
  assert.equal(fresh.events.length, 1, "an unreadable Last-Event-ID gets the current state");
  assert.equal(fresh.events[0].id, final.id, "which is the terminal one");
});

test("a job this worker did not create: GET and events stream answer 404 with no upstream read", T, async () => {
  // A job submitted straight to the upstream (not through this worker): the upstream knows it, the worker does not.
  const direct = await within(
    10000,
    fetch(`${sim.url}/v2/videos/generate`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": API_KEY },
      body: genBody("direct [ms=2000]"),
    }).then((r) => r.json()),
    "direct generate",
  );
  const before = await sim.control.stats();
  for (const id of [direct.jobId, randomUUID()]) {
    const read = await client(`/api/v2/jobs/${id}`);
    assert.equal(read.status, 404, read.text);
    assert.equal(read.json.error.code, "not_found");
    assert.equal(read.json.error.source, "edge", "the worker's own answer");
    const sub = await subscribe(W, id);
    assert.equal(sub.status, 404, sub.text);
    assert.equal(sub.json.error.code, "not_found");
  }
  assert.equal(upstreamCounts(await sim.control.stats()), upstreamCounts(before), "no upstream request");
});

test("webhooks: replayed and out-of-order deliveries never move a job backwards", T, async () => {
  // A job made through a worker whose upstream sends no webhooks and whose
  // fallback waits a minute: only these webhooks move it.
  const upstream = await startFakeUpstream();
  const quiet = await startWorker({ simUrl: upstream.url, vars: { RELAY_FALLBACK_MS: "60000" }, rateLimit: null });
  try {
    await replayedWebhooks(quiet.url, upstream);
  } finally {
    await quiet.stop();
    await upstream.close();
  }
});

async function replayedWebhooks(base, upstream) {
  const client = clientFor(base);
  const id = await createJob(base);
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
    assert.equal(res.status, 200, `webhook status for ${body}`);
    changes.push(res.json.changed);
  }
  assert.equal(changes.join(","), steps.map((s) => s[1]).join(","), "changed flags");
  const read = await client(`/api/v2/jobs/${id}`);
  assert.equal(read.status, 200, "answered from the object");
  assert.equal(read.json.status, "COMPLETED", "status");
  assert.equal(read.json.progress, 100, "progress");
  assert.equal(read.json.result, "https://cdn.test/v.mp4", "result");
  assert.equal(upstream.reads.length, 0, "no upstream read");
  const sub = await subscribe(base, id);
  assert.equal(sub.events.length, 1, "one event: the current (terminal) state");
  assert.equal(Number(sub.events[0].id), 3, "three changes in all: QUEUED at generate, 60, COMPLETED");
  // A webhook signed with the raw-digest HMAC key is accepted too (the docs leave the encoding open).
  const other = await createJob(base);
  const body = progress(10).replace(id, other);
  const rawSigned = await signedWebhook(client, body, sign(body, API_KEY, "raw"));
  assert.equal(rawSigned.status, 200, "raw-digest key");
  assert.equal(rawSigned.json.changed, true, "and it moved the job");
  // A signed webhook for a job this worker did not create is taken, but the job stays unreadable.
  const stranger = randomUUID();
  const unknown = await signedWebhook(client, progress(10).replace(id, stranger));
  assert.equal(unknown.status, 200, "acknowledged (the upstream must not retry it)");
  assert.equal((await client(`/api/v2/jobs/${stranger}`)).status, 404, "read");
  assert.equal((await subscribe(base, stranger)).status, 404, "stream");
}

test("fallback: with the simulator dropping webhooks the job still completes (the object polls on its alarm)", T, async () => {
  await sim.control.config({ dropWebhooks: true });
  try {
    const before = await sim.control.stats();
    const res = await generate(genBody("fallback [ms=1000]"));
    assert.equal(res.status, 202, "generate");
    const id = res.json.jobId;
    const started = performance.now();
    const sub = await subscribe(W, id, { timeoutMs: 20000 });
    const took = performance.now() - started;
    assert.ok(sub.ended, "stream ended");
    const last = JSON.parse(sub.events.at(-1).data);
    assert.equal(last.status, "COMPLETED", "terminal status");
    const after = await sim.control.stats();
    assert.equal(after.webhooks.delivered, before.webhooks.delivered, "no webhook was delivered");
    assert.ok((after.statusReads[id] ?? 0) >= 1, "the object read the job itself");
    assert.ok((after.statusReads[id] ?? 0) <= 3, `few fallback reads: ${after.statusReads[id]}`);
    console.log(`       completed after ${Math.round(took)} ms with ${after.statusReads[id]} fallback read(s) (RELAY_FALLBACK_MS=4000)`);
    // The library too, with auto transport.
    const { run } = await import("sora-edge");
    const job = await within(30000, run({ prompt: "fallback run [ms=800]" }, { baseUrl: `${W}/api`, transport: "auto", deadlineMs: 25000, fetch: scanningFetch }), "run()");
    assert.equal(job.status, "COMPLETED", "run() status");
  } finally {
    await sim.control.config({ dropWebhooks: false });
  }
});

test("fan-out: 120 concurrent subscribers to one job all receive the terminal event", T, async () => {
  const res = await generate(genBody("fan-out [ms=3000]"));
  const id = res.json.jobId;
  const N = 120;
  const subs = await Promise.all(Array.from({ length: N }, () => subscribe(W, id, { timeoutMs: 20000 })));
  const finals = subs.map((s) => (s.events.length ? JSON.parse(s.events.at(-1).data).status : "none"));
  const ok = finals.filter((f) => f === "COMPLETED").length;
  assert.equal(ok, N, "subscribers that saw COMPLETED");
  assert.ok(subs.every((s) => s.ended), "every stream ended");
  const lastIds = new Set(subs.map((s) => s.events.at(-1).id));
  assert.equal(lastIds.size, 1, "the same terminal event id everywhere");
  assert.equal((await sim.control.stats()).statusReads[id] ?? 0, 0, "no upstream reads for the fan-out");
});

// A hostile or broken upstream: redirects, and a body that echoes the key.
test("upstream redirects are not followed and an echoed key is redacted", T, async () => {
  let thiefHits = 0;
  const thief = createServer((req, res) => {
    thiefHits += 1;
    res.end("stolen");
  });
  const thiefPort = await freePort();
  await new Promise((r) => thief.listen(thiefPort, "127.0.0.1", r));
  const echoing = randomUUID();
  const refused = randomUUID();
  const evil = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      if (req.method === "POST" && !body.includes("redirect me")) {
        // Accepted: an echoing job, or one whose reads are refused with the key echoed.
        res.writeHead(202, { "content-type": "application/json" });
        res.end(JSON.stringify({ jobId: body.includes("refuse") ? refused : echoing, status: "QUEUED", note: req.headers["x-api-key"] }));
        return;
      }
      if (req.url === `/v2/jobs/${echoing}`) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ id: echoing, status: "PROCESSING", progress: 5, note: `called with ${req.headers["x-api-key"]}` }));
        return;
      }
      if (req.url.startsWith("/v2/jobs/")) {
        res.writeHead(401, { "content-type": "application/json", "set-cookie": "k=1", "x-echo": String(req.headers["x-api-key"]) });
        res.end(JSON.stringify({ message: `Invalid API key ${req.headers["x-api-key"]}` }));
        return;
      }
      res.writeHead(302, { location: `http://127.0.0.1:${thiefPort}/steal` });
      res.end();
    });
  });
  const evilPort = await freePort();
  await new Promise((r) => evil.listen(evilPort, "127.0.0.1", r));
  const w2 = await startWorker({ simUrl: `http://127.0.0.1:${evilPort}`, rateLimit: null });
  try {
    const c2 = clientFor(w2.url);
    const gen = await c2("/api/v2/videos/generate", { method: "POST", headers: json, body: genBody("redirect me") });
    assert.equal(gen.status, 502, "a redirect becomes 502");
    assert.equal(gen.json.error.code, "upstream", "code");
    assert.equal(thiefHits, 0, "the redirect target got no request");
    for (const prompt of ["echo", "refuse"]) {
      const made = await c2("/api/v2/videos/generate", { method: "POST", headers: json, body: genBody(prompt) });
      assert.equal(made.status, 202, made.text);
      assert.deepEqual(Object.keys(made.json).sort(), ["jobId", "status"], "the acceptance is rebuilt");
    }
    const read = await c2(`/api/v2/jobs/${refused}`);
    assert.equal(read.status, 401, "the upstream's status passes through");
    assert.equal(read.json.error.message, "Invalid API key [redacted]", `redacted body: ${read.text}`);
    assert.equal(read.json.error.source, "upstream", "the upstream's refusal, rebuilt");
    assert.equal(read.headers.get("set-cookie"), null, "no upstream Set-Cookie");
    assert.equal(read.headers.get("x-echo"), null, "no unlisted upstream header");
    // A 200 job that echoes the key, read three times: through the job's
    // object first, then by the worker itself with the object's answer in mind.
    for (let i = 0; i < 3; i++) {
      const job = await c2(`/api/v2/jobs/${echoing}`);
      assert.equal(job.status, 200, `read ${i}: status`);
      assert.equal(job.json.status, "PROCESSING", `read ${i}: status`);
      assert.equal(job.json.note, undefined, `read ${i}: fields the library does not know are dropped: ${job.text}`);
    }
  } finally {
    await w2.stop();
    evil.close();
    thief.close();
  }
});

test("relay off (no PUBLIC_URL): events and webhook answer 404, generate carries no webhook", T, async () => {
  const w3 = await startWorker({ simUrl: sim.url, vars: { PUBLIC_URL: undefined }, rateLimit: null });
  try {
    const c3 = clientFor(w3.url);
    const before = await sim.control.stats();
    const gen = await c3("/api/v2/videos/generate", { method: "POST", headers: json, body: genBody("no relay [ms=200]") });
    assert.equal(gen.status, 202, "generate");
    assert.equal((await c3(`/api/v2/jobs/${gen.json.jobId}/events`)).status, 404, "events");
    assert.equal((await c3("/api/webhooks/apiframe", { method: "POST", headers: json, body: "{}" })).status, 404, "webhook");
    await sleep(600);
    const read = await c3(`/api/v2/jobs/${gen.json.jobId}`);
    assert.equal(read.json.status, "COMPLETED", "polling works");
    const after = await sim.control.stats();
    assert.equal(after.webhooks.attempted, before.webhooks.attempted, "the simulator sent no webhook");
    const { run } = await import("sora-edge");
    const job = await within(20000, run({ prompt: "auto falls back [ms=300]" }, { baseUrl: `${w3.url}/api`, transport: "auto", deadlineMs: 15000, fetch: scanningFetch }), "run()");
    assert.equal(job.status, "COMPLETED", "run() with transport auto falls back to polling");
  } finally {
    await w3.stop();
  }
});

test("the API key appeared in no response, header or event", T, async () => {
  assert.equal(leaks.length, 0, `leaks: ${leaks.join(", ")}`);
  assert.ok(scannedCount() > 100, `only ${scannedCount()} scanned`);
});

/** HMAC keyed with the API key itself rather than its SHA-256: must be refused. */
function createHmacBare(body) {
  return createHmac("sha256", API_KEY).update(body).digest("hex");
}

test("client errors say who refused: the worker's own 400 and 404 are source edge, a relayed Apiframe 500 is source upstream", T, async () => {
  const { poll, isSoraEdgeError } = await import("sora-edge");
  const refused = await poll("not-a-uuid", { baseUrl: `${W}/api` }).then(() => null, (e) => e);
  assert.ok(isSoraEdgeError(refused), `a SoraEdgeError, got ${refused}`);
  assert.equal(refused.code, "invalid_request", "code");
  assert.equal(refused.source, "edge", "source of the worker's refusal");
  assert.match(refused.message, /worker/, "message names the worker");
  const unknown = await poll("0b6a3c52-1f7e-4a8e-9c1d-2f3e4a5b6c7d", { baseUrl: `${W}/api` }).then(() => null, (e) => e);
  assert.ok(isSoraEdgeError(unknown), `a SoraEdgeError, got ${unknown}`);
  assert.equal(unknown.code, "not_found", "code");
  assert.equal(unknown.source, "edge", "a job this worker did not create is the worker's own 404");
  const { generate } = await import("sora-edge");
  await sim.control.faults("generate", ["500"]);
  const failed = await generate({ prompt: "refused upstream" }, { baseUrl: `${W}/api`, maxRetries: 0 }).then(() => null, (e) => e);
  assert.ok(isSoraEdgeError(failed), `a SoraEdgeError, got ${failed}`);
  assert.equal(failed.code, "upstream", "code");
  assert.equal(failed.source, "upstream", "source of Apiframe's 500");
});
