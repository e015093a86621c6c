// Relay bench: the real worker in workerd (Miniflare 4) against the simulator.
//
// 1. Upstream requests per job, relay against polling: the client library runs
//    the same jobs with `transport: "auto"` (events stream) and `transport: "poll"`,
//    and the simulator counts generates and status reads.
// 2. Latency from a webhook's arrival at the worker to the event at a subscriber:
//    the bench plays the upstream for the terminal webhook (signed with the key,
//    as the upstream signs) and times POST → `COMPLETED` event on an open events
//    stream, p50 and p95 over JOBS jobs. The clock starts when the POST leaves this
//    process, so the figure is an upper bound (it includes the local hop). The
//    clock stops when the bytes that end the event reach the subscriber's socket
//    (node:http, stamped on arrival, parsed afterwards): 100 subscribers on
//    fetch() and WHATWG streams in this process cost more than the relay did.
// 3. The same for one webhook fanned out to FANOUT subscribers of one job,
//    BENCH_FANOUT_ROUNDS times (10; a fresh job each), p50 and p95 over all the
//    arrivals, plus the CPU time workerd spent per round, which the load of a
//    shared machine disturbs less than the latency.
//
//   node tests/worker/relay-latency.mjs [JOBS=150] [FANOUT=100]
import { readdirSync, readFileSync } from "node:fs";
import { get } from "node:http";
import { createParser } from "eventsource-parser";
import { startSim, startWorker, sign, within } from "./harness.mjs";

const JOBS = Number(process.argv[2] ?? 150);
const FANOUT = Number(process.argv[3] ?? 100);
const RUNS = Number(process.env.BENCH_RUNS ?? 10); // jobs per transport in part 1
const JOB_MS = Number(process.env.BENCH_JOB_MS ?? 15000); // their simulated duration

const FANOUT_ROUNDS = Number(process.env.BENCH_FANOUT_ROUNDS ?? 10);

// CPU time used by the one workerd process this process runs (all its threads, from
// /proc/<pid>/task/*/schedstat), in ms; null where /proc has no such figures.
// The machine is shared, so wall-clock latency is noisy; the runtime's CPU
// per fan-out is what our code can change.
function workerdCpu() {
  try {
    const pids = readdirSync("/proc").filter((d) => {
      if (!/^\d+$/.test(d)) return false;
      try {
        const stat = readFileSync(`/proc/${d}/stat`, "utf8");
        return stat.includes("(workerd)") && Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === process.pid;
      } catch {
        return false;
      }
    });
    if (pids.length !== 1) return null;
    const [pid] = pids;
    return () =>
      readdirSync(`/proc/${pid}/task`).reduce((ns, tid) => ns + Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]), 0) / 1e6;
  } catch {
    return null;
  }
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const fmt = (ms) => `${ms.toFixed(1)} ms`;

// A subscriber on node:http (llhttp, no WHATWG streams): each chunk of the
// response is stamped on arrival and parsed later (setImmediate), so that
// parsing one subscriber's event does not delay the stamp of the next one's
// in the same turn. An event's time is the arrival of the chunk that ended it.
// Each subscriber is its own client (CF-Connecting-IP), as 100 viewers would
// be: the worker caps streams per job and client address.
let subscriberCount = 0;
function openStream(base, jobId) {
  subscriberCount += 1;
  const client = `198.18.${subscriberCount >> 8 & 255}.${subscriberCount & 255}`;
  let firstSeen;
  const first = new Promise((r) => (firstSeen = r));
  let terminalAt = null;
  const seen = [];
  let at = 0;
  const parser = createParser({
    onEvent(message) {
      firstSeen();
      seen.push(`${message.id}:${JSON.parse(message.data).status}`);
      if (terminalAt === null && /"status":"COMPLETED"/.test(message.data)) terminalAt = at;
    },
  });
  const opened = new Promise((resolveOpen, reject) => {
    const req = get(`${base}/api/v2/jobs/${jobId}/events`, { agent: false, headers: { "cf-connecting-ip": client } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`events: HTTP ${res.statusCode}`));
      resolveOpen(res);
    });
    req.on("error", reject);
  });
  const done = opened.then(
    (res) =>
      new Promise((resolveDone) => {
        const pending = [];
        const decoder = new TextDecoder();
        const drain = () => {
          for (const [arrived, chunk] of pending.splice(0)) {
            at = arrived;
            parser.feed(decoder.decode(chunk, { stream: true }));
          }
        };
        const timer = setTimeout(() => res.destroy(), 30000);
        res.on("data", (chunk) => {
          if (pending.push([performance.now(), chunk]) === 1) setImmediate(drain);
        });
        res.on("error", () => {}); // a reset ends the stream like a close; "close" reports it
        res.on("close", () => {
          clearTimeout(timer);
          drain();
          if (terminalAt === null) console.log(`job ${jobId}: events ${seen.join(" ")}, ended ${res.complete}`);
          resolveDone(terminalAt);
        });
      }),
  );
  return within(10000, opened, "events connect")
    .then(() => within(10000, first, "first event"))
    .then(() => ({ done })); // wrapped: an async function returning a promise would wait for it
}

async function submit(base, prompt) {
  const res = await fetch(`${base}/api/v2/videos/generate`, {
    method: "POST",
    headers: { "content-type": "application/json", "cf-connecting-ip": "192.0.2.1" },
    body: JSON.stringify({ prompt, model: "sora-2" }),
  });
  if (res.status !== 202) throw new Error(`generate: HTTP ${res.status}`);
  return (await res.json()).jobId;
}

