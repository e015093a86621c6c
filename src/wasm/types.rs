//! The TypeScript types of the exports, emitted by wasm-bindgen into the
//! generated `sora_edge.d.ts` (the exports name them through
//! `unchecked_param_type` / `unchecked_return_type`). Each declaration sits
//! here once, beside the name of the Rust type or rule it describes, and
//! `tests/types/usage.ts` checks the generated file with `tsc`.

use wasm_bindgen::prelude::*;

// core::request: MODELS, DURATIONS, ASPECT_RATIOS, RESOLUTIONS, WEBHOOK_EVENTS
// and CLIENT_FIELDS, checked by `GenerateRequest::from_client`.
#[wasm_bindgen(typescript_custom_section)]
const REQUEST: &str = r#"
export type AspectRatio = "16:9" | "9:16";
export type Duration = 4 | 8 | 10 | 12 | 15;
export type Model = "sora-2" | "sora-2-pro";
export type WebhookEvent = "progress" | "completed" | "failed";

export interface GenerateRequest {
  /** 1 to 4000 characters. */
  prompt: string;
  /** Default "sora-2". */
  model?: Model;
  /** Seconds; sent as soraParams.duration. */
  duration?: Duration;
  /** Sent as soraParams.aspect_ratio. */
  aspectRatio?: AspectRatio;
  /** Sent as soraParams.resolution; "high" only with sora-2-pro. */
  resolution?: "standard" | "high";
  /** Absolute http(s) URL of the first frame; sent as soraParams.start_image. */
  startImage?: string;
  /** Absolute https URL (http only for localhost). Refused by the edge worker, which sets its own. */
  webhookUrl?: string;
  webhookEvents?: WebhookEvent[];
  /** Extra upstream fields, passed through; the known ones (duration, aspect_ratio,
   *  resolution, start_image) are checked by the same rules as the fields above. */
  soraParams?: Record<string, unknown>;
}
"#;

// wasm::options::Options and its Transport.
#[wasm_bindgen(typescript_custom_section)]
const OPTIONS: &str = r#"
export interface ClientOptions {
  /** Default "https://api.apiframe.ai"; behind the edge worker e.g. "/api". */
  baseUrl?: string;
  /** Server-side only; omit it behind the edge worker. */
  apiKey?: string;
  /** The caller's token for the edge worker (e.g. a JWT from the app's sign-in), sent as
   *  `Authorization: Bearer <token>` on every request to it (submit, status reads, the event
   *  stream's ticket), never in a URL. A function is called (with no arguments) for every
   *  request attempt, so a renewed token is picked up; on the worker's 401 `token_expired` it
   *  is called once more and the request repeated once. Never sent when `baseUrl` is
   *  Apiframe's own host (unset, or `api.apiframe.ai`). Wins over `headers.Authorization`. */
  token?: string | (() => string | Promise<string>);
  /** Default: the runtime's global fetch. It is called with one `Request`. */
  fetch?: typeof fetch;
  /** Aborts the call (and any wait) at once. */
  signal?: AbortSignal;
  /** Per HTTP request; default 30000. */
  timeoutMs?: number;
  /** Retries of requests that are safe to retry; default 3. */
  maxRetries?: number;
  /** Extra headers, e.g. the app's own auth to its worker. */
  headers?: Record<string, string>;
}

export interface GenerateOptions extends ClientOptions {
  /** Default: a fresh UUID v4. Reuse `error.idempotencyKey` to retry without paying twice. */
  idempotencyKey?: string;
}

export interface WaitOptions extends ClientOptions {
  /** Called on every observed change of status or progress. */
  onProgress?: (job: Job) => void;
  /** Overall; default 15 minutes. */
  deadlineMs?: number;
  /** "auto": the relay's event stream through EventSource where the runtime has one
   *  and the server offers it (and no `fetch` or `headers` option is given), else polling.
   *  With a `token`, each stream connection first gets a ticket (`POST …/ticket`). */
  transport?: "auto" | "poll" | "events";
}
"#;

