// A key-echoing stand-in for Apiframe's v2 video API: the upstream at its
// worst. It follows the documented contract closely enough for the worker
// and the client library to run jobs through it, and it puts the API key it
// was configured with (and the key it received, on a 401) into everything it
// sends: every body, every error body, every response header and every signed
// webhook, in many encodings. A client of the worker must see none of them.
//
//   import { startEchoUpstream, keyForms, scanForKey } from "../support/echo-upstream.mjs";
//   const echo = await startEchoUpstream({ apiKey, jobMs: 1200 });
//   echo.url; echo.stats(); scanForKey(text, apiKey); await echo.close();
//
// Routes (X-API-Key must equal `apiKey`, else 401 echoing the key received):
//   POST /v2/videos/generate  {prompt, model, webhookUrl?, webhookEvents?, soraParams?}
//        -> 202 {"jobId", "status":"QUEUED", ...leaks}. Prompt markers:
//        [fail]            the job ends FAILED, its `error` naming a content policy violation (and the key)
//        [ms=N]            the job takes N ms instead of `jobMs`
//        [status=400|402|503]  that status, a JSON error body echoing the key
//        [status=502-text]     502, a text/html body echoing the key
//   GET /v2/jobs/{id} -> 200 {id, status, model, progress, result, error, creditCost,
//        webhookStatus, createdAt, completedAt, ...leaks}; unknown id -> 404
//   GET /v2/me        -> 200 {id, email, credits, ...leaks}
// A job is QUEUED for its first 10 %, then PROCESSING with rising progress,
// then COMPLETED with result {"videoUrl": "https://cdn.echo.test/videos/<id>.mp4", +1 echo}
// (or FAILED). With a webhookUrl it POSTs `progress` events (20, 40, 60, 80 %)
// and the terminal `completed`/`failed` event, in order, signed as Apiframe
// signs them: X-Webhook-Signature = hex HMAC-SHA256 of the raw body keyed
// with the lowercase hex SHA-256 of the key.
import { createServer } from "node:http";
import { createHash, createHmac, randomUUID } from "node:crypto";

// ------------------------------------------------------------------ key forms

/** Every character as a JSON `\u00XX` escape (`upper` hex digits or lower). */
function jsonEscaped(key, upper = false) {
  return [...key]
    .map((c) => {
      const hex = c.charCodeAt(0).toString(16).padStart(4, "0");
      return `\\u${upper ? hex.toUpperCase() : hex}`;
    })
    .join("");
}

/** Every byte as `%XX`. */
function percentEncoded(key, upper = true) {
  return [...Buffer.from(key, "utf8")]
    .map((b) => {
      const hex = b.toString(16).padStart(2, "0");
      return `%${upper ? hex.toUpperCase() : hex}`;
    })
    .join("");
}

/**
 * The base64 characters that encode the key's bits alone when the key starts
 * `align` bytes into a 3-byte group: encode(zeros(align) + key) and keep the
 * characters i with 6i >= 8·align and 6i + 6 <= 8·(align + len). Any encoding
 * of a longer byte string with the key at an offset ≡ align (mod 3) contains them.
 */
function base64Needle(keyBytes, align, encoding) {
  const encoded = Buffer.concat([Buffer.alloc(align), keyBytes]).toString(encoding);
  const first = Math.ceil((8 * align) / 6);
  const end = Math.floor((8 * (align + keyBytes.length)) / 6); // exclusive
  return encoded.slice(first, end);
}

/**
 * Every string to look for in what a client receives, as `[{form, needle}]`:
 * the key raw, upper- and lower-case, JSON-escaped (`\u0061…`, lower and
 * upper hex digits), %-encoded (upper and lower hex digits), base64 (standard
 * and URL-safe, each at the three byte alignments), and hex (lower, upper).
 */
