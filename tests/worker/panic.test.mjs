// A Rust panic (and an abort) in the worker, for real: the test build (worker/build-test,
// feature `test-routes`) in workerd (Miniflare 4) against the simulator. The
// workspace builds with `panic = "abort"`, so a panic traps the wasm instance;
// the module entry (worker/entry.js) must answer the trapped request 500
// `internal` and give the next request on the same isolate a fresh instance.
// A job object shares that isolate here (as it may on Cloudflare): its live
// event streams end, and a client that reconnects with Last-Event-ID gets the
// job from the object's stored record. workerd's log must have each panic's
// message and never the key; no response may carry the key.
//
//   SORA_EDGE_TEST_ROUTES=1 bash scripts/build-worker.sh
//   node --test --test-reporter=spec tests/worker/panic.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { API_KEY, startSim, startWorker, readEvents, within, sleep } from "./harness.mjs";
import { leaks, scan, scanHeaders, scannedCount, clientFor, subscribe } from "./client.mjs";

/** Every test is bounded. */
const T = { timeout: 60000 };
const INTERNAL = { error: { code: "internal", message: "the worker failed to handle this request", source: "edge" } };
const FETCH_PANIC = "sora-edge test route: a panic in the fetch handler";
const OBJECT_PANIC = "sora-edge test route: a panic in a job object";

let sim;
let worker;
let W;
let client;
let log = "";

before(async () => {
  sim = await startSim(["--job-ms", "1500"]);
  worker = await startWorker({
    simUrl: sim.url,
    testRoutes: true,
    vars: { RELAY_HEARTBEAT_MS: "500" },
    onLog: (text) => {
      log += text;
    },
  });
  W = worker.url;
  client = clientFor(W);
});

after(async () => {
  await worker?.stop();
  await sim?.stop();
});

const generate = async (prompt) => {
  const res = await client("/api/v2/videos/generate", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt, model: "sora-2" }),
  });
  assert.equal(res.status, 202, `generate: ${res.text}`);
  return res.json.jobId;
};

/** Resolves when workerd's log has `text`. */
async function logged(text, ms = 5000) {
  const until = Date.now() + ms;
  while (!log.includes(text)) {
    if (Date.now() > until) throw new Error(`not in workerd's log within ${ms} ms: ${text}`);
    await sleep(50);
  }
}

/**
 * Opens an events stream on job `id`; `first` resolves with its first event,
 * `done` with readEvents' `{events, ended}` (everything scanned for the key).
 */
async function open(id, headers = {}) {
  const res = await within(10000, fetch(`${W}/api/v2/jobs/${id}/events`, { headers }), "events connect");
  scanHeaders("events", res.headers);
  assert.equal(res.status, 200, "events status");
  let first;
  const firstEvent = new Promise((resolve) => (first = resolve));
  const done = readEvents(res, { timeoutMs: 20000, onEvent: (ev) => first(ev) }).then((out) => {
    for (const ev of out.events) scan("events data", ev.data);
    return out;
  });
  return { first: within(10000, firstEvent, "first event"), done };
}

/** A trapped request's answer: 500 with the fixed body, nothing more. */
function assertInternal(res, what) {
  assert.equal(res.status, 500, `${what}: status (body ${res.text})`);
  assert.deepEqual(res.json, INTERNAL, `${what}: body`);
  assert.ok(res.headers.get("content-type").startsWith("application/json"), `${what}: content-type`);
}

/** Reconnects to job `id` after event `lastId` and reads to the terminal event. */
async function resume(id, lastId) {
  const sub = await subscribe(W, id, { lastEventId: lastId });
  assert.equal(sub.status, 200, "resumed stream status");
  assert.ok(sub.ended, "the resumed stream ends");
  assert.ok(sub.events.length > 0, "events after resuming");
  assert.ok(sub.events.every((e) => Number(e.id) > Number(lastId)), `resumed ids ${sub.events.map((e) => e.id)} > ${lastId}`);
  assert.equal(JSON.parse(sub.events.at(-1).data).status, "COMPLETED", "terminal event after resuming");
}

