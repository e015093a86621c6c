// Before any timing: the checking JS worker (bench/checking-worker.js) must
// answer a status read as our worker does, or the comparison means nothing.
//
// Both workers run against one upstream through a replaying proxy: every
// distinct request (a generate by its prompt, a read by its path) goes upstream
// once, and the second worker to ask gets the first one's answer replayed. So
// the two generate the same job (each then knows it) and read the same bytes,
// however the job moved in between. For each case, both answers must have the
// same status, the same JSON (deep-equal) and the same headers (less the
// transport's: date, length, encoding), and no form of the key (the echo
// upstream, tests/support/echo-upstream.mjs, puts it in every body and header).
//
// Upstreams: the simulator (a queued, a processing, a completed, a completed
// `{videoUrl}` and a failed job, and reads the simulator refuses with a 503, a
// 429 whose Retry-After is seconds or a date, or answers with a truncated body)
// and the echo upstream (queued, processing, completed, failed: its failure
// reason holds the key raw, upper-case, JSON-escaped, %-encoded, base64 and hex).
//
//   import { checkSameAnswers } from "./same-answers.mjs";
//   const summary = await checkSameAnswers({ simUrl, rustEntry }); // throws on the first difference
import { createServer } from "node:http";
import { isDeepStrictEqual } from "node:util";
import { Miniflare } from "miniflare";
import { startEchoUpstream, scanForKey } from "../tests/support/echo-upstream.mjs";
import { API_KEY, freePort, within, workerOptions, sleep } from "../tests/worker/harness.mjs";
import { checkingWorkerOptions, generateJob, logsToStderr } from "./lib.mjs";

// [name, prompt marker, simulator fault on the read]
const CASES = {
  sim: [
    ["queued", "[ms=600000]"],
    ["refused with 503", "[ms=600000]", "503"],
    ["refused with 429", "[ms=600000]", "429"],
    ["refused with 429 and a date", "[ms=600000]", "429-date"],
    ["malformed", "[ms=600000]", "malformed"],
    ["processing", "[ms=3000]"],
    ["completed", "[ms=50]"],
    ["completed {videoUrl}", "[ms=50] [shape=object]"],
    ["failed", "[fail] [ms=100]"],
  ],
  echo: [
    ["queued", "[ms=600000]"],
    ["processing", "[ms=3000]"],
    ["completed", "[ms=50]"],
    ["failed", "[fail] [ms=50]"],
  ],
};
// Long enough for the [ms=50] jobs to end and the [ms=3000] ones to be past their 10 % queued.
const SETTLE_MS = 800;
// Set by the transport, not by either worker.
const TRANSPORT = new Set(["date", "content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive"]);
const HOP = new Set(["host", "connection", "keep-alive", "content-length", "transfer-encoding", "accept-encoding"]);

/** The replaying proxy in front of `upstream`, on a free port. */
async function startReplay(upstream) {
  const answers = new Map();
  const ask = async (req, body) => {
    const headers = Object.entries(req.headers).filter(([name]) => !HOP.has(name));
    const res = await fetch(upstream + req.url, {
      method: req.method,
      headers,
      body: req.method === "POST" ? body : undefined,
      redirect: "manual",
    });
    const raw = [];
    for (const [name, value] of res.headers) if (!TRANSPORT.has(name) && name !== "set-cookie") raw.push(name, value);
    for (const cookie of res.headers.getSetCookie()) raw.push("set-cookie", cookie);
    return { status: res.status, raw, body: Buffer.from(await res.arrayBuffer()) };
  };
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    const key = `${req.method} ${req.url} ${req.method === "POST" ? JSON.parse(body).prompt : ""}`;
    if (!answers.has(key)) answers.set(key, ask(req, body));
    try {
      const answer = await answers.get(key);
      res.writeHead(answer.status, answer.raw);
      res.end(answer.body);
    } catch (e) {
      res.writeHead(599);
      res.end(String(e));
    }
  });
  const port = await freePort();
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((r) => (server.closeAllConnections(), server.close(r))),
  };
}

async function start(name, options) {
  const mf = new Miniflare({ ...options, ...logsToStderr });
  const ready = await within(30000, mf.ready, `miniflare start (${name})`);
  return { url: ready.href.replace(/\/$/, ""), stop: () => within(10000, mf.dispose(), `miniflare stop (${name})`) };
}

