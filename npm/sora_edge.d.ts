/* sora-edge: generate Sora 2 videos through Apiframe v2. Types for CONTRACT.md §1. */

export type AspectRatio = "16:9" | "9:16";
export type Duration = 4 | 8 | 10 | 12 | 15;
export type JobStatus = "QUEUED" | "PROCESSING" | "COMPLETED" | "FAILED";
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
  /** Extra upstream fields, passed through untouched. */
  soraParams?: Record<string, unknown>;
}

export interface ClientOptions {
  /** Default "https://api.apiframe.ai"; behind the edge worker e.g. "/api". */
  baseUrl?: string;
  /** Server-side only; omit it behind the edge worker. */
  apiKey?: string;
  /** Default: the runtime's global fetch. */
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
  /** "auto": server-sent events when the server offers them, else polling. */
  transport?: "auto" | "poll" | "events";
}

export interface Submitted {
  jobId: string;
  status: string;
  idempotencyKey: string;
}

export interface Job {
  id: string;
  /** An unknown status is treated as still running. */
  status: JobStatus | (string & {});
  /** 0 to 100. */
  progress: number;
  /** Normalised from every documented `result` shape. */
  videoUrl: string | null;
  error: string | null;
  model?: string;
  creditCost?: number;
  createdAt?: string;
  completedAt?: string | null;
  /** The upstream job as received. */
  raw: object;
}

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
  | "bad_response";

/** Every rejection is an Error with name "SoraEdgeError" and these fields. */
export interface SoraEdgeError extends Error {
  name: "SoraEdgeError";
  code: SoraEdgeErrorCode;
  retryable: boolean;
  status?: number;
  field?: string;
  retryAfterMs?: number;
  jobId?: string;
  idempotencyKey?: string;
}

export function generate(req: GenerateRequest, opts?: GenerateOptions): Promise<Submitted>;
/** One status read. */
export function poll(jobId: string, opts?: ClientOptions): Promise<Job>;
/** Resolves on COMPLETED; rejects with job_failed, deadline_exceeded, aborted, ... */
export function waitForJob(jobId: string, opts?: WaitOptions): Promise<Job>;
/** generate + waitForJob. */
export function run(req: GenerateRequest, opts?: GenerateOptions & WaitOptions): Promise<Job>;

/** The same four calls, with options fixed once; per-call options override them. */
export class Client {
  constructor(opts?: ClientOptions & GenerateOptions & WaitOptions);
  generate(req: GenerateRequest, opts?: GenerateOptions): Promise<Submitted>;
  poll(jobId: string, opts?: ClientOptions): Promise<Job>;
  waitForJob(jobId: string, opts?: WaitOptions): Promise<Job>;
  run(req: GenerateRequest, opts?: GenerateOptions & WaitOptions): Promise<Job>;
  free(): void;
}

export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;
export type SyncInitInput = BufferSource | WebAssembly.Module;
export interface InitOutput {
  readonly memory: WebAssembly.Memory;
}
/** Instantiates the wasm synchronously (Workers: `initSync({ module })` with the imported .wasm). */
export function initSync(module: { module: SyncInitInput } | SyncInitInput): InitOutput;
/** Browsers and bundlers: `await init()` once before the first call. A no-op in Node. */
export default function init(
  module_or_path?: { module_or_path: InitInput | Promise<InitInput> } | InitInput | Promise<InitInput>,
): Promise<InitOutput>;
