// Issue 20, "Who may spend": the acceptance tests of README.md "Deploy for
// real" and the identity rules of docs/API.md, against the real worker
// (worker/build) in workerd (Miniflare 4) and the Apiframe simulator. Every
// refusal is checked at the simulator's counters: nothing forwarded means
// `/__sim/stats` did not move. Every response (status line aside: headers and
// body) is scanned for the API key, the HS256 and Turnstile secrets in all of
// the key's encodings, and for every token a test sent; workerd's own output
// (startWorker's `onLog`) is kept and scanned at the end.
//
//   cargo build --release -p apiframe-sim && bash scripts/build-worker.sh
//   node --test --test-reporter=spec tests/worker/auth.test.mjs
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, createHmac, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { API_KEY, ROOT, startSim, startWorker, readEvents, within, sleep, freePort } from "./harness.mjs";
import { nextClientIp, upstreamCounts } from "./client.mjs";
import {
  generateKeys,
  generateSigningKey,
  startJwksServer,
  startTurnstile,
  mintHs256,
  mintRs256,
  mintEs256,
  mintOfLength,
  hostileHs256,
  hostileJwks,
  NOT_JWTS,
  randomSecret,
  nowS,
  createLeakScanner,
  fencedBlockAfter,
} from "../support/auth.mjs";

// ------------------------------------------------------- workerd's output

/**
 * workerd's stdout and stderr: given to startWorker's `onLog`, and, should a
 * harness not take `onLog`, Miniflare's default pipe prints them with
 * console.log / console.error, which are hooked here as well.
 */
const logLines = [];
const onLog = (text) => {
  for (const line of String(text).split("\n")) if (line.trim()) logLines.push(line);
};
for (const name of ["log", "error", "warn", "info"]) {
  const original = console[name].bind(console);
  console[name] = (...args) => {
    logLines.push(args.map((a) => (typeof a === "string" ? a : String(a))).join(" "));
    original(...args);
  };
}

// ------------------------------------------------------------------ setup

/** Every test is bounded. */
const T = { timeout: 60000 };
const UNKNOWN_ID = "0b6a3c52-1f7e-4a8e-9c1d-2f3e4a5b6c7d";

/** What a client sees must never hold any of these. */
const leak = createLeakScanner();
leak.secret(API_KEY, "API key");

/** Every auth variable left out, so that a worker has exactly the ones a test gives. */
const NO_AUTH = {
  AUTH_JWKS_URL: undefined,
  AUTH_ISSUER: undefined,
  AUTH_AUDIENCE: undefined,
  AUTH_HS256_SECRET: undefined,
  AUTH_HS256_SECRET_PREVIOUS: undefined,
  AUTH_ANONYMOUS: undefined,
  TURNSTILE_SECRET: undefined,
  TURNSTILE_VERIFY_URL: undefined,
};

let sim;
const liveWorkers = new Set();
const servers = [];

before(async () => {
  sim = await startSim(["--job-ms", "1500"]);
});

after(async () => {
  for (const w of [...liveWorkers]) await w.stop().catch(() => {});
  for (const s of servers) await s.close().catch(() => {});
  await sim?.stop();
});

/** The worker with exactly `vars` for auth (and the harness's defaults for the rest). */
async function startAuthWorker(vars) {
  const w = await startWorker({ simUrl: sim.url, vars: { ...NO_AUTH, ...vars }, onLog });
  const handle = {
    url: w.url,
    async stop() {
      if (!liveWorkers.has(handle)) return;
      liveWorkers.delete(handle);
      await w.stop();
    },
  };
  liveWorkers.add(handle);
  return handle;
}

// ----------------------------------------------------------------- client

/**
 * One request as a client makes it, from a fresh CF-Connecting-IP unless `ip`
 * is given; `token` goes in `Authorization: Bearer`. Headers and body are
 * scanned; resolves with `{status, headers, text, json}`.
 */
async function call(base, path, { method = "GET", token, headers = {}, body, ip } = {}) {
  const h = { "cf-connecting-ip": ip ?? nextClientIp(), ...headers };
  if (token !== undefined) h.authorization = `Bearer ${leak.token(token)}`;
  if (body !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === "content-type")) h["content-type"] = "application/json";
  const where = `${method} ${path.split("?")[0]}`;
  const res = await within(20000, fetch(base + path, { method, headers: h, body }), where);
  leak.scanHeaders(where, res.headers);
  const text = await within(20000, res.text(), `body of ${where}`);
  leak.scan(`${where} body`, text);
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, text, json };
}

const genBody = (prompt = "a lighthouse at dusk") => JSON.stringify({ prompt, model: "sora-2" });

/** POST /api/v2/videos/generate. */
const generate = (base, { token, headers = {}, prompt, ip } = {}) =>
  call(base, "/api/v2/videos/generate", { method: "POST", token, headers, body: genBody(prompt), ip });

/**
 * Opens an event stream and reads it to its end (or `timeoutMs`), scanning
 * everything; a non-stream answer resolves with its status, text and json.
 */
async function openStream(base, path, { token, headers = {}, timeoutMs = 15000 } = {}) {
  const h = { "cf-connecting-ip": nextClientIp(), ...headers };
  if (token !== undefined) h.authorization = `Bearer ${leak.token(token)}`;
  const where = `GET ${path.split("?")[0]}`;
  const res = await within(20000, fetch(base + path, { headers: h }), where);
  leak.scanHeaders(where, res.headers);
  const contentType = res.headers.get("content-type") ?? "";
  if (res.status !== 200 || !contentType.includes("text/event-stream")) {
    const text = await within(20000, res.text(), `body of ${where}`);
    leak.scan(`${where} body`, text);
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: res.status, contentType, text, json, events: [], ended: true };
  }
  const out = await readEvents(res, { timeoutMs });
  for (const ev of out.events) leak.scan(`${where} event`, ev.data);
  return { status: 200, contentType, ...out };
}

