// Runs tests/wasm/cases.mjs in headless Chromium (the system /usr/bin/chromium,
// driven by playwright-core) against a freshly started simulator. The page
// loads the browser build exactly as a user would:
//   import init, * as lib from "/pkg/sora_edge.js"; await init();
// from a tiny static server on 127.0.0.1 that serves /pkg/ and /tests/wasm/.
// Prints `wasm-chromium: N passed, M failed`.   CASES=<regex> runs a subset.
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, rmSync, statSync, createReadStream } from "node:fs";
import { tmpdir } from "node:os";
import { extname, join, normalize, sep } from "node:path";
import { chromium } from "playwright-core";
import { startSim, SIM_KEY, SIM_BIN, ROOT } from "../../scripts/with-sim.mjs";
import { cases } from "./cases.mjs";

const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const RUN_TIMEOUT_MS = Number(process.env.WASM_TEST_WATCHDOG_MS || 8 * 60 * 1000);
const SERVED = ["/pkg/", "/tests/wasm/"];
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".ts": "text/plain; charset=utf-8",
};

let sim;
let server;
let context;
let userDataDir;
let noKeepAlive = false;
let passed = 0;
let failed = 0;

function serveStatic(req, res) {
  const headers = { "Access-Control-Allow-Origin": "*", "Cache-Control": "no-store" };
  let path;
  try {
    path = decodeURIComponent(new URL(req.url, "http://127.0.0.1").pathname);
  } catch {
    res.writeHead(400, headers).end("bad url");
    return;
  }
  const file = normalize(join(ROOT, path));
  const allowed = SERVED.some((p) => path.startsWith(p)) && file.startsWith(ROOT + sep) && !path.includes("..");
  let st;
  try {
    st = allowed ? statSync(file) : null;
  } catch {
    st = null;
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, headers).end();
  } else if (!st || !st.isFile()) {
    res.writeHead(404, { ...headers, "Content-Type": "text/plain" }).end(`not found: ${path}`);
  } else {
    res.writeHead(200, { ...headers, "Content-Type": TYPES[extname(file)] || "application/octet-stream", "Content-Length": st.size });
    if (req.method === "HEAD") res.end();
    else createReadStream(file).pipe(res);
  }
}

async function cleanup() {
  await context?.close().catch((e) => console.error(`wasm-chromium: closing the browser: ${e.message}`));
  context = undefined;
  if (server) {
    server.closeAllConnections?.();
    await new Promise((r) => server.close(() => r()));
    server = undefined;
  }
  await sim?.stop().catch(() => {});
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
}

async function finish(code) {
  clearTimeout(watchdog);
  await cleanup();
  console.log(`wasm-chromium: ${passed} passed, ${failed} failed`);
  process.exit(code);
}
const watchdog = setTimeout(() => {
  console.error(`wasm-chromium: watchdog: not finished after ${RUN_TIMEOUT_MS + 60000} ms`);
  finish(1);
}, RUN_TIMEOUT_MS + 60000);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => finish(130));

let code = 1;
try {
  // Chromium silently resends a request whose reused keep-alive connection is
  // reset before any response (net/http ShouldResendRequest), which hides the
  // library's own behaviour on `reset`/`lost` faults. A simulator that can close
  // every connection after its response (`--no-keep-alive`) avoids that.
  let help = "";
  try {
    help = execFileSync(process.env.SIM_BIN || SIM_BIN, ["--help"], { timeout: 5000, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    help = `${e.stdout || ""}${e.stderr || ""}`;
  }
  noKeepAlive = help.includes("--no-keep-alive");
  sim = await startSim({ apiKey: SIM_KEY, extraArgs: noKeepAlive ? ["--no-keep-alive"] : [] });
  server = createServer(serveStatic);
  await new Promise((res, rej) => server.once("error", rej).listen(0, "127.0.0.1", res));
  const origin = `http://127.0.0.1:${server.address().port}`;
  console.log(`wasm-chromium: simulator at ${sim.url}, pages at ${origin}; ${cases.length} cases defined`);

  userDataDir = mkdtempSync(join(tmpdir(), "sora-edge-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30000,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
      "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (e) => console.error(`[page error] ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") console.error(`[console.${m.type()}] ${m.text()}`);
  });
  const results = [];
  await page.exposeFunction("__soraReport", (r) => {
    results.push(r);
    console.log(`${r.ok ? "ok  " : "FAIL"} ${String(r.ms).padStart(6)} ms  ${r.name}`);
    if (!r.ok) console.log(`      ${r.error}`);
  });
  const q = new URLSearchParams({ sim: sim.url, key: sim.apiKey, keepalive: noKeepAlive ? "0" : "1" });
  if (process.env.CASES) q.set("filter", process.env.CASES);
  await page.goto(`${origin}/tests/wasm/browser.html?${q}`, { timeout: 30000 });
  await page.waitForFunction(() => window.__soraDone || window.__soraFatal, null, { timeout: RUN_TIMEOUT_MS, polling: 250 });
  const fatal = await page.evaluate(() => window.__soraFatal || null);
  const done = await page.evaluate(() => window.__soraDone || null);
  if (fatal) {
    console.error(`wasm-chromium: fatal in the page: ${fatal}`);
  } else {
    // Count from the page's own summary; it must agree with what was reported.
    passed = done.passed;
    failed = done.failed;
    if (results.length !== passed + failed) {
      console.error(`wasm-chromium: ${results.length} results reported, but the page counted ${passed + failed}`);
      failed += 1;
    }
    if (passed + failed === 0) console.error("wasm-chromium: no case ran");
    code = failed === 0 && passed > 0 ? 0 : 1;
  }
} catch (e) {
  console.error(`wasm-chromium: fatal: ${e && e.stack ? e.stack : e}`);
  code = 1;
}
await finish(code);
