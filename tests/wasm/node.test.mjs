// The wasm cases (cases.mjs) in Node, one node:test test each, against a
// freshly started simulator, with `sora-edge` imported BY NAME
// (node_modules/sora-edge -> ../pkg, made by scripts/build.sh).
//   node --test --test-reporter=spec tests/wasm/node.test.mjs
//   (--test-name-pattern=<regex> runs a subset)
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { after, before, beforeEach, describe, test } from "node:test";
import { startSim } from "../support/sim.mjs";
import { startAuthWorker, TOKENS } from "./auth-worker.mjs";
import { cases } from "./cases.mjs";

let lib;
let sim;
let env;

before(async () => {
  sim = await startSim();
  lib = await import("sora-edge");
  env = { simUrl: sim.url, apiKey: sim.apiKey, sim: sim.control, runtime: "node" };
});
after(() => sim?.stop());
beforeEach(() => env.sim.reset());

for (const c of cases) {
  test(c.name, { timeout: c.timeoutMs }, () => c.fn(lib, env));
}

// Node's entry loads the wasm at import, so `not_initialized` is met through the
// browser entry in a fresh process (Chromium's page has loaded it for the cases).
test("browser entry: new Client() before init() throws SoraEdgeError not_initialized; after init() it works", () => {
  const script = `
    import { Client, SoraEdgeError, isSoraEdgeError, default as init } from "./pkg/browser.js";
    let err;
    try { new Client(); } catch (e) { err = e; }
    const out = { instance: err instanceof SoraEdgeError, guard: isSoraEdgeError(err), code: err?.code,
      retryable: err?.retryable, cause: err?.cause instanceof Error };
    await init();
    new Client({ baseUrl: "/api" }).free();
    out.afterInit = true;
    console.log(JSON.stringify(out));`;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    cwd: new URL("../..", import.meta.url),
    encoding: "utf8",
  });
  const got = JSON.parse(out);
  const want = { instance: true, guard: true, code: "not_initialized", retryable: true, cause: true, afterInit: true };
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(`expected ${JSON.stringify(want)}, got ${out}`);
  }
});

