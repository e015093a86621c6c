#!/usr/bin/env node
// `make demo`: the simulator + the edge worker in local workerd (wrangler dev),
// which serves the demo page (www/) and /api on one origin. Prints the URL;
// Ctrl-C stops everything.
//
//   node scripts/demo.mjs [--port 8787] [--job-ms 15000] [--verbose]
//
// With APIFRAME_API_KEY set in the environment there is no simulator: the
// worker talks to the real API (APIFRAME_BASE_URL, default
// https://api.apiframe.ai). The key reaches the worker only as a secret, through
// a mode-600 .env file in a private temporary directory that is deleted on exit
// (never on a command line, never in www/). Before the worker starts, the key
// is checked against the upstream (GET /v2/me): a refused key stops the demo
// with a clear message. Webhook relay needs a public URL;
// set DEMO_PUBLIC_URL (e.g. a tunnel to the port) to turn it on against the
// real API; without it the page polls.
//
// As a module (the browser tests start the very same stack):
//   import { startStack } from "../../scripts/demo.mjs";
//   const stack = await startStack({ port, jobMs: 5000 }); // stack.url, stack.simUrl, stack.stop()
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { freePort, portFree } from "./net.mjs";
import { SIM_BIN, startSim } from "../tests/support/sim.mjs";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** The simulator's key in demo mode (simulator keys contain "sim"). */
export const DEMO_SIM_KEY = "afk_sim_demo_key_local_only";
const WRANGLER = join(ROOT, "node_modules", ".bin", "wrangler");
const WRANGLER_CONFIG = join(ROOT, "worker", "wrangler.toml");
const REAL_API = "https://api.apiframe.ai";

/** Every process group this module started, for the last-resort cleanup. */
const groups = new Set();
process.on("exit", () => {
  for (const pid of groups) {
    try { process.kill(-pid, "SIGKILL"); } catch { /* gone */ }
  }
});

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Copies the package's web build to www/pkg/, where the worker serves it. */
export function copyPkg() {
  const out = join(ROOT, "www", "pkg");
  mkdirSync(out, { recursive: true });
  // The web glue, its wasm, and the module it imports the error class from.
  for (const f of ["sora_edge.js", "sora_edge_bg.wasm", "errors.js"]) {
    const src = join(ROOT, "pkg", f);
    if (!existsSync(src)) throw new Error(`${src} is missing: run \`make build\` (bash scripts/build.sh)`);
    copyFileSync(src, join(out, f));
  }
  return out;
}

/**
 * Spawns a command in its own process group; keeps the last lines of its
 * output (and echoes them with a prefix when `echo`). `stop()` ends the group.
 */
function spawnGroup(name, cmd, args, { env, echo } = {}) {
  const child = spawn(cmd, args, { cwd: ROOT, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  groups.add(child.pid);
  const tail = [];
  const exited = new Promise((res) => {
    child.once("exit", (code, signal) => {
      groups.delete(child.pid);
      res({ code, signal });
    });
    child.once("error", (e) => {
      groups.delete(child.pid);
      tail.push(`${name}: ${e.message}`);
      res({ code: 127, signal: null });
    });
  });
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on("line", (line) => {
      tail.push(line);
      if (tail.length > 80) tail.shift();
      if (echo) process.stdout.write(`[${name}] ${line}\n`);
    });
  }
  let done = false;
  exited.then(() => { done = true; });
  async function stop() {
    if (done) return;
    try { process.kill(-child.pid, "SIGTERM"); } catch { /* gone */ }
    const t = setTimeout(() => { try { process.kill(-child.pid, "SIGKILL"); } catch { /* gone */ } }, 4000);
    await exited;
    clearTimeout(t);
    // The group may outlive its leader (workerd under wrangler): make sure.
    try { process.kill(-child.pid, "SIGKILL"); } catch { /* gone */ }
    groups.delete(child.pid);
  }
  return { child, exited, stop, tail: () => tail.join("\n"), get done() { return done; } };
}

/** Polls `check()` every 150 ms until it returns truthy; fails after `ms`. */
async function until(ms, what, check, proc) {
  const end = Date.now() + ms;
  let last = "";
  while (Date.now() < end) {
    if (proc && proc.done) throw new Error(`${what}: the process exited\n${proc.tail()}`);
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e.message;
    }
    await sleep(150);
  }
  throw new Error(`${what}: not ready within ${ms} ms ${last ? `(${last})` : ""}\n${proc ? proc.tail() : ""}`);
}