// wasm::Submitted, core::job::{Job, JobStatus}.
#[wasm_bindgen(typescript_custom_section)]
const JOB: &str = r#"
/** The caller's day at the edge worker's quota ledger (`usage()`, `GET /api/usage`). */
export interface Usage {
  /** The UTC day, `YYYY-MM-DD`. */
  day: string;
  /** Seconds of video of completed jobs today. */
  usedSeconds: number;
  /** Seconds held for jobs not settled yet. */
  reservedSeconds: number;
  /** The daily limit; `null` for none. */
  limitSeconds: number | null;
  /** What is left of it; `null` for no limit. */
  leftSeconds: number | null;
  /** Jobs not settled yet. */
  inFlight: number;
  /** When the day resets, ms since the epoch. */
  resetsAt: number;
}

export interface Submitted {
  jobId: string;
  status: JobStatus;
  idempotencyKey: string;
}

export type JobStatus = "QUEUED" | "PROCESSING" | "COMPLETED" | "FAILED";

export interface Job {
  id: string;
  /** An unknown status is treated as still running. */
  status: JobStatus | (string & {});
  /** 0 to 100. */
  progress: number;
  /** Normalised from every documented `result` shape; http(s) only. */
  videoUrl: string | null;
  error: string | null;
  model?: string;
  creditCost?: number;
  createdAt?: string;
  completedAt?: string | null;
  /** The upstream job as received. */
  raw: object;
}
"#;

// core::error::{ErrorCode, SoraError}, thrown as the class of npm/errors.js
// by wasm::error::to_js; "not_initialized" comes from npm/browser.js.
#[wasm_bindgen(typescript_custom_section)]
const ERROR: &str = r#"
export type SoraEdgeErrorCode =
  | "invalid_request"
  | "unauthorized"
  | "forbidden"
  | "insufficient_credits"
  | "not_found"
  | "rate_limited"
  | "upstream"
  | "network"
  | "timeout"
  | "aborted"
  | "deadline_exceeded"
  | "job_failed"
  | "bad_response"
  | "auth_required"
  | "token_invalid"
  | "token_expired"
  | "not_configured"
  | "auth_unavailable"
  | "turnstile_required"
  | "turnstile_failed"
  | "quota_exceeded"
  | "ledger_unavailable"
  | "not_initialized";

/** Every rejection: `err instanceof SoraEdgeError`, with a stable `code` (the README has a table). */
export declare class SoraEdgeError extends Error {
  constructor(
    message: string,
    fields: Partial<SoraEdgeError> & { code: SoraEdgeErrorCode; retryable: boolean },
    options?: ErrorOptions,
  );
  name: "SoraEdgeError";
  code: SoraEdgeErrorCode;
  retryable: boolean;
  /** The HTTP status, when there was a response. */
  status?: number;
  /** The offending field, for "invalid_request". */
  field?: string;
  /** From Retry-After. */
  retryAfterMs?: number;
  jobId?: string;
  /** On a failure of a request that submitted (never on a validation error): reuse it to retry. */
  idempotencyKey?: string;
  /** Who answered with the error status: the sora-edge worker itself, or Apiframe. */
  source?: "edge" | "upstream";
  /** The failed HTTP request's method and URL. */
  method?: string;
  url?: string;
  /** The underlying error: fetch's TypeError, a JSON SyntaxError, the AbortSignal's
   *  reason, or what onProgress threw. */
  cause?: unknown;
}

/** Whether `e` is a SoraEdgeError (the same as `e instanceof SoraEdgeError`). */
export declare function isSoraEdgeError(e: unknown): e is SoraEdgeError;

// `Client[Symbol.dispose]` (`using client = new Client()`), also under a lib
// without esnext.disposable; the same declaration as @types/node's.
declare global {
  interface SymbolConstructor {
    readonly dispose: unique symbol;
  }
}
"#;
