// Shared plumbing for the worker tests and the relay bench: the simulator,
// the real worker (worker/build) in workerd (Miniflare 4), webhook signing,
// an event-stream reader and raw requests. Every wait is bounded.
import { createHmac, createHash, randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { connect } from "node:net";
import { freePort } from "../../scripts/net.mjs";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";
import { Miniflare } from "miniflare";
import { startSim as startSimulator } from "../support/sim.mjs";
import { createParser } from "eventsource-parser";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const API_KEY = "afk_sim_test_key_edge_7Qm2xV9pLw4R";

/** Rejects after `ms` with `what` in the message. */
export function within(ms, promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Its home is scripts/net.mjs (shared with `make demo`); passed on here for the
// worker tests and the benches, which take their plumbing from this file.
export { freePort };

/** Starts the simulator with this suite's key; resolves with `{url, control, stop}`. */
export const startSim = (extraArgs = []) => startSimulator({ apiKey: API_KEY, extraArgs });

/** The worker as scripts/build-worker.sh builds it. */
export const WORKER_ENTRY = resolve(ROOT, "worker/build/index.js");
/** The test build (`SORA_EDGE_TEST_ROUTES=1 bash scripts/build-worker.sh`): test routes that panic. */
export const TEST_WORKER_ENTRY = resolve(ROOT, "worker/build-test/index.js");

/** Miniflare options that run our worker (worker/build, or `entry`) as wrangler would. */
export function workerOptions(port, bindings, entry = WORKER_ENTRY) {
  return {
    host: "127.0.0.1",
    port,
    modules: true,
    rootPath: ROOT,
    scriptPath: entry,
    modulesRoot: ROOT,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    compatibilityDate: "2026-04-01",
    bindings,
    durableObjects: { JOBS: { className: "JobRelay", useSQLite: true }, LEDGER: { className: "Ledger", useSQLite: true } },
  };
}

/**
 * Starts the worker (worker/build) in workerd on a free port. `rateLimit`
 * limits generates per client; `null` leaves the binding out. `testRoutes`
 * runs the test build (worker/build-test) instead. `onLog(text)`, when
 * given, gets workerd's stdout and stderr (its console output) as they come.
 * `persistDir` keeps Durable Object storage there across workers (a restart).
 */
export async function startWorker({ simUrl, vars = {}, rateLimit = { limit: 5, period: 60 }, testRoutes = false, onLog, persistDir }) {
  const entry = testRoutes ? TEST_WORKER_ENTRY : WORKER_ENTRY;
  if (!existsSync(entry)) {
    throw new Error(
      testRoutes
        ? "worker/build-test/ is missing: SORA_EDGE_TEST_ROUTES=1 bash scripts/build-worker.sh"
        : "worker/build/ is missing: bash scripts/build-worker.sh",
    );
  }
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const bindings = {
    APIFRAME_API_KEY: API_KEY,
    APIFRAME_BASE_URL: simUrl,
    ALLOWED_ORIGINS: "https://app.test",
    PUBLIC_URL: origin,
    RELAY_FALLBACK_MS: "4000",
    RATE_LIMIT_PERIOD_S: "60",
    // The worker spends for no one by default; these tests are about other
    // things (tests/worker/auth.test.mjs sets the modes itself).
    AUTH_ANONYMOUS: "on",
    ...vars,
  };
  for (const [k, v] of Object.entries(bindings)) if (v === undefined) delete bindings[k];
  const stdio = onLog
    ? {
        handleRuntimeStdio(stdout, stderr) {
          for (const stream of [stdout, stderr]) {
            stream.setEncoding("utf8");
            stream.on("data", (text) => onLog(text));
          }
        },
      }
    : {};
  const mf = new Miniflare({
    ...workerOptions(port, bindings, entry),
    ...stdio,
    ...(persistDir ? { durableObjectsPersist: persistDir } : {}),
    ratelimits: rateLimit ? { RATE_LIMITER: { simple: rateLimit } } : {},
  });
  const ready = await within(30000, mf.ready, "miniflare start");
  return { url: ready.href.replace(/\/$/, ""), origin, mf, stop: () => within(10000, mf.dispose(), "miniflare stop") };
}

/** Lowercase hex HMAC-SHA256 keyed with the hex SHA-256 of the key (the simulator's default). */
export function sign(body, key = API_KEY, mode = "hex") {
  const digest = createHash("sha256").update(key);
  const hmacKey = mode === "raw" ? digest.digest() : Buffer.from(digest.digest("hex"));
  return createHmac("sha256", hmacKey).update(body).digest("hex");
}

/**
 * Reads an event stream with eventsource-parser: calls `onEvent({id, event,
 * data}, now)` per event and `onComment(text)` per comment; resolves with
 * `{events, ended, bytes}` when the server ends the stream (`ended: true`),
 * or after `timeoutMs` (`ended: false`).
 */
export async function readEvents(res, { timeoutMs = 15000, onEvent = () => {}, onComment = () => {} } = {}) {
  const events = [];
  const parser = createParser({
    onEvent(message) {
      const ev = { id: message.id ?? null, event: message.event ?? "message", data: message.data };
      events.push(ev);
      onEvent(ev, performance.now());
    },
    onComment: (text) => onComment(text.trim()),
  });
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let ended = false;
  let timedOut = false;
  let bytes = 0;
  const timer = setTimeout(() => {
    timedOut = true;
    reader.cancel().catch(() => {});
  }, timeoutMs);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        ended = !timedOut; // a cancel by the timeout also reads as done
        break;
      }
      bytes += value.byteLength;
      parser.feed(decoder.decode(value, { stream: true }));
    }
  } catch {
    // cancelled by the timeout or by the caller
  } finally {
    clearTimeout(timer);
  }
  return { events, ended, bytes };
}