export function keyForms(key) {
  const bytes = Buffer.from(key, "utf8");
  const forms = [
    { form: "raw", needle: key },
    { form: "upper", needle: key.toUpperCase() },
    { form: "lower", needle: key.toLowerCase() },
    { form: "json-escaped", needle: jsonEscaped(key) },
    { form: "json-escaped-upper-hex", needle: jsonEscaped(key, true) },
    { form: "percent", needle: percentEncoded(key, true) },
    { form: "percent-lower-hex", needle: percentEncoded(key, false) },
  ];
  for (const [name, encoding] of [["base64", "base64"], ["base64url", "base64url"]]) {
    for (const align of [0, 1, 2]) forms.push({ form: `${name}@${align}`, needle: base64Needle(bytes, align, encoding) });
  }
  forms.push({ form: "hex", needle: bytes.toString("hex") }, { form: "hex-upper", needle: bytes.toString("hex").toUpperCase() });
  return forms;
}

/**
 * The forms of `key` found in `text` (a string, or a Buffer read as latin1 so
 * that every byte counts), as a list of form names. A case-insensitive match
 * of the key that none of raw/upper/lower explains is reported as "mixed-case".
 */
export function scanForKey(text, key) {
  const haystack = Buffer.isBuffer(text) ? text.toString("latin1") : String(text ?? "");
  const found = keyForms(key)
    .filter(({ needle }) => needle && haystack.includes(needle))
    .map(({ form }) => form);
  if (!found.some((f) => f === "raw" || f === "upper" || f === "lower") && haystack.toLowerCase().includes(key.toLowerCase())) {
    found.push("mixed-case");
  }
  return found;
}

// -------------------------------------------------------------- the leaks

/** Placeholder for the JSON-escaped key: replaced in the serialised text, so the escapes are on the wire. */
const JSON_ESCAPED_TOKEN = "@@ECHO_JSON_ESCAPED_KEY@@";
const JSON_ESCAPED_UPPER_TOKEN = "@@ECHO_JSON_ESCAPED_UPPER_KEY@@";

/** The key inside a longer byte string at byte offset `offset` (3 + align: a longer prefix, same alignment). */
function embedded(key, align, encoding) {
  const prefix = Buffer.from("sid" + "#".repeat(align));
  return Buffer.concat([prefix, Buffer.from(key, "utf8"), Buffer.from("|echo-upstream|v2")]).toString(encoding);
}

/**
 * What this upstream sends for `key`: every form as text for a header or a
 * plain-text body (`text`, the JSON-escaped forms literally), and for JSON
 * (`json`, with placeholders that `serialise` turns into real escapes).
 */
function leakSet(key) {
  const bytes = Buffer.from(key, "utf8");
  const common = {
    raw: key,
    upper: key.toUpperCase(),
    lower: key.toLowerCase(),
    percent: percentEncoded(key, true),
    percentLower: percentEncoded(key, false),
    base64: [0, 1, 2].map((a) => embedded(key, a, "base64")),
    base64url: [0, 1, 2].map((a) => embedded(key, a, "base64url")),
    hex: bytes.toString("hex"),
    hexUpper: bytes.toString("hex").toUpperCase(),
  };
  const line = (esc, escUpper) =>
    [
      common.raw,
      common.upper,
      common.lower,
      esc,
      escUpper,
      common.percent,
      common.percentLower,
      ...common.base64,
      ...common.base64url,
      common.hex,
      common.hexUpper,
    ].join(" ");
  return {
    ...common,
    /** Every form on one line, as a header value or plain text. */
    text: line(jsonEscaped(key), jsonEscaped(key, true)),
    /** Every form on one line, for inside a JSON string (escapes via placeholders). */
    jsonText: line(JSON_ESCAPED_TOKEN, JSON_ESCAPED_UPPER_TOKEN),
  };
}

/** Extra fields for a JSON body: the key in every form, in strings, nested objects and arrays. */
function leakFields(key) {
  const l = leakSet(key);
  return {
    debug: {
      apiKey: l.raw,
      apiKeyUpper: l.upper,
      apiKeyLower: l.lower,
      apiKeyEscaped: JSON_ESCAPED_TOKEN,
      apiKeyEscapedUpperHex: JSON_ESCAPED_UPPER_TOKEN,
      apiKeyPercent: l.percent,
      apiKeyPercentLower: l.percentLower,
      authorization: { scheme: "x-api-key", token: l.base64[0], alt: [l.base64[1], l.base64[2]] },
      tokens: [l.base64url[0], { t: l.base64url[1] }, [l.base64url[2]]],
      fingerprint: l.hex,
      fingerprintUpper: l.hexUpper,
    },
    message: `request authenticated with X-API-Key ${l.jsonText}`,
    supportId: `sup_${l.base64url[1]}_${l.hex}`,
    meta: { request: { headers: { "x-api-key": l.raw } }, trace: [l.upper, JSON_ESCAPED_TOKEN, l.percent] },
  };
}

