// No one spends more than allowed (issue 21): the quota ledger in workerd,
// counted at the simulator. Every generate here is anonymous, and the
// per-minute rate limiter is off (RATE_LIMIT=off) so that the ledger is the
// only brake measured.
//
//   node --test --test-reporter=spec tests/worker/ledger.test.mjs
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { startSim, startWorker, within, sleep } from "./harness.mjs";
import { mintHs256 } from "../support/auth.mjs";

const T = { timeout: 120000 };
const json = { "content-type": "application/json" };

let sim;
before(async () => {
  sim = await startSim(["--job-ms", "600000"]);
});
after(async () => {
  await sim?.stop();
});

const stats = () => sim.control.stats();

/** A worker with these quota settings (anonymous, no rate limiter). */
const quotaWorker = (vars, options = {}) =>
  startWorker({ simUrl: sim.url, rateLimit: null, vars: { RATE_LIMIT: "off", ...vars }, ...options });

/** One generate from client address `ip`. */
async function generate(base, { ip = "203.0.113.1", duration = 4, prompt = "a ledger job", key, model = "sora-2" } = {}) {
  const body = { prompt, model, ...(duration === undefined ? {} : { soraParams: { duration } }) };
  const headers = { ...json, "cf-connecting-ip": ip, ...(key ? { "idempotency-key": key } : {}) };
  const res = await within(30000, fetch(`${base}/api/v2/videos/generate`, { method: "POST", headers, body: JSON.stringify(body) }), "generate");
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: text ? JSON.parse(text) : null };
}

async function usage(base, ip = "203.0.113.1") {
  const res = await within(10000, fetch(`${base}/api/usage`, { headers: { "cf-connecting-ip": ip } }), "usage");
  assert.equal(res.status, 200, "GET /api/usage");
  return res.json();
}

/** Polls `check()` until it holds, at most `tries` times; its last value. */
async function until(tries, what, check) {
  let last;
  for (let i = 0; i < tries; i++) {
    last = await check();
    if (last) return last;
    await sleep(100);
  }
  assert.fail(`${what}: not within ${tries} tries (last: ${JSON.stringify(last)})`);
}

