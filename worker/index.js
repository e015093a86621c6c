// The sora-edge worker (CONTRACT.md §2): a thin shell around the decisions in
// src/edge (compiled into pkg-edge/). Rust decides what a request is, what to
// refuse, what to forward, how to merge relay state and when to poll; this file
// moves bytes between the client, the upstream and the Durable Objects.
//
// The API key (secret APIFRAME_API_KEY) is only ever put in the X-API-Key header
// of an upstream request and handed to Rust to check webhook signatures. It is
// never logged, and every upstream body a client sees has it redacted.

import { DurableObject } from "cloudflare:workers";
import wasmModule from "../pkg-edge/sora_edge_bg.wasm";
import {
  initSync,
  edgeConfig,
  edgePlan,
  edgeGenerateBody,
  edgeWebhook,
  edgeMerge,
  edgeUpstream,
  edgeError,
  edgeSseEvent,
  edgeSseShouldSend,
  edgeFallbackDelay,
} from "../pkg-edge/sora_edge.js";

initSync({ module: wasmModule });

/** Per upstream request. */
const UPSTREAM_TIMEOUT_MS = 30000;
/** Observations kept for the fallback schedule (a job yields ~10 progress events). */
const MAX_OBSERVATIONS = 400;

const configs = new WeakMap();

/** The worker's settings, decided once per `env` by Rust (`edgeConfig`). */
function configOf(env) {
  let config = configs.get(env);
  if (!config) {
    const text = (v) => (typeof v === "string" ? v : typeof v === "number" ? String(v) : undefined);
    const envJson = JSON.stringify({
      APIFRAME_BASE_URL: text(env.APIFRAME_BASE_URL),
      ALLOWED_ORIGINS: text(env.ALLOWED_ORIGINS),
      PUBLIC_URL: text(env.PUBLIC_URL),
      RELAY_FALLBACK_MS: text(env.RELAY_FALLBACK_MS),
      RELAY_HEARTBEAT_MS: text(env.RELAY_HEARTBEAT_MS),
      hasKey: typeof env.APIFRAME_API_KEY === "string" && env.APIFRAME_API_KEY !== "",
    });
    // `id` names this configuration in the per-request calls (`edgePlan`).
    config = JSON.parse(edgeConfig(envJson));
    configs.set(env, config);
  }
  return config;
}

/** Headers in the flat form the per-request wasm calls take: `name\nvalue\n...`. */
function flat(headers) {
  let out = "";
  for (const [name, value] of headers) out += name + "\n" + value + "\n";
  return out;
}

/**
 * A Response from a reply plan `{status, headers, body}`, plus CORS headers.
 * Every name in a plan or in `cors` is lower-case (Rust's); a CORS header
 * replaces a plan header of the same name.
 */
function respond(plan, cors = []) {
  const headers = [];
  let hasType = false;
  let hasCache = false;
  for (const pair of plan.headers) {
    const name = pair[0];
    if (cors.length !== 0 && cors.some((c) => c[0] === name)) continue;
    if (name === "content-type") hasType = true;
    else if (name === "cache-control") hasCache = true;
    headers.push(pair);
  }
  if (plan.body !== "" && !hasType) headers.push(["content-type", "application/json; charset=utf-8"]);
  for (const pair of cors) {
    if (pair[0] === "cache-control") hasCache = true;
    headers.push(pair);
  }
  if (!hasCache) headers.push(["cache-control", "no-store"]);
  const empty = plan.body === "" || plan.status === 204;
  return new Response(empty ? null : plan.body, { status: plan.status, headers });
}

function errorPlan(status, code, message) {
  return JSON.parse(edgeError(status, code, message));
}

