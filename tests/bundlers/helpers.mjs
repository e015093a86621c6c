// Shared by the tests in this folder: the packed package, fresh projects made
// from committed fixtures, the README's snippets as shipped, a static server,
// and Chromium with the edge worker's /api stood in for by the simulator.
import { spawn } from "node:child_process";
import { createReadStream, cpSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize, sep } from "node:path";
import { chromium } from "playwright-core";
import { ROOT } from "../support/sim.mjs";

export { ROOT };
export const FIXTURES = join(ROOT, "tests", "bundlers", "fixtures");
const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking"];

/** Runs a command; resolves with its output, rejects (with the output) on a non-zero exit or after timeoutMs. */
export function sh(cmd, args, { cwd, env = process.env, timeoutMs = 180000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => { out += d; });
    child.stderr.on("data", (d) => { out += d; });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", (e) => { clearTimeout(timer); reject(e); });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(" ")} (in ${cwd}) ended with ${signal ?? `code ${code}`}:\n${out}`));
    });
  });
}

/** A temporary folder, removed by `cleanup()`. */
export function tempDir(prefix) {
  return mkdtempSync(join(tmpdir(), `sora-edge-${prefix}-`));
}

export const cleanup = (dir) => rmSync(dir, { recursive: true, force: true });

/** `npm pack` of pkg/ (as built by scripts/build.sh); resolves with the tarball's path and its file list. */
export async function packPackage(dest) {
  const [info] = JSON.parse(await sh("npm", ["pack", join(ROOT, "pkg"), "--pack-destination", dest, "--json", "--loglevel=error"], { cwd: dest }));
  return { tarball: join(dest, info.filename), files: info.files.map((f) => f.path), info };
}

const NPM_QUIET = ["--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"];

/**
 * A fresh project: a temp copy of fixtures/<name> installed exactly from its
 * committed lockfile (`npm ci`), then `npm install <tarball>` as a user would.
 */
export async function freshProject(name, tarball) {
  const dir = tempDir(name);
  try {
    cpSync(join(FIXTURES, name), dir, { recursive: true });
    await sh("npm", ["ci", ...NPM_QUIET], { cwd: dir });
    await sh("npm", ["install", tarball, ...NPM_QUIET], { cwd: dir });
    return dir;
  } catch (e) {
    cleanup(dir);
    throw e;
  }
}

/**
 * The code blocks under a README heading (up to the next heading of the same
 * or a higher level), by language: `{ js: [...], html: [...], sh: [...] }`.
 */
export function readmeBlocks(markdown, heading) {
  const lines = markdown.split(/\r?\n/);
  const start = lines.findIndex((l) => l.trim() === heading);
  if (start < 0) throw new Error(`the README has no "${heading}" heading`);
  const level = /^#+/.exec(heading)[0].length;
  const blocks = {};
  for (let i = start + 1; i < lines.length; i++) {
    const h = /^(#+)\s/.exec(lines[i]);
    if (h && h[1].length <= level) break;
    const open = /^```\s*(\w+)\s*$/.exec(lines[i]);
    if (!open) continue;
    const end = lines.findIndex((l, j) => j > i && /^```\s*$/.test(l));
    if (end < 0) throw new Error(`unterminated code block under "${heading}"`);
    (blocks[open[1]] ??= []).push(lines.slice(i + 1, end).join("\n") + "\n");
    i = end;
  }
  return blocks;
}

/** The README that ships in the installed package (node_modules/sora-edge/README.md). */
export const shippedReadme = (project) => readFileSync(join(project, "node_modules", "sora-edge", "README.md"), "utf8");

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".css": "text/css" };

/** Serves `dir` on 127.0.0.1 (a free port) the way any static host would; resolves with `{url, close}`. */
export async function serveStatic(dir) {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const file = normalize(join(dir, path.endsWith("/") ? `${path}index.html` : path));
    let st = null;
    try { st = file.startsWith(dir + sep) ? statSync(file) : null; } catch { /* missing */ }
    if (!st?.isFile()) return res.writeHead(404, { "content-type": "text/plain" }).end(`not found: ${path}`);
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "content-length": st.size });
    createReadStream(file).pipe(res);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

/** Headless Chromium (the system one, driven by playwright-core). */
export const launchChromium = () => chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });

/**
 * A page where `/api/*` of the app's origin behaves like the edge worker in
 * front of the simulator: the request goes on to `sim.url` with the key added.
 * Counts /api requests; `seen.crashed` rejects at the page's first uncaught error.
 */
export async function openPage(browser, sim) {
  const page = await browser.newPage();
  const seen = { api: 0, errors: [] };
  // Rejects at the page's first uncaught error: race it against any wait.
  seen.crashed = new Promise((_, reject) => page.on("pageerror", (e) => {
    seen.errors.push(e.message);
    reject(new Error(`uncaught in the page: ${e.message}`));
  }));
  seen.crashed.catch(() => {});
  await page.route(/\/api\//, async (route) => {
    seen.api++;
    const url = new URL(route.request().url());
    const headers = { ...route.request().headers(), "x-api-key": sim.apiKey };
    const response = await route.fetch({ url: sim.url + url.pathname.replace(/^\/api/, "") + url.search, headers });
    await route.fulfill({ response });
  });
  return { page, seen };
}
