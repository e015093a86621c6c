// The relay's hardening (issue 9), each fix probed as an attacker would,
// against the real worker (worker/build) in workerd and the simulator or a
// hostile upstream played by this process.
//
//   node --test --test-reporter=spec tests/worker/
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { startSim, startWorker, startFakeUpstream, rawRequest, within, sleep, freePort } from "./harness.mjs";
import { leaks, scan, clientFor, subscribe, signedWebhook, createJob, upstreamCounts } from "./client.mjs";
// One table of result URLs for the worker (here) and the library
// (tests/wasm/cases.mjs, tests/result_urls.rs).
import resultUrls from "../support/result-urls.json" with { type: "json" };

const T = { timeout: 60000 };
const MAX_SUBSCRIBERS = 3;

let sim;
let hw;
let client;
// A worker whose upstream sends no webhooks and whose fallback waits a
// minute: only a test's own webhooks move its jobs.
let quietUpstream;
let quiet;
let quietClient;

before(async () => {
  sim = await startSim(["--job-ms", "1500"]);
  hw = await startWorker({
    simUrl: sim.url,
    vars: { RELAY_FALLBACK_MS: "200", RELAY_MAX_SUBSCRIBERS: String(MAX_SUBSCRIBERS), RELAY_HEARTBEAT_MS: "500" },
  });
  client = clientFor(hw.url);
  quietUpstream = await startFakeUpstream();
  quiet = await startWorker({
    simUrl: quietUpstream.url,
    vars: { RELAY_FALLBACK_MS: "60000", RELAY_MAX_SUBSCRIBERS: String(MAX_SUBSCRIBERS), RELAY_HEARTBEAT_MS: "500" },
    rateLimit: null,
  });
  quietClient = clientFor(quiet.url);
});

after(async () => {
  await hw?.stop();
  await sim?.stop();
  await quiet?.stop();
  await quietUpstream?.close();
});

const hook = (id, fields) => JSON.stringify({ jobId: id, ...fields });

test("result URLs: the table the library also keeps (tests/support/result-urls.json), through a webhook: kept ones stay COMPLETED with their URL and the library reads them as they are; refused ones become FAILED without the URL, on the stream and on a status read", T, async () => {
  const { poll } = await import("sora-edge");
  assert.ok(resultUrls.length >= 15, "the table has its rows");
  for (const { name, result, video } of resultUrls) {
    const id = await createJob(quiet.url);
    const res = await signedWebhook(quietClient, hook(id, { event: "completed", status: "COMPLETED", progress: 100, result }));
    assert.equal(res.status, 200, `${name}: ${res.text}`);
    const read = await quietClient(`/api/v2/jobs/${id}`);
    assert.equal(read.status, 200, name);
    const sub = await subscribe(quiet.url, id);
    assert.equal(sub.events.length, 1, name);
    const streamed = JSON.parse(sub.events[0].data);
    if (video !== null) {
      assert.equal(read.json.status, "COMPLETED", `${name}: ${read.text}`);
      assert.equal(read.json.result, video, name);
      assert.equal(streamed.result, video, name);
      const job = await poll(id, { baseUrl: `${quiet.url}/api`, maxRetries: 0 });
      assert.equal(job.videoUrl, video, `${name}: the library keeps what the worker kept`);
      continue;
    }
    assert.equal(read.json.status, "FAILED", `${name}: ${read.text}`);
    assert.equal(read.json.result, null, name);
    assert.match(read.json.error, /only http: and https:/, name);
    assert.doesNotMatch(read.text, /alert|<script>|evil|x\.mp4|AAAA/, name);
    assert.equal(streamed.status, "FAILED", name);
    assert.equal(streamed.result, null, name);
  }
});

test("result URL: an upstream status read with a data: URL reaches the client as a FAILED job", T, async () => {
  const upstream = await startFakeUpstream({
    read: (id) => ({ status: 200, body: { id, status: "COMPLETED", progress: 100, result: { videos: [{ url: "data:video/mp4;base64,AAAA" }] } } }),
  });
  const w = await startWorker({ simUrl: upstream.url, vars: { PUBLIC_URL: undefined }, rateLimit: null });
  try {
    const id = await createJob(w.url);
    const read = await clientFor(w.url)(`/api/v2/jobs/${id}`);
    assert.equal(read.status, 200);
    assert.equal(read.json.status, "FAILED", read.text);
    assert.match(read.json.error, /scheme data:/);
    assert.doesNotMatch(read.text, /base64/);
  } finally {
    await w.stop();
    await upstream.close();
  }
});

test("origin: with PUBLIC_URL set, an attacker's Host and matching Origin get 403 and no Access-Control-Allow-Origin", T, async () => {
  const port = Number(new URL(hw.url).port);
  const ask = async (host, origin) => {
    const r = await rawRequest(
      port,
      `OPTIONS /api/v2/videos/generate HTTP/1.1\r\nHost: ${host}\r\nOrigin: ${origin}\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n`,
    );
    scan("raw preflight", r.raw);
    return r;
  };
  const evil = await ask("attacker.example:8787", "http://attacker.example:8787");
  assert.equal(evil.status, 403, evil.body);
  assert.equal(evil.headers.get("access-control-allow-origin"), undefined);
  // The worker's own origin (PUBLIC_URL) stays allowed, whatever Host says.
  const own = await ask("attacker.example:8787", hw.origin);
  assert.equal(own.status, 204);
  assert.equal(own.headers.get("access-control-allow-origin"), hw.origin);
});