/**
 * Sends raw bytes over TCP (for request targets that fetch would normalise) and
 * resolves with `{status, headers, body, raw}` as soon as the response is complete.
 */
export function rawRequest(port, head, body = "") {
  return within(
    10000,
    new Promise((resolveRes, reject) => {
      const socket = connect(port, "127.0.0.1");
      let data = Buffer.alloc(0);
      const finish = () => {
        const text = data.toString("utf8");
        const at = text.indexOf("\r\n\r\n");
        const headerLines = text.slice(0, at).split("\r\n");
        const headers = new Map(
          headerLines.slice(1).map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]),
        );
        let rest = text.slice(at + 4);
        if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) {
          let out = "";
          for (;;) {
            const nl = rest.indexOf("\r\n");
            const size = parseInt(rest.slice(0, nl), 16);
            if (!size) break;
            out += rest.slice(nl + 2, nl + 2 + size);
            rest = rest.slice(nl + 2 + size + 2);
          }
          rest = out;
        }
        socket.destroy();
        resolveRes({ status: Number(headerLines[0].split(" ")[1]), headers, body: rest, raw: text });
      };
      const complete = () => {
        const text = data.toString("latin1");
        const at = text.indexOf("\r\n\r\n");
        if (at < 0) return false;
        const head = text.slice(0, at);
        const length = head.match(/\r\ncontent-length:\s*(\d+)/i);
        if (length) return data.length - (at + 4) >= Number(length[1]);
        if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) return text.endsWith("0\r\n\r\n");
        return false;
      };
      socket.on("connect", () => socket.write(head + body));
      socket.on("data", (chunk) => {
        data = Buffer.concat([data, chunk]);
        if (complete()) finish();
      });
      socket.on("end", () => (data.length ? finish() : reject(new Error("connection closed without a response"))));
      socket.on("error", reject);
    }),
    "raw request",
  );
}

/**
 * A stand-in upstream on 127.0.0.1 that accepts every generate (202 with a
 * fresh job id), answers a status read of job `id` with `read(id)` →
 * `{status, body}` (default: 200, the job QUEUED) and sends no webhooks, so
 * that only a test's own webhooks move a job. Resolves with `{url, created,
 * reads, close}`: `created` lists the job ids made, `reads` the status reads
 * as `{id, at}` (performance.now()).
 */
export async function startFakeUpstream({ read = (id) => ({ status: 200, body: { id, status: "QUEUED", progress: 0 } }) } = {}) {
  const created = [];
  const reads = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      if (req.method === "POST" && req.url === "/v2/videos/generate") {
        const id = randomUUID();
        created.push(id);
        res.writeHead(202, { "content-type": "application/json" });
        res.end(JSON.stringify({ jobId: id, status: "QUEUED" }));
        return;
      }
      const job = req.url.match(/^\/v2\/jobs\/([^/?]+)$/);
      if (req.method === "GET" && job) {
        reads.push({ id: job[1], at: performance.now() });
        const answer = read(job[1]);
        res.writeHead(answer.status, { "content-type": "application/json" });
        res.end(typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body));
        return;
      }
      res.writeHead(404, { "content-type": "application/json" });
      res.end('{"error":"no such route"}');
    });
  });
  const port = await freePort();
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${port}`, created, reads, close: () => new Promise((r) => server.close(r)) };
}
