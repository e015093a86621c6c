// The key never leaves the worker: the real worker (worker/build) in workerd
// against an upstream that echoes the API key in every body, header and
// signed webhook, in many encodings (tests/support/echo-upstream.mjs). Run
// once with the relay on and once with it off. Every byte of every response
// body and every header a client receives is kept and scanned for every form
// of the key; and jobs still work through it all.
//
//   node --test --test-reporter=spec tests/worker/keyleak.test.mjs
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { createParser } from "eventsource-parser";
import { API_KEY, startWorker, sign, within, sleep } from "./harness.mjs";
import { startEchoUpstream, keyForms, scanForKey } from "../support/echo-upstream.mjs";

/** Every test is bounded. */
const T = { timeout: 60000 };
const JOB_MS = 1200;
const UUID_RE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
const ALL_FORMS = keyForms(API_KEY).map((f) => f.form);
const videoUrlOf = (job) => (typeof job?.result === "string" ? job.result : job?.result?.videoUrl);
const expectedVideo = (id) => `https://cdn.echo.test/videos/${id}.mp4`;

/**
 * Everything a client received, per path: each header as `name: value`, the
 * status text, and the body's bytes. `findings()` scans it all for the key.
 */
class Ledger {
  entries = [];

  add(path, res, body) {
    this.entries.push({ path, where: "status line", text: `${res.status} ${res.statusText ?? ""}` });
    for (const [name, value] of res.headers) this.entries.push({ path, where: `header ${name}`, text: `${name}: ${value}` });
    for (const cookie of res.headers.getSetCookie?.() ?? []) this.entries.push({ path, where: "header set-cookie", text: `set-cookie: ${cookie}` });
    this.body(path, body);
  }

  body(path, body, where = "body") {
    this.entries.push({ path, where, text: Buffer.isBuffer(body) ? body : Buffer.from(String(body ?? ""), "utf8") });
  }

  /** `[{path, leaks: [{where, forms}]}]` for every path where some form of the key appeared. */
  findings() {
    const byPath = new Map();
    for (const { path, where, text } of this.entries) {
      const forms = scanForKey(text, API_KEY);
      if (!forms.length) continue;
      if (!byPath.has(path)) byPath.set(path, new Map());
      const at = byPath.get(path);
      at.set(where, [...new Set([...(at.get(where) ?? []), ...forms])]);
    }
    return [...byPath].map(([path, at]) => ({ path, leaks: [...at].map(([where, forms]) => ({ where, forms })) }));
  }

  paths() {
    return new Set(this.entries.map((e) => e.path));
  }
}

function report(findings) {
  const count = findings.reduce((n, f) => n + f.leaks.length, 0);
  const lines = findings.map(
    (f) => `  ${f.path}:\n${f.leaks.map((l) => `      ${l.where}: ${l.forms.join(", ")}`).join("\n")}`,
  );
  return `the key reached the client in ${count} place(s) on ${findings.length} path(s):\n${lines.join("\n")}`;
}

// ------------------------------------------------- the echo upstream itself