/** Asserts the edge's error shape: `{"error":{"code","message","source":"edge"}}`. */
function assertEdgeError(res, status, code, what) {
  const show = (res.text ?? "").slice(0, 300);
  assert.equal(res.status, status, `${what}: status ${res.status}, expected ${status}: ${show}`);
  assert.equal(res.json?.error?.code, code, `${what}: error.code in ${show}`);
  assert.equal(res.json.error.source, "edge", `${what}: error.source in ${show}`);
  assert.ok(typeof res.json.error.message === "string" && res.json.error.message.length > 0, `${what}: error.message`);
}

/** The simulator's counters that move when anything is forwarded. */
const spent = (s) => `${upstreamCounts(s)} authOk=${s.auth.ok} authMissing=${s.auth.missing} authWrong=${s.auth.wrong}`;

/** Runs `fn` and asserts that the simulator saw no request meanwhile; resolves with fn's result. */
async function nothingForwarded(what, fn) {
  const before = await sim.control.stats();
  const out = await fn();
  const after = await sim.control.stats();
  assert.equal(spent(after), spent(before), `${what}: upstream requests`);
  return out;
}

/** Runs `fn` and asserts exactly `generates` generate requests and `created` new jobs at the simulator. */
async function forwarded(what, { generates, created }, fn) {
  const before = await sim.control.stats();
  const out = await fn();
  const after = await sim.control.stats();
  assert.equal(after.requests.generate - before.requests.generate, generates, `${what}: generate requests at the simulator`);
  assert.equal(after.jobsCreated - before.jobsCreated, created, `${what}: jobs created at the simulator`);
  return out;
}

const sha256hex = (text) => createHash("sha256").update(text, "utf8").digest("hex");
const isUuid = (s) => typeof s === "string" && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s);

/** Polls `GET /api/v2/jobs/{id}` as `token` until the job is terminal (bounded). */
async function waitTerminal(base, id, token, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const res = await call(base, `/api/v2/jobs/${id}`, { token });
    if (res.status === 200 && (res.json?.status === "COMPLETED" || res.json?.status === "FAILED")) return res;
    if (Date.now() > deadline) throw new Error(`job ${id} not terminal within ${ms} ms: ${res.status} ${res.text.slice(0, 200)}`);
    await sleep(250);
  }
}

// ============================================================= no mode

