// A generate's cost of identity and of the quota ledger (issues 20, 21):
// generates through the real worker in workerd against the simulator,
// anonymous without the ledger (the baseline), anonymous with the ledger on
// (quotas set: every generate reserves, then attaches its job), and in HS256
// mode with a bearer token (no ledger), alternating rounds in this one process. Each generate comes from one of 1,000 client
// addresses (anonymous mode: 1,000 subjects), 16 at a time; the per-minute
// rate limiter is off, so the ledger is the only difference. Prints the
// bench table's rows: generate p50 with the ledger against without, and
// generates per second through the ledger.
//
//   node bench/ledger.mjs   (BENCH_LEDGER_TOTAL=600 generates per round, BENCH_LEDGER_ROUNDS=3)
import { createHmac } from "node:crypto";
import { startSim, startWorker } from "../tests/worker/harness.mjs";
import { median, pct, ms, row } from "./lib.mjs";

const TOTAL = Number(process.env.BENCH_LEDGER_TOTAL ?? 600);
const ROUNDS = Number(process.env.BENCH_LEDGER_ROUNDS ?? 3);
const CONCURRENCY = 16;
const SUBJECTS = 1000;

const HS256_SECRET = "bench-secret-of-at-least-thirty-two-bytes";
const b64url = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
/** An HS256 token for `sub`, minted with node:crypto (the bench's, not the product's). */
function token(sub) {
  const signed = `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url({ sub, exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${signed}.${createHmac("sha256", HS256_SECRET).update(signed).digest("base64url")}`;
}
const TOKENS = Array.from({ length: SUBJECTS }, (_, n) => token(`user-${n}`));

let next = 0;
async function generates(base, total, withToken = false) {
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
          headers: {
            "content-type": "application/json",
            "cf-connecting-ip": `10.${n >> 8}.${n & 255}.1`,
            ...(withToken ? { authorization: `Bearer ${TOKENS[n]}` } : {}),
          },
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
const hs256 = await startWorker({ simUrl: sim.url, rateLimit: null, vars: { ...common, AUTH_ANONYMOUS: undefined, AUTH_HS256_SECRET: HS256_SECRET } });
let code = 1;
try {
  const targets = [
    { name: "without the ledger", w: off, latencies: [], seconds: 0, errors: 0, n: 0 },
    { name: "with the ledger", w: on, latencies: [], seconds: 0, errors: 0, n: 0 },
    { name: "HS256 token", w: hs256, token: true, latencies: [], seconds: 0, errors: 0, n: 0 },
  ];
  // Warm-up; the first request of each token is a WebCrypto verify, later ones hit the cache.
  for (const t of targets) await generates(t.w.url, SUBJECTS, t.token);
  for (let r = 0; r < ROUNDS; r++) {
    for (const t of r % 2 ? [...targets].reverse() : targets) {
      const res = await generates(t.w.url, TOTAL, t.token);
      t.latencies.push(...res.latencies);
      t.seconds += res.seconds;
      t.errors += res.errors;
      t.n += TOTAL;
    }
  }
  const [without, withLedger, withToken] = targets;
  for (const t of targets) {
    if (t.errors) throw new Error(`${t.name}: ${t.errors} generates were not 202`);
    t.sorted = [...t.latencies].sort((a, b) => a - b);
  }
  const load = `${ROUNDS}×${TOTAL} generates, ${CONCURRENCY} concurrent, from ${SUBJECTS} client addresses (subjects), loopback`;
  console.log(row("ledger", `generate through the worker without the ledger — ${load}`, `p50 ${ms(median(without.latencies))}, p99 ${ms(pct(without.sorted, 99))}, ${(without.n / without.seconds).toFixed(0)} generates/s`));
  console.log(row("ledger", "generate with the ledger (reserve, then attach the job)", `p50 ${ms(median(withLedger.latencies))}, p99 ${ms(pct(withLedger.sorted, 99))}, **${(withLedger.n / withLedger.seconds).toFixed(0)} generates/s**`));
  console.log(row("ledger", "with / without", `p50 ${(median(withLedger.latencies) / median(without.latencies)).toFixed(2)}×, throughput ${((withLedger.n / withLedger.seconds) / (without.n / without.seconds)).toFixed(2)}×`, "(no goal)"));
  console.log(row("identity", "generate in HS256 mode, a bearer token per subject (verified once, then cached)", `p50 ${ms(median(withToken.latencies))}, p99 ${ms(pct(withToken.sorted, 99))}; against anonymous p50 ${(median(withToken.latencies) / median(without.latencies)).toFixed(2)}×`, "(no goal)"));
  code = 0;
} finally {
  await on.stop();
  await off.stop();
  await hs256.stop();
  await sim.stop();
}
process.exit(code);
