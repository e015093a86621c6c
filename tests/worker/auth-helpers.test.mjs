// The test plumbing of tests/support/auth.mjs checked on its own (no worker,
// no simulator): the JWKS server and its failure modes, that good tokens
// verify with `jose` and hostile ones are hostile for the reason their name
// gives, the Turnstile stand-in, the leak scanner, and the README snippet.
//
//   node --test --test-reporter=spec tests/worker/auth-helpers.test.mjs
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from "jose";
import {
  generateKeys,
  generateSigningKey,
  jwksOf,
  startJwksServer,
  startTurnstile,
  mintHs256,
  mintRs256,
  mintEs256,
  mintOfLength,
  algNone,
  algConfusion,
  badSignature,
  hostileHs256,
  hostileJwks,
  NOT_JWTS,
  randomSecret,
  nowS,
  createLeakScanner,
  fencedBlockAfter,
} from "../support/auth.mjs";
import { ROOT } from "../support/sim.mjs";

const T = { timeout: 30000 };
const enc = new TextEncoder();
const fetchWithin = (url, init = {}) => fetch(url, { ...init, signal: AbortSignal.timeout(5000) });

/** Resolves with the jose error code when `promise` rejects, and fails when it resolves. */
async function joseRejects(promise, what) {
  try {
    await promise;
  } catch (e) {
    return e.code ?? e.name;
  }
  assert.fail(`${what}: jose accepted it`);
}

let keys;
let stranger;
before(async () => {
  keys = await generateKeys({ rsaKid: "rsa-1", ecKid: "ec-1" });
  stranger = await generateSigningKey("RS256", "stranger");
});

describe("keys and the JWKS server", () => {
  let jwks;
  before(async () => {
    jwks = await startJwksServer({ keys: [keys.rsa, keys.ec] });
  });
  after(() => jwks.close());

  test("key pairs carry kid, alg and use; the JWKS holds public halves only", T, () => {
    assert.equal(keys.rsa.publicJwk.kty, "RSA");
    assert.equal(keys.ec.publicJwk.kty, "EC");
    assert.equal(keys.ec.publicJwk.crv, "P-256");
    for (const k of [keys.rsa, keys.ec]) {
      assert.ok(k.kid && k.publicJwk.kid === k.kid && k.publicJwk.alg === k.alg && k.publicJwk.use === "sig");
      assert.equal(k.publicJwk.d, undefined, "no private part");
      assert.ok(k.privateJwk.d, "the private half exists");
    }
    assert.ok(keys.rsa.publicPem.startsWith("-----BEGIN PUBLIC KEY-----"));
  });

  test("serves /.well-known/jwks.json on 127.0.0.1, counts hits, 404 elsewhere", T, async () => {
    assert.match(jwks.url, /^http:\/\/127\.0\.0\.1:\d+\/\.well-known\/jwks\.json$/);
    const h0 = jwks.hits();
    const res = await fetchWithin(jwks.url);
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.deepEqual(body.keys.map((k) => k.kid), ["rsa-1", "ec-1"]);
    assert.equal(jwks.hits() - h0, 1);
    assert.equal((await fetchWithin(jwks.url.replace("jwks.json", "other"))).status, 404);
    assert.equal(jwks.hits() - h0, 1, "other paths are not hits");
  });

  test("setKeys swaps the set; down(503) answers 503; down('refuse') refuses connections; down(false) is back on the same port", T, async () => {
    jwks.setKeys([keys.rsa, keys.ec, stranger]);
    assert.equal((await (await fetchWithin(jwks.url)).json()).keys.length, 3);
    jwks.setKeys(jwksOf(keys.rsa));
    assert.equal((await (await fetchWithin(jwks.url)).json()).keys.length, 1);
    const h0 = jwks.hits();
    await jwks.down(503);
    assert.equal((await fetchWithin(jwks.url)).status, 503);
    assert.equal(jwks.hits() - h0, 1, "a 503 is a hit");
    await jwks.down("refuse");
    // The first fetch may meet a kept-alive socket the server has just closed; a new connection is refused.
    await assert.rejects(fetchWithin(jwks.url));
    await assert.rejects(fetchWithin(jwks.url), (e) => e.cause?.code === "ECONNREFUSED");
    assert.equal(jwks.hits() - h0, 1, "a refused connection is not a hit");
    await jwks.down(false);
    assert.equal((await fetchWithin(jwks.url)).status, 200);
    jwks.setKeys([keys.rsa, keys.ec]);
  });

  test("RS256 and ES256 tokens verify with jose against the served JWKS; a stranger's do not", T, async () => {
    const remote = createRemoteJWKSet(new URL(jwks.url));
    for (const token of [await mintRs256(keys.rsa, { sub: "a" }), await mintEs256(keys.ec, { sub: "b" })]) {
      const { payload, protectedHeader } = await jwtVerify(token, remote, { algorithms: ["RS256", "ES256"] });
      assert.ok(payload.sub && payload.exp - payload.iat === 600 && protectedHeader.kid);
    }
    await joseRejects(jwtVerify(await mintRs256({ ...stranger, kid: "rsa-1" }, { sub: "c" }), remote), "stranger under rsa-1");
  });
});