function completedWebhook(jobId) {
  return JSON.stringify({
    event: "completed",
    jobId,
    status: "COMPLETED",
    progress: 100,
    result: `https://cdn.test/${jobId}.mp4`,
    model: "sora-2",
    creditCost: 4,
  });
}

async function deliver(base, body) {
  const res = await fetch(`${base}/api/webhooks/apiframe`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-webhook-signature": sign(body), "x-webhook-event": "completed" },
    body,
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`webhook: HTTP ${res.status}`);
  if (process.env.BENCH_DEBUG) console.log(`webhook -> ${text}`);
}

let code = 1;
const sim = await startSim(["--job-ms", String(JOB_MS)]);
let worker;
let plain;
try {
  worker = await startWorker({ simUrl: sim.url, vars: { RELAY_FALLBACK_MS: "600000" }, rateLimit: null });
  const cpu = workerdCpu(); // before the second worker starts: the relay worker's is the only workerd
  // The polling baseline runs through a worker without relay, so that no read is answered from relay state.
  plain = await startWorker({ simUrl: sim.url, vars: { PUBLIC_URL: undefined }, rateLimit: null });
  const W = worker.url;
  const { run } = await import("sora-edge");

  // 1. Upstream requests per job.
  const perJob = {};
  for (const transport of ["auto", "poll"]) {
    const before = await sim.control.stats();
    const jobs = await within(
      JOB_MS * 4,
      Promise.all(
        Array.from({ length: RUNS }, (_, i) =>
          run(
            { prompt: `bench ${transport} ${i}` },
            { baseUrl: `${transport === "auto" ? W : plain.url}/api`, transport, deadlineMs: JOB_MS * 3 },
          ),
        ),
      ),
      `${RUNS} runs with transport ${transport}`,
    );
    const after = await sim.control.stats();
    const reads = jobs.reduce((n, j) => n + (after.statusReads[j.id] ?? 0) - (before.statusReads[j.id] ?? 0), 0);
    const generates = after.requests.generate - before.requests.generate;
    perJob[transport] = { generates: generates / RUNS, reads: reads / RUNS };
  }
  console.log(
    `upstream requests per job (${RUNS} jobs of ${JOB_MS / 1000} s each): ` +
      `relay ${(perJob.auto.generates + perJob.auto.reads).toFixed(1)} (${perJob.auto.generates.toFixed(1)} generate + ${perJob.auto.reads.toFixed(1)} status reads), ` +
      `polling ${(perJob.poll.generates + perJob.poll.reads).toFixed(1)} (${perJob.poll.generates.toFixed(1)} generate + ${perJob.poll.reads.toFixed(1)} status reads)`,
  );

  // 2. Webhook arrival -> subscriber event, one job at a time.
  await sim.control.config({ dropWebhooks: true, jobMs: 600000 });
  const latencies = [];
  for (let i = 0; i < JOBS; i++) {
    const jobId = await submit(W, `latency ${i}`);
    const { done: terminal } = await openStream(W, jobId);
    const body = completedWebhook(jobId);
    const sent = performance.now();
    await deliver(W, body);
    const at = await terminal;
    if (at === null) throw new Error(`job ${i} (${jobId}): no COMPLETED event`);
    latencies.push(at - sent);
  }
  latencies.sort((a, b) => a - b);
  console.log(
    `webhook -> subscriber event over ${JOBS} jobs: p50 ${fmt(pct(latencies, 50))}, p95 ${fmt(pct(latencies, 95))}, max ${fmt(latencies.at(-1))}`,
  );

  // 3. One webhook, FANOUT subscribers of one job, FANOUT_ROUNDS times (fresh job each).
  const arrivals = [];
  const roundP50 = [];
  const cpuMs = [];
  for (let round = 0; round < FANOUT_ROUNDS; round++) {
    const jobId = await submit(W, `fan-out ${round}`);
    const streams = await Promise.all(Array.from({ length: FANOUT }, () => openStream(W, jobId)));
    const cpuBefore = cpu?.();
    const sent = performance.now();
    await deliver(W, completedWebhook(jobId));
    const these = (await Promise.all(streams.map((s) => s.done))).map((at) => (at === null ? Infinity : at - sent)).sort((a, b) => a - b);
    if (cpu) cpuMs.push(cpu() - cpuBefore);
    roundP50.push(pct(these, 50));
    arrivals.push(...these);
  }
  arrivals.sort((a, b) => a - b);
  roundP50.sort((a, b) => a - b);
  cpuMs.sort((a, b) => a - b);
  const missed = arrivals.filter((a) => a === Infinity).length;
  console.log(
    `one webhook -> ${FANOUT} subscribers of one job: p50 ${fmt(pct(arrivals, 50))}, p95 ${fmt(pct(arrivals, 95))}, missed ${missed}` +
      ` (${FANOUT_ROUNDS} rounds, p50 per round ${fmt(roundP50[0])}-${fmt(roundP50.at(-1))}` +
      (cpu ? `, workerd CPU per round median ${fmt(pct(cpuMs, 50))})` : ")"),
  );
  code = missed === 0 ? 0 : 1;
} catch (e) {
  console.log(`relay-latency: FAILED: ${e && e.stack}`);
} finally {
  if (worker) await worker.stop().catch(() => {});
  if (plain) await plain.stop().catch(() => {});
  await sim.stop();
}
process.exit(code);