test("echo upstream: every form of the key in every body, header and signed webhook; jobs and stats work", T, async () => {
  const hooks = [];
  const receiver = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      hooks.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      res.end("ok");
    });
  });
  await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
  const echo = await startEchoUpstream({ apiKey: API_KEY, jobMs: 400 });
  try {
    const H = { "x-api-key": API_KEY, "content-type": "application/json" };
    const ask = async (path, init = {}) => {
      const res = await within(10000, fetch(echo.url + path, { headers: H, ...init }), path);
      const text = await res.text();
      return { res, text };
    };
    const everyForm = (what, text) => assert.deepEqual(scanForKey(text, API_KEY).sort(), [...ALL_FORMS].sort(), `every form in ${what}`);
    const leakyHeaders = ["content-type", "x-request-id", "retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "x-debug", "location"];
    const check = (what, { res, text }) => {
      everyForm(`${what} body`, text);
      for (const name of leakyHeaders) everyForm(`${what} header ${name}`, `${name}: ${res.headers.get(name)}`);
      everyForm(`${what} set-cookie`, res.headers.getSetCookie()[0]);
    };
    // The JSON-escaped form is really escaped on the wire, and parses back to the key.
    const hookUrl = `http://127.0.0.1:${receiver.address().port}/hook`;
    const gen = await ask("/v2/videos/generate", { method: "POST", body: JSON.stringify({ prompt: "self check", model: "sora-2", webhookUrl: hookUrl, webhookEvents: ["progress", "completed", "failed"] }) });
    assert.equal(gen.res.status, 202);
    check("generate", gen);
    assert.ok(gen.text.includes("\\u0061\\u0066\\u006b"), "escapes on the wire");
    const submitted = JSON.parse(gen.text);
    assert.equal(submitted.debug.apiKeyEscaped, API_KEY, "the escapes decode to the key");
    assert.equal(submitted.status, "QUEUED");
    const id = submitted.jobId;
    const running = await ask(`/v2/jobs/${id}`);
    check("running job", running);
    assert.ok(["QUEUED", "PROCESSING"].includes(JSON.parse(running.text).status));
    const fail = JSON.parse((await ask("/v2/videos/generate", { method: "POST", body: JSON.stringify({ prompt: "x [fail] [ms=200]", model: "sora-2" }) })).text).jobId;
    let done;
    let failed;
    for (let i = 0; i < 40 && !(done?.status === "COMPLETED" && failed?.status === "FAILED"); i++) {
      await sleep(100);
      done = JSON.parse((await ask(`/v2/jobs/${id}`)).text);
      failed = JSON.parse((await ask(`/v2/jobs/${fail}`)).text);
    }
    for (const k of ["id", "status", "model", "progress", "result", "error", "creditCost", "webhookStatus", "createdAt", "completedAt"]) assert.ok(k in done, `job field ${k}`);
    assert.equal(done.status, "COMPLETED");
    assert.equal(done.result.videoUrl, expectedVideo(id));
    assert.ok(scanForKey(JSON.stringify(done.result), API_KEY).length, "an echo inside result");
    assert.equal(failed.status, "FAILED");
    assert.match(failed.error, /content policy violation/);
    assert.ok(failed.error.includes(API_KEY), "the failed job's error echoes the key");
    for (const s of ["400", "402", "503", "502-text"]) {
      const r = await ask("/v2/videos/generate", { method: "POST", body: JSON.stringify({ prompt: `[status=${s}]`, model: "sora-2" }) });
      assert.equal(r.res.status, Number(s.slice(0, 3)), `status marker ${s}`);
      check(`[status=${s}]`, r);
      if (s === "502-text") assert.match(r.res.headers.get("content-type"), /^text\/html/);
    }
    check("unknown job", await ask(`/v2/jobs/${randomUUID()}`));
    check("me", await ask("/v2/me"));
    const wrong = await ask("/v2/me", { headers: { "x-api-key": "afk_wrong_key_123" } });
    assert.equal(wrong.res.status, 401);
    assert.ok(wrong.text.includes("afk_wrong_key_123"), "a 401 echoes the key it received");
    // Webhooks: in order, signed as harness.sign() checks, every form in every body.
    for (let i = 0; i < 40 && !hooks.some((h) => h.headers["x-webhook-event"] === "completed"); i++) await sleep(100);
    assert.deepEqual(hooks.map((h) => h.headers["x-webhook-event"]), ["progress", "progress", "progress", "progress", "completed"]);
    for (const h of hooks) {
      assert.equal(h.headers["x-webhook-signature"], sign(h.body), "signature");
      everyForm(`webhook ${h.headers["x-webhook-event"]}`, h.body);
    }
    const last = JSON.parse(hooks.at(-1).body);
    assert.equal(last.jobId, id);
    assert.equal(last.status, "COMPLETED");
    assert.equal(last.result.videoUrl, expectedVideo(id));
    const stats = echo.stats();
    assert.equal(stats.generates, 6);
    assert.equal(stats.jobsCreated, 2);
    assert.ok(stats.statusReads[id] >= 2);
    assert.equal(stats.me, 1);
    assert.equal(stats.auth.wrong, 1);
    assert.equal(stats.webhooks.sent, 5);
    assert.equal(stats.webhooks.delivered, 5);
  } finally {
    await echo.close();
    await new Promise((r) => receiver.close(r));
  }
});

