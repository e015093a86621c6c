// The wasm cases (cases.mjs) in headless Chromium (the system /usr/bin/chromium,
// driven by playwright-core), one node:test test each, against a freshly
// started simulator. The page loads the browser build exactly as a user would:
//   import init, * as lib from "/pkg/sora_edge.js"; await init();
// from a tiny static server on 127.0.0.1 that serves /pkg/ and /tests/.
//   node --test --test-reporter=spec tests/wasm/browser.test.mjs
//   (--test-name-pattern=<regex> runs a subset)
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, rmSync, statSync, createReadStream } from "node:fs";
import { tmpdir } from "node:os";
import { extname, join, normalize, sep } from "node:path";
import { after, before, beforeEach, test } from "node:test";
import { chromium } from "playwright-core";
import { startSim, SIM_BIN, ROOT } from "../support/sim.mjs";
import { cases } from "./cases.mjs";

const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const SERVED = ["/pkg/", "/tests/wasm/", "/tests/support/"];
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".ts": "text/plain; charset=utf-8",
};

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

/**
 * Chromium silently resends a request whose reused keep-alive connection is
 * reset before any response (net/http ShouldResendRequest), which hides the
 * library's own behaviour on `reset`/`lost` faults. A simulator that can close
 * every connection after its response (`--no-keep-alive`) avoids that.
 */
function simHasNoKeepAlive() {
  let help;
  try {
    help = execFileSync(process.env.SIM_BIN || SIM_BIN, ["--help"], { timeout: 5000, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    help = `${e.stdout || ""}${e.stderr || ""}`;
  }
  return help.includes("--no-keep-alive");
}

let sim;
let server;
let context;
let userDataDir;
let page;

before(async () => {
  const noKeepAlive = simHasNoKeepAlive();
  sim = await startSim({ extraArgs: noKeepAlive ? ["--no-keep-alive"] : [] });
  server = createServer(serveStatic);
  await new Promise((res, rej) => server.once("error", rej).listen(0, "127.0.0.1", res));
  const origin = `http://127.0.0.1:${server.address().port}`;

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
  page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (e) => console.error(`[page error] ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") console.error(`[console.${m.type()}] ${m.text()}`);
  });
  // The key is handed over out of band: in the page's URL it would appear in
  // every stack trace the page makes (an abort reason's too), which the
  // "no error exposes the key" case rightly counts as a leak.
  await page.addInitScript((key) => { window.__soraKey = key; }, sim.apiKey);
  const q = new URLSearchParams({ sim: sim.url, keepalive: noKeepAlive ? "0" : "1" });
  await page.goto(`${origin}/tests/wasm/browser.html?${q}`, { timeout: 30000 });
  await page.waitForFunction(() => window.__soraReady || window.__soraFatal, null, { timeout: 30000, polling: 100 });
  const fatal = await page.evaluate(() => window.__soraFatal || null);
  if (fatal) throw new Error(`the test page did not start: ${fatal}`);
});

after(async () => {
  await context?.close();
  if (server) {
    server.closeAllConnections();
    await new Promise((r) => server.close(() => r()));
  }
  await sim?.stop();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

beforeEach(() => sim.control.reset());

for (const c of cases) {
  test(c.name, { timeout: c.timeoutMs }, async () => {
    const { error } = await page.evaluate((name) => window.__soraCase(name), c.name);
    if (error !== null) throw new Error(error);
  });
}