describe("reservations are exact under concurrency", () => {
  test("one subject: 200 concurrent 4 s generates with a 40 s daily quota: exactly 10 created, 190 quota_exceeded", T, async () => {
    const w = await quotaWorker({ QUOTA_USER_DAILY_SECONDS: "40" });
    try {
      const before = await stats();
      const answers = await Promise.all(Array.from({ length: 200 }, () => generate(w.url)));
      const after = await stats();
      assert.equal(after.jobsCreated - before.jobsCreated, 10, "jobs created upstream");
      assert.equal(answers.filter((a) => a.status === 202).length, 10, "202s");
      const refused = answers.filter((a) => a.status === 429);
      assert.equal(refused.length, 190, "429s");
      for (const r of refused) {
        assert.equal(r.json.error.code, "quota_exceeded");
        assert.equal(r.json.error.limit, "user_daily");
        assert.equal(r.json.error.left, 0);
        assert.ok(Number(r.headers.get("retry-after")) > 0 && Number(r.headers.get("retry-after")) <= 86400, "Retry-After runs to the day's end");
      }
      // The library names it: code quota_exceeded, from the worker, with the wait.
      const { generate: libraryGenerate } = await import("sora-edge");
      const spent = await libraryGenerate(
        { prompt: "one more", duration: 4 },
        { baseUrl: `${w.url}/api`, headers: { "cf-connecting-ip": "203.0.113.1" }, maxRetries: 0 },
      ).then(() => null, (e) => e);
      assert.equal(spent?.code, "quota_exceeded", String(spent));
      assert.equal(spent.source, "edge");
      assert.ok(spent.retryAfterMs > 0, `retryAfterMs ${spent.retryAfterMs}`);
      assert.equal(spent.retryable, false, "the library does not retry it by itself");
      const { usage: libraryUsage } = await import("sora-edge");
      const figures = await libraryUsage({ baseUrl: `${w.url}/api`, headers: { "cf-connecting-ip": "203.0.113.1" } });
      assert.deepEqual(
        { left: figures.leftSeconds, limit: figures.limitSeconds, held: figures.usedSeconds + figures.reservedSeconds },
        { left: 0, limit: 40, held: 40 },
        "usage() in the library",
      );
      const mine = await usage(w.url);
      assert.equal(mine.reservedSeconds + mine.usedSeconds, 40, JSON.stringify(mine));
      assert.equal(mine.limitSeconds, 40);
      assert.equal(mine.leftSeconds, 0);
      assert.ok(mine.resetsAt > Date.now() && /^\d{4}-\d{2}-\d{2}$/.test(mine.day), JSON.stringify(mine));
    } finally {
      await w.stop();
    }
  });

  test("in flight: the same with QUOTA_USER_IN_FLIGHT=3: exactly 3 created", T, async () => {
    const w = await quotaWorker({ QUOTA_USER_DAILY_SECONDS: "40", QUOTA_USER_IN_FLIGHT: "3" });
    try {
      const before = await stats();
      const answers = await Promise.all(Array.from({ length: 200 }, () => generate(w.url, { ip: "203.0.113.2" })));
      const after = await stats();
      assert.equal(after.jobsCreated - before.jobsCreated, 3, "jobs created upstream");
      const refused = answers.filter((a) => a.status === 429);
      assert.equal(refused.length, 197);
      assert.ok(refused.every((r) => r.json.error.limit === "user_in_flight"), "the in-flight limit");
      assert.ok(refused.every((r) => Number(r.headers.get("retry-after")) <= 60), "a short Retry-After: a job settling frees a slot");
    } finally {
      await w.stop();
    }
  });

  test("global cap: 10 subjects × 20 concurrent 4 s generates, 40 s each, 100 s in all: exactly 25 created", T, async () => {
    const w = await quotaWorker({ QUOTA_USER_DAILY_SECONDS: "40", QUOTA_GLOBAL_DAILY_SECONDS: "100" });
    try {
      const before = await stats();
      const answers = await Promise.all(
        Array.from({ length: 200 }, (_, i) => generate(w.url, { ip: `198.18.0.${i % 10}` })),
      );
      const after = await stats();
      assert.equal(after.jobsCreated - before.jobsCreated, 25, "jobs created upstream");
      assert.equal(answers.filter((a) => a.status === 202).length, 25);
      assert.equal(answers.filter((a) => a.status === 429).length, 175);
    } finally {
      await w.stop();
    }
  });
});

