// The second baseline for the edge-proxy bench (issue "Each rule written once",
// item 8): a plain JavaScript worker that does on a status read what worker/
// (Rust) does since issue 19 ("The key never leaves the worker"), written as a
// user would write it, so that the Rust worker's CPU and latency can be judged
// against a worker that does the same work, not only against the pass-through
// in bench/plain-worker.js, which checks nothing.
//
// GET /api/v2/jobs/{id}, as the Rust worker answers it with the relay off in
// anonymous mode (bench/cpu.mjs's default):
//   - CORS by `Origin` against the worker's own origin and ALLOWED_ORIGINS (403
//     for others; `Vary: Origin` always);
//   - the id must be a UUID (400), and a job created through this isolate (404
//     without an upstream read otherwise);
//   - upstream with X-API-Key, `redirect: "manual"`, a 30 s timeout (504; 502
//     when unreachable), the client's `Accept` forwarded;
//   - the body read as JSON and the job rebuilt from its known fields (id,
//     status, model, progress, result, error, creditCost, createdAt,
//     completedAt; src/edge/upstream.rs `client_job`), every string redacted
//     (src/core/redact.rs) and cut to 1,000 characters, a result URL that breaks
//     the rule (src/core/url.rs) making the job FAILED; an upstream refusal
//     rebuilt as the Rust worker's `{"error":{…,"source":"upstream"}}`;
//   - upstream headers by allowlist and shape (src/edge/headers.rs
//     `pass_response`), then `content-type` JSON and `cache-control: no-store`.
// For the same upstream answer the body is the Rust worker's, byte for byte
// (bench/checking.mjs checks that before every timed run).
//
// What it leaves out, so that it is cheaper than the Rust worker, never dearer:
//   - known jobs are one in-memory Set per isolate, filled by its own generates.
//     The Rust worker keeps a map too, but asks the job's Durable Object about
//     an id its isolate has not seen (a job generated through another isolate
//     is known there and a 404 here), and checks the job's owner against the
//     caller (identity modes; in anonymous mode both are "no owner");
//   - no identity modes, rate limits, quotas, relay, events, tickets, webhooks
//     or preflights, and the path is taken from `URL` (the Rust worker refuses
//     %-encoded, `..` and other trick paths with a 400 before routing);
//   - POST /api/v2/videos/generate forwards the body as it came (no request
//     rules, no Idempotency-Key of its own) and only records the job as
//     known: it is there so that the benches can make jobs this worker reads.
const MAX_TEXT_CHARS = 1_000;
const MAX_KNOWN_JOBS = 10_000;
const MAX_BODY_BYTES = 16 * 1024;
const TIMEOUT_MS = 30_000;
// An upstream echo is %-encoded once or twice; a text still changing after this
// many rounds of decoding counts as holding a key (src/core/redact.rs).
const MAX_DECODE_ROUNDS = 8;
const REDACTED = "[redacted]";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const STATUSES = new Map([
  ["QUEUED", "QUEUED"],
  ["PROCESSING", "PROCESSING"],
  ["IN_PROGRESS", "PROCESSING"],
  ["COMPLETED", "COMPLETED"],
  ["FAILED", "FAILED"],
]);
// Upstream headers a client may see, each with the shape its value must have.
const PASSED_HEADERS = new Map([
  ["retry-after", (v) => /^\d{1,10}$/.test(v) || isHttpDate(v)],
  ["x-request-id", (v) => /^[A-Za-z0-9._:-]{1,128}$/.test(v)],
  ["x-ratelimit-limit", (v) => /^\d{1,20}$/.test(v)],
  ["x-ratelimit-remaining", (v) => /^\d{1,20}$/.test(v)],
  ["x-ratelimit-reset", (v) => /^\d{1,20}$/.test(v)],
]);

/** Jobs created through this isolate, lower-case ids. */
const known = new Set();
/** The key's forms as patterns, made on the first request (bindings do not change within an isolate). */
let forms;

