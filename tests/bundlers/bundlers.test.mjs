// The packed package in real bundlers, each with its default configuration:
// Vite 8 and Vite 5 (build and dev server), esbuild, webpack 5, Rollup and
// Next.js. The app is the README's "Quick start: browser" as written (its HTML
// and its script, taken from the README inside the installed package); for
// Next.js, a React page doing the same. Each result is loaded in Chromium,
// where bad input must be refused with no request, and a run must complete
// against the simulator, with the page's /api standing for the edge worker.
// No bundler may need to fetch a separate .wasm file.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { freePort } from "../../scripts/net.mjs";
import { startSim } from "../support/sim.mjs";
import { cleanup, freshProject, launchChromium, openPage, packPackage, readmeBlocks, serveStatic, sh, shippedReadme, tempDir } from "./helpers.mjs";

const TEST_TIMEOUT_MS = 150000;
const page = (html, script) => `<!doctype html>\n<html><head><meta charset="utf-8"><title>sora-edge</title></head>\n<body>\n${html}${script}\n</body></html>\n`;

// How each bundler is run: its documented command, no sora-edge-specific option.
const BUNDLERS = [
  { name: "Vite 8", fixture: "vite8", vite: true },
  { name: "Vite 5", fixture: "vite5", vite: true },
  { name: "esbuild", fixture: "esbuild", cmd: ["esbuild", "src/index.js", "--bundle", "--format=esm", "--outdir=dist"], script: '<script type="module" src="./index.js"></script>' },
  // webpack's default output is a classic script: its automatic publicPath needs document.currentScript.
  { name: "webpack 5", fixture: "webpack", cmd: ["webpack", "--mode", "production"], script: '<script defer src="./main.js"></script>' },
  { name: "Rollup", fixture: "rollup", cmd: ["rollup", "-c"], script: '<script type="module" src="./index.js"></script>' },
];

let tmp;
let tarball;
let sim;
let browser;
const projects = new Map();

before(async () => {
  tmp = tempDir("bundlers");
  ({ tarball } = await packPackage(tmp));
  sim = await startSim({ jobMs: 1500 });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await sim?.stop();
  for (const dir of [tmp, ...[...projects.values()].map((p) => p.dir)]) if (dir) cleanup(dir);
});

/**
 * The fresh project for a bundler, with the README's script in src/index.js
 * (made once per fixture); resolves with `{dir, html}`, html being the README's page.
 */
async function project(b) {
  if (!projects.has(b.fixture)) {
    const dir = await freshProject(b.fixture, tarball);
    const { html: [html], js: [js] } = readmeBlocks(shippedReadme(dir), "### Quick start: browser");
    mkdirSync(join(dir, "src"));
    writeFileSync(join(dir, "src", "index.js"), js);
    if (b.vite) writeFileSync(join(dir, "index.html"), page(html, '<script type="module" src="/src/index.js"></script>'));
    projects.set(b.fixture, { dir, html });
  }
  return projects.get(b.fixture);
}

const bin = (dir, name) => join(dir, "node_modules", ".bin", name);
const simRequests = async () => Object.values((await sim.control.stats()).requests).reduce((a, n) => a + n, 0);

/**
 * Drives the README's page at `url` once `ready()` holds in it (by default: the
 * snippet has set its click handler): bad input first, then a real run.
 */