/** `value` plus the leak fields it does not have itself (an error's own `message` stays). */
function withLeaks(value, key) {
  const out = { ...value };
  for (const [name, leak] of Object.entries(leakFields(key))) if (!(name in out)) out[name] = leak;
  return out;
}

/** JSON text of `value`, the placeholders replaced by the hand-written `\u00XX` escapes. */
function serialise(value, key) {
  return JSON.stringify(value)
    .replaceAll(JSON_ESCAPED_TOKEN, jsonEscaped(key))
    .replaceAll(JSON_ESCAPED_UPPER_TOKEN, jsonEscaped(key, true));
}

/** Response headers, each carrying the key in every form. */
function leakHeaders(key, contentType) {
  const t = leakSet(key).text;
  const compact = t.replaceAll(" ", "~");
  return {
    "content-type": `${contentType}; charset=utf-8; x-key="${compact}"`,
    "x-request-id": `req_${compact}`,
    "retry-after": `1 ${t}`,
    "x-ratelimit-limit": `100 ${t}`,
    "x-ratelimit-remaining": `99 ${t}`,
    "x-ratelimit-reset": `60 ${t}`,
    "x-debug": t,
    "set-cookie": [`apiframe_key=${compact}; Path=/; HttpOnly`, `afk=${leakSet(key).base64url[2]}; Path=/v2`],
    location: `https://api.echo.test/v2/me?key=${leakSet(key).percent}&k=${compact}`,
    "x-api-key": key,
  };
}

// --------------------------------------------------------------- the server

const STEPS = [20, 40, 60, 80];

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** Lowercase hex HMAC-SHA256 of `body`, keyed with the lowercase hex SHA-256 of `key`. */
export function signWebhook(body, key) {
  const hmacKey = Buffer.from(createHash("sha256").update(key).digest("hex"));
  return createHmac("sha256", hmacKey).update(body).digest("hex");
}

/**
 * Starts the echo upstream on 127.0.0.1 (a free port).
 * @returns {Promise<{url: string, stats: () => object, close: () => Promise<void>}>}
 */
