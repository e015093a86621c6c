// The client's side of the worker tests: every response a client receives
// is scanned for the API key, and a leak fails the test that saw it (and
// the final check in each file).
import { API_KEY, within, readEvents, sign } from "./harness.mjs";

export const leaks = [];
let scanned = 0;
let nextIp = 1;

/** How many texts were scanned for the key so far. */
export const scannedCount = () => scanned;

/** Throws (and records) when the key appears in anything a client received. */
export function scan(where, text) {
  scanned += 1;
  if (typeof text === "string" && text.includes(API_KEY)) {
    leaks.push(where);
    throw new Error(`the API key leaked in ${where}`);
  }
}

export function scanHeaders(where, headers) {
  for (const [name, value] of headers) scan(`${where} header ${name}`, `${name}: ${value}`);
}

/** A fetch for the client library that scans everything it receives (bodies via a clone). */
export async function scanningFetch(input, init) {
  const res = await fetch(input, init);
  try {
    scanHeaders("library fetch", res.headers);
  } catch {
    // recorded in leaks
  }
  res
    .clone()
    .text()
    .then((text) => scan("library fetch body", text))
    .catch(() => {});
  return res;
}

/** The client's view of the worker: fetch, read, scan. A fresh CF-Connecting-IP per call unless given. */
export function clientFor(base) {
  return async function client(path, init = {}) {
    const headers = { "cf-connecting-ip": nextClientIp(), ...(init.headers ?? {}) };
    const res = await within(20000, fetch(base + path, { ...init, headers }), `${init.method ?? "GET"} ${path}`);
    scanHeaders(`${init.method ?? "GET"} ${path}`, res.headers);
    const text = await within(20000, res.text(), `body of ${path}`);
    scan(`${init.method ?? "GET"} ${path} body`, text);
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: res.status, headers: res.headers, text, json };
  };
}

/** A fresh client address (CF-Connecting-IP) per call. */
export const nextClientIp = () => `198.51.100.${nextIp++ % 250}`;

/**
 * Opens an events stream and reads it to its end (or the timeout), scanning
 * everything. From a fresh client address unless `headers` names one.
 */
export async function subscribe(base, jobId, { lastEventId, timeoutMs = 20000, onEvent, headers = {}, signal } = {}) {
  const own = { "cf-connecting-ip": nextClientIp(), ...headers };
  const all = lastEventId === undefined ? own : { ...own, "last-event-id": String(lastEventId) };
  const res = await within(20000, fetch(`${base}/api/v2/jobs/${jobId}/events`, { headers: all, signal }), "events connect");
  scanHeaders("events", res.headers);
  if (res.status !== 200) {
    const text = await res.text();
    scan("events body", text);
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: res.status, headers: res.headers, events: [], ended: true, text, json };
  }
  const comments = [];
  const out = await readEvents(res, { timeoutMs, onEvent, onComment: (c) => comments.push(c) });
  for (const ev of out.events) scan("events data", ev.data);
  return { status: 200, headers: res.headers, contentType: res.headers.get("content-type"), comments, ...out };
}

/** Posts a webhook as the upstream would, signed with the key unless told otherwise. */
export function signedWebhook(client, body, signature = sign(body)) {
  return client("/api/webhooks/apiframe", {
    method: "POST",
    headers: { "content-type": "application/json", "x-webhook-signature": signature, "x-webhook-event": "progress" },
    body,
  });
}

/** The simulator's request counters, as one comparable line. */
export function upstreamCounts(stats) {
  const r = stats.requests;
  return `generate=${r.generate ?? 0} job=${r.job ?? 0} jobs=${r.jobs ?? 0} me=${r.me ?? 0} created=${stats.jobsCreated}`;
}

/** Creates a job through the worker at `base` (its upstream decides the id); resolves with the id. */
export async function createJob(base, prompt = "a job [ms=600000]") {
  const res = await clientFor(base)("/api/v2/videos/generate", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt, model: "sora-2" }),
  });
  if (res.status !== 202) throw new Error(`generate answered ${res.status}: ${res.text}`);
  return res.json.jobId;
}
