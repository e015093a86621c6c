// The quota ledger (issue 21): generates through the real worker in workerd
// against the simulator, with the ledger on (quotas set, every generate
// reserves, then attaches its job) and off (no QUOTA_* set), alternating
// rounds in this one process. Each generate comes from one of 1,000 client
// addresses (anonymous mode: 1,000 subjects), 16 at a time; the per-minute
// rate limiter is off, so the ledger is the only difference. Prints the
// bench table's rows: generate p50 with the ledger against without, and
// generates per second through the ledger.
//
//   node bench/ledger.mjs   (BENCH_LEDGER_TOTAL=600 generates per round, BENCH_LEDGER_ROUNDS=3)
import { startSim, startWorker } from "../tests/worker/harness.mjs";
import { median, pct, ms, row } from "./lib.mjs";

const TOTAL = Number(process.env.BENCH_LEDGER_TOTAL ?? 600);
const ROUNDS = Number(process.env.BENCH_LEDGER_ROUNDS ?? 3);
const CONCURRENCY = 16;
const SUBJECTS = 1000;

let next = 0;
async function generates(base, total) {
  const latencies = [];
  let errors = 0;
  let issued = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (issued < total) {
        issued += 1;
        const n = next++ % SUBJECTS;
        const t = performance.now();
        const res = await fetch(`${base}/api/v2/videos/generate`, {
          method: "POST",
          headers: { "content-type": "application/json", "cf-connecting-ip": `10.${n >> 8}.${n & 255}.1` },
          body: JSON.stringify({ prompt: "a ledger bench job", model: "sora-2", soraParams: { duration: 4 } }),
        });
        await res.arrayBuffer();
        latencies.push(performance.now() - t);
        if (res.status !== 202) errors += 1;
      }
    }),
  );
  return { latencies, seconds: (performance.now() - t0) / 1000, errors };
}

const sim = await startSim(["--job-ms", "600000"]);
const common = { RATE_LIMIT: "off", PUBLIC_URL: undefined, RELAY_FALLBACK_MS: "86400000" };
const on = await startWorker({ simUrl: sim.url, rateLimit: null, vars: { ...common, QUOTA_USER_DAILY_SECONDS: "100000", QUOTA_GLOBAL_DAILY_SECONDS: "100000000" } });
const off = await startWorker({ simUrl: sim.url, rateLimit: null, vars: common });
let code = 1;
try {
  const targets = [
    { name: "without the ledger", w: off, latencies: [], seconds: 0, errors: 0, n: 0 },
    { name: "with the ledger", w: on, latencies: [], seconds: 0, errors: 0, n: 0 },
  ];
  for (const t of targets) await generates(t.w.url, 100); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    for (const t of r % 2 ? [...targets].reverse() : targets) {
      const res = await generates(t.w.url, TOTAL);
      t.latencies.push(...res.latencies);
      t.seconds += res.seconds;
      t.errors += res.errors;
      t.n += TOTAL;
    }
  }
  const [without, withLedger] = targets;
  for (const t of targets) {
    if (t.errors) throw new Error(`${t.name}: ${t.errors} generates were not 202`);
    t.sorted = [...t.latencies].sort((a, b) => a - b);
  }
  const load = `${ROUNDS}×${TOTAL} generates, ${CONCURRENCY} concurrent, from ${SUBJECTS} client addresses (subjects), loopback`;
  console.log(row("ledger", `generate through the worker without the ledger — ${load}`, `p50 ${ms(median(without.latencies))}, p99 ${ms(pct(without.sorted, 99))}, ${(without.n / without.seconds).toFixed(0)} generates/s`));
  console.log(row("ledger", "generate with the ledger (reserve, then attach the job)", `p50 ${ms(median(withLedger.latencies))}, p99 ${ms(pct(withLedger.sorted, 99))}, **${(withLedger.n / withLedger.seconds).toFixed(0)} generates/s**`));
  console.log(row("ledger", "with / without", `p50 ${(median(withLedger.latencies) / median(without.latencies)).toFixed(2)}×, throughput ${((withLedger.n / withLedger.seconds) / (without.n / without.seconds)).toFixed(2)}×`, "(no goal)"));
  code = 0;
} finally {
  await on.stop();
  await off.stop();
  await sim.stop();
}
process.exit(code);