describe("what a job counts for, and its fate", () => {
  test("no duration: a generate without one counts as 4 s", T, async () => {
    const w = await quotaWorker({ QUOTA_USER_DAILY_SECONDS: "8" });
    try {
      const before = await stats();
      assert.equal((await generate(w.url, { duration: undefined, ip: "203.0.113.3" })).status, 202);
      assert.equal((await usage(w.url, "203.0.113.3")).reservedSeconds, 4);
      assert.equal((await generate(w.url, { duration: undefined, ip: "203.0.113.3" })).status, 202);
      const third = await generate(w.url, { duration: undefined, ip: "203.0.113.3" });
      assert.equal(third.status, 429, third.text);
      assert.equal((await stats()).jobsCreated - before.jobsCreated, 2);
    } finally {
      await w.stop();
    }
  });

  test("sora-2-pro counts QUOTA_PRO_WEIGHT times its duration", T, async () => {
    const w = await quotaWorker({ QUOTA_USER_DAILY_SECONDS: "20", QUOTA_PRO_WEIGHT: "3" });
    try {
      assert.equal((await generate(w.url, { model: "sora-2-pro", duration: 4, ip: "203.0.113.9" })).status, 202);
      assert.equal((await usage(w.url, "203.0.113.9")).reservedSeconds, 12);
      const again = await generate(w.url, { model: "sora-2-pro", duration: 4, ip: "203.0.113.9" });
      assert.equal(again.status, 429);
      assert.equal(again.json.error.left, 8);
    } finally {
      await w.stop();
    }
  });

  test("refund: an 8 s job that fails upstream is refunded without any webhook (relay off), and the next 8 s generate is accepted", T, async () => {
    const w = await quotaWorker({ QUOTA_USER_DAILY_SECONDS: "8", PUBLIC_URL: undefined, RELAY_FALLBACK_MS: "300" });
    try {
      const ip = "203.0.113.4";
      const failing = await generate(w.url, { duration: 8, ip, prompt: "a job that fails [fail] [ms=300]" });
      assert.equal(failing.status, 202, failing.text);
      assert.equal((await generate(w.url, { duration: 8, ip })).status, 429, "spent while it runs");
      // Nobody reads the job: the job's object polls for its fate on its alarm.
      const settled = await until(100, "the refund", async () => {
        const u = await usage(w.url, ip);
        return u.reservedSeconds === 0 && u.usedSeconds === 0 ? u : false;
      });
      assert.equal(settled.leftSeconds, 8);
      const next = await generate(w.url, { duration: 8, ip, prompt: "the next job [ms=300]" });
      assert.equal(next.status, 202, next.text);
      const committed = await until(100, "the commit", async () => {
        const u = await usage(w.url, ip);
        return u.usedSeconds === 8 ? u : false;
      });
      assert.equal(committed.reservedSeconds, 0);
    } finally {
      await w.stop();
    }
  });

  test("ambiguous outcome: a generate whose answer is lost, then a retry with the same Idempotency-Key: 1 job, 1 reservation, committed once", T, async () => {
    const w = await quotaWorker({ QUOTA_USER_DAILY_SECONDS: "8", RELAY_FALLBACK_MS: "300" });
    try {
      const ip = "203.0.113.5";
      const key = randomUUID();
      const before = await stats();
      await sim.control.faults("generate", ["lost"]);
      const lost = await generate(w.url, { duration: 4, ip, key, prompt: "a lost answer [ms=500]" });
      assert.ok(lost.status >= 500, `the worker could not tell: ${lost.status} ${lost.text}`);
      assert.equal((await usage(w.url, ip)).reservedSeconds, 4, "held while ambiguous");
      const retry = await generate(w.url, { duration: 4, ip, key, prompt: "a lost answer [ms=500]" });
      assert.equal(retry.status, 202, retry.text);
      assert.equal((await stats()).jobsCreated - before.jobsCreated, 1, "one job upstream");
      assert.equal((await usage(w.url, ip)).reservedSeconds, 4, "one reservation");
      const done = await until(100, "the commit", async () => {
        const u = await usage(w.url, ip);
        return u.usedSeconds > 0 && u.reservedSeconds === 0 ? u : false;
      });
      assert.equal(done.usedSeconds, 4, "committed once");
    } finally {
      await w.stop();
    }
  });
});

test("a plan in the token: the quota_seconds claim overrides QUOTA_USER_DAILY_SECONDS for its subject", T, async () => {
  const secret = "a-ledger-test-secret-of-at-least-32-bytes";
  const w = await quotaWorker({ AUTH_ANONYMOUS: undefined, AUTH_HS256_SECRET: secret, QUOTA_USER_DAILY_SECONDS: "8" });
  try {
    const gen = async (token) => {
      const res = await fetch(`${w.url}/api/v2/videos/generate`, {
        method: "POST",
        headers: { ...json, authorization: `Bearer ${token}` },
        body: JSON.stringify({ prompt: "a planned job", model: "sora-2", soraParams: { duration: 4 } }),
      });
      return res.status;
    };
    const pro = await mintHs256(secret, { sub: "pro-user", quota_seconds: 16 }, { expiresIn: 600 });
    const free = await mintHs256(secret, { sub: "free-user" }, { expiresIn: 600 });
    const proStatuses = [];
    for (let i = 0; i < 5; i++) proStatuses.push(await gen(pro));
    const freeStatuses = [];
    for (let i = 0; i < 3; i++) freeStatuses.push(await gen(free));
    assert.deepEqual(proStatuses, [202, 202, 202, 202, 429], "16 s for the pro plan");
    assert.deepEqual(freeStatuses, [202, 202, 429], "8 s by default");
    const usage = await (await fetch(`${w.url}/api/usage`, { headers: { authorization: `Bearer ${pro}` } })).json();
    assert.equal(usage.limitSeconds, 16, JSON.stringify(usage));
    assert.equal(usage.leftSeconds, 0);
  } finally {
    await w.stop();
  }
});