test("unknown ids: 200 status reads and 50 event streams on ids this worker never created are 404, with 0 upstream reads", T, async () => {
  const before = await sim.control.stats();
  const reads = await Promise.all(Array.from({ length: 200 }, () => client(`/api/v2/jobs/${randomUUID()}`)));
  const streams = await Promise.all(
    Array.from({ length: 50 }, () => subscribe(hw.url, randomUUID(), { headers: { "cf-connecting-ip": "203.0.113.50" }, timeoutMs: 5000 })),
  );
  for (const answer of [...reads, ...streams]) {
    assert.equal(answer.status, 404, answer.text);
    assert.equal(answer.json.error.code, "not_found");
  }
  const after = await sim.control.stats();
  assert.equal(upstreamCounts(after), upstreamCounts(before), "no upstream request");
  assert.equal(after.auth.ok + after.auth.wrong + after.auth.missing, before.auth.ok + before.auth.wrong + before.auth.missing, "no request reached the simulator");
});

test("fallback: a relayed job the upstream answers 404 for is read 3 times, backing off, then no more", T, async () => {
  const upstream = await startFakeUpstream({ read: () => ({ status: 404, body: { error: "Job not found" } }) });
  const w = await startWorker({ simUrl: upstream.url, vars: { RELAY_FALLBACK_MS: "200" }, rateLimit: null });
  try {
    const id = await createJob(w.url);
    const readsOf = () => upstream.reads.filter((r) => r.id === id).length;
    await sleep(5000); // reads at ~0.2 s, ~1.2 s, ~3.2 s (RELAY_FALLBACK_MS=200, then 1 s, 2 s)
    assert.equal(readsOf(), 3);
    await sleep(3000);
    assert.equal(readsOf(), 3, "polling stopped");
  } finally {
    await w.stop();
    await upstream.close();
  }
});

test("fallback: upstream errors back off exponentially", T, async () => {
  const upstream = await startFakeUpstream({ read: () => ({ status: 503, body: { error: "busy" } }) });
  const w = await startWorker({ simUrl: upstream.url, vars: { RELAY_FALLBACK_MS: "100" }, rateLimit: null });
  try {
    const id = await createJob(w.url);
    await sleep(7600); // ~0.1 s, then +1 s, +2 s, +4 s
    const times = upstream.reads.filter((r) => r.id === id).map((r) => r.at);
    assert.ok(times.length >= 3 && times.length <= 4, `${times.length} reads in 7.6 s`);
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    assert.ok(gaps[0] >= 900, `first gap ${gaps[0]} ms`);
    for (let i = 1; i < gaps.length; i++) assert.ok(gaps[i] >= 1.7 * gaps[i - 1], `gaps ${gaps.map(Math.round)} ms grow`);
    console.log(`       gaps between failed reads: ${gaps.map((g) => Math.round(g)).join(", ")} ms`);
  } finally {
    await w.stop();
    await upstream.close();
  }
});

test(`subscribers: at most ${MAX_SUBSCRIBERS} per job, then 429 with Retry-After`, T, async () => {
  const id = await createJob(quiet.url);
  const ctl = new AbortController();
  const held = [];
  try {
    for (let i = 0; i < MAX_SUBSCRIBERS; i++) {
      const res = await within(10000, fetch(`${quiet.url}/api/v2/jobs/${id}/events`, { signal: ctl.signal, headers: { "cf-connecting-ip": `192.0.2.${i}` } }), "open");
      assert.equal(res.status, 200);
      held.push(res);
    }
    const refused = await subscribe(quiet.url, id);
    assert.equal(refused.status, 429, refused.text);
    assert.equal(refused.json.error.code, "rate_limited");
    assert.match(refused.json.error.message, /RELAY_MAX_SUBSCRIBERS/);
    assert.ok(Number(refused.headers.get("retry-after")) > 0, "Retry-After");
  } finally {
    ctl.abort();
    for (const res of held) await res.body.cancel().catch(() => {});
  }
});