describe("no mode configured: nothing is spent", () => {
  let W;
  before(async () => {
    W = (await startAuthWorker({})).url;
  });

  test("generate -> 503 not_configured naming AUTH_JWKS_URL, AUTH_HS256_SECRET, AUTH_ANONYMOUS; nothing forwarded", T, async () => {
    const res = await nothingForwarded("no mode", () => generate(W));
    assertEdgeError(res, 503, "not_configured", "generate");
    for (const name of ["AUTH_JWKS_URL", "AUTH_HS256_SECRET", "AUTH_ANONYMOUS"]) {
      assert.ok(res.json.error.message.includes(name), `message names ${name}: ${res.json.error.message}`);
    }
  });

  test("a token changes nothing: generate with a bearer token -> 503 not_configured", T, async () => {
    const token = await mintHs256(randomSecret(32), { sub: "someone" });
    const res = await nothingForwarded("no mode, token", () => generate(W, { token }));
    assertEdgeError(res, 503, "not_configured", "generate with a token");
  });

  test("job read, event stream and ticket -> 503 not_configured; nothing forwarded", T, async () => {
    await nothingForwarded("no mode reads", async () => {
      assertEdgeError(await call(W, `/api/v2/jobs/${UNKNOWN_ID}`), 503, "not_configured", "job read");
      assertEdgeError(await openStream(W, `/api/v2/jobs/${UNKNOWN_ID}/events`), 503, "not_configured", "event stream");
      assertEdgeError(await call(W, `/api/v2/jobs/${UNKNOWN_ID}/ticket`, { method: "POST" }), 503, "not_configured", "ticket");
    });
  });

  test("the webhook and CORS preflights are not gated", T, async () => {
    const hook = await call(W, "/api/webhooks/apiframe", {
      method: "POST",
      headers: { "x-webhook-signature": "ab".repeat(32), "x-webhook-event": "completed" },
      body: JSON.stringify({ event: "completed", jobId: UNKNOWN_ID, status: "COMPLETED" }),
    });
    assert.equal(hook.status, 401, `forged webhook: ${hook.text}`);
    assert.equal(hook.json?.error?.code, "unauthorized", "the webhook's own signature check answers");
    const pre = await call(W, "/api/v2/videos/generate", {
      method: "OPTIONS",
      headers: { origin: "https://app.test", "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
    });
    assert.equal(pre.status, 204, `preflight: ${pre.text}`);
  });

  after(async () => {
    for (const w of [...liveWorkers]) await w.stop();
  });
});

// ===================================================== bad configuration

describe("bad configuration: 503 not_configured naming the variable, nothing forwarded", () => {
  const S = leak.secret(randomSecret(32), "HS256 secret (config rows)");
  let jwks;
  before(async () => {
    const { rsa } = await generateKeys();
    jwks = await startJwksServer({ keys: [rsa] });
    servers.push(jwks);
  });
  const rows = [
    ["two modes: AUTH_HS256_SECRET and AUTH_JWKS_URL", () => ({ AUTH_HS256_SECRET: S, AUTH_JWKS_URL: jwks.url }), ["AUTH_HS256_SECRET", "AUTH_JWKS_URL"]],
    ["two modes: AUTH_HS256_SECRET and AUTH_ANONYMOUS=on", () => ({ AUTH_HS256_SECRET: S, AUTH_ANONYMOUS: "on" }), ["AUTH_HS256_SECRET", "AUTH_ANONYMOUS"]],
    ["two modes: AUTH_JWKS_URL and AUTH_ANONYMOUS=on", () => ({ AUTH_JWKS_URL: jwks.url, AUTH_ANONYMOUS: "on" }), ["AUTH_JWKS_URL", "AUTH_ANONYMOUS"]],
    ["AUTH_ANONYMOUS=yes (not on/off/empty)", () => ({ AUTH_ANONYMOUS: "yes" }), ["AUTH_ANONYMOUS"]],
    ["AUTH_ANONYMOUS=true (not on/off/empty)", () => ({ AUTH_ANONYMOUS: "true" }), ["AUTH_ANONYMOUS"]],
    ["AUTH_ANONYMOUS=off and nothing else: no mode", () => ({ AUTH_ANONYMOUS: "off" }), ["AUTH_JWKS_URL", "AUTH_HS256_SECRET", "AUTH_ANONYMOUS"]],
    ["AUTH_HS256_SECRET of 31 bytes", () => ({ AUTH_HS256_SECRET: "k".repeat(31) }), ["AUTH_HS256_SECRET"]],
    ["AUTH_HS256_SECRET empty", () => ({ AUTH_HS256_SECRET: "" }), ["AUTH_HS256_SECRET"]],
    ["AUTH_JWKS_URL http on a non-loopback host", () => ({ AUTH_JWKS_URL: "http://idp.example.com/.well-known/jwks.json" }), ["AUTH_JWKS_URL"]],
    ["AUTH_JWKS_URL not absolute", () => ({ AUTH_JWKS_URL: "/.well-known/jwks.json" }), ["AUTH_JWKS_URL"]],
  ];
  for (const [name, vars, names] of rows) {
    test(`${name} -> 503 not_configured naming ${names.join(", ")}`, T, async () => {
      const w = await startAuthWorker(vars());
      try {
        const token = await mintHs256(S, { sub: "config-user" });
        const res = await nothingForwarded(name, () => generate(w.url, { token }));
        assertEdgeError(res, 503, "not_configured", name);
        for (const n of names) assert.ok(res.json.error.message.includes(n), `message names ${n}: ${res.json.error.message}`);
      } finally {
        await w.stop();
      }
    });
  }
});

// ================================================================= HS256

describe("HS256 mode (AUTH_HS256_SECRET, with AUTH_ISSUER and AUTH_AUDIENCE)", () => {
  const S = leak.secret(randomSecret(32), "HS256 secret");
  const S_PREV = leak.secret(randomSecret(32), "HS256 previous secret");
  const ISS = "https://app.test/auth";
  const AUD = "sora-edge-worker";
  const claims = (sub, extra = {}) => ({ sub, iss: ISS, aud: AUD, ...extra });
  let W;
  let hostile = [];
  before(async () => {
    const { rsa } = await generateKeys();
    hostile = await hostileHs256(S, claims("mallory"), { iss: ISS, aud: AUD, rsaKey: rsa });
    W = (
      await startAuthWorker({ AUTH_HS256_SECRET: S, AUTH_HS256_SECRET_PREVIOUS: S_PREV, AUTH_ISSUER: ISS, AUTH_AUDIENCE: AUD })
    ).url;
  });
  after(async () => {
    for (const w of [...liveWorkers]) await w.stop();
  });

  test("no token -> 401 auth_required; nothing forwarded", T, async () => {
    const res = await nothingForwarded("no token", () => generate(W));
    assertEdgeError(res, 401, "auth_required", "no token");
  });

  test("Cf-Access-Jwt-Assertion is not a token in HS256 mode -> 401 auth_required", T, async () => {
    const token = leak.token(await mintHs256(S, claims("access-header-user")));
    const res = await nothingForwarded("access header", () => generate(W, { headers: { "cf-access-jwt-assertion": token } }));
    assertEdgeError(res, 401, "auth_required", "Cf-Access-Jwt-Assertion in HS256 mode");
  });

  for (const s of NOT_JWTS) {
    test(`not a JWT: ${JSON.stringify(s)} -> 401 token_invalid; nothing forwarded`, T, async () => {
      const res = await nothingForwarded(s, () => generate(W, { headers: { authorization: `Bearer ${s}` } }));
      assertEdgeError(res, 401, "token_invalid", s);
    });
  }

  // The rows are minted in `before`; one test walks them so each row is named in its failure.
  test("hostile tokens -> 401 (token_invalid, or token_expired when only expired); nothing forwarded", T, async (t) => {
    assert.ok(hostile.length >= 20, "rows minted");
    const failures = [];
    for (const [name, token, code] of hostile) {
      try {
        const res = await nothingForwarded(name, () => generate(W, { token }));
        assertEdgeError(res, 401, code, name);
      } catch (e) {
        failures.push(`${name}: ${e.message.split("\n")[0]}`);
      }
    }
    t.diagnostic(`${hostile.length} hostile tokens: ${hostile.map(([n]) => n).join(" | ")}`);
    assert.deepEqual(failures, [], `refused wrongly:\n  ${failures.join("\n  ")}`);
  });

  test("a good token -> 202 with a jobId; one generate forwarded", T, async () => {
    const token = await mintHs256(S, claims("hs-good"));
    const res = await forwarded("good token", { generates: 1, created: 1 }, () => generate(W, { token }));
    assert.equal(res.status, 202, res.text);
    assert.ok(isUuid(res.json?.jobId), `jobId in ${res.text}`);
  });

  test("a token signed with AUTH_HS256_SECRET_PREVIOUS -> 202", T, async () => {
    const token = await mintHs256(S_PREV, claims("hs-previous"));
    const res = await forwarded("previous secret", { generates: 1, created: 1 }, () => generate(W, { token }));
    assert.equal(res.status, 202, res.text);
  });

  test("aud as an array holding ours -> 202", T, async () => {
    const token = await mintHs256(S, claims("hs-aud-array", { aud: ["another-api", AUD] }));
    const res = await forwarded("aud array", { generates: 1, created: 1 }, () => generate(W, { token }));
    assert.equal(res.status, 202, res.text);
  });

  test("nbf 30 s ahead is inside the 60 s leeway -> 202", T, async () => {
    const token = await mintHs256(S, claims("hs-nbf-leeway", { nbf: nowS() + 30 }));
    const res = await forwarded("nbf leeway", { generates: 1, created: 1 }, () => generate(W, { token }));
    assert.equal(res.status, 202, res.text);
  });

  test("from a browser: the preflight admits Authorization, and a 401 token_expired is readable cross-origin (the library refreshes on it)", T, async () => {
    const pre = await call(W, "/api/v2/videos/generate", {
      method: "OPTIONS",
      headers: {
        origin: "https://app.test",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, idempotency-key",
      },
    });
    assert.equal(pre.status, 204, `preflight: ${pre.text}`);
    assert.ok(/(^|,\s*)authorization(\s*,|$)/i.test(pre.headers.get("access-control-allow-headers") ?? ""), `allow-headers: ${pre.headers.get("access-control-allow-headers")}`);
    const t = nowS();
    const expired = await mintHs256(S, claims("hs-cors-expired", { iat: t - 7200, exp: t - 3600 }));
    const res = await nothingForwarded("expired, cross-origin", () => generate(W, { token: expired, headers: { origin: "https://app.test" } }));
    assertEdgeError(res, 401, "token_expired", "expired, cross-origin");
    assert.equal(res.headers.get("access-control-allow-origin"), "https://app.test", "the 401 carries CORS headers");
  });

  test("8 KiB is the limit: a good token of exactly 8192 characters -> 202, of 8193 -> 401 token_invalid", T, async () => {
    const mint = (n) => mintOfLength(n, (fill, pad) => mintHs256(S, claims(`hs-8k-${n}`, { fill }), { header: pad ? { pad } : {} }));
    const [at, over] = [await mint(8192), await mint(8193)];
    assert.equal(at.length, 8192);
    assert.equal(over.length, 8193);
    const ok = await forwarded("8192", { generates: 1, created: 1 }, () => generate(W, { token: at }));
    assert.equal(ok.status, 202, ok.text);
    const res = await nothingForwarded("8193", () => generate(W, { token: over }));
    assertEdgeError(res, 401, "token_invalid", "8193 characters");
  });
});

// ================================================================== JWKS

describe("JWKS mode (AUTH_JWKS_URL, with AUTH_ISSUER and AUTH_AUDIENCE)", () => {
  const ISS = "https://idp.test/";
  const AUD = "aud-tag-0123456789";
  const claims = (sub, extra = {}) => ({ sub, iss: ISS, aud: [AUD], ...extra });
  let keys;
  let stranger;
  let jwks;
  let W;
  let hostile = [];
  before(async () => {
    keys = await generateKeys({ rsaKid: "rsa-1", ecKid: "ec-1" });
    stranger = await generateSigningKey("RS256", "stranger");
    jwks = await startJwksServer({ keys: [keys.rsa, keys.ec] });
    servers.push(jwks);
    hostile = await hostileJwks({ ...keys, stranger }, claims("mallory"));
    W = (await startAuthWorker({ AUTH_JWKS_URL: jwks.url, AUTH_ISSUER: ISS, AUTH_AUDIENCE: AUD })).url;
  });
  after(async () => {
    for (const w of [...liveWorkers]) await w.stop();
  });

  test("RS256 -> 202; the JWKS was fetched", T, async () => {
    const token = await mintRs256(keys.rsa, claims("jwks-rs"));
    const res = await forwarded("RS256", { generates: 1, created: 1 }, () => generate(W, { token }));
    assert.equal(res.status, 202, res.text);
    assert.ok(jwks.hits() >= 1, "JWKS hits");
  });

  test("ES256 (P-256) -> 202", T, async () => {
    const token = await mintEs256(keys.ec, claims("jwks-es"));
    const res = await forwarded("ES256", { generates: 1, created: 1 }, () => generate(W, { token }));
    assert.equal(res.status, 202, res.text);
  });

  test("Cf-Access-Jwt-Assertion carries the token -> 202", T, async () => {
    const token = leak.token(await mintRs256(keys.rsa, claims("jwks-access")));
    const res = await forwarded("access header", { generates: 1, created: 1 }, () =>
      generate(W, { headers: { "cf-access-jwt-assertion": token } }),
    );
    assert.equal(res.status, 202, res.text);
  });

  test("Cf-Access-Jwt-Assertion with a forged token -> 401 token_invalid", T, async () => {
    const token = leak.token(await mintRs256({ ...stranger, kid: keys.rsa.kid }, claims("jwks-access-forged")));
    const res = await nothingForwarded("forged access header", () => generate(W, { headers: { "cf-access-jwt-assertion": token } }));
    assertEdgeError(res, 401, "token_invalid", "forged Cf-Access-Jwt-Assertion");
  });

  test("no token -> 401 auth_required", T, async () => {
    const res = await nothingForwarded("no token", () => generate(W));
    assertEdgeError(res, 401, "auth_required", "no token");
  });

  test("hostile tokens (alg confusion with the RSA public key as HMAC secret, kty mismatch, forged, none) -> 401; nothing forwarded", T, async (t) => {
    const failures = [];
    for (const [name, token, code] of hostile) {
      try {
        const res = await nothingForwarded(name, () => generate(W, { token }));
        assertEdgeError(res, 401, code, name);
      } catch (e) {
        failures.push(`${name}: ${e.message.split("\n")[0]}`);
      }
    }
    t.diagnostic(`${hostile.length} hostile tokens: ${hostile.map(([n]) => n).join(" | ")}`);
    assert.deepEqual(failures, [], `refused wrongly:\n  ${failures.join("\n  ")}`);
  });

  test("HS256 tokens are refused in JWKS mode, even a well-formed one", T, async () => {
    const token = await mintHs256(randomSecret(32), claims("jwks-hs"));
    const res = await nothingForwarded("HS256 in JWKS mode", () => generate(W, { token }));
    assertEdgeError(res, 401, "token_invalid", "HS256 in JWKS mode");
  });

  test("key rotation: a new kid triggers exactly one JWKS refetch, then the rotated key works (and stays cached)", T, async () => {
    const rotated = await generateSigningKey("RS256", "rsa-2");
    jwks.setKeys([keys.rsa, keys.ec, rotated]);
    const h0 = jwks.hits();
    const token = await mintRs256(rotated, claims("jwks-rotated"));
    const res = await forwarded("rotated kid", { generates: 1, created: 1 }, () => generate(W, { token }));
    assert.equal(res.status, 202, res.text);
    assert.equal(jwks.hits() - h0, 1, "JWKS fetches for the new kid");
    const again = await forwarded("rotated kid again", { generates: 1, created: 1 }, () =>
      generate(W, { token }),
    );
    assert.equal(again.status, 202, again.text);
    assert.equal(jwks.hits() - h0, 1, "no fetch for a kid now known");
  });

  test("a flood of unknown kids right after a refetch: all 401 token_invalid, no JWKS fetch (at most once a minute)", T, async () => {
    const h0 = jwks.hits();
    for (let i = 0; i < 5; i++) {
      const token = await mintRs256({ ...stranger, kid: `ghost-${i}` }, claims("jwks-ghost"));
      const res = await nothingForwarded(`ghost kid ${i}`, () => generate(W, { token }));
      assertEdgeError(res, 401, "token_invalid", `unknown kid ghost-${i}`);
    }
    assert.equal(jwks.hits() - h0, 0, "JWKS fetches during the flood");
  });
});

describe("JWKS unreachable: 503 auth_unavailable, nothing forwarded", () => {
  let keys;
  before(async () => {
    keys = await generateKeys();
  });
  after(async () => {
    for (const w of [...liveWorkers]) await w.stop();
  });

  test("JWKS answering 503 -> 503 auth_unavailable", T, async () => {
    const down = await startJwksServer({ keys: [keys.rsa] });
    servers.push(down);
    await down.down(503);
    const w = await startAuthWorker({ AUTH_JWKS_URL: down.url });
    try {
      const token = await mintRs256(keys.rsa, { sub: "jwks-down" });
      const res = await nothingForwarded("JWKS 503", () => generate(w.url, { token }));
      assertEdgeError(res, 503, "auth_unavailable", "JWKS 503");
      assert.ok(down.hits() >= 1, "the worker asked the JWKS");
    } finally {
      await w.stop();
    }
  });

  test("JWKS refusing connections -> 503 auth_unavailable", T, async () => {
    const port = await freePort();
    const w = await startAuthWorker({ AUTH_JWKS_URL: `http://127.0.0.1:${port}/.well-known/jwks.json` });
    try {
      const token = await mintRs256(keys.rsa, { sub: "jwks-refused" });
      const res = await nothingForwarded("JWKS refused", () => generate(w.url, { token }));
      assertEdgeError(res, 503, "auth_unavailable", "JWKS refused");
    } finally {
      await w.stop();
    }
  });
});

// ============================================================ anonymous

describe("anonymous mode (AUTH_ANONYMOUS=on)", () => {
  let W;
  before(async () => {
    W = (await startAuthWorker({ AUTH_ANONYMOUS: "on" })).url;
  });
  after(async () => {
    for (const w of [...liveWorkers]) await w.stop();
  });

  test("generate without a token -> 202; anyone holding the id reads it (owner not checked)", T, async () => {
    const res = await forwarded("anonymous generate", { generates: 1, created: 1 }, () => generate(W));
    assert.equal(res.status, 202, res.text);
    const read = await call(W, `/api/v2/jobs/${res.json.jobId}`);
    assert.equal(read.status, 200, `another address reads it: ${read.text}`);
    assert.equal(read.json?.id, res.json.jobId);
  });

  test("the Idempotency-Key is scoped to the address: upstream gets hex(SHA-256(\"ip:\" + address + \"\\n\" + key))", T, async () => {
    const key = `anon-key-${randomUUID()}`;
    const ip = "203.0.113.44";
    const res = await forwarded("anonymous keyed generate", { generates: 1, created: 1 }, () =>
      generate(W, { ip, headers: { "idempotency-key": key } }),
    );
    assert.equal(res.status, 202, res.text);
    const keys = (await sim.control.stats()).idempotencyKeys;
    assert.equal(keys[sha256hex(`ip:${ip}\n${key}`)], 1, `derived key in ${JSON.stringify(Object.keys(keys))}`);
    assert.ok(!Object.keys(keys).some((k) => k.includes(key)), "the client's key never reaches the upstream");
  });
});

// ============================================================ ownership

describe("ownership (HS256): alice's job is hers", () => {
  const S = leak.secret(randomSecret(32), "HS256 secret (ownership)");
  const IDEM = `order-${randomUUID()}`;
  const PROMPT = "alice's lighthouse";
  let W;
  let alice;
  let bob;
  let A; // alice's job, made with IDEM
  let A2; // alice's second job
  let B; // bob's job, made with alice's IDEM
  let ticketA;
  before(async () => {
    W = (await startAuthWorker({ AUTH_HS256_SECRET: S })).url;
    alice = await mintHs256(S, { sub: "alice" }, { expiresIn: 1800 });
    bob = await mintHs256(S, { sub: "bob" }, { expiresIn: 1800 });
  });
  after(async () => {
    for (const w of [...liveWorkers]) await w.stop();
  });

  test("alice generates two jobs (the first with an Idempotency-Key) -> 202, 2 jobs at the simulator", T, async () => {
    await forwarded("alice's jobs", { generates: 2, created: 2 }, async () => {
      const one = await generate(W, { token: alice, prompt: PROMPT, headers: { "idempotency-key": IDEM } });
      assert.equal(one.status, 202, one.text);
      const two = await generate(W, { token: alice, prompt: "alice's second" });
      assert.equal(two.status, 202, two.text);
      A = one.json.jobId;
      A2 = two.json.jobId;
    });
    assert.ok(isUuid(A) && isUuid(A2) && A !== A2, `${A} ${A2}`);
  });

  test("bob reads alice's job -> 404 not_found, the same answer as an unknown id; nothing forwarded", T, async () => {
    const [theirs, unknown] = await nothingForwarded("bob's read", async () => [
      await call(W, `/api/v2/jobs/${A}`, { token: bob }),
      await call(W, `/api/v2/jobs/${UNKNOWN_ID}`, { token: bob }),
    ]);
    assert.equal(theirs.status, 404, theirs.text);
    assert.equal(theirs.json?.error?.code, "not_found", theirs.text);
    assert.equal(unknown.status, 404, unknown.text);
    assert.deepEqual(theirs.json, unknown.json, "indistinguishable from an unknown id");
  });

  test("bob's event stream of alice's job -> 404 not_found; bob's ticket request -> 404 not_found", T, async () => {
    const stream = await openStream(W, `/api/v2/jobs/${A}/events`, { token: bob });
    assert.equal(stream.status, 404, stream.text);
    assert.equal(stream.json?.error?.code, "not_found", stream.text);
    const ticket = await call(W, `/api/v2/jobs/${A}/ticket`, { method: "POST", token: bob });
    assert.equal(ticket.status, 404, ticket.text);
    assert.equal(ticket.json?.error?.code, "not_found", ticket.text);
  });

  test("no token: the job read -> 401 auth_required; the stream with no token and no ticket -> 401 auth_required", T, async () => {
    assertEdgeError(await call(W, `/api/v2/jobs/${A}`), 401, "auth_required", "read without a token");
    assertEdgeError(await openStream(W, `/api/v2/jobs/${A}/events`), 401, "auth_required", "stream without a token or ticket");
    assertEdgeError(await call(W, `/api/v2/jobs/${A}/ticket`, { method: "POST" }), 401, "auth_required", "ticket without a token");
  });

  test("alice reads her job with her token -> 200", T, async () => {
    const res = await call(W, `/api/v2/jobs/${A}`, { token: alice });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json?.id, A);
  });

  test("alice streams her job with the Authorization header -> the job's events to its end", T, async () => {
    const s = await openStream(W, `/api/v2/jobs/${A}/events`, { token: alice });
    assert.equal(s.status, 200, s.text);
    assert.ok(s.contentType.includes("text/event-stream"), s.contentType);
    assert.ok(s.ended, "the stream ended after the terminal event");
    const last = JSON.parse(s.events.at(-1).data);
    assert.equal(last.id, A);
    assert.equal(last.status, "COMPLETED");
  });

  test("alice's ticket: POST .../ticket -> 200 {ticket, expiresAt ~60 s}; the stream opens with ?ticket=", T, async () => {
    const res = await call(W, `/api/v2/jobs/${A}/ticket`, { method: "POST", token: alice });
    assert.equal(res.status, 200, res.text);
    assert.equal(typeof res.json?.ticket, "string", res.text);
    const left = res.json.expiresAt - Date.now();
    assert.ok(left > 50000 && left <= 61000, `expiresAt ${res.json.expiresAt} is ${left} ms ahead`);
    ticketA = res.json.ticket;
    leak.token(ticketA, "alice's ticket for A (must not appear in other answers)");
    const s = await openStream(W, `/api/v2/jobs/${A}/events?ticket=${encodeURIComponent(ticketA)}`);
    assert.equal(s.status, 200, s.text);
    assert.ok(s.ended, "the stream ended");
    assert.equal(JSON.parse(s.events.at(-1).data).id, A);
  });

  test("the ticket is the spec's: base64url(\"{id}\\n{sub}\\n{exp ms}\") . base64url(HMAC-SHA256(SHA-256(\"sora-edge ticket\\n\" + key), payload))", T, async () => {
    assert.ok(ticketA, "needs alice's ticket from the test above");
    const [p, mac] = ticketA.split(".");
    const payload = Buffer.from(p, "base64url").toString("utf8");
    const [id, sub, exp] = payload.split("\n");
    assert.equal(id, A.toLowerCase());
    assert.equal(sub, "alice");
    assert.ok(Number(exp) > Date.now(), `exp ${exp}`);
    const key = createHash("sha256").update(`sora-edge ticket\n${API_KEY}`).digest();
    assert.equal(mac, createHmac("sha256", key).update(payload).digest("base64url"), "HMAC");
  });

  test("a ticket for one job does not open another, nor does a tampered or expired one", T, async () => {
    assert.ok(ticketA, "needs alice's ticket from the test above");
    const key = createHash("sha256").update(`sora-edge ticket\n${API_KEY}`).digest();
    const forge = (payload) => `${Buffer.from(payload).toString("base64url")}.${createHmac("sha256", key).update(payload).digest("base64url")}`;
    const [p, mac] = ticketA.split(".");
    const [, , exp] = Buffer.from(p, "base64url").toString("utf8").split("\n");
    const cases = [
      ["alice's ticket for A on A2", A2, ticketA],
      ["A's payload renamed to A2, A's MAC kept", A2, `${Buffer.from(`${A2}\nalice\n${exp}`).toString("base64url")}.${mac}`],
      ["a correctly signed ticket that expired a minute ago", A, forge(`${A}\nalice\n${Date.now() - 60000}`)],
      ["alice's ticket with its MAC cut short", A, ticketA.slice(0, -4)],
      ["a ticket that is not one", A, "not-a-ticket"],
    ];
    const failures = [];
    await nothingForwarded("bad tickets", async () => {
      for (const [name, id, ticket] of cases) {
        const s = await openStream(W, `/api/v2/jobs/${id}/events?ticket=${encodeURIComponent(ticket)}`);
        if (s.status === 200 || ![401, 404].includes(s.status) || s.json?.error?.source !== "edge") {
          failures.push(`${name}: ${s.status} ${(s.text ?? "").slice(0, 160)}`);
        }
      }
    });
    assert.deepEqual(failures, [], `opened or answered wrongly:\n  ${failures.join("\n  ")}`);
  });

  test("bob's generate with alice's Idempotency-Key makes bob's own job (one more job at the simulator)", T, async () => {
    const res = await forwarded("bob with alice's key", { generates: 1, created: 1 }, async () => {
      const r = await generate(W, { token: bob, prompt: PROMPT, headers: { "idempotency-key": IDEM } });
      B = r.json?.jobId;
      return r;
    });
    assert.equal(res.status, 202, res.text);
    assert.ok(isUuid(B), res.text);
    assert.notEqual(B, A, "bob must not get alice's job");
  });

  test("alice's retry with her key returns her jobId; no new job", T, async () => {
    const res = await forwarded("alice's retry", { generates: 1, created: 0 }, () =>
      generate(W, { token: alice, prompt: PROMPT, headers: { "idempotency-key": IDEM } }),
    );
    assert.equal(res.status, 202, res.text);
    assert.equal(res.json.jobId, A);
  });

  test("the simulator saw the derived keys hex(SHA-256(sub + \"\\n\" + key)), never the client's key", T, async () => {
    const keys = (await sim.control.stats()).idempotencyKeys;
    assert.equal(keys[sha256hex(`alice\n${IDEM}`)], 1, `alice's derived key in ${JSON.stringify(keys)}`);
    assert.equal(keys[sha256hex(`bob\n${IDEM}`)], 1, `bob's derived key in ${JSON.stringify(keys)}`);
    assert.ok(!Object.keys(keys).some((k) => k.includes(IDEM)), "the raw key never reached the upstream");
  });

  test("alice's ticket for her job does not open bob's job", T, async () => {
    assert.ok(isUuid(B) && B !== A && ticketA, "needs bob's job and alice's ticket from the tests above");
    const s = await openStream(W, `/api/v2/jobs/${B}/events?ticket=${encodeURIComponent(ticketA)}`);
    assert.notEqual(s.status, 200, "bob's stream opened with alice's ticket");
    assert.ok([401, 404].includes(s.status), `${s.status} ${s.text}`);
  });

  test("after alice's job finished, bob (same worker, same isolate) still gets 404 for the read, the stream and a ticket", T, async () => {
    assert.ok(isUuid(A), "needs alice's job from the first test");
    const done = await waitTerminal(W, A, alice);
    assert.equal(done.json.status, "COMPLETED");
    if (isUuid(B) && B !== A) await waitTerminal(W, B, bob);
    const read = await call(W, `/api/v2/jobs/${A}`, { token: bob });
    assert.equal(read.status, 404, read.text);
    assert.equal(read.json?.error?.code, "not_found", read.text);
    const stream = await openStream(W, `/api/v2/jobs/${A}/events`, { token: bob });
    assert.equal(stream.status, 404, stream.text);
    const ticket = await call(W, `/api/v2/jobs/${A}/ticket`, { method: "POST", token: bob });
    assert.equal(ticket.status, 404, ticket.text);
    assert.ok(isUuid(B) && B !== A, "needs bob's own job from the Idempotency-Key test");
    const hers = await call(W, `/api/v2/jobs/${B}`, { token: alice });
    assert.equal(hers.status, 404, `and alice cannot read bob's: ${hers.text}`);
  });

  test("the rate limiter counts per subject: carol's sixth generate -> 429 from any address; dave is not limited", T, async () => {
    const carol = await mintHs256(S, { sub: "carol" });
    const dave = await mintHs256(S, { sub: "dave" });
    await nothingForwarded("rate limit", async () => {
      const statuses = [];
      for (let i = 0; i < 6; i++) {
        const res = await call(W, "/api/v2/videos/generate", { method: "POST", token: carol, body: "{not json" });
        statuses.push(res.status);
      }
      assert.deepEqual(statuses, [400, 400, 400, 400, 400, 429], "carol from six addresses");
      const ip = "203.0.113.90";
      const d = await call(W, "/api/v2/videos/generate", { method: "POST", token: dave, body: "{not json", ip });
      assert.equal(d.status, 400, `dave: ${d.text}`);
    });
  });

  test("README \"Deploy for real\": the HS256 snippet runs as written and its token is accepted -> 202", T, async () => {
    const snippet = fencedBlockAfter(readFileSync(join(ROOT, "README.md"), "utf8"), "<!-- readme-snippet: hs256-mint");
    const file = join(ROOT, "tests", "worker", `readme-snippet.tmp-${process.pid}-${Date.now()}.mjs`);
    const saved = process.env.AUTH_HS256_SECRET;
    await writeFile(file, snippet);
    let token;
    try {
      process.env.AUTH_HS256_SECRET = S;
      const mod = await import(pathToFileURL(file).href);
      assert.equal(typeof mod.soraEdgeToken, "function", "the snippet exports soraEdgeToken(userId)");
      token = await mod.soraEdgeToken("readme-user");
    } finally {
      if (saved === undefined) delete process.env.AUTH_HS256_SECRET;
      else process.env.AUTH_HS256_SECRET = saved;
      await rm(file, { force: true });
    }
    const header = decodeProtectedHeader(token);
    const claims = decodeJwt(token);
    assert.equal(header.alg, "HS256");
    assert.equal(claims.sub, "readme-user");
    assert.equal(claims.exp - claims.iat, 600, "10 minutes");
    const res = await forwarded("README token", { generates: 1, created: 1 }, () => generate(W, { token }));
    assert.equal(res.status, 202, res.text);
  });
});