describe("minting", () => {
  test("mintHs256: HS256, iat now, exp in 10 minutes, claims over defaults, undefined leaves a claim out", T, async () => {
    const secret = randomSecret(32);
    const token = await mintHs256(secret, { sub: "alice", iss: "i", exp: undefined, nbf: nowS() });
    const { payload, protectedHeader } = await jwtVerify(token, enc.encode(secret), { algorithms: ["HS256"], issuer: "i" });
    assert.equal(protectedHeader.alg, "HS256");
    assert.equal(payload.sub, "alice");
    assert.equal(payload.exp, undefined);
    const t2 = decodeJwt(await mintHs256(secret, { sub: "x" }, { expiresIn: 60 }));
    assert.equal(t2.exp - t2.iat, 60);
  });

  test("mintOfLength hits exact lengths, including those the payload alone cannot reach", T, async () => {
    const secret = randomSecret(32);
    for (const n of [8190, 8191, 8192, 8193, 9216]) {
      const token = await mintOfLength(n, (fill, pad) => mintHs256(secret, { sub: "x", fill }, { header: pad ? { pad } : {} }));
      assert.equal(token.length, n);
      await jwtVerify(token, enc.encode(secret), { algorithms: ["HS256"] });
    }
  });
});

describe("hostile tokens are hostile for the reason their name gives", () => {
  const secret = randomSecret(32);
  const ISS = "https://app.test/auth";
  const AUD = "sora-edge-worker";
  const base = { sub: "mallory", iss: ISS, aud: AUD };
  const hsOptions = { algorithms: ["HS256"], issuer: ISS, audience: AUD, requiredClaims: ["exp", "sub"], clockTolerance: 60 };

  test("HS256 rows: jose refuses each, or (what jose does not check) the claims show the defect", T, async () => {
    const rows = await hostileHs256(secret, base, { iss: ISS, aud: AUD, rsaKey: keys.rsa });
    const key = enc.encode(secret);
    const names = rows.map(([n]) => n);
    assert.equal(new Set(names).size, names.length, "names are unique");
    for (const [name, token, code] of rows) {
      if (name.startsWith("9 KiB")) {
        assert.equal(token.length, 9216, name);
        await jwtVerify(token, key, hsOptions); // validly signed: only the size refuses it
        continue;
      }
      if (name === "empty sub") {
        assert.equal(decodeJwt(token).sub, "");
        continue;
      }
      if (name === "iat an hour ahead") {
        assert.ok(decodeJwt(token).iat > nowS() + 3000, name); // jose does not refuse a future iat; the spec does
        continue;
      }
      if (name === "sub a number") {
        assert.equal(decodeJwt(token).sub, 42);
        continue;
      }
      const err = await joseRejects(jwtVerify(token, key, hsOptions), name);
      if (code === "token_expired") assert.equal(err, "ERR_JWT_EXPIRED", name);
      else assert.notEqual(err, "ERR_JWT_EXPIRED", `${name} must fail for more than its expiry`);
    }
  });

  test("the expired, nbf and wrong-claim rows are otherwise good: with the check relaxed jose accepts them", T, async () => {
    const key = enc.encode(secret);
    const rows = Object.fromEntries((await hostileHs256(secret, base, { iss: ISS, aud: AUD })).map(([n, t]) => [n, t]));
    await jwtVerify(rows["expired an hour ago"], key, { algorithms: ["HS256"], currentDate: new Date(Date.now() - 3 * 3600 * 1000 + 3600 * 1000) });
    await jwtVerify(rows["nbf an hour ahead"], key, { algorithms: ["HS256"], currentDate: new Date(Date.now() + 3600 * 1000 + 1000) });
    await jwtVerify(rows["wrong iss"], key, { algorithms: ["HS256"], audience: AUD });
    await jwtVerify(rows["wrong aud"], key, { algorithms: ["HS256"], issuer: ISS });
  });

  test("alg none has no signature; a bad signature differs from the good one in its first character", T, async () => {
    const none = algNone({ sub: "x" });
    assert.ok(none.endsWith("."));
    assert.equal(decodeProtectedHeader(none).alg, "none");
    const good = await mintHs256(secret, { sub: "x" });
    const bad = badSignature(good);
    assert.notEqual(bad, good);
    assert.equal(bad.split(".")[2].slice(1), good.split(".")[2].slice(1));
    await joseRejects(jwtVerify(bad, enc.encode(secret)), "bad signature");
  });

  test("the alg-confusion token is HS256 keyed with the RSA public key's PEM text, under the RSA kid", T, async () => {
    const token = await algConfusion(keys.rsa, { sub: "x" }, { form: "pem" });
    const [h, p, s] = token.split(".");
    assert.deepEqual(decodeProtectedHeader(token), { alg: "HS256", typ: "JWT", kid: "rsa-1" });
    assert.equal(s, createHmac("sha256", keys.rsa.publicPem).update(`${h}.${p}`).digest("base64url"));
    // A verifier that trusts the header's alg with "the key" as bytes would accept it:
    await jwtVerify(token, enc.encode(keys.rsa.publicPem), { algorithms: ["HS256"] });
  });

  test("JWKS rows: jose, held to RS256/ES256 and the served keys, refuses each", T, async () => {
    const local = createLocalJWKSet(jwksOf(keys.rsa, keys.ec));
    const rows = await hostileJwks({ ...keys, stranger }, { sub: "mallory" });
    for (const [name, token, code] of rows) {
      const err = await joseRejects(jwtVerify(token, local, { algorithms: ["RS256", "ES256"], requiredClaims: ["exp", "sub"] }), name);
      if (code === "token_expired") assert.equal(err, "ERR_JWT_EXPIRED", name);
    }
  });

  test("NOT_JWTS are not three base64url parts of JSON", T, () => {
    for (const s of NOT_JWTS) {
      const parts = s.split(".");
      let json = parts.length === 3;
      if (json) {
        try {
          const h = JSON.parse(Buffer.from(parts[0], "base64url").toString("utf8"));
          const p = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
          json = typeof h === "object" && !Array.isArray(h) && typeof p === "object" && !Array.isArray(p) && /^[A-Za-z0-9_-]+$/.test(parts[1]) && parts[2].length > 0;
        } catch {
          json = false;
        }
      }
      assert.equal(json, false, s);
    }
  });
});

