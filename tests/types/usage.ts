// Type test for the published `.d.ts` (docs/API.md): uses every export the
// way a user would, and proves wrong types are rejected (`@ts-expect-error`
// fails the check if the line it guards is NOT an error, so loose or `any`
// types make this file fail). Checked by `npx tsc -p tests/types --noEmit`.
import init, {
  initSync,
  generate,
  poll,
  waitForJob,
  run,
  usage,
  Client,
  type AspectRatio,
  type Duration,
  type JobStatus,
  type GenerateRequest,
  type ClientOptions,
  type GenerateOptions,
  type WaitOptions,
  type Submitted,
  type Job,
  SoraEdgeError,
  isSoraEdgeError,
  type SoraEdgeErrorCode,
} from "sora-edge";

// ---- helpers: exact-type assertions that fail on `any` and on mismatches.
type IsAny<T> = 0 extends 1 & T ? true : false;
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(): void {}

expectType<Equal<IsAny<Awaited<ReturnType<typeof generate>>>, false>>();
expectType<Equal<Awaited<ReturnType<typeof generate>>, Submitted>>();
expectType<Equal<Awaited<ReturnType<typeof poll>>, Job>>();
expectType<Equal<Awaited<ReturnType<typeof waitForJob>>, Job>>();
expectType<Equal<Awaited<ReturnType<typeof usage>>["leftSeconds"], number | null>>();
expectType<Equal<Awaited<ReturnType<typeof run>>, Job>>();
expectType<Equal<IsAny<Parameters<typeof generate>[0]>, false>>();
expectType<Equal<AspectRatio, "16:9" | "9:16">>();
expectType<Equal<Duration, 4 | 8 | 10 | 12 | 15>>();
expectType<Equal<JobStatus, "QUEUED" | "PROCESSING" | "COMPLETED" | "FAILED">>();
expectType<Equal<Submitted["jobId"], string>>();
expectType<Equal<Submitted["idempotencyKey"], string>>();
expectType<Equal<Job["videoUrl"], string | null>>();
expectType<Equal<Job["error"], string | null>>();
expectType<Equal<Job["progress"], number>>();
expectType<Equal<NonNullable<GenerateRequest["model"]>, "sora-2" | "sora-2-pro">>();
expectType<Equal<NonNullable<GenerateRequest["resolution"]>, "standard" | "high">>();
expectType<Equal<NonNullable<WaitOptions["transport"]>, "auto" | "poll" | "events">>();
expectType<Equal<SoraEdgeErrorCode,
  | "invalid_request" | "unauthorized" | "forbidden" | "insufficient_credits" | "not_found"
  | "rate_limited" | "upstream" | "network" | "timeout" | "aborted" | "deadline_exceeded"
  | "job_failed" | "bad_response" | "auth_required" | "token_invalid" | "token_expired"
  | "not_configured" | "auth_unavailable" | "turnstile_required" | "turnstile_failed"
  | "quota_exceeded" | "ledger_unavailable" | "not_initialized">>();
expectType<Equal<ClientOptions["token"], string | (() => string | Promise<string>) | undefined>>();
expectType<Equal<Submitted["status"], JobStatus>>();

// ---- browsers and bundlers: init() first; Workers: initSync({ module }).
declare const wasmModule: WebAssembly.Module;
declare const wasmBytes: ArrayBuffer;
export async function browserStart(): Promise<void> {
  await init();
  await init({ module_or_path: new URL("https://example.com/sora_edge_bg.wasm") });
}
export function workerStart(): void {
  initSync({ module: wasmModule });
  initSync(wasmBytes);
  // @ts-expect-error initSync needs the module or its bytes
  initSync();
}

// ---- the four functions with every option.
const request: GenerateRequest = {
  prompt: "A paper boat drifting down a rainy street",
  model: "sora-2-pro",
  duration: 8,
  aspectRatio: "9:16",
  resolution: "high",
  startImage: "https://images.example.com/first-frame.png",
  webhookUrl: "https://example.com/hooks/apiframe",
  webhookEvents: ["progress", "completed", "failed"],
  soraParams: { reference_image: "https://images.example.com/ref.png", seed: 3 },
};
const controller = new AbortController();
const clientOptions: ClientOptions = {
  baseUrl: "/api",
  apiKey: "afk_sim_test_key_0123456789abcdef",
  fetch: globalThis.fetch,
  signal: controller.signal,
  timeoutMs: 10_000,
  maxRetries: 2,
  headers: { Authorization: "Bearer app-session" },
};
const generateOptions: GenerateOptions = { ...clientOptions, idempotencyKey: "0b7c5f5e-9d49-4c3a-9a57-3a4f1f6f0b11" };
const waitOptions: WaitOptions = {
  ...clientOptions,
  onProgress: (job: Job) => {
    const pct: number = job.progress;
    void pct;
  },
  deadlineMs: 5 * 60_000,
  transport: "auto",
};

export async function useFunctions(): Promise<string | null> {
  const submitted: Submitted = await generate(request, generateOptions);
  const id: string = submitted.jobId;
  const key: string = submitted.idempotencyKey;
  const once: Job = await poll(id, clientOptions);
  const status: JobStatus | string = once.status;
  const done: Job = await waitForJob(id, waitOptions);
  const all: Job = await run({ prompt: "minimal" });
  const both: Job = await run(request, { ...generateOptions, ...waitOptions });
  const cost: number | undefined = done.creditCost;
  const completedAt: string | null | undefined = done.completedAt;
  const raw: object = done.raw;
  void [key, status, all, both, cost, completedAt, raw];
  return done.videoUrl;
}