// ============================================================ Turnstile

describe("the library with a token, through the real worker (HS256)", () => {
  const S = leak.secret(randomSecret(32), "HS256 secret (library)");
  let W;
  before(async () => {
    W = (await startAuthWorker({ AUTH_HS256_SECRET: S })).url;
  });
  after(async () => {
    for (const w of [...liveWorkers]) await w.stop();
  });

  test("run() with a token function: the job completes; an expired token is refreshed once by calling the function again", T, async () => {
    const { run, generate: gen, isSoraEdgeError } = await import("sora-edge");
    const expired = await mintHs256(S, { sub: "carol", exp: Math.floor(Date.now() / 1000) - 10 }, {});
    const fresh = await mintHs256(S, { sub: "carol" }, { expiresIn: 600 });
    leak.token(expired, "carol's expired token");
    leak.token(fresh, "carol's token");
    let calls = 0;
    const token = async () => (++calls === 1 ? expired : fresh);
    const job = await within(30000, run({ prompt: "carol's job [ms=600]" }, { baseUrl: `${W}/api`, token, transport: "poll", deadlineMs: 25000 }), "run()");
    assert.equal(job.status, "COMPLETED");
    assert.ok(calls >= 2, `the token function was called again after token_expired (${calls} calls)`);
    const refused = await gen({ prompt: "no token" }, { baseUrl: `${W}/api` }).then(() => null, (e) => e);
    assert.ok(isSoraEdgeError(refused), String(refused));
    assert.equal(refused.code, "auth_required");
    assert.equal(refused.source, "edge");
  });
});