/** A refusal of the worker's own: `{"error":{code, message, field?, source:"edge"}}`. */
class Refusal extends Error {
  constructor(status, code, message, { field, headers = [] } = {}) {
    super(message);
    Object.assign(this, { status, code, field, headers });
  }
}
const bad = (message) => new Refusal(502, "bad_response", message);

export default {
  async fetch(request, env) {
    let cors = [];
    try {
      cors = corsHeaders(request, env);
      if (!env.APIFRAME_API_KEY) {
        throw new Refusal(500, "misconfigured", "the worker is not configured: APIFRAME_API_KEY is not set (wrangler secret put APIFRAME_API_KEY)");
      }
      forms ??= keyForms([env.APIFRAME_API_KEY, env.APIFRAME_API_KEY_PREVIOUS]);
      const { pathname } = new URL(request.url);
      if (pathname === "/api/v2/videos/generate") {
        allow(request, "POST", pathname);
        return await generate(request, env, cors);
      }
      const job = /^\/api\/v2\/jobs\/([^/]+)$/.exec(pathname);
      if (job) {
        allow(request, "GET", pathname);
        if (!UUID.test(job[1])) {
          throw new Refusal(400, "invalid_request", `jobId must be a UUID (got ${shown(job[1])})`, { field: "jobId" });
        }
        return await readJob(request, env, job[1], cors);
      }
      throw new Refusal(404, "not_found", `no route for ${shown(pathname)} (routes: POST /api/v2/videos/generate, GET /api/v2/jobs/{uuid})`);
    } catch (e) {
      if (!(e instanceof Refusal)) throw e;
      const { status, code, message, field, headers } = e;
      return respond(status, JSON.stringify({ error: { code, message, field, source: "edge" } }), headers, cors);
    }
  },
};

/** A JSON response: the passed upstream headers, then the worker's own. */
function respond(status, body, headers, cors) {
  const out = new Headers(headers);
  out.set("content-type", "application/json; charset=utf-8");
  for (const [name, value] of cors) out.set(name, value);
  out.set("cache-control", "no-store");
  return new Response(body, { status, headers: out });
}

function allow(request, method, pathname) {
  if (request.method !== method) {
    throw new Refusal(405, "method_not_allowed", `${shown(request.method)} is not allowed on ${shown(pathname)} (allowed: ${method}, OPTIONS)`, {
      headers: [["allow", `${method}, OPTIONS`]],
    });
  }
}

/** A client-supplied text as a message quotes it: JSON, at most 80 characters. */
function shown(text) {
  const chars = Array.from(text);
  return JSON.stringify(chars.length > 80 ? `${chars.slice(0, 80).join("")}…` : text);
}

// ------------------------------------------------------------------ CORS

const normaliseOrigin = (origin) =>
  origin
    .trim()
    .replace(/\/+$/, "")
    .toLowerCase()
    .replace(/^(http:\/\/.*):80$|^(https:\/\/.*):443$/, "$1$2");

/** The CORS headers for this request's `Origin`, or a 403. */
function corsHeaders(request, env) {
  const origin = request.headers.get("origin");
  if (origin === null) return [["vary", "Origin"]];
  const wanted = normaliseOrigin(origin);
  const own = env.PUBLIC_URL ? new URL(env.PUBLIC_URL).origin : new URL(request.url).origin;
  const listed = (env.ALLOWED_ORIGINS ?? "")
    .split(",")
    .map((a) => a.trim())
    .filter(Boolean)
    // "null" (sandboxed frames, file://) must be listed by name; `*` does not cover it.
    .some((a) => (a === "*" && wanted !== "null") || normaliseOrigin(a) === wanted);
  if (normaliseOrigin(own) !== wanted && !listed) {
    throw new Refusal(403, "forbidden", `origin ${shown(origin)} is not allowed (set ALLOWED_ORIGINS on the worker)`, {
      headers: [["vary", "Origin"]],
    });
  }
  return [
    ["access-control-allow-origin", origin],
    ["access-control-expose-headers", "Retry-After, Content-Type"],
    ["vary", "Origin"],
  ];
}

// -------------------------------------------------------------- upstream