// ---------------------------------------------------------------- the token
// The `token` option (issue 20) against a stand-in for the worker with auth on
// (auth-worker.mjs), which records what it received. Node only: it is a
// node:http server. Where Apiframe's own host would be the target, the
// caller's `fetch` plays it (nothing leaves the machine).
describe("token", () => {
  // A renewal loop would hang: every case has a time limit.
  const tokenTest = (name, fn) => test(name, { timeout: 20_000 }, fn);
  let worker;
  before(async () => {
    worker = await startAuthWorker();
  });
  after(() => worker?.stop());
  beforeEach(() => worker.reset());

  const on = (extra = {}) => ({ baseUrl: worker.base, maxRetries: 0, ...extra });
  const rejection = async (promise) => {
    try {
      await promise;
    } catch (e) {
      return e;
    }
    assert.fail("expected a rejection");
  };
  /** Nothing a client or a log could see holds a token. */
  const noToken = (what, text) => {
    for (const token of Object.values(TOKENS)) {
      assert.ok(!String(text).includes(token), `${what} holds a token: ${text}`);
    }
  };
  const errorText = (e) =>
    [e.message, e.stack, e.url, JSON.stringify(e), String(e.cause?.message ?? "")].join("\n");

  tokenTest("a string token goes as Authorization: Bearer on generate and status reads, never in a URL", async () => {
    const sub = await lib.generate({ prompt: "signed in" }, on({ token: TOKENS.good }));
    const job = await lib.poll(sub.jobId, on({ token: TOKENS.good }));
    assert.equal(job.id, sub.jobId);
    const client = new lib.Client(on({ token: TOKENS.good }));
    await client.poll(sub.jobId);
    client.free();
    assert.deepEqual(
      worker.requests.map((r) => [r.method, r.authorization]),
      [
        ["POST", `Bearer ${TOKENS.good}`],
        ["GET", `Bearer ${TOKENS.good}`],
        ["GET", `Bearer ${TOKENS.good}`],
      ],
    );
    for (const r of worker.requests) noToken("a URL", r.path + r.query);
  });

  tokenTest("without a token the worker's refusal is auth_required from the edge; the token wins over headers.Authorization", async () => {
    const e = await rejection(lib.poll("job-1", on()));
    assert.equal(e.code, "auth_required");
    assert.equal(e.source, "edge");
    assert.equal(e.status, 401);
    assert.equal(e.retryable, false);
    assert.equal(worker.requests[0].authorization, null);
    await lib.poll("job-1", on({ token: TOKENS.good, headers: { Authorization: "Bearer app-session" } }));
    assert.equal(worker.requests[1].authorization, `Bearer ${TOKENS.good}`);
  });

  tokenTest("a token function is called for every request attempt, and what it gives now is sent", async () => {
    let calls = 0;
    const token = () => {
      calls += 1;
      return `good.${calls}`;
    };
    // The first read meets a 503 and is retried: two attempts, two calls.
    worker.configure({ fail: [[503, "upstream"]] });
    await lib.poll("job-1", on({ token, maxRetries: 1 }));
    await lib.generate({ prompt: "x" }, on({ token }));
    assert.equal(calls, 3);
    assert.deepEqual(
      worker.requests.map((r) => r.authorization),
      ["Bearer good.1", "Bearer good.2", "Bearer good.3"],
    );
  });

  tokenTest("token_expired from the edge: the function is asked once more and the request repeated once, then it succeeds", async () => {
    const given = [TOKENS.old, TOKENS.good];
    let calls = 0;
    const token = async () => given[calls++];
    const job = await lib.poll("job-7", on({ token }));
    assert.equal(job.id, "job-7");
    assert.equal(calls, 2);
    assert.deepEqual(
      worker.requests.map((r) => r.authorization),
      [`Bearer ${TOKENS.old}`, `Bearer ${TOKENS.good}`],
    );
    // A submit too (nothing was forwarded), with the same Idempotency-Key.
    worker.reset();
    calls = 0;
    const sub = await lib.generate({ prompt: "x" }, on({ token }));
    assert.equal(calls, 2);
    assert.equal(worker.requests.length, 2);
    assert.equal(worker.requests[0].idempotencyKey, sub.idempotencyKey);
    assert.equal(worker.requests[1].idempotencyKey, sub.idempotencyKey);
  });

  tokenTest("no renewal loop: two expired tokens reject token_expired (source edge); a string token is never renewed", async () => {
    let calls = 0;
    const token = () => {
      calls += 1;
      return TOKENS.old;
    };
    const e = await rejection(lib.poll("job-1", on({ token, maxRetries: 3 })));
    assert.equal(e.code, "token_expired");
    assert.equal(e.source, "edge");
    assert.equal(e.status, 401);
    assert.equal(e.retryable, false);
    assert.equal(calls, 2, "called once more, not again");
    assert.equal(worker.requests.length, 2);
    const g = await rejection(lib.generate({ prompt: "x" }, on({ token })));
    assert.equal(g.code, "token_expired");
    assert.equal(calls, 4);
    worker.reset();
    const s = await rejection(lib.poll("job-1", on({ token: TOKENS.old })));
    assert.equal(s.code, "token_expired");
    assert.equal(worker.requests.length, 1, "a string token: one request");
    for (const err of [e, g, s]) noToken("token_expired", errorText(err));
  });

  tokenTest("the worker's other refusals keep their codes; auth_unavailable is retried, not_configured is not", async () => {
    worker.configure({ fail: [[503, "auth_unavailable"], [503, "auth_unavailable"]] });
    const job = await lib.poll("job-1", on({ token: TOKENS.good, maxRetries: 2 }));
    assert.equal(job.id, "job-1");
    assert.equal(worker.requests.length, 3, "two retries past auth_unavailable");
    worker.reset();
    worker.configure({ fail: [[503, "auth_unavailable"]] });
    const sub = await lib.generate({ prompt: "x" }, on({ token: TOKENS.good, maxRetries: 1 }));
    assert.ok(sub.jobId, "a submit is retried past auth_unavailable: nothing was forwarded");
    for (const [status, code, retryable] of [
      [503, "not_configured", false],
      [503, "auth_unavailable", true],
      [401, "token_invalid", false],
      [401, "turnstile_required", false],
      [401, "turnstile_failed", false],
    ]) {
      worker.reset();
      worker.configure({ fail: [[status, code]] });
      const e = await rejection(lib.poll("job-1", on({ token: TOKENS.good })));
      assert.deepEqual([e.code, e.status, e.source, e.retryable], [code, status, "edge", retryable], code);
      assert.equal(worker.requests.length, 1, `${code}: maxRetries 0, one request`);
    }
  });

  tokenTest("a worker that quotes the token: the error never shows it", async () => {
    const e = await rejection(lib.poll("job-1", on({ token: TOKENS.echo })));
    assert.equal(e.code, "token_invalid");
    assert.match(e.message, /\[redacted\]/);
    noToken("the error", errorText(e));
  });

  tokenTest("bad token options reject invalid_request naming token, without quoting it, and send nothing", async () => {
    const secretish = "two words.eyJzdWIiOiJ1c2VyLTEifQ";
    const bad = [42, null, { value: TOKENS.good }, [TOKENS.good], secretish, `${TOKENS.good}\r\nX-Evil: 1`];
    for (const token of bad) {
      let thrown;
      try {
        new lib.Client({ baseUrl: worker.base, token });
      } catch (e) {
        thrown = e;
      }
      assert.ok(thrown instanceof lib.SoraEdgeError, `new Client({token: ${typeof token}})`);
      const e = await rejection(lib.poll("job-1", on({ token })));
      for (const err of [thrown, e]) {
        assert.equal(err.code, "invalid_request");
        assert.equal(err.field, "token");
        assert.match(err.message, /^token /);
        noToken("the message", err.message);
        assert.ok(!err.message.includes(secretish), err.message);
      }
    }
    // A function: what it gives is checked when it is called.
    for (const token of [() => 42, async () => null, () => `${TOKENS.good} x`]) {
      const e = await rejection(lib.poll("job-1", on({ token })));
      assert.deepEqual([e.code, e.field], ["invalid_request", "token"]);
      noToken("the message", e.message);
    }
    const boom = new Error("session store is down");
    for (const token of [() => { throw boom; }, () => Promise.reject(boom)]) {
      const e = await rejection(lib.generate({ prompt: "x" }, on({ token })));
      assert.deepEqual([e.code, e.field, e.retryable], ["invalid_request", "token", false]);
      assert.equal(e.cause, boom);
    }
    assert.equal(worker.requests.length, 0, "nothing was sent");
    // An empty token is no token.
    const none = await rejection(lib.poll("job-1", on({ token: "" })));
    assert.equal(none.code, "auth_required");
    assert.equal(worker.requests[0].authorization, null);
  });

  tokenTest("the token never goes to Apiframe's own host: baseUrl unset or api.apiframe.ai", async () => {
    let calls = 0;
    const seen = [];
    const fetch = async (request) => {
      seen.push([new URL(request.url).host, request.headers.get("authorization")]);
      return new Response(JSON.stringify({ id: "job-1", status: "PROCESSING", progress: 5 }), {
        status: 200,
        headers: { "content-type": "application/json" },
      });
    };
    const token = () => {
      calls += 1;
      return TOKENS.good;
    };
    await lib.poll("job-1", { fetch, token: TOKENS.good });
    await lib.poll("job-1", { fetch, token, baseUrl: "https://api.apiframe.ai" });
    await lib.poll("job-1", { fetch, token, baseUrl: "https://API.apiframe.ai/" });
    await lib.poll("job-1", { fetch, token, baseUrl: "https://app.example/api" });
    assert.deepEqual(seen, [
      ["api.apiframe.ai", null],
      ["api.apiframe.ai", null],
      ["api.apiframe.ai", null],
      ["app.example", `Bearer ${TOKENS.good}`],
    ]);
    assert.equal(calls, 1, "the function is not even called for Apiframe's host");
  });

  // EventSource is in Node 20 behind --experimental-eventsource: the wait runs
  // in a child process that has it, against the stand-in started here.
  // Not execFileSync: the stand-in answers from this process's event loop.
  const waitInChild = async (options) => {
    const script = `
      import { waitForJob } from "sora-edge";
      const options = ${JSON.stringify(options)};
      let calls = 0;
      options.token = () => { calls += 1; return ${JSON.stringify(TOKENS.good)}; };
      const out = { hasEventSource: typeof EventSource === "function" };
      try {
        const job = await waitForJob("job-42", options);
        Object.assign(out, { status: job.status, calls });
      } catch (e) {
        Object.assign(out, { code: e.code, message: e.message, calls });
      }
      console.log(JSON.stringify(out));`;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--experimental-eventsource", "--no-warnings", "--input-type=module", "-e", script],
      { cwd: new URL("../..", import.meta.url), encoding: "utf8", timeout: 15_000 },
    );
    return JSON.parse(stdout);
  };

  tokenTest("events with a token: a ticket per connection (POST with the token), the stream opened with ?ticket=, a new ticket after the stream drops", async () => {
    const got = await waitInChild({ baseUrl: worker.base, transport: "events", deadlineMs: 10_000 });
    assert.deepEqual(got, { hasEventSource: true, status: "COMPLETED", calls: 2 });
    const seen = worker.requests.map((r) => [r.method, r.path.replace(/^\/api\/v2\/jobs\/job-42/, ""), r.query, r.authorization]);
    const ticket = (n) => `?ticket=${encodeURIComponent(`t${n}+/=.job-42`)}`;
    assert.deepEqual(seen, [
      ["POST", "/ticket", "", `Bearer ${TOKENS.good}`],
      ["GET", "/events", ticket(1), null],
      // The platform's own reconnect with the spent ticket, refused...
      ["GET", "/events", ticket(1), null],
      // ...so a new ticket, and a new connection.
      ["POST", "/ticket", "", `Bearer ${TOKENS.good}`],
      ["GET", "/events", ticket(2), null],
    ]);
    for (const r of worker.requests) noToken("a URL", r.path + r.query);
  });

  tokenTest("events with a token against a worker without the ticket route (404): the stream as before, no ticket", async () => {
    worker.configure({ ticketRoute: false });
    const got = await waitInChild({ baseUrl: worker.base, transport: "auto", deadlineMs: 10_000 });
    assert.deepEqual(got, { hasEventSource: true, status: "COMPLETED", calls: 1 });
    assert.deepEqual(
      worker.requests.map((r) => [r.method, r.path.replace(/^\/api\/v2\/jobs\/job-42/, ""), r.query]),
      [
        ["POST", "/ticket", ""],
        ["GET", "/events", ""],
      ],
    );
  });

  tokenTest("events with a token the worker refuses: the wait rejects with the worker's code, no stream opened", async () => {
    worker.configure({ fail: [[401, "token_invalid"]] });
    const got = await waitInChild({ baseUrl: worker.base, transport: "events", deadlineMs: 10_000 });
    assert.deepEqual(got.code, "token_invalid");
    assert.deepEqual(worker.requests.map((r) => r.method), ["POST"]);
  });
});