// ------------------------------------------- the worker against the echo upstream

const MODES = [
  { name: "relay on", relay: true, vars: {} },
  { name: "relay off", relay: false, vars: { PUBLIC_URL: undefined } },
];

for (const mode of MODES) {
  describe(`the key never leaves the worker (${mode.name})`, () => {
    let echo;
    let worker;
    let W;
    let ip = 0;
    const ledger = new Ledger();
    const jobs = {};

    before(async () => {
      echo = await startEchoUpstream({ apiKey: API_KEY, jobMs: JOB_MS });
      worker = await startWorker({ simUrl: echo.url, vars: { RELAY_HEARTBEAT_MS: "300", ...mode.vars } });
      W = worker.url;
    });

    after(async () => {
      await worker?.stop();
      await echo?.close();
    });

    const clientIp = () => `198.51.100.${(ip++ % 250) + 1}`;

    /** One request as a client makes it; everything received goes to the ledger under `label`. */
    async function call(label, path, init = {}) {
      const headers = { "cf-connecting-ip": clientIp(), ...(init.headers ?? {}) };
      const res = await within(20000, fetch(W + path, { ...init, headers }), label);
      const body = Buffer.from(await within(20000, res.arrayBuffer(), `body of ${label}`));
      ledger.add(label, res, body);
      const text = body.toString("utf8");
      let json = null;
      try {
        json = JSON.parse(text);
      } catch {
        // not JSON
      }
      return { status: res.status, headers: res.headers, text, json };
    }

    const generate = (label, prompt) =>
      call(`POST /api/v2/videos/generate (${label})`, "/api/v2/videos/generate", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt, model: "sora-2" }),
      });

    const read = (label, id) => call(`GET /api/v2/jobs/{id} (${label})`, `/api/v2/jobs/${id}`);

    /** Reads a job until it is in one of `statuses` (at most ~15 s); the last read. */
    async function readUntil(label, id, statuses) {
      let last;
      for (let i = 0; i < 60; i++) {
        last = await read(label, id);
        if (last.status !== 200 || statuses.includes(last.json?.status)) return last;
        await sleep(250);
      }
      return last;
    }

    /** An events stream read to its end (or `timeoutMs`), every byte kept. */
    async function stream(label, id, { lastEventId, timeoutMs = 20000 } = {}) {
      const headers = { "cf-connecting-ip": clientIp(), accept: "text/event-stream" };
      if (lastEventId !== undefined) headers["last-event-id"] = String(lastEventId);
      const res = await within(20000, fetch(`${W}/api/v2/jobs/${id}/events`, { headers }), label);
      const chunks = [];
      const events = [];
      const parser = createParser({ onEvent: (m) => events.push({ id: m.id ?? null, event: m.event ?? "message", data: m.data }) });
      const decoder = new TextDecoder();
      let ended = false;
      if (res.body) {
        const reader = res.body.getReader();
        let timedOut = false;
        const timer = setTimeout(() => {
          timedOut = true;
          reader.cancel().catch(() => {});
        }, timeoutMs);
        try {
          for (;;) {
            const { done, value } = await reader.read();
            if (done) {
              ended = !timedOut;
              break;
            }
            chunks.push(Buffer.from(value));
            parser.feed(decoder.decode(value, { stream: true }));
          }
        } catch {
          // cancelled by the timeout
        } finally {
          clearTimeout(timer);
        }
      }
      const body = Buffer.concat(chunks);
      ledger.add(label, res, body);
      let json = null;
      if (res.status !== 200) {
        try {
          json = JSON.parse(body.toString("utf8"));
        } catch {
          // not JSON
        }
      }
      const jobsSeen = events.map((e) => {
        try {
          return JSON.parse(e.data);
        } catch {
          return null;
        }
      });
      return { status: res.status, events, jobs: jobsSeen, ended, json, text: body.toString("utf8") };
    }

    test("generate: 202 with a job id; a status read while it runs: QUEUED or PROCESSING", T, async () => {
      const gen = await generate("normal job", "a lighthouse at dusk [ms=3000]");
      assert.equal(gen.status, 202, `generate status: ${gen.text.slice(0, 200)}`);
      assert.match(gen.json?.jobId ?? "", /^[0-9a-f-]{36}$/, "jobId");
      jobs.normal = gen.json.jobId;
      const running = await read("running", jobs.normal);
      assert.equal(running.status, 200, `status read: ${running.text.slice(0, 200)}`);
      assert.ok(["QUEUED", "PROCESSING"].includes(running.json?.status), `status ${running.json?.status}`);
      assert.equal(running.json.id, jobs.normal, "id");
    });

    if (mode.relay) {
      test("events stream of the job: ends with COMPLETED and the echo's video URL", T, async () => {
        assert.ok(jobs.normal, "needs the generated job");
        const sub = await stream("GET /api/v2/jobs/{id}/events (running job)", jobs.normal);
        assert.equal(sub.status, 200, `events status: ${sub.text.slice(0, 200)}`);
        assert.ok(sub.ended, "the server ended the stream");
        const last = sub.jobs.at(-1);
        assert.equal(last?.status, "COMPLETED", `last event ${sub.events.at(-1)?.data?.slice(0, 200)}`);
        assert.equal(videoUrlOf(last), expectedVideo(jobs.normal), "videoUrl in the terminal event");
      });
    } else {
      test("polling the job: it ends COMPLETED", T, async () => {
        assert.ok(jobs.normal, "needs the generated job");
        const done = await readUntil("polling", jobs.normal, ["COMPLETED", "FAILED"]);
        assert.equal(done.json?.status, "COMPLETED", done.text.slice(0, 200));
      });
    }

    test("status reads after completion: COMPLETED with result videoUrl https://cdn.echo.test/videos/<id>.mp4", T, async () => {
      assert.ok(jobs.normal, "needs the generated job");
      for (let i = 0; i < 2; i++) {
        const done = await readUntil(`completed, read ${i + 1}`, jobs.normal, ["COMPLETED", "FAILED"]);
        assert.equal(done.status, 200, done.text.slice(0, 200));
        assert.equal(done.json?.status, "COMPLETED", "status");
        assert.equal(videoUrlOf(done.json), expectedVideo(jobs.normal), "result videoUrl");
      }
    });

    test("a [fail] job ends FAILED with the provider's reason (content policy violation), without the key", T, async () => {
      const gen = await generate("[fail] job", "a forbidden scene [fail] [ms=1000]");
      assert.equal(gen.status, 202, `generate status: ${gen.text.slice(0, 200)}`);
      const id = gen.json.jobId;
      const checkError = (where, job) => {
        assert.equal(job?.status, "FAILED", `${where}: status`);
        assert.ok(typeof job.error === "string" && job.error.trim().length > 0, `${where}: a non-empty error, got ${JSON.stringify(job.error)}`);
        assert.match(job.error, /content policy violation/, `${where}: the provider's reason, not a generic message`);
        assert.deepEqual(scanForKey(job.error, API_KEY), [], `${where}: the key in the error: ${job.error}`);
      };
      if (mode.relay) {
        const sub = await stream("GET /api/v2/jobs/{id}/events ([fail] job)", id);
        assert.equal(sub.status, 200, sub.text.slice(0, 200));
        assert.ok(sub.ended, "the server ended the stream");
        checkError("terminal event", sub.jobs.at(-1));
      }
      const done = await readUntil("[fail] job", id, ["COMPLETED", "FAILED"]);
      assert.equal(done.status, 200, done.text.slice(0, 200));
      checkError("status read", done.json);
    });

    for (const [marker, status] of [["400", 400], ["402", 402], ["503", 503], ["502-text", 502]]) {
      test(`generate refused upstream with ${marker}: the client gets ${status}`, T, async () => {
        const res = await generate(`upstream ${marker}`, `a boat [status=${marker}]`);
        assert.equal(res.status, status, `status: ${res.text.slice(0, 200)}`);
      });
    }

    test("status read of an unknown id: 404 not_found", T, async () => {
      const res = await read("unknown id", randomUUID());
      assert.equal(res.status, 404, res.text.slice(0, 200));
      assert.equal(res.json?.error?.code, "not_found", `error.code in ${res.text.slice(0, 200)}`);
    });

    if (mode.relay) {
      test("events stream of an unknown id: 404 not_found", T, async () => {
        const sub = await stream("GET /api/v2/jobs/{id}/events (unknown id)", randomUUID(), { timeoutMs: 10000 });
        assert.equal(sub.status, 404, sub.text.slice(0, 200));
        assert.equal(sub.json?.error?.code, "not_found", `error.code in ${sub.text.slice(0, 200)}`);
      });

      test("replay after completion: a new stream, and one with Last-Event-ID: 0, end with the COMPLETED job", T, async () => {
        assert.ok(jobs.normal, "needs the generated job");
        const done = await readUntil("before replay", jobs.normal, ["COMPLETED", "FAILED"]);
        assert.equal(done.json?.status, "COMPLETED", "the job is finished before the replay");
        for (const [label, opts] of [["replay", {}], ["replay, Last-Event-ID: 0", { lastEventId: 0 }]]) {
          const sub = await stream(`GET /api/v2/jobs/{id}/events (${label})`, jobs.normal, { ...opts, timeoutMs: 10000 });
          assert.equal(sub.status, 200, `${label}: ${sub.text.slice(0, 200)}`);
          assert.ok(sub.ended, `${label}: the stream ends at once`);
          assert.ok(sub.events.length >= 1, `${label}: events`);
          assert.equal(sub.jobs.at(-1)?.status, "COMPLETED", `${label}: last event`);
          assert.equal(videoUrlOf(sub.jobs.at(-1)), expectedVideo(jobs.normal), `${label}: videoUrl`);
        }
      });
    }

    test("the library's run() through the worker ends COMPLETED with the echo's video URL", T, async () => {
      const { run } = await import("sora-edge");
      const pending = [];
      // The library calls fetch with one Request; everything it receives goes to the ledger.
      const collectingFetch = async (input, init) => {
        const req = input instanceof Request ? input : new Request(input, init);
        const label = `run() ${req.method} ${new URL(req.url).pathname.replace(UUID_RE, "{id}")}`;
        const res = await fetch(input, init);
        const copy = res.clone();
        pending.push(
          (async () => {
            const chunks = [];
            try {
              if (copy.body) {
                const reader = copy.body.getReader();
                for (;;) {
                  const { done, value } = await reader.read();
                  if (done) break;
                  chunks.push(Buffer.from(value));
                }
              }
            } catch {
              // aborted by the library: what arrived still counts
            }
            ledger.add(label, res, Buffer.concat(chunks));
          })(),
        );
        return res;
      };
      const job = await within(
        30000,
        run({ prompt: "a paper boat on a pond [ms=1500]" }, { baseUrl: `${W}/api`, transport: "auto", deadlineMs: 25000, fetch: collectingFetch }),
        "run()",
      );
      await within(20000, Promise.all(pending), "reading what run() received");
      ledger.body("run() result", JSON.stringify(job), "the Job object");
      assert.equal(job.status, "COMPLETED", "status");
      assert.equal(job.videoUrl, expectedVideo(job.id), "videoUrl");
    });

    if (mode.relay) {
      test("the echo upstream delivered its signed, key-laden webhooks to the worker (the relay path ran)", T, async () => {
        const { webhooks } = echo.stats();
        assert.ok(webhooks.delivered >= 2, `webhooks delivered: ${JSON.stringify(webhooks)}`);
        assert.ok((webhooks.byEvent.completed ?? 0) >= 1 && (webhooks.byEvent.failed ?? 0) >= 1, `events: ${JSON.stringify(webhooks.byEvent)}`);
      });
    } else {
      test("no webhook was asked for (relay off)", T, async () => {
        assert.equal(echo.stats().webhooks.sent, 0, "webhooks sent");
      });
    }

    test("the key, in any form, reached the client nowhere (every header and every body byte scanned)", T, async () => {
      const paths = ledger.paths();
      assert.ok(ledger.entries.length >= 50, `only ${ledger.entries.length} things scanned`);
      const findings = ledger.findings();
      assert.equal(findings.length, 0, report(findings));
      assert.ok(paths.size >= (mode.relay ? 15 : 10), `paths covered: ${[...paths].join("; ")}`);
    });
  });
}