// ---- the caller's token for its worker: a string, or a function (sync or async).
declare function getSessionToken(): Promise<string>;
export async function useToken(): Promise<void> {
  const asString: ClientOptions = { baseUrl: "/api", token: "eyJhbGciOiJIUzI1NiJ9.e30.c2ln" };
  const asFunction: WaitOptions = { baseUrl: "/api", token: () => "eyJ.e30.c2ln", transport: "events" };
  const asAsync: GenerateOptions = { baseUrl: "/api", token: getSessionToken };
  const client = new Client({ baseUrl: "/api", token: async () => (await getSessionToken()).trim() });
  await client.run({ prompt: "signed in" }, { token: "per-call" });
  await poll("job-1", asString);
  await waitForJob("job-1", asFunction);
  await generate({ prompt: "x" }, asAsync);
}
// @ts-expect-error the token is a string, not a number
export const badTokenNumber: ClientOptions = { token: 42 };
// @ts-expect-error a token function returns a string (or a Promise of one)
export const badTokenFunction: ClientOptions = { token: () => 42 };
// @ts-expect-error a token function takes no arguments the library would give
export const badTokenArgs: ClientOptions = { token: (user: { id: string }) => user.id };

export async function useClient(): Promise<void> {
  const client = new Client({ baseUrl: "/api", headers: { Authorization: "Bearer app-session" } });
  const submitted: Submitted = await client.generate({ prompt: "a tram in Lisbon", duration: 4 });
  const job: Job = await client.poll(submitted.jobId);
  const done: Job = await client.waitForJob(job.id, { onProgress: (j) => console.log(j.progress), transport: "poll" });
  const again: Job = await client.run({ prompt: "again" }, { deadlineMs: 60_000, idempotencyKey: "k" });
  new Client();
  void [done, again];
}

// ---- errors: a rejection is a SoraEdgeError carrying the contract's fields.
export async function handleErrors(): Promise<void> {
  try {
    await run({ prompt: "x" });
  } catch (e) {
    if (e instanceof SoraEdgeError) {
      const name: "SoraEdgeError" = e.name;
      const asError: Error = e;
      const cause: unknown = e.cause;
      const source: "edge" | "upstream" | undefined = e.source;
      const method: string | undefined = e.method;
      const url: string | undefined = e.url;
      void [name, asError, cause, source, method, url];
    }
    if (isSoraEdgeError(e)) {
      const code: SoraEdgeErrorCode = e.code;
      const retryable: boolean = e.retryable;
      const status: number | undefined = e.status;
      const field: string | undefined = e.field;
      const retryAfterMs: number | undefined = e.retryAfterMs;
      const jobId: string | undefined = e.jobId;
      const idempotencyKey: string | undefined = e.idempotencyKey;
      if (code === "job_failed" || code === "deadline_exceeded") console.log(jobId);
      if (code === "token_expired" || code === "auth_required" || code === "turnstile_required") console.log(e.source);
      // @ts-expect-error not one of the contract's codes
      if (code === "token_revoked") console.log("never");
      if (code === "not_initialized") await init();
      // @ts-expect-error not one of the contract's codes
      if (code === "rate_limit") console.log("never");
      void [retryable, status, field, retryAfterMs, idempotencyKey];
    } else {
      // @ts-expect-error an unknown rejection has no code
      void e.code;
    }
  }
}
export const made: SoraEdgeError = new SoraEdgeError("m", { code: "timeout", retryable: true }, { cause: 1 });
// @ts-expect-error the fields need a code
export const noCode = new SoraEdgeError("m", { retryable: true });

// ---- a Client is disposable, or freed by hand.
export function disposeClient(): void {
  const client = new Client({ baseUrl: "/api" });
  const dispose: () => void = client[Symbol.dispose];
  dispose.call(client);
  new Client().free();
}

// ---- wrong types are rejected.
// @ts-expect-error duration 5 is not a Duration
export const badDuration: GenerateRequest = { prompt: "x", duration: 5 };
// @ts-expect-error duration must be a number, not "8"
export const badDurationString: GenerateRequest = { prompt: "x", duration: "8" };
// @ts-expect-error 1:1 is not an AspectRatio
export const badAspect: GenerateRequest = { prompt: "x", aspectRatio: "1:1" };
// @ts-expect-error unknown model
export const badModel: GenerateRequest = { prompt: "x", model: "sora-3" };
// @ts-expect-error unknown resolution
export const badResolution: GenerateRequest = { prompt: "x", resolution: "4k" };
// @ts-expect-error unknown webhook event
export const badEvents: GenerateRequest = { prompt: "x", webhookEvents: ["done"] };
// @ts-expect-error prompt is required
export const noPrompt: GenerateRequest = { duration: 4 };
// @ts-expect-error prompt must be a string
export const numericPrompt: GenerateRequest = { prompt: 42 };
// @ts-expect-error timeoutMs is a number
export const badTimeout: ClientOptions = { timeoutMs: "5000" };
// @ts-expect-error headers values are strings
export const badHeaders: ClientOptions = { headers: { "X-Count": 1 } };
// @ts-expect-error unknown transport
export const badTransport: WaitOptions = { transport: "websocket" };
export async function badCalls(): Promise<void> {
  // @ts-expect-error poll takes a job id string
  await poll(42);
  // @ts-expect-error generate needs a request
  await generate();
  // @ts-expect-error videoUrl may be null
  const url: string = (await run({ prompt: "x" })).videoUrl;
  // @ts-expect-error Submitted has no videoUrl
  (await generate({ prompt: "x" })).videoUrl;
  void url;
}