export async function startEchoUpstream({ apiKey, jobMs = 1200 } = {}) {
  if (!apiKey) throw new Error("startEchoUpstream: apiKey is required");
  const jobs = new Map();
  const timers = new Set();
  const inFlight = new Set();
  let closed = false;
  const counts = {
    requests: 0,
    generates: 0,
    jobsCreated: 0,
    statusReads: {},
    jobReads: 0,
    me: 0,
    notFound: 0,
    auth: { ok: 0, wrong: 0, missing: 0 },
    webhooks: { sent: 0, delivered: 0, failed: 0, byEvent: {} },
  };

  const send = (res, status, contentType, body, headerKey = apiKey) => {
    try {
      res.writeHead(status, leakHeaders(headerKey, contentType));
    } catch {
      // A received key that cannot go in a header: the body still echoes it.
      res.writeHead(status, { "content-type": contentType });
    }
    res.end(body);
  };
  const sendJson = (res, status, value, key = apiKey) => send(res, status, "application/json", serialise(withLeaks(value, key), key), key);
  const apiError = (res, status, error, message, key = apiKey) =>
    sendJson(res, status, { statusCode: status, error, message: `${message} (key ${key}; ref ${leakSet(key).jsonText})` }, key);

  function phase(job, now = Date.now()) {
    const e = now - job.created;
    if (e >= job.ms) return job.fail ? { status: "FAILED", progress: job.failProgress } : { status: "COMPLETED", progress: 100 };
    if (e < 0.1 * job.ms) return { status: "QUEUED", progress: 0 };
    const p = Math.floor(((e - 0.1 * job.ms) / (0.9 * job.ms)) * 100);
    return { status: "PROCESSING", progress: Math.max(0, Math.min(99, p)) };
  }

  const resultOf = (job) => ({ videoUrl: `https://cdn.echo.test/videos/${job.id}.mp4`, signedBy: apiKey });
  const errorOf = () =>
    `Provider returned an error: content policy violation (key ${apiKey}; ${apiKey.toUpperCase()}; ${JSON_ESCAPED_TOKEN}; ${percentEncoded(apiKey)}; ${Buffer.from(apiKey).toString("base64")}; ${Buffer.from(apiKey).toString("hex")})`;

  function jobJson(job) {
    const { status, progress } = phase(job);
    const terminal = status === "COMPLETED" || status === "FAILED";
    return {
      id: job.id,
      status,
      model: job.model,
      progress,
      result: status === "COMPLETED" ? resultOf(job) : null,
      error: status === "FAILED" ? errorOf() : null,
      creditCost: status === "FAILED" ? 0 : job.creditCost,
      webhookStatus: job.webhook ? job.webhook.status : null,
      createdAt: new Date(job.created).toISOString(),
      completedAt: terminal ? new Date(job.created + job.ms).toISOString() : null,
    };
  }

  // Webhooks: one chain per job, so that events arrive in order.
  function later(ms, fn) {
    const t = setTimeout(() => {
      timers.delete(t);
      if (!closed) fn();
    }, ms);
    timers.add(t);
  }

  async function deliver(job, event, value) {
    if (closed) return;
    const body = serialise(withLeaks(value, apiKey), apiKey);
    counts.webhooks.sent += 1;
    counts.webhooks.byEvent[event] = (counts.webhooks.byEvent[event] ?? 0) + 1;
    const ctl = new AbortController();
    inFlight.add(ctl);
    const timer = setTimeout(() => ctl.abort(), 5000);
    try {
      const res = await fetch(job.webhook.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-webhook-event": event,
          "x-webhook-signature": signWebhook(body, apiKey),
          "x-debug": leakSet(apiKey).text,
        },
        body,
        signal: ctl.signal,
      });
      await res.arrayBuffer().catch(() => {});
      if (res.ok) {
        counts.webhooks.delivered += 1;
        job.webhook.status = "DELIVERED";
      } else {
        counts.webhooks.failed += 1;
        job.webhook.status = "FAILED";
      }
    } catch {
      counts.webhooks.failed += 1;
      job.webhook.status = "FAILED";
    } finally {
      clearTimeout(timer);
      inFlight.delete(ctl);
    }
  }

  function schedule(job) {
    const wants = (e) => job.webhook.events.includes(e);
    const queue = (ms, event, value) =>
      later(ms, () => {
        job.webhook.chain = job.webhook.chain.then(() => deliver(job, event, value()));
      });
    if (wants("progress")) {
      for (const step of STEPS) {
        if (job.fail && step >= job.failProgress) break;
        queue(0.1 * job.ms + 0.9 * job.ms * (step / 100), "progress", () => ({
          event: "progress",
          jobId: job.id,
          status: "PROCESSING",
          progress: step,
          model: job.model,
        }));
      }
    }
    if (job.fail && wants("failed")) {
      queue(job.ms, "failed", () => ({
        event: "failed",
        jobId: job.id,
        status: "FAILED",
        progress: job.failProgress,
        error: errorOf(),
        model: job.model,
        creditCost: 0,
        completedAt: new Date(job.created + job.ms).toISOString(),
      }));
    } else if (!job.fail && wants("completed")) {
      queue(job.ms, "completed", () => ({
        event: "completed",
        jobId: job.id,
        status: "COMPLETED",
        progress: 100,
        result: resultOf(job),
        model: job.model,
        creditCost: job.creditCost,
        completedAt: new Date(job.created + job.ms).toISOString(),
      }));
    }
  }

  function generate(req, res, raw) {
    counts.generates += 1;
    let body;
    try {
      body = JSON.parse(raw.toString("utf8"));
    } catch {
      return apiError(res, 400, "Bad Request", "body is not valid JSON");
    }
    if (!body || typeof body !== "object" || Array.isArray(body)) return apiError(res, 400, "Bad Request", "body must be an object");
    const prompt = typeof body.prompt === "string" ? body.prompt : "";
    if (!prompt) return apiError(res, 400, "Bad Request", "prompt is required");
    const marker = /\[status=(\d{3})(-text)?\]/.exec(prompt);
    if (marker) {
      const status = Number(marker[1]);
      if (marker[2]) {
        const html = `<html><head><title>${status} Bad Gateway</title></head><body><h1>Bad Gateway</h1><p>upstream refused key ${leakSet(apiKey).text}</p></body></html>`;
        return send(res, status, "text/html", html);
      }
      const reasons = { 400: ["Bad Request", "prompt was rejected"], 402: ["Payment Required", "insufficient credits"], 503: ["Service Unavailable", "the video service is overloaded"] };
      const [error, message] = reasons[status] ?? ["Error", "request failed"];
      return apiError(res, status, error, message);
    }
    const ms = Number(/\[ms=(\d+)\]/.exec(prompt)?.[1] ?? jobMs);
    const id = randomUUID();
    const model = typeof body.model === "string" ? body.model : "sora-2";
    const job = {
      id,
      model,
      prompt,
      created: Date.now(),
      ms,
      fail: prompt.includes("[fail]"),
      failProgress: 50,
      creditCost: model === "sora-2-pro" ? 12 : 4,
      webhook:
        typeof body.webhookUrl === "string" && body.webhookUrl
          ? {
              url: body.webhookUrl,
              events: Array.isArray(body.webhookEvents) && body.webhookEvents.length ? body.webhookEvents : ["progress", "completed", "failed"],
              status: "PENDING",
              chain: Promise.resolve(),
            }
          : null,
    };
    jobs.set(id, job);
    counts.jobsCreated += 1;
    if (job.webhook) schedule(job);
    return sendJson(res, 202, { jobId: id, status: "QUEUED" });
  }

  const server = createServer(async (req, res) => {
    counts.requests += 1;
    let raw;
    try {
      raw = await readBody(req);
    } catch {
      res.destroy();
      return;
    }
    const path = new URL(req.url, "http://echo.test").pathname;
    const given = req.headers["x-api-key"];
    if (!given) {
      counts.auth.missing += 1;
      return apiError(res, 401, "Unauthorized", "API key is required");
    }
    if (given !== apiKey) {
      counts.auth.wrong += 1;
      // Echoes the key it received, everywhere.
      return apiError(res, 401, "Unauthorized", `Invalid API key ${given}`, String(given));
    }
    counts.auth.ok += 1;
    if (path === "/v2/videos/generate") {
      if (req.method !== "POST") return apiError(res, 405, "Method Not Allowed", "use POST");
      return generate(req, res, raw);
    }
    if (path === "/v2/me") {
      if (req.method !== "GET") return apiError(res, 405, "Method Not Allowed", "use GET");
      counts.me += 1;
      return sendJson(res, 200, { id: "user_echo", email: "echo@example.test", credits: 1000, apiKey });
    }
    const m = /^\/v2\/jobs\/([^/]+)$/.exec(path);
    if (m) {
      if (req.method !== "GET") return apiError(res, 405, "Method Not Allowed", "use GET");
      const id = decodeURIComponent(m[1]);
      counts.jobReads += 1;
      counts.statusReads[id] = (counts.statusReads[id] ?? 0) + 1;
      const job = jobs.get(id);
      if (!job) {
        counts.notFound += 1;
        return apiError(res, 404, "Not Found", `Job ${id} not found`);
      }
      return sendJson(res, 200, jobJson(job));
    }
    counts.notFound += 1;
    return apiError(res, 404, "Not Found", `Cannot ${req.method} ${path}`);
  });

  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    /** A snapshot of the counters. */
    stats: () => structuredClone(counts),
    /** Stops timers, aborts webhook deliveries and closes the server. */
    close: async () => {
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const ctl of inFlight) ctl.abort();
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