describe("the Turnstile stand-in", () => {
  let ts;
  before(async () => {
    ts = await startTurnstile({ success: false });
  });
  after(() => ts.close());

  test("records secret, response and remoteip from a form POST and answers {success}", T, async () => {
    const post = (response) =>
      fetchWithin(ts.url, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ secret: "s3cret", response, remoteip: "198.51.100.7" }),
      }).then((r) => r.json());
    assert.equal((await post("r1")).success, false);
    ts.setSuccess(true);
    assert.equal((await post("r2")).success, true);
    assert.equal(ts.calls.length, 2);
    assert.deepEqual(
      { secret: ts.calls[1].secret, response: ts.calls[1].response, remoteip: ts.calls[1].remoteip, method: ts.calls[1].method },
      { secret: "s3cret", response: "r2", remoteip: "198.51.100.7", method: "POST" },
    );
    assert.match(ts.url, /\/turnstile\/v0\/siteverify$/);
  });
});

describe("the leak scanner", () => {
  test("finds a token, its signature alone, and a secret in its encodings; throws and records", T, async () => {
    const scanner = createLeakScanner();
    const secret = scanner.secret(randomSecret(32), "S");
    const token = scanner.token(await mintHs256(secret, { sub: "x" }), "T");
    assert.deepEqual(scanner.find("nothing here"), []);
    assert.deepEqual(scanner.find(`{"echo":"${token}"}`), ["T", "T (signature)"]);
    assert.deepEqual(scanner.find(`sig=${token.split(".")[2]}`), ["T (signature)"]);
    assert.equal(scanner.find(Buffer.from(secret).toString("base64")).length, 1);
    assert.equal(scanner.find(encodeURIComponent(secret.toUpperCase())).length, 1);
    assert.throws(() => scanner.scan("a body", `x ${secret} y`), /leak in a body: S/);
    assert.equal(scanner.leaks.length, 1);
    assert.equal(scanner.scannedCount(), 1);
  });
});

describe("the README snippet", () => {
  test("the js block after the marker runs as written and mints a 10-minute HS256 token for sub", T, async () => {
    const snippet = fencedBlockAfter(readFileSync(join(ROOT, "README.md"), "utf8"), "<!-- readme-snippet: hs256-mint");
    assert.match(snippet, /new SignJWT\(\{ sub: userId \}\)/);
    const file = join(ROOT, "tests", "worker", `readme-snippet.tmp-${process.pid}-${Date.now()}.mjs`);
    const secret = randomSecret(32);
    const saved = process.env.AUTH_HS256_SECRET;
    await writeFile(file, snippet);
    try {
      process.env.AUTH_HS256_SECRET = secret;
      const { soraEdgeToken } = await import(pathToFileURL(file).href);
      const token = await soraEdgeToken("user-42");
      const { payload, protectedHeader } = await jwtVerify(token, enc.encode(secret), { algorithms: ["HS256"] });
      assert.equal(protectedHeader.alg, "HS256");
      assert.equal(payload.sub, "user-42");
      assert.equal(payload.exp - payload.iat, 600);
    } finally {
      if (saved === undefined) delete process.env.AUTH_HS256_SECRET;
      else process.env.AUTH_HS256_SECRET = saved;
      await rm(file, { force: true });
    }
  });
});