/**
 * Asks the upstream whether it takes `key` (`GET /v2/me`), before any
 * worker starts: the worker answers reads of jobs it did not create itself,
 * so it can no longer tell. Throws a message that says what to fix; never
 * prints the key or the upstream's body (which may echo it).
 */
export async function checkKey(baseUrl, key) {
  let res;
  try {
    res = await fetch(`${baseUrl.replace(/\/$/, "")}/v2/me`, {
      headers: { "x-api-key": key, accept: "application/json" },
      redirect: "manual",
      signal: AbortSignal.timeout(15000),
    });
    await res.body?.cancel();
  } catch (e) {
    throw new Error(`cannot reach the upstream at ${baseUrl} to check APIFRAME_API_KEY (${e.cause?.code ?? e.name}): check APIFRAME_BASE_URL and the network`);
  }
  if (res.status === 401 || res.status === 403) {
    throw new Error(`the upstream at ${baseUrl} refused APIFRAME_API_KEY (HTTP ${res.status}): check the key (it stays out of this message)`);
  }
  if (!res.ok) {
    console.warn(`demo: warning: GET ${baseUrl}/v2/me answered HTTP ${res.status}; the key could not be confirmed, starting anyway`);
    return false;
  }
  return true;
}

/** make demo's quotas in its default anonymous mode (seconds of video a day). */
export const DEMO_QUOTAS = { user: "300", global: "3000" };

/** Secrets: to the worker through its env file, never on a command line. */
export const SECRET_VARS = ["AUTH_HS256_SECRET", "AUTH_HS256_SECRET_PREVIOUS", "TURNSTILE_SECRET", "ADMIN_TOKEN"];
/** Plain settings passed through from the environment as worker vars. */
const PASSED_VARS = /^(AUTH_|TURNSTILE_|QUOTA_)|^RATE_LIMIT$/;

/**
 * The worker settings `make demo` passes from `env`: `{vars, secrets, mode}`.
 * With no identity mode set, the demo runs anonymous, as a local demo should.
 */
export function demoSettings(env) {
  const vars = {};
  const secrets = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || value === "") continue;
    if (SECRET_VARS.includes(name)) secrets[name] = value;
    else if (PASSED_VARS.test(name)) vars[name] = value;
  }
  if (!vars.AUTH_JWKS_URL && !secrets.AUTH_HS256_SECRET && !vars.AUTH_ANONYMOUS) {
    vars.AUTH_ANONYMOUS = "on";
    // Anyone may spend in anonymous mode: a quota per client and for all.
    vars.QUOTA_USER_DAILY_SECONDS ??= DEMO_QUOTAS.user;
    vars.QUOTA_GLOBAL_DAILY_SECONDS ??= DEMO_QUOTAS.global;
  }
  const mode = vars.AUTH_JWKS_URL
    ? `JWKS (${vars.AUTH_JWKS_URL})`
    : secrets.AUTH_HS256_SECRET
      ? "HS256 (AUTH_HS256_SECRET)"
      : `anonymous (AUTH_ANONYMOUS=${vars.AUTH_ANONYMOUS})`;
  const quotas = ["QUOTA_USER_DAILY_SECONDS", "QUOTA_GLOBAL_DAILY_SECONDS", "QUOTA_USER_IN_FLIGHT"]
    .filter((name) => vars[name])
    .map((name) => `${name}=${vars[name]}`)
    .join(", ");
  return { vars, secrets, mode, quotas: quotas || "none" };
}

async function get(url, ms = 2000) {
  const res = await fetch(url, { signal: AbortSignal.timeout(ms) });
  const text = await res.text();
  return { status: res.status, text, type: res.headers.get("content-type") || "" };
}

/**
 * Starts the whole stack. Resolves with `{url, simUrl, mode, stop}`.
 * - `apiKey`: the real Apiframe key; when given, no simulator is started.
 * - `simKey`: the simulator's key otherwise (it must contain "sim" or "test").
 */
