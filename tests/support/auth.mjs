// Test plumbing for the worker's callers (issue 20; README.md "Deploy for
// real", docs/API.md): signing keys with `kid`s, a JWKS server on 127.0.0.1,
// good and hostile tokens, a stand-in for Cloudflare Turnstile's siteverify,
// and a scanner that fails a test when a token, a secret or the API key shows
// up where a client (or a log) can see it. Built on `jose` (a pinned dev
// dependency) and node:crypto; every server listens on 127.0.0.1 only.
//
//   import { generateSigningKey, startJwksServer, mintHs256, mintRs256, hostile } from "../support/auth.mjs";
import { createHmac, createPrivateKey, sign as nodeSign, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { CompactSign, exportJWK, exportSPKI, generateKeyPair } from "jose";
import { scanForKey } from "./echo-upstream.mjs";

const enc = new TextEncoder();
const b64u = (bytes) => Buffer.from(bytes).toString("base64url");
const b64uJson = (value) => b64u(Buffer.from(JSON.stringify(value), "utf8"));

/** Seconds since the epoch, as JWT claims count time. */
export const nowS = () => Math.floor(Date.now() / 1000);

/** A fresh random string secret of `bytes` bytes (hex, so 2×bytes characters). */
export const randomSecret = (bytes = 32) => randomBytes(bytes).toString("hex");

// ------------------------------------------------------------------ keys

/**
 * A signing key pair for `alg` ("RS256" or "ES256", P-256) with a `kid`:
 * `{alg, kid, privateKey, publicKey, publicJwk, privateJwk, publicPem}`.
 * `publicJwk` carries kid, alg and use, as an identity provider publishes it.
 */
export async function generateSigningKey(alg, kid = `${alg.toLowerCase()}-${randomBytes(4).toString("hex")}`) {
  if (alg !== "RS256" && alg !== "ES256") throw new Error(`generateSigningKey: ${alg} is not RS256 or ES256`);
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(alg === "RS256" ? { modulusLength: 2048 } : {}) });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg };
  const publicPem = await exportSPKI(publicKey);
  return { alg, kid, privateKey, publicKey, publicJwk, privateJwk, publicPem };
}

/** An RS256 key pair and an ES256 (P-256) key pair: `{rsa, ec}`. */
export async function generateKeys({ rsaKid = "rsa-1", ecKid = "ec-1" } = {}) {
  const [rsa, ec] = await Promise.all([generateSigningKey("RS256", rsaKid), generateSigningKey("ES256", ecKid)]);
  return { rsa, ec };
}

/** A JWKS document (`{keys: [...]}`) of the public halves of `keys` (key objects or JWKs). */
export const jwksOf = (...keys) => ({ keys: keys.flat().map((k) => (k.publicJwk ? k.publicJwk : k)) });

// -------------------------------------------------------------- servers

function listen(server, port = 0) {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve(server.address().port);
    });
  });
}