/** One exchange with the upstream, the key added here; `{status, headers, text}`. */
async function exchange(env, method, path, { accept, body } = {}) {
  // The platform's own timeout: the only thing that aborts this signal.
  const signal = AbortSignal.timeout(TIMEOUT_MS);
  const headers = { accept: accept ?? "application/json", "x-api-key": env.APIFRAME_API_KEY };
  if (body !== undefined) headers["content-type"] = "application/json";
  try {
    const base = env.APIFRAME_BASE_URL.trim().replace(/\/+$/, "");
    // Never follow a redirect: the key would go to a second host.
    const res = await fetch(`${base}${path}`, { method, headers, body, redirect: "manual", signal });
    return { status: res.status, headers: res.headers, text: await res.text() };
  } catch {
    throw signal.aborted
      ? new Refusal(504, "timeout", `the upstream did not answer within ${TIMEOUT_MS} ms`)
      : new Refusal(502, "upstream", "the upstream could not be reached");
  }
}

/**
 * The passed headers of an upstream answer, or the refusal of a redirect. A
 * header passes only with a value of the shape its name allows and no form of
 * a key in it; one that fails is dropped, not redacted.
 */
function passedHeaders(answer) {
  if (answer.status >= 300 && answer.status < 400) {
    throw new Refusal(502, "upstream", `the upstream answered with a redirect (HTTP ${answer.status}), which this worker does not follow`);
  }
  const out = [];
  for (const [name, shaped] of PASSED_HEADERS) {
    const value = answer.headers.get(name);
    if (value !== null && shaped(value) && !holdsKey(value)) out.push([name, value]);
  }
  return out;
}

/** An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the one HTTP-date form a sender may use. */
const isHttpDate = (v) => /^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(v) && !Number.isNaN(Date.parse(v));

/**
 * An upstream refusal as the worker's own error JSON: the upstream's message
 * only when it is a JSON string, redacted; else a generic one. Members in the
 * order the Rust worker's serde_json map writes them (sorted).
 */
function refusalBody(status, text) {
  let body;
  try {
    body = JSON.parse(text);
  } catch {}
  if (!isObject(body)) body = {};
  const error = body.error;
  let message = [body.message, error, isObject(error) ? error.message : undefined, body.detail].find((m) => typeof m === "string");
  if (message !== undefined && isObject(error) && typeof error.code === "string") message += ` (${error.code})`;
  // A field name is only ever an identifier; anything else is dropped.
  const field = body.field ?? (isObject(error) ? error.field : undefined);
  const named = typeof field === "string" && /^[A-Za-z0-9_.\-[\]]{1,64}$/.test(field) && !holdsKey(field);
  return JSON.stringify({
    error: {
      field: named ? field : undefined,
      message: message === undefined ? `the upstream answered HTTP ${status} without a JSON message` : shorten(redact(message)),
      source: "upstream",
    },
  });
}

// ----------------------------------------------------------------- routes

async function readJob(request, env, id, cors) {
  if (!known.has(id.toLowerCase())) {
    throw new Refusal(404, "not_found", "no job with this id was created through this worker");
  }
  const answer = await exchange(env, "GET", `/v2/jobs/${id}`, { accept: request.headers.get("accept") ?? undefined });
  const headers = passedHeaders(answer);
  if (answer.status < 200 || answer.status > 299) return respond(answer.status, refusalBody(answer.status, answer.text), headers, cors);
  let upstream;
  try {
    upstream = JSON.parse(answer.text);
  } catch {
    throw bad("the upstream's answer to a status read is not JSON");
  }
  const job = clientJob(upstream);
  if (job.id.toLowerCase() !== id.toLowerCase()) throw bad("the upstream answered a status read with another job");
  return respond(answer.status, JSON.stringify(job), headers, cors);
}