test("streams per client: the 5th stream from one address is 429, another address is let in, and a closed stream frees its slot", T, async () => {
  // RELAY_STREAMS_PER_CLIENT's default; `quiet` allows only 3 streams per job in all. The
  // heartbeat is the default 15 s: a closed stream must free its slot long before it.
  const PER_CLIENT = 4;
  const wide = await startWorker({ simUrl: quietUpstream.url, vars: { RELAY_FALLBACK_MS: "60000", RELAY_HEARTBEAT_MS: "15000" }, rateLimit: null });
  const jobId = await createJob(wide.url);
  const first = { "cf-connecting-ip": "203.0.113.7" };
  const held = [];
  const open = (headers) => within(10000, fetch(`${wide.url}/api/v2/jobs/${jobId}/events`, { headers }), "open");
  try {
    for (let i = 0; i < PER_CLIENT; i++) {
      const res = await open(first);
      assert.equal(res.status, 200, `stream ${i + 1}`);
      held.push(res);
    }
    const fifth = await open(first);
    assert.equal(fifth.status, 429, "the 5th stream from one address");
    const refusal = await fifth.json();
    assert.equal(refusal.error.code, "rate_limited");
    assert.match(refusal.error.message, /RELAY_STREAMS_PER_CLIENT/);
    assert.ok(Number(fifth.headers.get("retry-after")) > 0, "Retry-After");
    const other = await open({ "cf-connecting-ip": "203.0.113.8" });
    assert.equal(other.status, 200, "a stream from a second address");
    held.push(other);
    // One of the four closes: the disconnect frees its slot (bounded poll, no clock asserts).
    await held.shift().body.cancel();
    let admitted = null;
    for (let attempt = 0; attempt < 50 && !admitted; attempt++) {
      const res = await open(first);
      if (res.status === 200) admitted = res;
      else {
        await res.body?.cancel().catch(() => {});
        await sleep(100);
      }
    }
    assert.ok(admitted, "a new stream from the first address is let in once one of its four closed");
    held.push(admitted);
  } finally {
    for (const res of held) await res.body.cancel().catch(() => {});
    await wide.stop();
  }
});

test("relay state: 40 webhooks with large extra fields keep the job bounded; subscribers get the changed job, not a growing history", T, async () => {
  const id = await createJob(quiet.url);
  await signedWebhook(quietClient, hook(id, { event: "progress", status: "PROCESSING", progress: 1 }));
  const streaming = subscribe(quiet.url, id, { timeoutMs: 30000 });
  await sleep(200);
  for (let i = 2; i <= 41; i++) {
    const res = await signedWebhook(quietClient, hook(id, { event: "progress", status: "PROCESSING", progress: i, [`note${i}`]: "x".repeat(8000) }));
    assert.equal(res.status, 200);
  }
  await signedWebhook(quietClient, hook(id, { event: "completed", status: "COMPLETED", result: "https://cdn.test/v.mp4" }));
  const sub = await streaming;
  assert.ok(sub.ended, "the stream ended with the job");
  assert.equal(sub.events.length, 42, "the current state, 40 changes, the terminal one");
  const biggest = Math.max(...sub.events.map((e) => e.data.length));
  assert.ok(biggest <= 1024, `largest event ${biggest} bytes: extra fields are dropped`);
  assert.ok(sub.events.every((e) => !e.data.includes("note")), "no extra field reached a subscriber");
  const read = await quietClient(`/api/v2/jobs/${id}`);
  assert.equal(read.json.status, "COMPLETED");
  assert.ok(read.text.length <= 1024, `stored job ${read.text.length} bytes`);
  console.log(`       42 events, ${sub.bytes} bytes to one subscriber, largest ${biggest} bytes`);
});

test("webhook fields nested in soraParams are refused in every spelling, with no upstream request", T, async () => {
  const before = (await sim.control.stats()).requests.generate ?? 0;
  const cases = [
    [{ soraParams: { webhookUrl: "https://evil.test/h" } }, "soraParams.webhookUrl"],
    [{ soraParams: { webhook_url: "https://evil.test/h" } }, "soraParams.webhook_url"],
    [{ soraParams: { WebhookURL: "https://evil.test/h" } }, "soraParams.WebhookURL"],
    [{ soraParams: { webhookEvents: ["completed"] } }, "soraParams.webhookEvents"],
    [{ WEBHOOK_URL: "https://evil.test/h" }, "WEBHOOK_URL"],
  ];
  for (const [extra, field] of cases) {
    const res = await client("/api/v2/videos/generate", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "a", model: "sora-2", ...extra }),
    });
    assert.equal(res.status, 400, res.text);
    assert.equal(res.json.error.field, field);
  }
  assert.equal((await sim.control.stats()).requests.generate ?? 0, before);
});

test("the API key appeared in no response, header or event", () => {
  assert.equal(leaks.length, 0, `leaks: ${leaks.join(", ")}`);
});

test("timers spent: when the platform refuses another timer, an upstream exchange answers 503 without sending, and the worker goes on", T, async () => {
  const s = await startSim(["--job-ms", "600000"]);
  const w = await startWorker({ simUrl: s.url, testRoutes: true, rateLimit: null });
  try {
    const before = (await s.control.stats()).requests;
    const res = await fetch(`${w.url}/api/__test/timers-spent`, { method: "POST" });
    const body = await res.json();
    const held = Number(res.headers.get("x-timers-held"));
    assert.ok(held > 0 && held < 100000, `the platform refused a timer after ${held}`);
    assert.equal(res.status, 503, JSON.stringify(body));
    assert.match(body.error.message, /too many upstream requests in flight; nothing was sent/);
    assert.deepEqual((await s.control.stats()).requests, before, "nothing reached the upstream");
    const id = await createJob(w.url);
    const read = await clientFor(w.url)(`/api/v2/jobs/${id}`);
    assert.equal(read.status, 200, read.text);
  } finally {
    await w.stop();
    await s.stop();
  }
});