/** Reads at most `max` bytes of a body; `null` when it is longer. */
async function readBody(request, max) {
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

function tooLarge(max) {
  return errorPlan(413, "payload_too_large", `request body is over ${max} bytes; the limit is ${max} bytes`);
}

/**
 * One upstream exchange at the configured host, with the key, never following
 * a redirect. Resolves with `{status, headers, text}` or `{reply}` (502/504).
 */
async function upstreamFetch(env, config, method, path, forward, body) {
  // `forward` is Rust's allowlist output: lower-case names, no duplicates.
  const headers = {};
  for (const [name, value] of forward) headers[name] = value;
  headers["x-api-key"] = env.APIFRAME_API_KEY;
  if (headers.accept === undefined) headers.accept = "application/json";
  if (body !== undefined) headers["content-type"] = "application/json";
  try {
    const res = await fetch(config.baseUrl + path, {
      method,
      headers,
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(UPSTREAM_TIMEOUT_MS),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, text };
  } catch (e) {
    const timedOut = e && (e.name === "TimeoutError" || e.name === "AbortError");
    return {
      reply: timedOut
        ? errorPlan(504, "timeout", `the upstream did not answer within ${UPSTREAM_TIMEOUT_MS} ms`)
        : errorPlan(502, "upstream", "the upstream could not be reached"),
    };
  }
}

/**
 * The client's reply plan for an upstream answer (redacted, filtered, no
 * redirects), plus `jobId` for a `submitted` generate. Rust sends the body
 * back only when it is not the upstream's text unchanged (key redacted, or
 * the answer refused); otherwise the text read here is the body.
 */
function upstreamPlan(env, up, submitted = false) {
  if (up.reply) return up.reply;
  const plan = JSON.parse(edgeUpstream(up.status, flat(up.headers), up.text, env.APIFRAME_API_KEY, submitted));
  if (plan.body === undefined) plan.body = up.text;
  return plan;
}

function relayStub(env, jobId) {
  return env.JOBS.get(env.JOBS.idFromName(jobId.toLowerCase()));
}

/** 429 when the rate-limit binding is bound and says no for this client. */
async function rateLimited(request, env, cors) {
  const limiter = env.RATE_LIMITER;
  if (!limiter || typeof limiter.limit !== "function") return null;
  const key = request.headers.get("cf-connecting-ip") || "unknown";
  const { success } = await limiter.limit({ key });
  if (success) return null;
  const retryAfter = /^\d{1,5}$/.test(String(env.RATE_LIMIT_PERIOD_S ?? "")) ? String(env.RATE_LIMIT_PERIOD_S) : "60";
  const plan = errorPlan(429, "rate_limited", `too many generate requests from this client; retry after ${retryAfter} s`);
  plan.headers.push(["retry-after", retryAfter]);
  return respond(plan, cors);
}

async function handleGenerate(request, env, config, { cors, forward }) {
  const limited = await rateLimited(request, env, cors);
  if (limited) return limited;
  const body = await readBody(request, config.maxBody);
  if (body === null) return respond(tooLarge(config.maxBody), cors);
  const rewritten = JSON.parse(edgeGenerateBody(body, config.webhookUrl ?? ""));
  if (rewritten.reply) return respond(rewritten.reply, cors);
  const plan = upstreamPlan(env, await upstreamFetch(env, config, "POST", "/v2/videos/generate", forward, rewritten.body), true);
  if (config.relay && plan.jobId) {
    try {
      await relayStub(env, plan.jobId).submitted(plan.jobId);
    } catch (e) {
      // The job exists upstream: the client must get its id even if relay fails.
      console.error(`edge: relay start failed for job ${plan.jobId}: ${e && e.name}`);
    }
  }
  return respond(plan, cors);
}

/**
 * A status read. With relay on, one call to the job's object first: a
 * finished job is answered from it (no upstream read); a running one is read
 * upstream and merged here with the object's state (Rust's `edgeMerge`, the
 * same merge the object runs), so the client gets the fresher of the two.
 * The object is told only when the read changed what it knows: in the
 * background, or awaited when the read finished the job (so the next read is
 * answered from the object).
 */
async function handleJob(env, ctx, config, { jobId, cors, forward }) {
  const stub = config.relay ? relayStub(env, jobId) : null;
  let known = null;
  if (stub) {
    try {
      known = await stub.current();
      if (known && known.terminal) return respond({ status: 200, headers: [], body: known.state }, cors);
    } catch (e) {
      // Relay state unavailable: the upstream still knows the answer.
      console.error(`edge: relay read failed for job ${jobId}: ${e && e.name}`);
    }
  }
  const up = await upstreamFetch(env, config, "GET", `/v2/jobs/${jobId}`, forward);
  const plan = upstreamPlan(env, up);
  if (known && plan.status === 200) {
    const read = plan.body;
    const merged = JSON.parse(edgeMerge(known.state, read, jobId));
    if (!merged.reply) {
      plan.body = merged.changed ? merged.state : known.state;
      if (merged.changed) {
        const told = stub.observe(jobId, read).catch((e) => {
          console.error(`edge: relay merge failed for job ${jobId}: ${e && e.name}`);
        });
        if (merged.terminal || !ctx) await told;
        else ctx.waitUntil(told);
      }
    }
  }
  return respond(plan, cors);
}

async function handleEvents(request, env, { jobId, cors }) {
  const res = await relayStub(env, jobId).fetch("https://relay.internal/events", {
    headers: { "x-job-id": jobId, "last-event-id": request.headers.get("last-event-id") ?? "" },
  });
  const headers = new Headers(res.headers);
  for (const [name, value] of cors) headers.set(name, value);
  return new Response(res.body, { status: res.status, headers });
}

async function handleWebhook(request, env, config, { cors }) {
  const body = await readBody(request, config.maxBody);
  if (body === null) return respond(tooLarge(config.maxBody), cors);
  const event = JSON.parse(edgeWebhook(env.APIFRAME_API_KEY, body, request.headers.get("x-webhook-signature")));
  if (event.reply) return respond(event.reply, cors);
  const { changed } = await relayStub(env, event.jobId).webhook(event.jobId, event.job);
  return respond({ status: 200, headers: [], body: JSON.stringify({ received: true, changed }) }, cors);
}

export default {
  async fetch(request, env, ctx) {
    const config = configOf(env);
    const decision = JSON.parse(edgePlan(config.id, request.method, request.url, flat(request.headers)));
    if (decision.reply) return respond(decision.reply);
    try {
      switch (decision.route) {
        case "generate":
          return await handleGenerate(request, env, config, decision);
        case "job":
          return await handleJob(env, ctx, config, decision);
        case "events":
          return await handleEvents(request, env, decision);
        case "webhook":
          return await handleWebhook(request, env, config, decision);
      }
    } catch (e) {
      console.error(`edge: ${decision.route} failed: ${e && e.name}`);
    }
    return respond(errorPlan(500, "internal", "the worker failed to handle this request"), decision.cors);
  },
};

const encoder = new TextEncoder();

/**
 * One job's relay state (one object per job, `idFromName(jobId)`): the job's
 * latest state in the upstream's status-read shape, the events stream to any
 * number of subscribers, and the alarm-driven fallback that polls the upstream
 * itself when no terminal webhook has come by the time the job should be done.
 *
 * Stored record: `{jobId, state, seq, terminal, startedAt, obs, reads}`, where
 * `obs` are `[ms since start, progress]` observations for the poll schedule.
 */
export class JobRelay extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.subscribers = new Set();
    this.heartbeat = null;
    this.rec = null;
    ctx.blockConcurrencyWhile(async () => {
      this.rec = (await ctx.storage.get("rec")) ?? null;
    });
  }

  config() {
    return configOf(this.env);
  }

  record(jobId) {
    if (!this.rec) {
      this.rec = { jobId, state: null, seq: 0, terminal: false, startedAt: Date.now(), obs: [], reads: 0 };
    }
    return this.rec;
  }

  /** Merges a job text (webhook or status read) and tells subscribers of a change. */
  apply(jobId, text) {
    const rec = this.record(jobId);
    const merged = JSON.parse(edgeMerge(rec.state ?? undefined, text, jobId));
    if (merged.reply || !merged.changed) return merged;
    rec.state = merged.state;
    rec.seq += 1;
    rec.terminal = merged.terminal;
    this.broadcast();
    return merged;
  }

  noteProgress(progress) {
    const rec = this.rec;
    rec.obs.push([Date.now() - rec.startedAt, progress]);
    if (rec.obs.length > MAX_OBSERVATIONS) rec.obs.splice(1, rec.obs.length - MAX_OBSERVATIONS);
  }

  async save() {
    await this.ctx.storage.put("rec", this.rec);
  }

  /** Arms the first fallback check, unless the job is over or one is armed. */
  async armFallback(at) {
    if (this.rec.terminal) return;
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(at);
  }

  /** RPC: the worker forwarded a generate and the upstream accepted it. */
  async submitted(jobId) {
    const rec = this.record(jobId);
    this.apply(jobId, JSON.stringify({ id: jobId, status: "QUEUED" }));
    await this.armFallback(rec.startedAt + this.config().fallbackFirstMs);
    await this.save();
  }

  /** RPC: a verified webhook, already in the status-read shape. */
  async webhook(jobId, job) {
    const merged = this.apply(jobId, job);
    if (merged.reply) return { changed: false };
    if (merged.changed && !merged.terminal && merged.progress > 0) this.noteProgress(merged.progress);
    if (merged.terminal) await this.ctx.storage.deleteAlarm();
    else await this.armFallback(this.rec.startedAt + this.config().fallbackFirstMs);
    // A replayed or stale delivery changes nothing: nothing to write.
    if (merged.changed) await this.save();
    return { changed: merged.changed };
  }

  /** RPC: the stored job if it is finished (then no upstream read is needed), else null. */
  async finished() {
    return this.rec && this.rec.terminal ? this.rec.state : null;
  }

  /** RPC: `{state, terminal}` when the object knows the job, else null (one call per status read). */
  async current() {
    return this.rec && this.rec.state ? { state: this.rec.state, terminal: this.rec.terminal } : null;
  }

  /**
   * RPC: a status read's body; returns the merged job when the object knows
   * the job. Storage is written only when the read changed the job.
   */
  async observe(jobId, body) {
    if (!this.rec || !this.rec.state) return null;
    const merged = this.apply(jobId, body);
    if (merged.reply) return null;
    if (!merged.changed) return this.rec.state;
    if (merged.terminal) await this.ctx.storage.deleteAlarm();
    await this.save();
    return this.rec.state;
  }

  /** The events stream (`GET /api/v2/jobs/{id}/events`, via the worker). */
  async fetch(request) {
    const jobId = request.headers.get("x-job-id");
    if (!this.rec || !this.rec.state) {
      // Unknown to the relay: one status read, then the fallback polls for everyone.
      const plan = upstreamPlan(this.env, await upstreamFetch(this.env, this.config(), "GET", `/v2/jobs/${jobId}`, []));
      if (plan.status !== 200) return respond(plan);
      const merged = this.apply(jobId, plan.body);
      if (merged.reply) return respond(merged.reply);
      if (!merged.terminal) {
        this.noteProgress(merged.progress);
        const delay = edgeFallbackDelay(JSON.stringify(this.rec.obs), Date.now() - this.rec.startedAt, undefined, Date.now());
        await this.armFallback(Date.now() + delay);
      }
      await this.save();
    }
    const { sse } = this.config();
    const { readable, writable } = new TransformStream();
    const sub = { writer: writable.getWriter(), open: true };
    this.write(sub, sse.preamble);
    const lastEventId = request.headers.get("last-event-id") || undefined;
    if (edgeSseShouldSend(lastEventId, this.rec.seq)) this.write(sub, edgeSseEvent(this.rec.seq, this.rec.state));
    if (this.rec.terminal) {
      this.close(sub);
    } else {
      this.subscribers.add(sub);
      this.startHeartbeat(sse);
    }
    return new Response(readable, {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        "x-accel-buffering": "no",
      },
    });
  }

  write(sub, text) {
    if (!sub.open) return;
    sub.writer.write(encoder.encode(text)).catch(() => this.drop(sub));
  }

  close(sub) {
    if (!sub.open) return;
    sub.open = false;
    this.subscribers.delete(sub);
    sub.writer.close().catch(() => {});
  }

  /** A subscriber that went away. */
  drop(sub) {
    sub.open = false;
    this.subscribers.delete(sub);
    sub.writer.abort().catch(() => {});
    if (this.subscribers.size === 0) this.stopHeartbeat();
  }

  broadcast() {
    if (this.subscribers.size === 0) return;
    const frame = edgeSseEvent(this.rec.seq, this.rec.state);
    for (const sub of [...this.subscribers]) {
      this.write(sub, frame);
      if (this.rec.terminal) this.close(sub);
    }
    if (this.rec.terminal) this.stopHeartbeat();
  }

  startHeartbeat(sse) {
    if (this.heartbeat !== null) return;
    this.heartbeat = setInterval(() => {
      for (const sub of [...this.subscribers]) this.write(sub, sse.heartbeat);
      if (this.subscribers.size === 0) this.stopHeartbeat();
    }, sse.heartbeatMs);
  }

  stopHeartbeat() {
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  /** The fallback: poll the upstream until the job is terminal, on the adaptive schedule. */
  async alarm() {
    const rec = this.rec;
    if (!rec || rec.terminal) return;
    const config = this.config();
    if (rec.reads >= config.maxFallbackReads) {
      console.error(`edge: fallback for job ${rec.jobId} gave up after ${rec.reads} reads`);
      return;
    }
    rec.reads += 1;
    let retryAfter;
    try {
      const up = await upstreamFetch(this.env, config, "GET", `/v2/jobs/${rec.jobId}`, []);
      const plan = upstreamPlan(this.env, up);
      if (plan.status === 200) {
        const merged = this.apply(rec.jobId, plan.body);
        if (!merged.reply && !rec.terminal) this.noteProgress(merged.progress);
      } else if (!up.reply) {
        retryAfter = up.headers.get("retry-after") ?? undefined;
      }
    } catch (e) {
      console.error(`edge: fallback read failed for job ${rec.jobId}: ${e && e.name}`);
    }
    if (!rec.terminal) {
      const delay = edgeFallbackDelay(JSON.stringify(rec.obs), Date.now() - rec.startedAt, retryAfter, Date.now());
      await this.ctx.storage.setAlarm(Date.now() + delay);
    }
    await this.save();
  }
}