async function generate(request, env, cors) {
  if (!/^application\/json\s*(;|$)/i.test(request.headers.get("content-type")?.trim() ?? "")) {
    throw new Refusal(415, "unsupported_media_type", "Content-Type must be application/json for POST /api/v2/videos/generate");
  }
  const body = await request.text();
  if (new TextEncoder().encode(body).length > MAX_BODY_BYTES) {
    throw new Refusal(413, "payload_too_large", `request body is over ${MAX_BODY_BYTES} bytes`);
  }
  const answer = await exchange(env, "POST", "/v2/videos/generate", { accept: request.headers.get("accept") ?? undefined, body });
  const headers = passedHeaders(answer);
  if (answer.status < 200 || answer.status > 299) return respond(answer.status, refusalBody(answer.status, answer.text), headers, cors);
  let accepted;
  try {
    accepted = JSON.parse(answer.text);
  } catch {
    throw bad("the upstream accepted the request, but its answer is not JSON");
  }
  const jobId = accepted?.jobId ?? accepted?.id;
  if (typeof jobId !== "string" || !UUID.test(jobId)) throw bad("the upstream accepted the request, but its answer has no job id (a UUID)");
  if (known.size >= MAX_KNOWN_JOBS) known.clear();
  known.add(jobId.toLowerCase());
  const status = typeof accepted.status === "string" ? statusOf(accepted.status) : "QUEUED";
  return respond(answer.status, JSON.stringify({ jobId, status: text(status) }), headers, cors);
}

// -------------------------------------------------------------------- job

const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);
/** The wire status, any case; a status the docs do not list is kept as it came. */
const statusOf = (s) => STATUSES.get(s.toUpperCase()) ?? s;

/**
 * A job rebuilt from the fields the library knows; every other field is
 * dropped and every string redacted. A job whose result URL breaks the rule
 * becomes FAILED and says why, without quoting the URL.
 */
function clientJob(upstream) {
  if (!isObject(upstream)) throw bad("the upstream's job is not the documented shape: a job must be an object");
  // `null` counts as absent; a member of the wrong type refuses the whole job.
  const string = (name) => {
    const v = upstream[name];
    if (v != null && typeof v !== "string") throw bad(`the upstream's job is not the documented shape: job member ${name} must be a string`);
    return v ?? undefined;
  };
  const [ownId, jobId] = [string("id"), string("jobId")];
  let status = string("status");
  const model = string("model");
  const creditCost = upstream.creditCost ?? undefined;
  if (creditCost !== undefined && typeof creditCost !== "number") {
    throw bad("the upstream's job is not the documented shape: job member creditCost must be a number");
  }
  const createdAt = string("createdAt");
  const completedAt = string("completedAt");
  let error = upstream.error ?? undefined;
  let result = videoUrl(upstream.result);
  if (result !== undefined) {
    const why = httpUrlProblem(result);
    if (why) {
      const scheme = /^\s*([A-Za-z][A-Za-z0-9+.-]*):/.exec(result)?.[1];
      status = "FAILED";
      error = `the upstream returned a result URL that ${why}${scheme ? ` (scheme ${scheme.toLowerCase()}:)` : ""}; only http: and https: result URLs are relayed`;
      result = undefined;
    }
  }
  const id = ownId ?? jobId;
  if (!id) throw bad("job response has no id");
  if (status === undefined) throw bad("job response has no status");
  status = statusOf(status);
  let progress = upstream.progress;
  progress = typeof progress === "number" ? progress : typeof progress === "string" ? Number(progress.trim()) : 0;
  progress = status === "COMPLETED" ? 100 : Number.isNaN(progress) ? 0 : Math.min(100, Math.max(0, progress));
  const reason = typeof error === "string" ? error : isObject(error) && typeof error.message === "string" ? error.message : undefined;
  if (!UUID.test(id)) throw bad("the upstream's job id is not a UUID");
  const textOrNull = (v) => (v === undefined ? null : text(v));
  // In the order the Rust worker's serde_json map writes them (sorted), so the
  // two bodies are equal byte for byte.
  return {
    completedAt: textOrNull(completedAt),
    createdAt: textOrNull(createdAt),
    creditCost: creditCost ?? null,
    error: textOrNull(reason ?? (status === "FAILED" ? "the job failed without a reason" : undefined)),
    id,
    model: textOrNull(model),
    progress,
    result: textOrNull(result),
    status: text(status),
  };
}