test("a panic in the fetch handler: 500 internal, and the next requests on the isolate get a fresh instance", T, async () => {
  // A subscriber on a relayed job, live when the instance traps.
  const live = await generate("live through a fetch-handler panic [ms=6000]");
  const stream = await open(live);
  const first = await stream.first;
  assert.equal(JSON.parse(first.data).status, "QUEUED", "first event");

  assertInternal(await client("/api/__test/panic", { method: "POST" }), "the panicking request");
  await logged(FETCH_PANIC);

  // Its stream ends (its source was in the trapped instance), long before the job does.
  const cut = await within(10000, stream.done, "the live stream to end");
  assert.ok(cut.ended, "the live stream ended");
  assert.notEqual(JSON.parse(cut.events.at(-1).data).status, "COMPLETED", "it ended before the job did");

  // The same isolate answers normally: a generate and a status read.
  const next = await generate("after a fetch-handler panic [ms=1500]");
  const read = await client(`/api/v2/jobs/${next}`);
  assert.equal(read.status, 200, `status read: ${read.text}`);
  assert.equal(read.json.id, next, "status read id");

  // Again and again: each panic costs one request.
  for (let i = 0; i < 3; i++) {
    assertInternal(await client("/api/__test/panic", { method: "POST" }), `panic ${i + 2}`);
    const res = await client(`/api/v2/jobs/${next}`);
    assert.equal(res.status, 200, `status read after panic ${i + 2}: ${res.text}`);
  }

  // The cut subscriber reconnects and gets the rest from the object's record.
  await resume(live, cut.events.at(-1).id);
});

test("a panic in a job's Durable Object: 500 internal; status reads and event streams work after it", T, async () => {
  const job = await generate("object panics [ms=6000]");
  const stream = await open(job);
  assert.equal(JSON.parse((await stream.first).data).status, "QUEUED", "first event");

  // The object of this very job panics (in its fetch, on path /panic).
  assertInternal(await client(`/api/__test/panic-object?job=${job}`, { method: "POST" }), "the request to the panicking object");
  await logged(OBJECT_PANIC);

  const cut = await within(10000, stream.done, "the live stream to end");
  assert.ok(cut.ended, "the live stream ended");
  assert.notEqual(JSON.parse(cut.events.at(-1).data).status, "COMPLETED", "it ended before the job did");

  // The object is made again from its stored record.
  const read = await client(`/api/v2/jobs/${job}`);
  assert.equal(read.status, 200, `status read: ${read.text}`);
  assert.equal(read.json.id, job, "status read id");

  // A new stream on another job, from start to end.
  const other = await generate("another job after an object panic [ms=1500]");
  const sub = await subscribe(W, other);
  assert.equal(sub.status, 200, "status");
  assert.ok(sub.ended, "the stream ended");
  assert.equal(JSON.parse(sub.events[0].data).status, "QUEUED", "first event");
  assert.equal(JSON.parse(sub.events.at(-1).data).status, "COMPLETED", "terminal event");

  // The cut subscriber reconnects and gets the rest.
  await resume(job, cut.events.at(-1).id);
});

test("a trap that is no panic (an abort): 500 internal, and the next request gets a fresh instance", T, async () => {
  const job = await generate("before an abort [ms=1500]");
  assertInternal(await client("/api/__test/abort", { method: "POST" }), "the aborting request");
  await logged("edge: the wasm instance trapped (RuntimeError");
  const read = await client(`/api/v2/jobs/${job}`);
  assert.equal(read.status, 200, `status read: ${read.text}`);
  assert.equal(read.json.id, job, "status read id");
  await generate("after an abort [ms=1500]");
});

test("workerd's log has each panic's message and never the key; no response carried the key", T, async () => {
  await logged(FETCH_PANIC);
  await logged(OBJECT_PANIC);
  assert.match(log, /Rust panic: panicked at /, "workers-rs's panic hook logged the panic");
  assert.match(log, /edge: the wasm instance trapped/, "the entry logged the trap");
  assert.ok(!log.includes(API_KEY), "the key is not in workerd's log");
  assert.ok(scannedCount() > 20, `responses scanned: ${scannedCount()}`);
  assert.deepEqual(leaks, [], "no response carried the key");
});