async function exercise(url, ready = () => typeof document.getElementById("go")?.onclick === "function") {
  const { page: tab, seen } = await openPage(browser, sim);
  const wasmFetches = [];
  tab.on("request", (r) => { if (/\.wasm(\?|$)/.test(r.url())) wasmFetches.push(r.url()); });
  try {
    await tab.goto(url);
    await Promise.race([seen.crashed, tab.waitForFunction(ready, null, { timeout: 30000 })]);
    await sim.control.reset();
    seen.api = 0;

    await tab.fill("#prompt", "   ");
    await tab.click("#go");
    await Promise.race([seen.crashed, tab.waitForFunction(() => document.getElementById("status").textContent !== "", null, { timeout: 20000 })]);
    assert.match(await tab.textContent("#status"), /^invalid_request: .*prompt/);
    assert.equal(seen.api, 0, "the page sent a request for bad input");
    assert.equal(await simRequests(), 0, "bad input reached the simulator");

    await tab.evaluate(() => { document.getElementById("status").textContent = ""; });
    await tab.fill("#prompt", "drone shot over a tropical coastline");
    await tab.click("#go");
    await Promise.race([seen.crashed, tab.waitForFunction(() => document.getElementById("video").getAttribute("src") || document.getElementById("status").textContent, null, { timeout: 60000 })]);
    const src = await tab.getAttribute("#video", "src");
    assert.ok(src, `the run failed: ${await tab.textContent("#status")}`);
    assert.match(src, new RegExp(`^${sim.url}/videos/sample\\.mp4\\?job=[0-9a-f-]{36}$`));
    assert.equal(Number(await tab.$eval("#bar", (e) => e.value)), 100);
    const stats = await sim.control.stats();
    assert.equal(stats.jobsCreated, 1);
    assert.ok(stats.requests.job >= 1, "the job was never read");
    assert.deepEqual(wasmFetches, [], "the page fetched a separate .wasm");
    assert.deepEqual(seen.errors, []);
  } finally {
    await tab.close();
  }
}

/** Starts a project's own server (`vite`, `next start`) on a free port, in its own process group; resolves with `{url, stop, output}`. */
async function startServer(dir, cmd, args) {
  const port = await freePort();
  const env = { ...process.env, NEXT_TELEMETRY_DISABLED: "1" };
  const child = spawn(bin(dir, cmd), [...args, String(port)], { cwd: dir, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => { out += d; });
  child.stderr.on("data", (d) => { out += d; });
  const stop = () => { if (child.exitCode === null) process.kill(-child.pid, "SIGKILL"); };
  const url = `http://127.0.0.1:${port}/`;
  for (let i = 0; i < 150; i++) {
    if (child.exitCode !== null) throw new Error(`${cmd} exited (${child.exitCode}):\n${out}`);
    const ok = await fetch(url).then((r) => r.ok, () => false);
    if (ok) return { url, stop, output: () => out };
    await new Promise((r) => setTimeout(r, 200));
  }
  stop();
  throw new Error(`${cmd} did not answer on ${url} within 30 s:\n${out}`);
}

/** Runs `exercise` against a server started by `startServer`, with its output in any failure. */
async function exerciseServer(server, ready) {
  try {
    await exercise(server.url, ready);
  } catch (e) {
    e.message += `\n--- server output ---\n${server.output()}`;
    throw e;
  } finally {
    server.stop();
  }
}

for (const b of BUNDLERS) {
  test(`${b.name}: build, default config`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const { dir, html } = await project(b);
    const dist = join(dir, "dist");
    if (b.vite) {
      await sh(bin(dir, "vite"), ["build"], { cwd: dir });
    } else {
      await sh(bin(dir, b.cmd[0]), b.cmd.slice(1), { cwd: dir });
      writeFileSync(join(dist, "index.html"), page(html, b.script));
    }
    const server = await serveStatic(dist);
    try {
      await exercise(server.url + "/");
    } finally {
      await server.close();
    }
  });
  if (b.vite) {
    test(`${b.name}: dev server, default config`, { timeout: TEST_TIMEOUT_MS }, async () => {
      const { dir } = await project(b);
      await exerciseServer(await startServer(dir, "vite", ["--host", "127.0.0.1", "--strictPort", "--port"]));
    });
  }
}

// Next.js: its client build of a page that does what the README's snippet
// does (fixtures/next/app/page.js), prerendered on the server (the Node entry,
// bundled) and hydrated in the browser (the browser entry).
test("Next.js: next build, next start, default config", { timeout: TEST_TIMEOUT_MS }, async () => {
  const dir = await freshProject("next", tarball);
  projects.set("next", { dir });
  await sh(bin(dir, "next"), ["build"], { cwd: dir, env: { ...process.env, NEXT_TELEMETRY_DISABLED: "1" } });
  const server = await startServer(dir, "next", ["start", "-H", "127.0.0.1", "-p"]);
  await exerciseServer(server, () => document.querySelector("main[data-hydrated]") !== null);
});