/**
 * The video URL from any documented `result` shape: a bare URL, `{videoUrl}`
 * (or `video_url`, `url`), or `{videos: [...]}` of either; trimmed.
 */
function videoUrl(result) {
  if (typeof result === "string") return result.trim() || undefined;
  if (!isObject(result)) return undefined;
  const named = [result.videoUrl, result.video_url, result.url].find((u) => typeof u === "string");
  if (named?.trim()) return named.trim();
  return Array.isArray(result.videos) ? result.videos.map(videoUrl).find((u) => u !== undefined) : undefined;
}

/** Why `text` is not an absolute http(s) URL with a host, or undefined when it is. */
function httpUrlProblem(text) {
  // `URL` forgives what a caller should not send: it strips spaces and tabs,
  // and reads `https:///a` as `https://a/`.
  if (/[\p{White_Space}\p{Cc}]/u.test(text)) return "must not contain spaces or control characters";
  let url;
  try {
    url = new URL(text);
  } catch {
    return "must be an absolute http(s) URL";
  }
  const at = text.indexOf("://");
  if ((url.protocol !== "https:" && url.protocol !== "http:") || at < 0) return "must be an absolute http(s) URL";
  if (text[at + 3] === "/" || !url.hostname) return "must have a host";
  return undefined;
}

// ---------------------------------------------------------------- the key

/**
 * Every form of the keys to look for, as one pattern, any case: the key as
 * it is, its hex, and its standard and URL-safe base64 at the three byte
 * alignments inside a longer payload (the characters that encode the key's
 * bits alone).
 */
function keyForms(keys) {
  const raw = [];
  const encoded = [];
  for (const key of keys.filter(Boolean)) {
    const bytes = new TextEncoder().encode(key);
    raw.push(key);
    encoded.push(Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(""));
    for (const offset of [0, 1, 2]) {
      const standard = btoa(String.fromCharCode(...new Uint8Array(offset), ...bytes)).slice(
        Math.ceil((8 * offset) / 6),
        Math.floor((8 * (offset + bytes.length)) / 6),
      );
      if (standard) encoded.push(standard.replaceAll("+", "-").replaceAll("/", "_"), standard);
    }
  }
  if (raw.length === 0) return undefined;
  const source = [...raw, ...encoded].map((n) => n.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")).join("|");
  return { any: new RegExp(source, "i"), every: new RegExp(source, "gi") };
}

/** Whether `text` holds a key in any form, behind up to MAX_DECODE_ROUNDS of %-encoding (deeper counts as holding one). */
function holdsKey(text) {
  if (!forms) return false;
  for (let round = 0; round < MAX_DECODE_ROUNDS; round++) {
    if (forms.any.test(text)) return true;
    // `unescape`, as the Rust worker's wasm decodes: it never throws on a stray `%`.
    const decoded = unescape(text);
    if (decoded === text) return false;
    text = decoded;
  }
  return true;
}

/**
 * `text` with every form of a key replaced where it stands, so that the rest
 * of a message stays readable; a key behind %-encoding is replaced in the
 * decoded text, which is then what is shown; a text that still holds a key is
 * replaced whole.
 */
function redact(text) {
  if (!forms) return text;
  const shown = text.replace(forms.every, REDACTED);
  if (!holdsKey(shown)) return shown;
  let decoded = shown;
  for (let round = 0; round < MAX_DECODE_ROUNDS; round++) {
    const next = unescape(decoded);
    if (next === decoded) break;
    decoded = next;
  }
  const again = decoded.replace(forms.every, REDACTED);
  return holdsKey(again) ? REDACTED : again;
}

/** At most MAX_TEXT_CHARS characters, with `…` when cut (after redaction, so a cut never leaves part of a key). */
function shorten(text) {
  if (text.length <= MAX_TEXT_CHARS) return text;
  const chars = Array.from(text);
  return chars.length > MAX_TEXT_CHARS ? `${chars.slice(0, MAX_TEXT_CHARS).join("")}…` : text;
}

/** An upstream string as a client may see it. */
const text = (s) => shorten(redact(s));