function closeServer(server, sockets) {
  for (const s of sockets) s.destroy();
  return new Promise((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
}

/**
 * A JWKS endpoint on 127.0.0.1: `GET /.well-known/jwks.json` answers the
 * current set. Resolves with:
 * - `url`: the JWKS URL (http on loopback, which the worker allows);
 * - `setKeys(jwks)`: a `{keys}` document, or key objects / JWKs;
 * - `down(mode)`: `true` or `503` answers 503; `"refuse"` closes the listener
 *   (connection refused) until `down(false)`, which listens on the same port again;
 * - `hits()`: GETs of the JWKS path answered (200 or 503) so far; `log` lists them as `{at, status}`;
 * - `close()`.
 */
export async function startJwksServer({ keys = { keys: [] }, path = "/.well-known/jwks.json" } = {}) {
  let current = normalizeJwks(keys);
  let mode = false;
  const log = [];
  const sockets = new Set();
  const server = createServer((req, res) => {
    req.resume();
    if (req.method !== "GET" || new URL(req.url, "http://x").pathname !== path) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end('{"error":"not found"}');
      return;
    }
    const status = mode ? 503 : 200;
    log.push({ at: Date.now(), status });
    res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
    res.end(mode ? '{"error":"unavailable"}' : JSON.stringify(current));
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}${path}`,
    port,
    log,
    setKeys(jwks) {
      current = normalizeJwks(jwks);
    },
    async down(value = true) {
      const next = value === false ? false : value === "refuse" ? "refuse" : 503;
      if (next === "refuse" && server.listening) await closeServer(server, sockets);
      if (next !== "refuse" && !server.listening) await listen(server, port);
      mode = next === 503;
    },
    hits: () => log.length,
    close: () => closeServer(server, sockets),
  };
}

function normalizeJwks(value) {
  if (Array.isArray(value)) return jwksOf(...value);
  if (value && Array.isArray(value.keys)) return { keys: value.keys.map((k) => (k.publicJwk ? k.publicJwk : k)) };
  throw new Error("setKeys: give a {keys: [...]} document or an array of keys");
}

/**
 * A stand-in for Turnstile's siteverify on 127.0.0.1: answers a POST (form:
 * secret, response, remoteip) with `{"success": <success>}` and records each
 * call as `{secret, response, remoteip, contentType, method, path}`.
 * Resolves with `{url, calls, setSuccess(bool), close()}`.
 */
export async function startTurnstile({ success = true, path = "/turnstile/v0/siteverify" } = {}) {
  let answer = success;
  const calls = [];
  const sockets = new Set();
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      const contentType = req.headers["content-type"] ?? "";
      let fields = {};
      if (/application\/json/i.test(contentType)) {
        try {
          fields = JSON.parse(raw);
        } catch {
          fields = {};
        }
      } else {
        fields = Object.fromEntries(new URLSearchParams(raw));
      }
      calls.push({
        method: req.method,
        path: req.url,
        contentType,
        secret: fields.secret ?? null,
        response: fields.response ?? null,
        remoteip: fields.remoteip ?? null,
      });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify(
          answer
            ? { success: true, "error-codes": [], challenge_ts: new Date().toISOString(), hostname: "app.test" }
            : { success: false, "error-codes": ["invalid-input-response"] },
        ),
      );
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}${path}`,
    calls,
    setSuccess(value) {
      answer = Boolean(value);
    },
    close: () => closeServer(server, sockets),
  };
}

// ---------------------------------------------------------------- minting

/**
 * The claims a token carries: `iat` now and `exp` in `expiresIn` seconds
 * (default 600), then `claims` over them; a claim given as `undefined` is left out.
 */
export function withDefaults(claims = {}, { expiresIn = 600 } = {}) {
  const t = nowS();
  const out = { iat: t, exp: t + expiresIn, ...claims };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out;
}

async function signJwt(alg, key, claims, { header = {}, expiresIn, defaults = true } = {}) {
  const payload = defaults ? withDefaults(claims, { expiresIn }) : claims;
  return new CompactSign(enc.encode(JSON.stringify(payload))).setProtectedHeader({ alg, typ: "JWT", ...header }).sign(key);
}

/**
 * An HS256 JWT signed with `secret` (a string, used as its UTF-8 bytes, or
 * bytes). Options: `header` (merged; `alg` there re-signs with that HMAC,
 * e.g. "HS384"), `expiresIn` seconds, `defaults: false` for exactly `claims`.
 */
export function mintHs256(secret, claims = {}, opts = {}) {
  const key = typeof secret === "string" ? enc.encode(secret) : secret;
  return signJwt(opts.header?.alg ?? "HS256", key, claims, opts);
}

/** An RS256 JWT signed with `key` (from generateSigningKey), its `kid` in the header. */
export function mintRs256(key, claims = {}, opts = {}) {
  return signJwt("RS256", key.privateKey, claims, { ...opts, header: { kid: key.kid, ...opts.header } });
}

/** An ES256 (P-256) JWT signed with `key`, its `kid` in the header. */
export function mintEs256(key, claims = {}, opts = {}) {
  return signJwt("ES256", key.privateKey, claims, { ...opts, header: { kid: key.kid, ...opts.header } });
}

/**
 * A token of exactly `length` characters: `mint(filler, headerPad)` must
 * return a token whose payload carries `filler` and whose header carries
 * `headerPad` (an extra header member, to reach lengths the payload alone cannot).
 */
export async function mintOfLength(length, mint) {
  for (let pad = 0; pad < 4; pad++) {
    const base = (await mint("", "p".repeat(pad))).length;
    const estimate = Math.max(0, Math.floor(((length - base) * 3) / 4));
    for (let n = Math.max(0, estimate - 8); n <= estimate + 8; n++) {
      const token = await mint("x".repeat(n), "p".repeat(pad));
      if (token.length === length) return token;
    }
  }
  throw new Error(`mintOfLength: no token of exactly ${length} characters`);
}

// --------------------------------------------------------------- hostile

/** `header.payload.` with `alg` (default "none") and no signature. */
export function algNone(claims = {}, { alg = "none", signature = "" } = {}) {
  return `${b64uJson({ alg, typ: "JWT" })}.${b64uJson(withDefaults(claims))}.${signature}`;
}

/**
 * The classic algorithm-confusion token: HS256 over the header and payload,
 * keyed with the bytes of the RSA (or EC) *public* key, as a verifier that
 * feeds "the key" to whatever `alg` the header names would check it.
 * `form`: "pem" (SPKI PEM text, the usual one), "pem-trimmed" (no final
 * newline), "jwk" (the public JWK as JSON text) or "der" (SPKI DER bytes).
 */
export async function algConfusion(key, claims = {}, { form = "pem" } = {}) {
  let secret;
  if (form === "pem") secret = Buffer.from(key.publicPem, "utf8");
  else if (form === "pem-trimmed") secret = Buffer.from(key.publicPem.trim(), "utf8");
  else if (form === "jwk") secret = Buffer.from(JSON.stringify(key.publicJwk), "utf8");
  else if (form === "der") secret = key.publicKey.export({ type: "spki", format: "der" });
  else throw new Error(`algConfusion: unknown form ${form}`);
  const signingInput = `${b64uJson({ alg: "HS256", typ: "JWT", kid: key.kid })}.${b64uJson(withDefaults(claims))}`;
  return `${signingInput}.${createHmac("sha256", secret).update(signingInput).digest("base64url")}`;
}

/**
 * The same token with a wrong signature. The first character is changed (the
 * last one may carry only padding bits, which a lenient decoder ignores).
 */
export function badSignature(token) {
  const [h, p, s] = token.split(".");
  const first = s[0] === "A" ? "B" : "A";
  return `${h}.${p}.${first}${s.slice(1)}`;
}

/** The token with its payload replaced (`changes` merged into the claims), the old signature kept. */
export function tamperedPayload(token, changes) {
  const [h, p, s] = token.split(".");
  const claims = JSON.parse(Buffer.from(p, "base64url").toString("utf8"));
  return `${h}.${b64uJson({ ...claims, ...changes })}.${s}`;
}

/** An ES256 token whose signature is DER-encoded (as node:crypto signs by default) instead of JOSE's r||s. */
export function es256DerSignature(key, claims = {}) {
  const signingInput = `${b64uJson({ alg: "ES256", typ: "JWT", kid: key.kid })}.${b64uJson(withDefaults(claims))}`;
  const { kid: _kid, alg: _alg, ...jwk } = key.privateJwk;
  const pk = createPrivateKey({ key: jwk, format: "jwk" });
  return `${signingInput}.${nodeSign("sha256", Buffer.from(signingInput), pk).toString("base64url")}`;
}

/** Strings that are not JWTs (each should be refused as `token_invalid`). */
export const NOT_JWTS = [
  "not-a-jwt",
  "abc.def",
  "a.b.c.d",
  "..",
  "...",
  "eyJhbGciOiJIUzI1NiJ9..",
  "eyJhbGciOiJIUzI1NiJ9.e30",
  "eyJhbGciOiJIUzI1NiJ9.e30.sig.extra",
  "eyJhbGciOiJIUzI1NiJ9.%%%.c2ln",
  "eyJhbGciOiJIUzI1NiJ9.e30=.c2ln",
  "eyJhbGciOiJIUzI1NiJ9.e30+/.c2ln",
  `${b64u(Buffer.from("not json"))}.${b64u(Buffer.from("{}"))}.c2ln`,
  `${b64uJson(["HS256"])}.${b64uJson({ sub: "x" })}.c2ln`,
  `${b64uJson({ alg: "HS256" })}.${b64uJson("a string payload")}.c2ln`,
  "null",
  '{"alg":"HS256"}',
];

/**
 * Tokens an HS256 worker must refuse, each `[name, token, expectedCode]`, for
 * a worker configured with `secret` (and `iss`/`aud`, when given, which the
 * good claims `base` should carry too).
 */
export async function hostileHs256(secret, base, { iss, aud, rsaKey } = {}) {
  const t = nowS();
  const good = await mintHs256(secret, base);
  const rows = [
    ["bad signature", badSignature(good), "token_invalid"],
    ["payload changed after signing (sub)", tamperedPayload(good, { sub: `${base.sub}-other` }), "token_invalid"],
    ["signed with another secret", await mintHs256(randomSecret(32), base), "token_invalid"],
    ["alg none", algNone(base), "token_invalid"],
    ["alg None", algNone(base, { alg: "None" }), "token_invalid"],
    ["alg NONE with the good signature kept", algNone(base, { alg: "NONE", signature: good.split(".")[2] }), "token_invalid"],
    ["alg HS384 with the right secret", await mintHs256(secret, base, { header: { alg: "HS384" } }), "token_invalid"],
    ["alg HS512 with the right secret", await mintHs256(secret, base, { header: { alg: "HS512" } }), "token_invalid"],
    ["expired an hour ago", await mintHs256(secret, { ...base, iat: t - 7200, exp: t - 3600 }), "token_expired"],
    ["nbf an hour ahead", await mintHs256(secret, { ...base, nbf: t + 3600, exp: t + 7200 }), "token_invalid"],
    ["iat an hour ahead", await mintHs256(secret, { ...base, iat: t + 3600, exp: t + 7200 }), "token_invalid"],
    ["no exp", await mintHs256(secret, { ...base, exp: undefined }), "token_invalid"],
    ["exp not a number", await mintHs256(secret, { ...base, exp: String(t + 600) }), "token_invalid"],
    ["no sub", await mintHs256(secret, { ...base, sub: undefined }), "token_invalid"],
    ["empty sub", await mintHs256(secret, { ...base, sub: "" }), "token_invalid"],
    ["sub a number", await mintHs256(secret, { ...base, sub: 42 }), "token_invalid"],
    [
      "9 KiB token (validly signed, exactly 9216 characters)",
      await mintOfLength(9 * 1024, (fill, pad) => mintHs256(secret, { ...base, fill }, { header: pad ? { pad } : {} })),
      "token_invalid",
    ],
  ];
  if (iss !== undefined) {
    rows.push(["wrong iss", await mintHs256(secret, { ...base, iss: "https://evil.test/" }), "token_invalid"]);
    rows.push(["no iss", await mintHs256(secret, { ...base, iss: undefined }), "token_invalid"]);
  }
  if (aud !== undefined) {
    rows.push(["wrong aud", await mintHs256(secret, { ...base, aud: "someone-else" }), "token_invalid"]);
    rows.push(["aud array without ours", await mintHs256(secret, { ...base, aud: ["someone-else", "another"] }), "token_invalid"]);
    rows.push(["no aud", await mintHs256(secret, { ...base, aud: undefined }), "token_invalid"]);
  }
  if (rsaKey) rows.push(["RS256 (a JWKS-mode token)", await mintRs256(rsaKey, base), "token_invalid"]);
  return rows;
}

/**
 * Tokens a JWKS worker (serving `rsa` and `ec`) must refuse, each
 * `[name, token, expectedCode]`; `stranger` is a key pair not in the JWKS.
 */
export async function hostileJwks({ rsa, ec, stranger }, base) {
  const goodRs = await mintRs256(rsa, base);
  const goodEs = await mintEs256(ec, base);
  return [
    ["HS256 keyed with the RSA public key (PEM), kid of the RSA key", await algConfusion(rsa, base, { form: "pem" }), "token_invalid"],
    ["HS256 keyed with the RSA public key (PEM, trimmed)", await algConfusion(rsa, base, { form: "pem-trimmed" }), "token_invalid"],
    ["HS256 keyed with the RSA public key (JWK text)", await algConfusion(rsa, base, { form: "jwk" }), "token_invalid"],
    ["HS256 keyed with the RSA public key (DER)", await algConfusion(rsa, base, { form: "der" }), "token_invalid"],
    ["HS256 keyed with the EC public key (PEM)", await algConfusion(ec, base, { form: "pem" }), "token_invalid"],
    ["RS256 bad signature", badSignature(goodRs), "token_invalid"],
    ["ES256 bad signature", badSignature(goodEs), "token_invalid"],
    ["RS256 payload changed after signing", tamperedPayload(goodRs, { sub: `${base.sub}-other` }), "token_invalid"],
    ["RS256 signed by a stranger's key under our kid", await mintRs256({ ...stranger, kid: rsa.kid }, base), "token_invalid"],
    ["ES256 header naming the RSA key's kid (kty mismatch)", await mintEs256({ ...ec, kid: rsa.kid }, base), "token_invalid"],
    ["RS256 header naming the EC key's kid (kty mismatch)", await mintRs256({ ...rsa, kid: ec.kid }, base), "token_invalid"],
    ["ES256 with a DER signature", es256DerSignature(ec, base), "token_invalid"],
    ["alg none with the RSA kid", `${b64uJson({ alg: "none", typ: "JWT", kid: rsa.kid })}.${b64uJson(withDefaults(base))}.`, "token_invalid"],
    ["alg PS256 with the RSA kid", `${b64uJson({ alg: "PS256", typ: "JWT", kid: rsa.kid })}.${goodRs.split(".")[1]}.${goodRs.split(".")[2]}`, "token_invalid"],
    ["RS256 expired", await mintRs256(rsa, { ...base, iat: nowS() - 7200, exp: nowS() - 3600 }), "token_expired"],
  ];
}

// ----------------------------------------------------------------- leaks

/**
 * A scanner for what a client or a log sees. `secret(value, label)` adds a
 * secret found in any of the API key's encodings (tests/support/echo-upstream.mjs);
 * `token(jwt, label)` adds a token (found whole, or by its signature part when
 * that is at least 16 characters). `scan(where, text)` throws (and records in
 * `leaks`) on a find; `scanHeaders(where, headers)` scans each `name: value`.
 */
export function createLeakScanner() {
  const secrets = [];
  const needles = [];
  const leaks = [];
  let scanned = 0;
  const seen = new Set();
  return {
    leaks,
    scannedCount: () => scanned,
    secret(value, label = "secret") {
      if (value && !seen.has(value)) {
        seen.add(value);
        secrets.push({ value, label });
      }
      return value;
    },
    token(jwt, label = "token") {
      if (typeof jwt !== "string" || !jwt || seen.has(jwt)) return jwt;
      seen.add(jwt);
      needles.push({ needle: jwt, label });
      const sig = jwt.split(".")[2];
      if (sig && sig.length >= 16) needles.push({ needle: sig, label: `${label} (signature)` });
      return jwt;
    },
    /** What of the registered secrets and tokens `text` holds, as labels. */
    find(text) {
      const haystack = Buffer.isBuffer(text) ? text.toString("latin1") : String(text ?? "");
      const found = [];
      for (const { value, label } of secrets) {
        const forms = scanForKey(haystack, value);
        if (forms.length) found.push(`${label} [${forms.join(",")}]`);
      }
      for (const { needle, label } of needles) if (haystack.includes(needle)) found.push(label);
      return found;
    },
    scan(where, text) {
      scanned += 1;
      const found = this.find(text);
      if (found.length) {
        leaks.push({ where, found });
        throw new Error(`leak in ${where}: ${found.join("; ")}`);
      }
    },
    scanHeaders(where, headers) {
      for (const [name, value] of headers) this.scan(`${where} header ${name}`, `${name}: ${value}`);
    },
  };
}

// ---------------------------------------------------------------- README

/**
 * The fenced code block (```lang) that follows the first line containing
 * `marker` in `markdown`, without its fences; throws when either is missing.
 */
export function fencedBlockAfter(markdown, marker, lang = "js") {
  const at = markdown.indexOf(marker);
  if (at < 0) throw new Error(`marker ${JSON.stringify(marker)} not found`);
  const rest = markdown.slice(at);
  const m = new RegExp("^```" + lang + "[ \\t]*\\n([\\s\\S]*?)^```[ \\t]*$", "m").exec(rest);
  if (!m) throw new Error(`no \`\`\`${lang} block after ${JSON.stringify(marker)}`);
  // Only the block that directly follows: no other heading or block in between.
  const between = rest.slice(0, m.index);
  if (/^#|^```/m.test(between.split("\n").slice(1).join("\n"))) {
    throw new Error(`the \`\`\`${lang} block after ${JSON.stringify(marker)} is not the next block`);
  }
  return m[1];
}