export async function startStack({
  port = 8787,
  jobMs = 15000,
  apiKey,
  baseUrl = REAL_API,
  publicUrl,
  simKey = DEMO_SIM_KEY,
  echo = false,
  startTimeoutMs = 90000,
  settings = demoSettings({}),
  stateDir,
} = {}) {
  const real = Boolean(apiKey);
  for (const [what, path] of [["wrangler", WRANGLER], ["the worker build (worker/build/)", join(ROOT, "worker", "build", "index.js")], ...(real ? [] : [["the simulator", SIM_BIN]])]) {
    if (!existsSync(path)) throw new Error(`${what} is missing (${path}): run \`make setup build\``);
  }
  if (!(await portFree(port))) throw new Error(`port ${port} on 127.0.0.1 is in use; choose another: make demo DEMO_PORT=8788`);
  if (existsSync(join(ROOT, "worker", ".dev.vars"))) {
    console.warn("demo: note: worker/.dev.vars exists; wrangler reads it instead of the demo's generated secrets");
  }
  copyPkg();

  const tmp = mkdtempSync(join(tmpdir(), "sora-edge-demo-"));
  const parts = [];
  const stopAll = async () => {
    for (const p of parts.reverse()) await p.stop().catch(() => {});
    parts.length = 0;
    rmSync(tmp, { recursive: true, force: true });
  };

  try {
    const origin = `http://127.0.0.1:${port}`;
    let upstream = baseUrl;
    let key = apiKey;
    let simUrl = null;
    if (real) await checkKey(upstream, key);
    else {
      key = simKey;
      const sim = await startSim({ apiKey: simKey, jobMs, echo });
      parts.push(sim);
      simUrl = sim.url;
      upstream = simUrl;
    }

    // The key as a secret: a private .env file, never argv, never the page.
    // Durable Object storage (the ledger, the jobs' records): `stateDir` when
    // given, kept; else a folder of this run's, removed with it.
    const persistDir = stateDir ?? join(tmp, "state");
    const envFile = join(tmp, "worker.env");
    const secretLines = Object.entries(settings.secrets).map(([name, value]) => `${name}=${value}\n`);
    writeFileSync(envFile, [`APIFRAME_API_KEY=${key}\n`, ...secretLines].join(""), { mode: 0o600 });
    const relayUrl = real ? publicUrl || "" : origin;
    const args = [
      "dev", "-c", WRANGLER_CONFIG, "--local",
      "--ip", "127.0.0.1", "--port", String(port),
      "--inspector-port", String(await freePort()),
      "--env-file", envFile,
      "--persist-to", persistDir,
      "--var", `APIFRAME_BASE_URL:${upstream}`,
      "--var", `PUBLIC_URL:${relayUrl}`,
      "--show-interactive-dev-session=false",
      "--log-level", echo ? "info" : "warn",
    ];
    if (!real) args.push("--var", `RELAY_FALLBACK_MS:${Math.max(3000, Math.round(jobMs * 1.5))}`);
    for (const [name, value] of Object.entries(settings.vars)) args.push("--var", `${name}:${value}`);
    const env = { ...process.env, WRANGLER_SEND_METRICS: "false", NO_UPDATE_NOTIFIER: "1", WRANGLER_LOG_PATH: join(tmp, "logs") };
    delete env.APIFRAME_API_KEY; // the worker gets it from the .env file only
    for (const name of SECRET_VARS) delete env[name];
    const worker = spawnGroup("worker", WRANGLER, args, { env, echo });
    parts.push(worker);

    // Ready when the page, the library and the API all answer.
    await until(startTimeoutMs, "the worker (wrangler dev)", async () => {
      const page = await get(`${origin}/`);
      return page.status === 200 && page.text.includes("sora-edge");
    }, worker);
    const lib = await get(`${origin}/pkg/sora_edge_bg.wasm`, 5000);
    if (lib.status !== 200) throw new Error(`the worker does not serve /pkg/sora_edge_bg.wasm (HTTP ${lib.status})`);
    // A job the worker did not create: its own 404 (or, in a token mode, its
    // own 401 for a request without a token), with no upstream request. The
    // upstream's refusal of the key was ruled out before the worker started.
    const api = await get(`${origin}/api/v2/jobs/00000000-0000-4000-8000-000000000000`, 10000);
    const own = /json/.test(api.type) && JSON.parse(api.text)?.error?.source === "edge";
    if (!own || ![401, 404].includes(api.status)) {
      throw new Error(`the worker's /api does not answer as it should (HTTP ${api.status} ${api.type})`);
    }
    if (api.status === 401 && settings.vars.AUTH_ANONYMOUS === "on") throw new Error("the worker asks for a token in anonymous mode");

    return {
      url: origin,
      simUrl,
      mode: real ? "real" : "sim",
      upstream: real ? upstream : simUrl,
      stateDir: persistDir,
      processes: parts.map((p) => p.child.pid),
      worker,
      stop: stopAll,
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

// ---------------------------------------------------------------- command line
const USAGE = "usage: node scripts/demo.mjs [--port 8787] [--job-ms 15000] [--verbose]";

function options(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string", default: "8787" },
      "job-ms": { type: "string", default: "15000" },
      verbose: { type: "boolean", short: "v", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const port = /^\d+$/.test(values.port) ? Number(values.port) : NaN;
  const jobMs = /^\d+$/.test(values["job-ms"]) ? Number(values["job-ms"]) : NaN;
  if (!(port >= 1 && port <= 65535)) throw new Error("--port must be 1..65535");
  if (!(jobMs >= 100)) throw new Error("--job-ms must be an integer >= 100");
  return { port, jobMs, verbose: values.verbose };
}

async function main() {
  const o = options(process.argv.slice(2));
  const apiKey = (process.env.APIFRAME_API_KEY || "").trim() || undefined;
  let stack = null;
  let stopping = false;
  const shutdown = async (code) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write("\ndemo: stopping…\n");
    await stack?.stop();
    process.stdout.write("demo: stopped\n");
    process.exit(code);
  };
  process.on("SIGINT", () => shutdown(0));
  process.on("SIGTERM", () => shutdown(0));
  process.on("SIGHUP", () => shutdown(0));

  const settings = demoSettings(process.env);
  console.log(apiKey
    ? "demo: APIFRAME_API_KEY is set: using the real Apiframe API (jobs cost credits)"
    : `demo: starting the Apiframe simulator (jobs of ${o.jobMs / 1000} s) and the edge worker…`);
  console.log(`demo: identity mode: ${settings.mode}; quotas: ${settings.quotas}`);
  const started = Date.now();
  stack = await startStack({
    port: o.port,
    jobMs: o.jobMs,
    apiKey,
    baseUrl: (process.env.APIFRAME_BASE_URL || "").trim() || REAL_API,
    publicUrl: (process.env.DEMO_PUBLIC_URL || "").trim() || undefined,
    echo: o.verbose,
    settings,
    // The ledger and the jobs' records outlive a restart; a new folder starts clean.
    stateDir: (process.env.DEMO_STATE_DIR || "").trim() || join(ROOT, ".demo-state"),
  });
  if (stopping) return;
  stack.worker.exited.then(({ code, signal }) => {
    if (!stopping) {
      console.error(`demo: the worker exited (code ${code}, signal ${signal})\n${stack.worker.tail()}`);
      shutdown(1);
    }
  });
  const line = "─".repeat(64);
  console.log(`
${line}
  sora-edge demo is running   (ready in ${((Date.now() - started) / 1000).toFixed(1)} s)

  Open  ${stack.url}/

  upstream : ${stack.mode === "real" ? `${stack.upstream} (real API; the key stays in the worker)` : `simulator at ${stack.simUrl}`}
  worker   : wrangler dev (local workerd), /api -> upstream, page from www/
  state    : ${stack.stateDir} (kept across restarts; DEMO_STATE_DIR moves it)
  identity : ${settings.mode}
  quotas   : ${settings.quotas}
  ${stack.mode === "sim" ? 'tip      : "[fail:some reason]" in a prompt makes the job fail; "[ms=5000]" sets its length' : "relay    : " + (process.env.DEMO_PUBLIC_URL ? `webhooks to ${process.env.DEMO_PUBLIC_URL}` : "off (set DEMO_PUBLIC_URL to a public tunnel to enable); the page polls")}

  Ctrl-C stops everything.${o.verbose ? "" : "  (--verbose shows the worker's log)"}
${line}
`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`demo: ${e.message}`);
    process.exit(1);
  });
}
