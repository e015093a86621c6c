// The relay's hardening (issue 9), each fix probed as an attacker would,
// against the real worker (worker/build) in workerd and the simulator or a
// hostile upstream played by this process.
//
//   node --test --test-reporter=spec tests/worker/
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { startSim, startWorker, rawRequest, within, sleep, freePort } from "./harness.mjs";
import { leaks, scan, clientFor, subscribe, signedWebhook } from "./client.mjs";

const T = { timeout: 60000 };
const MAX_SUBSCRIBERS = 3;

let sim;
let hw;
let client;

before(async () => {
  sim = await startSim(["--job-ms", "1500"]);
  hw = await startWorker({
    simUrl: sim.url,
    vars: { RELAY_FALLBACK_MS: "200", RELAY_MAX_SUBSCRIBERS: String(MAX_SUBSCRIBERS), RELAY_HEARTBEAT_MS: "500" },
    eventsLimit: { limit: 10, period: 60 },
  });
  client = clientFor(hw.url);
});

after(async () => {
  await hw?.stop();
  await sim?.stop();
});

/** A stand-in upstream: `handle(req, res)` answers; resolves with `{url, close}`. */
async function fakeUpstream(handle) {
  const server = createServer(handle);
  const port = await freePort();
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) };
}

const hook = (id, fields) => JSON.stringify({ jobId: id, ...fields });
const reads = async (id) => (await sim.control.stats()).statusReads[id] ?? 0;

test("result URL: a webhook's javascript: videoUrl becomes a FAILED job, on the stream and on a status read", T, async () => {
  for (const result of [{ videoUrl: "javascript:alert(document.domain)" }, "data:text/html,<script>alert(1)</script>"]) {
    const id = randomUUID();
    const res = await signedWebhook(client, hook(id, { event: "completed", status: "COMPLETED", progress: 100, result }));
    assert.equal(res.status, 200, res.text);
    const read = await client(`/api/v2/jobs/${id}`);
    assert.equal(read.status, 200);
    assert.equal(read.json.status, "FAILED", read.text);
    assert.equal(read.json.result, null);
    assert.match(read.json.error, /only http: and https:/);
    assert.doesNotMatch(read.text, /javascript:alert|<script>/);
    const sub = await subscribe(hw.url, id);
    assert.equal(sub.events.length, 1);
    const job = JSON.parse(sub.events[0].data);
    assert.equal(job.status, "FAILED");
    assert.equal(job.result, null);
  }
});