/** A status read: status, body text, and the headers that are the worker's. */
async function read(base, id) {
  const res = await fetch(`${base}/api/v2/jobs/${id}`);
  const headers = Object.fromEntries([...res.headers].filter(([name]) => !TRANSPORT.has(name)));
  return { status: res.status, headers, body: await res.text() };
}

/**
 * Checks the checking JS worker against our worker (`rustEntry`, a build's
 * index.js) over the simulator at `simUrl` and the echo upstream. Resolves with
 * a one-line summary; throws, naming the case and both answers, on a difference.
 */
export async function checkSameAnswers({ simUrl, rustEntry }) {
  const echo = await startEchoUpstream({ apiKey: API_KEY, jobMs: 600000 });
  let reads = 0;
  let sameBytes = 0;
  const statuses = new Set();
  try {
    for (const [upstreamName, upstreamUrl] of [["sim", simUrl], ["echo", echo.url]]) {
      const replay = await startReplay(upstreamUrl);
      const workers = [];
      try {
        const rustBindings = { APIFRAME_API_KEY: API_KEY, APIFRAME_BASE_URL: replay.url, AUTH_ANONYMOUS: "on" };
        workers.push(await start("ours", workerOptions(await freePort(), rustBindings, rustEntry)));
        workers.push(await start("checking", checkingWorkerOptions(await freePort(), replay.url)));
        const [ours, checking] = workers;
        const jobs = [];
        for (const [name, marker, fault] of CASES[upstreamName]) {
          const prompt = `same answers: ${name} ${marker}`;
          const a = await generateJob(`${ours.url}/api/v2/videos/generate`, prompt);
          const b = await generateJob(`${checking.url}/api/v2/videos/generate`, prompt);
          if (!a.jobId || a.jobId !== b.jobId) {
            throw new Error(`${upstreamName} ${name}: the generates made different jobs: ${JSON.stringify(a)} ${JSON.stringify(b)}`);
          }
          jobs.push([name, a.jobId, fault]);
        }
        await sleep(SETTLE_MS);
        for (const [name, id, fault] of jobs) {
          // The replay hands the checking worker the same refusal.
          if (fault) await fetch(`${upstreamUrl}/__sim/faults`, { method: "POST", body: JSON.stringify({ route: "job", faults: [fault] }) });
          const want = await read(ours.url, id);
          const got = await read(checking.url, id);
          const where = `${upstreamName}, ${name} job`;
          const show = `\n  ours:     ${want.status} ${JSON.stringify(want.headers)} ${want.body}\n  checking: ${got.status} ${JSON.stringify(got.headers)} ${got.body}`;
          if ((want.status === 200) === Boolean(fault) || got.status !== want.status) throw new Error(`${where}: status differs${show}`);
          if (!isDeepStrictEqual(JSON.parse(got.body), JSON.parse(want.body))) throw new Error(`${where}: body differs${show}`);
          if (!isDeepStrictEqual(got.headers, want.headers)) throw new Error(`${where}: headers differ${show}`);
          for (const [who, answer] of [["ours", want], ["checking", got]]) {
            const leaks = scanForKey(`${answer.body}\n${JSON.stringify(answer.headers)}`, API_KEY);
            if (leaks.length) throw new Error(`${where}: ${who} shows the key (${leaks.join(", ")})${show}`);
          }
          reads += 1;
          sameBytes += got.body === want.body ? 1 : 0;
          statuses.add(fault ? want.status : JSON.parse(want.body).status);
        }
      } finally {
        for (const w of workers) await w.stop().catch(() => {});
        await replay.close();
      }
    }
  } finally {
    await echo.close();
  }
  for (const status of ["QUEUED", "PROCESSING", "COMPLETED", "FAILED", 429, 502, 503]) {
    if (!statuses.has(status)) throw new Error(`the check saw no ${status} job (saw ${[...statuses].join(", ")})`);
  }
  return `${reads} reads (simulator and key-echoing upstream; QUEUED, PROCESSING, COMPLETED, FAILED, refusals): same status, JSON and headers, no key; ${sameBytes} of ${reads} bodies byte-identical`;
}