describe("Turnstile (TURNSTILE_SECRET, TURNSTILE_VERIFY_URL = a stand-in)", () => {
  const S = leak.secret(randomSecret(32), "HS256 secret (turnstile)");
  const TS = leak.secret(`0x4AAAAAAA-test-${randomSecret(12)}`, "Turnstile secret");
  let W;
  let ts;
  let token;
  before(async () => {
    ts = await startTurnstile({ success: false });
    servers.push(ts);
    W = (await startAuthWorker({ AUTH_HS256_SECRET: S, TURNSTILE_SECRET: TS, TURNSTILE_VERIFY_URL: ts.url })).url;
    token = await mintHs256(S, { sub: "turnstile-user" }, { expiresIn: 1800 });
  });
  after(async () => {
    for (const w of [...liveWorkers]) await w.stop();
  });

  test("no cf-turnstile-response -> 401 turnstile_required; no siteverify call; nothing forwarded", T, async () => {
    const calls = ts.calls.length;
    const res = await nothingForwarded("no turnstile", () => generate(W, { token }));
    assertEdgeError(res, 401, "turnstile_required", "no turnstile header");
    assert.equal(ts.calls.length - calls, 0, "siteverify calls");
  });

  test("siteverify answers success:false -> 401 turnstile_failed; one call with secret, response, remoteip; nothing forwarded", T, async () => {
    ts.setSuccess(false);
    const calls = ts.calls.length;
    const ip = "198.51.100.201";
    const res = await nothingForwarded("turnstile false", () =>
      generate(W, { token, ip, headers: { "cf-turnstile-response": "turnstile-answer-false" } }),
    );
    assertEdgeError(res, 401, "turnstile_failed", "success:false");
    assert.equal(ts.calls.length - calls, 1, "siteverify calls");
    const c = ts.calls.at(-1);
    assert.equal(c.method, "POST");
    assert.ok(/application\/x-www-form-urlencoded/i.test(c.contentType), `form body: ${c.contentType}`);
    assert.equal(c.secret, TS);
    assert.equal(c.response, "turnstile-answer-false");
    assert.equal(c.remoteip, ip);
  });

  test("siteverify answers success:true -> 202", T, async () => {
    ts.setSuccess(true);
    const calls = ts.calls.length;
    const res = await forwarded("turnstile true", { generates: 1, created: 1 }, () =>
      generate(W, { token, headers: { "cf-turnstile-response": "turnstile-answer-true" } }),
    );
    assert.equal(res.status, 202, res.text);
    assert.equal(ts.calls.length - calls, 1, "siteverify calls");
  });

  test("a retry with the same Idempotency-Key after its token was verified needs no new token (single-use tokens); another key does", T, async () => {
    ts.setSuccess(true);
    // A subject of its own: the rate limiter (5 a minute per subject) is not under test.
    const token = leak.token(await mintHs256(S, { sub: "turnstile-retry-user" }, { expiresIn: 1800 }));
    const key = `turnstile-retry-${randomUUID()}`;
    const calls = ts.calls.length;
    const first = await generate(W, { token, headers: { "cf-turnstile-response": "a-single-use-answer", "idempotency-key": key } });
    assert.equal(first.status, 202, first.text);
    ts.setSuccess(false); // the same answer again would now be refused: it was spent
    const retry = await generate(W, { token, headers: { "idempotency-key": key } });
    assert.equal(retry.status, 202, retry.text);
    assert.equal(retry.json.jobId, first.json.jobId, "the same job");
    assert.equal(ts.calls.length - calls, 1, "siteverify was asked once");
    const other = await generate(W, { token, headers: { "idempotency-key": `${key}-other` } });
    assert.equal(other.status, 401, other.text);
    assert.equal(other.json.error.code, "turnstile_required");
  });
});

// ============================================================== no leaks

test("no leaks: no response header or body, and no line of workerd's output, held a token, a secret or the API key", T, async (t) => {
  assert.deepEqual(leak.leaks, [], "leaks seen in responses");
  assert.ok(leak.scannedCount() > 150, `scanned ${leak.scannedCount()} headers and bodies`);
  const found = [];
  for (const line of logLines) {
    const f = leak.find(line);
    if (f.length) found.push(`${f.join(", ")} in: ${line.slice(0, 120)}`);
  }
  t.diagnostic(`${leak.scannedCount()} headers and bodies scanned; ${logLines.length} output lines scanned`);
  assert.deepEqual(found, [], "leaks in workerd's output");
  for (const line of [...new Set(logLines.map((l) => l.replace(/\s+/g, " ").slice(0, 160)))].slice(0, 8)) t.diagnostic(`workerd: ${line}`);
});