test("the operator: the day's audit rows as NDJSON with ADMIN_TOKEN, a grant and a block, each an audit row too", T, async () => {
  const admin = "an-admin-token-for-the-ledger-test";
  const w = await quotaWorker({ QUOTA_USER_DAILY_SECONDS: "4", ADMIN_TOKEN: admin });
  const ip = "203.0.113.7";
  const asAdmin = (path, init = {}) =>
    fetch(`${w.url}${path}`, { ...init, headers: { ...json, authorization: `Bearer ${admin}`, ...(init.headers ?? {}) } });
  try {
    assert.equal((await fetch(`${w.url}/api/admin/ledger`)).status, 401, "no token");
    assert.equal((await fetch(`${w.url}/api/admin/ledger`, { headers: { authorization: "Bearer wrong" } })).status, 401, "a wrong token");
    assert.equal((await generate(w.url, { ip })).status, 202);
    assert.equal((await generate(w.url, { ip })).status, 429, "spent");
    const granted = await asAdmin("/api/admin/ledger/grant", { method: "POST", body: JSON.stringify({ subject: `ip:${ip}`, seconds: 4 }) });
    assert.equal(granted.status, 200, await granted.clone().text());
    assert.equal((await generate(w.url, { ip })).status, 202, "4 s more after the grant");
    assert.equal((await usage(w.url, ip)).limitSeconds, 8);
    const blocked = await asAdmin("/api/admin/ledger/block", { method: "POST", body: JSON.stringify({ subject: `ip:${ip}` }) });
    assert.equal(blocked.status, 200);
    const refused = await generate(w.url, { ip });
    assert.equal(refused.status, 429);
    assert.equal(refused.json.error.limit, "blocked");
    const day = new Date().toISOString().slice(0, 10);
    const res = await asAdmin(`/api/admin/ledger?day=${day}`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type"), /ndjson/);
    const rows = (await res.text()).trim().split("\n").map((line) => JSON.parse(line)).filter((r) => r.subject === `ip:${ip}`);
    assert.deepEqual(rows.map((r) => r.event), ["reserve", "grant (operator)", "reserve", "block (operator)"]);
    assert.ok(rows.every((r) => typeof r.at === "number" && typeof r.seconds === "number"), JSON.stringify(rows));
    assert.equal((await asAdmin("/api/admin/ledger?day=yesterday")).status, 400, "a malformed day");
  } finally {
    await w.stop();
  }
});

test("ambiguous outcome that no client retries: the worker replays it once itself with the same key, learns the job and settles it", T, async () => {
  const w = await quotaWorker({ QUOTA_USER_DAILY_SECONDS: "8", QUOTA_AMBIGUOUS_TTL: "2000", RELAY_FALLBACK_MS: "300" });
  try {
    const ip = "203.0.113.8";
    const before = await stats();
    await sim.control.faults("generate", ["lost"]);
    const lost = await generate(w.url, { duration: 4, ip, prompt: "an answer nobody retries [ms=400]" });
    assert.ok(lost.status >= 500, `ambiguous: ${lost.status} ${lost.text}`);
    const done = await until(150, "the replay and the commit", async () => {
      const u = await usage(w.url, ip);
      return u.usedSeconds === 4 && u.reservedSeconds === 0 ? u : false;
    });
    assert.equal(done.leftSeconds, 4);
    const after = await stats();
    assert.equal(after.jobsCreated - before.jobsCreated, 1, "one job upstream: the replay found it");
    assert.equal(after.requests.generate - before.requests.generate, 2, "the lost generate and the worker's one replay");
  } finally {
    await w.stop();
  }
});

describe("fail closed", () => {
  test("a malformed QUOTA_* value: 503 not_configured naming it, 0 forwarded", T, async () => {
    const w = await quotaWorker({ QUOTA_USER_DAILY_SECONDS: "forty" });
    try {
      const before = await stats();
      const res = await generate(w.url);
      assert.equal(res.status, 503);
      assert.equal(res.json.error.code, "not_configured");
      assert.match(res.json.error.message, /QUOTA_USER_DAILY_SECONDS/);
      assert.equal((await stats()).requests.generate, before.requests.generate, "nothing forwarded");
    } finally {
      await w.stop();
    }
  });

  test("the ledger failing (a test-build fault): 503 and 0 forwarded", T, async () => {
    const w = await quotaWorker({ QUOTA_USER_DAILY_SECONDS: "40", TEST_LEDGER_FAULT: "on" }, { testRoutes: true });
    try {
      const before = await stats();
      const res = await generate(w.url);
      assert.equal(res.status, 503, res.text);
      assert.equal((await stats()).requests.generate, before.requests.generate, "nothing forwarded");
    } finally {
      await w.stop();
    }
  });
});

test("restart: the ledger's figures persist across a workerd restart", T, async () => {
  const dir = mkdtempSync(join(tmpdir(), "sora-edge-ledger-"));
  const ip = "203.0.113.6";
  try {
    const first = await quotaWorker({ QUOTA_USER_DAILY_SECONDS: "40" }, { persistDir: dir });
    let before;
    try {
      assert.equal((await generate(first.url, { duration: 8, ip })).status, 202);
      assert.equal((await generate(first.url, { duration: 4, ip })).status, 202);
      before = await usage(first.url, ip);
      assert.equal(before.reservedSeconds + before.usedSeconds, 12);
    } finally {
      await first.stop();
    }
    const second = await quotaWorker({ QUOTA_USER_DAILY_SECONDS: "40" }, { persistDir: dir });
    try {
      const after = await usage(second.url, ip);
      assert.deepEqual(
        { reserved: after.reservedSeconds, used: after.usedSeconds, left: after.leftSeconds },
        { reserved: before.reservedSeconds, used: before.usedSeconds, left: before.leftSeconds },
      );
    } finally {
      await second.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("restart mid-job: a job in flight when workerd stops settles exactly once after the restart, with no client reading it", T, async () => {
  const dir = mkdtempSync(join(tmpdir(), "sora-edge-ledger-"));
  const ip = "203.0.113.7";
  // Webhooks go to the first worker's address, dead after the stop: only the
  // job object's persisted fallback alarm can settle the job.
  const vars = { QUOTA_USER_DAILY_SECONDS: "40", RELAY_FALLBACK_MS: "300" };
  try {
    const first = await quotaWorker(vars, { persistDir: dir });
    let jobId;
    try {
      const res = await generate(first.url, { duration: 8, ip, prompt: "in flight across a restart [ms=1500]" });
      assert.equal(res.status, 202, res.text);
      jobId = res.json.jobId;
      const held = await usage(first.url, ip);
      assert.deepEqual({ reserved: held.reservedSeconds, used: held.usedSeconds }, { reserved: 8, used: 0 });
    } finally {
      await first.stop();
    }
    const readsBefore = (await stats()).statusReads?.[jobId] ?? 0;
    await sleep(2000); // the job completes upstream while no worker runs
    const second = await quotaWorker(vars, { persistDir: dir });
    try {
      const settled = await until(100, "the job committed after the restart", async () => {
        const u = await usage(second.url, ip);
        return u.usedSeconds > 0 ? u : false;
      });
      assert.deepEqual({ reserved: settled.reservedSeconds, used: settled.usedSeconds }, { reserved: 0, used: 8 });
      assert.ok(((await stats()).statusReads?.[jobId] ?? 0) > readsBefore, "the alarm read the job upstream");
      await sleep(1500); // later alarms or reads must not commit it again
      const later = await usage(second.url, ip);
      assert.deepEqual({ reserved: later.reservedSeconds, used: later.usedSeconds }, { reserved: 0, used: 8 });
    } finally {
      await second.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