test("result URL: an upstream status read with a data: URL reaches the client as a FAILED job", T, async () => {
  const id = randomUUID();
  const upstream = await fakeUpstream((req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ id, status: "COMPLETED", progress: 100, result: { videos: [{ url: "data:video/mp4;base64,AAAA" }] } }));
  });
  const w = await startWorker({ simUrl: upstream.url, vars: { PUBLIC_URL: undefined }, rateLimit: null, eventsLimit: null });
  try {
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

test("amplification: 200 event streams on random unknown ids from one client make at most 10 upstream reads", T, async () => {
  const before = (await sim.control.stats()).requests.job ?? 0;
  const statuses = [];
  for (let batch = 0; batch < 10; batch++) {
    const opens = Array.from({ length: 20 }, () =>
      subscribe(hw.url, randomUUID(), { headers: { "cf-connecting-ip": "203.0.113.50" }, timeoutMs: 5000 }),
    );
    for (const sub of await Promise.all(opens)) statuses.push(sub.status);
  }
  const upstreamReads = ((await sim.control.stats()).requests.job ?? 0) - before;
  assert.ok(upstreamReads <= 10, `upstream reads: ${upstreamReads}`);
  assert.ok(upstreamReads >= 1, "the first opens do read upstream");
  assert.ok(statuses.every((s) => s === 404 || s === 429), `statuses ${[...new Set(statuses)]}`);
  assert.equal(statuses.filter((s) => s === 429).length, 200 - upstreamReads, "the rest are rate limited");
  console.log(`       200 streams on unknown ids: ${upstreamReads} upstream reads`);
});

test("amplification: 50 concurrent streams on one unknown id make one upstream read, and the 404 is remembered", T, async () => {
  const id = randomUUID();
  const open = (i) => subscribe(hw.url, id, { headers: { "cf-connecting-ip": `192.0.2.${i}` }, timeoutMs: 5000 });
  const first = await Promise.all(Array.from({ length: 50 }, (_, i) => open(i)));
  assert.ok(first.every((s) => s.status === 404), `statuses ${[...new Set(first.map((s) => s.status))]}`);
  assert.deepEqual([...new Set(first.map((s) => s.json?.error?.code))], ["not_found"], "one error shape for all");
  assert.equal(await reads(id), 1, "one shared upstream read");
  const again = await Promise.all(Array.from({ length: 10 }, (_, i) => open(100 + i)));
  assert.ok(again.every((s) => s.status === 404));
  assert.equal(await reads(id), 1, "answered from memory afterwards");
});

test("fallback: a relayed job the upstream answers 404 for is read 3 times, backing off, then no more", T, async () => {
  const id = randomUUID(); // the simulator has never heard of it
  const res = await signedWebhook(client, hook(id, { event: "progress", status: "PROCESSING", progress: 5 }));
  assert.equal(res.status, 200);
  await sleep(5000); // reads at ~0.2 s, ~1.2 s, ~3.2 s (RELAY_FALLBACK_MS=200, then 1 s, 2 s)
  assert.equal(await reads(id), 3);
  await sleep(3000);
  assert.equal(await reads(id), 3, "polling stopped");
});

test("fallback: upstream errors back off exponentially", T, async () => {
  const id = randomUUID();
  const times = [];
  const upstream = await fakeUpstream((req, res) => {
    if (req.url === `/v2/jobs/${id}`) times.push(performance.now());
    res.writeHead(503, { "content-type": "application/json" });
    res.end('{"error":"busy"}');
  });
  const w = await startWorker({ simUrl: upstream.url, vars: { RELAY_FALLBACK_MS: "100" }, rateLimit: null, eventsLimit: null });
  try {
    const res = await signedWebhook(clientFor(w.url), hook(id, { event: "progress", status: "PROCESSING", progress: 5 }));
    assert.equal(res.status, 200);
    await sleep(7600); // ~0.1 s, then +1 s, +2 s, +4 s
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
  const id = randomUUID();
  await signedWebhook(client, hook(id, { event: "progress", status: "PROCESSING", progress: 5 }));
  const ctl = new AbortController();
  const held = [];
  try {
    for (let i = 0; i < MAX_SUBSCRIBERS; i++) {
      const res = await within(10000, fetch(`${hw.url}/api/v2/jobs/${id}/events`, { signal: ctl.signal }), "open");
      assert.equal(res.status, 200);
      held.push(res);
    }
    const refused = await subscribe(hw.url, id);
    assert.equal(refused.status, 429, refused.text);
    assert.equal(refused.json.error.code, "rate_limited");
    assert.ok(Number(refused.headers.get("retry-after")) > 0, "Retry-After");
  } finally {
    ctl.abort();
    for (const res of held) await res.body.cancel().catch(() => {});
  }
});

test("relay state: 40 webhooks with large extra fields keep the job bounded; subscribers get the changed job, not a growing history", T, async () => {
  const id = randomUUID();
  await signedWebhook(client, hook(id, { event: "progress", status: "PROCESSING", progress: 1 }));
  const streaming = subscribe(hw.url, id, { timeoutMs: 30000 });
  await sleep(200);
  for (let i = 2; i <= 41; i++) {
    const res = await signedWebhook(client, hook(id, { event: "progress", status: "PROCESSING", progress: i, [`note${i}`]: "x".repeat(8000) }));
    assert.equal(res.status, 200);
  }
  await signedWebhook(client, hook(id, { event: "completed", status: "COMPLETED", result: "https://cdn.test/v.mp4" }));
  const sub = await streaming;
  assert.ok(sub.ended, "the stream ended with the job");
  assert.equal(sub.events.length, 42, "the current state, 40 changes, the terminal one");
  const biggest = Math.max(...sub.events.map((e) => e.data.length));
  assert.ok(biggest <= 16 * 1024, `largest event ${biggest} bytes`);
  assert.ok(sub.bytes < 42 * 17 * 1024, `${sub.bytes} bytes streamed`);
  const read = await client(`/api/v2/jobs/${id}`);
  assert.equal(read.json.status, "COMPLETED");
  assert.ok(read.text.length <= 16 * 1024, `stored job ${read.text.length} bytes`);
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
