// Browser tests of the demo page against the stack `make demo` starts (the
// simulator + the edge worker in local workerd via wrangler dev, serving www/),
// started here by the same function (scripts/demo.mjs startStack) on a free port
// with short jobs. Drives Debian's Chromium with playwright-core.
//
//   node --test --test-reporter=spec tests/e2e/demo.test.mjs
//   (--test-name-pattern=<regex> runs a subset)
//
// The tests share one stack, one browser and what was seen on the wire, and
// run in order: the last two check what every page the others opened did and
// every request they made.
// Screenshots go to tests/artifacts/e2e-*.png.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { after, afterEach, before, test } from "node:test";
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { startStack } from "../../scripts/demo.mjs";
import { freePort } from "../../scripts/net.mjs";
import { simControl } from "../support/sim-control.mjs";
import { ROOT, startSim } from "../support/sim.mjs";

const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run",
];
const ARTIFACTS = join(ROOT, "tests", "artifacts");
/** No test here takes a minute; one that does is stuck. */
const TEST_TIMEOUT_MS = 60000;
const JOB_MS = 5000;
/** A simulator key unique to this run, so that a leak of it cannot be a coincidence. */
const KEY = `afk_sim_e2e_${randomBytes(12).toString("hex")}`;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let stack;
let context;
let userDataDir;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------ leak watching
/** Every request and response of every page, checked for the key. */
const seen = {
  requests: [], keyHeaders: [], bodyChecks: [], bodiesChecked: 0, apiBodiesChecked: 0,
  apiUnread: [], otherUnread: 0, keyInBody: [], streams: [],
  pageErrors: [], consoleErrors: [], pageFiles: [], pageFilesFailed: [],
};

const isApi = (url) => { try { return new URL(url).pathname.startsWith("/api/"); } catch { return false; } };
/** The page's own code and styles: a module that fails to load leaves the page half wired, with no other sign. */
const isPageFile = (req) =>
  ["document", "script", "stylesheet"].includes(req.resourceType()) || new URL(req.url()).pathname.endsWith(".wasm");

async function watch(page) {
  // Event streams: Playwright cannot read their bodies, so their bytes are
  // captured through CDP as they arrive (Network.streamResourceContent).
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.setCacheDisabled", { cacheDisabled: true }); // no 304s: every body is real
  const streams = new Map();
  cdp.on("Network.responseReceived", (ev) => {
    if (!/event-stream/.test(ev.response.mimeType || "")) return;
    const s = { url: ev.response.url, chunks: [], error: null };
    streams.set(ev.requestId, s);
    seen.streams.push(s);
    cdp.send("Network.streamResourceContent", { requestId: ev.requestId })
      .then((r) => { if (r.bufferedData) s.chunks.unshift(Buffer.from(r.bufferedData, "base64")); })
      .catch((e) => { s.error = e.message; });
  });
  cdp.on("Network.dataReceived", (ev) => {
    const s = streams.get(ev.requestId);
    if (s && ev.data) s.chunks.push(Buffer.from(ev.data, "base64"));
  });

  page.on("request", (req) => {
    seen.requests.push({ url: req.url(), method: req.method(), at: Date.now(), page });
    seen.bodyChecks.push(
      req.allHeaders().then((h) => {
        for (const [name, value] of Object.entries(h)) {
          if (name.toLowerCase() === "x-api-key" || String(value).includes(KEY)) seen.keyHeaders.push(`${req.method()} ${req.url()} (${name})`);
        }
        const body = req.postData();
        if (body && body.includes(KEY)) seen.keyHeaders.push(`${req.method()} ${req.url()} (body)`);
      }).catch(() => {}),
    );
  });
  page.on("response", (res) => {
    const url = res.url();
    const api = new URL(url).pathname.startsWith("/api/");
    if (!api && isPageFile(res.request())) {
      const file = { path: new URL(url).pathname, status: res.status(), type: res.headers()["content-type"] || "" };
      seen.pageFiles.push(file);
      if (file.status >= 400) seen.pageFilesFailed.push(`${file.path}: HTTP ${file.status}`);
    }
    if (/event-stream/.test(res.headers()["content-type"] || "")) return; // captured above
    seen.bodyChecks.push(
      Promise.race([res.body(), sleep(20000).then(() => { throw new Error("no body within 20 s"); })])
        .then((buf) => {
          seen.bodiesChecked++;
          if (api) seen.apiBodiesChecked++;
          if (buf.includes(KEY)) seen.keyInBody.push(url);
        })
        .catch((e) => {
          // Only a video the page dropped (reload, close) may go unread; an /api body may not.
          if (api) seen.apiUnread.push(`${url}: ${e.message.split("\n")[0]}`);
          else seen.otherUnread++;
          if (process.env.E2E_DEBUG) console.log("    unreadable:", url, e.message.split("\n")[0]);
        }),
    );
  });
  page.on("requestfailed", (req) => {
    if (!isApi(req.url()) && isPageFile(req)) seen.pageFilesFailed.push(`${new URL(req.url()).pathname}: ${req.failure()?.errorText}`);
  });
  page.on("pageerror", (e) => {
    seen.pageErrors.push(e.message);
    console.log(`    page error: ${e.message}`);
  });
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const at = msg.location().url || "";
    // The browser logs every refused /api call; the tests make some on purpose (a spent quota).
    if (/^Failed to load resource/.test(msg.text()) && isApi(at)) return;
    seen.consoleErrors.push(`${msg.text()} (${at})`);
  });
}

/** The key must be in no DOM and no localStorage entry of the page. */
async function assertNoKeyInPage(page) {
  const found = await page.evaluate((key) => {
    const where = [];
    if (document.documentElement.outerHTML.includes(key)) where.push("DOM");
    for (let i = 0; i < localStorage.length; i++) {
      const k = localStorage.key(i);
      if (k.includes(key) || String(localStorage.getItem(k)).includes(key)) where.push(`localStorage[${k}]`);
    }
    for (const v of document.querySelectorAll("input, textarea")) if (v.value.includes(key)) where.push(`#${v.id}.value`);
    return where;
  }, KEY);
  assert(found.length === 0, `the API key appears in the page: ${found.join(", ")}`);
}

// ------------------------------------------------------------ helpers
/** Polls `fn` (in Node) until truthy; fails with `what` after `ms`. */
async function until(ms, what, fn) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await sleep(100);
  }
  throw new Error(`${what}: not within ${ms} ms (last: ${JSON.stringify(last)})`);
}

async function freshPage(url = stack.url) {
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.setDefaultNavigationTimeout(15000);
  await watch(page);
  await page.goto(`${url}/`);
  // Booted (its first requests answered) before the reload, which would cut them off.
  await page.waitForSelector("html[data-ready='true']");
  await page.evaluate(() => localStorage.clear());
  await page.reload();
  await page.waitForSelector("html[data-ready='true']");
  return page;
}

const simConfig = (body) => simControl(stack.simUrl).config(body);

const panel = (page) => page.evaluate(() => ({
  state: document.getElementById("panel").dataset.state,
  badge: document.getElementById("status-badge").textContent,
  jobId: document.getElementById("job-id").textContent,
  progress: Number(document.getElementById("bar").getAttribute("aria-valuenow")),
  percent: document.getElementById("percent").textContent,
  elapsed: document.getElementById("elapsed").textContent,
  eta: document.getElementById("eta").textContent,
  generateDisabled: document.getElementById("generate").disabled,
  error: document.getElementById("error").hidden ? null : {
    title: document.getElementById("error-title").textContent,
    code: document.getElementById("error-code").textContent,
    detail: document.getElementById("error-detail").textContent,
  },
  announcer: document.getElementById("announcer").textContent,
}));

const videoState = (page) => page.evaluate(() => {
  const v = document.getElementById("video");
  return { readyState: v.readyState, duration: v.duration, currentTime: v.currentTime, paused: v.paused, src: v.currentSrc, error: v.error && v.error.code };
});

async function fillForm(page, { prompt, model = "sora-2", ratio = "16:9", duration = 8, startImage = "" }) {
  await page.fill("#prompt", prompt);
  await page.selectOption("#model", model);
  // The radios are styled as buttons: click their labels, as a user would.
  await page.click(`label[for="${ratio === "9:16" ? "ar-916" : "ar-169"}"]`);
  await page.click(`label[for="d${duration}"]`);
  await page.fill("#startImage", startImage);
  await page.locator("#startImage").blur();
}

async function waitRunningWithProgress(page, min = 1) {
  return until(10000, `progress >= ${min}`, async () => {
    const p = await panel(page);
    return p.state === "processing" && p.progress >= min ? p : false;
  });
}

async function waitPlaying(page) {
  await page.waitForSelector("#result:not([hidden])", { timeout: 20000 });
  return until(15000, "the video loads and plays", async () => {
    const v = await videoState(page);
    return v.readyState >= 2 && v.duration > 0 && !v.paused && v.currentTime > 0.2 ? v : false;
  });
}

const apiRequestsFor = (jobId, after = 0) =>
  seen.requests.filter((r) => r.at >= after && r.url.includes(`/api/v2/jobs/${jobId}`));

// ------------------------------------------------------------ the stack
before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const t0 = Date.now();
  stack = await startStack({ port: await freePort(), jobMs: JOB_MS, simKey: KEY });
  console.log(`e2e: stack up in ${Date.now() - t0} ms: page ${stack.url}, simulator ${stack.simUrl}`);
  userDataDir = mkdtempSync(join(tmpdir(), "sora-edge-e2e-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1280, height: 900 },
    timeout: 30000,
  });
});

after(async () => {
  await context?.close();
  await stack?.stop();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

// A test that failed half way leaves its page open; the next starts clean.
afterEach(async () => {
  for (const page of context?.pages() ?? []) await page.close().catch(() => {});
});

// ------------------------------------------------------------ the tests
const testCase = (name, fn) => test(name, { timeout: TEST_TIMEOUT_MS }, fn);

testCase("generate: the form submits, progress advances, the video loads and plays", async () => {
  await simConfig({ jobMs: 8000 });
  const page = await freshPage();
  const prompt = "A paper boat drifting down a rainy neon street at night, slow dolly shot, reflections on wet asphalt";
  await fillForm(page, {
    prompt,
    duration: 8,
    startImage: `${stack.url}/favicon.svg`,
  });
  await page.waitForSelector("#start-thumb:not([hidden])", { timeout: 5000 });
  const count = await page.textContent("#prompt-count");
  assert(count.startsWith(`${[...prompt].length} /`), `character count: ${count}`);
  await page.screenshot({ path: join(ARTIFACTS, "e2e-form.png"), fullPage: true });

  await page.click("#generate");
  const atClick = await panel(page);
  assert(atClick.generateDisabled, "Generate must be disabled while the submit is in flight");
  const first = await until(5000, "a job id", async () => {
    const p = await panel(page);
    return UUID.test(p.jobId) ? p : false;
  });

  // Progress advances: several distinct values between 0 and 100, never going back.
  const values = [];
  let shot = false;
  let etaSeen = null;
  await until(20000, "the job completes", async () => {
    const p = await panel(page);
    if (p.state === "processing" && (values.length === 0 || values[values.length - 1] !== p.progress)) values.push(p.progress);
    if (p.state === "processing" && /left/.test(p.eta)) etaSeen = p.eta;
    if (!shot && p.state === "processing" && p.progress >= 40) {
      shot = true;
      await page.screenshot({ path: join(ARTIFACTS, "e2e-progress.png"), fullPage: true });
    }
    assert(p.state !== "failed" && p.state !== "error", `the job ended ${p.state}: ${JSON.stringify(p.error)}`);
    return p.state === "completed";
  });
  const mid = values.filter((v) => v > 0 && v < 100);
  assert(mid.length >= 3, `progress should advance through several values, saw ${JSON.stringify(values)}`);
  assert(values.every((v, i) => i === 0 || v >= values[i - 1]), `progress went backwards: ${JSON.stringify(values)}`);
  assert(shot, "no progress screenshot was taken");
  assert(etaSeen, "no estimate of the time left was shown");

  const v = await waitPlaying(page);
  assert(v.readyState >= 2 && v.duration > 0, `video: ${JSON.stringify(v)}`);
  const href = await page.getAttribute("#download", "href");
  assert(href && href === v.src, `download link ${href} should be the video ${v.src}`);
  const attrs = await page.evaluate(() => {
    const el = document.getElementById("video");
    return ["controls", "autoplay", "muted", "loop", "playsinline"].filter((a) => !el.hasAttribute(a));
  });
  assert(attrs.length === 0, `the video lacks ${attrs.join(", ")}`);
  const done = await panel(page);
  assert(done.jobId === first.jobId && !done.generateDisabled, `after completion: ${JSON.stringify(done)}`);
  const hist = await page.evaluate(() => JSON.parse(localStorage.getItem("sora-edge:jobs")));
  assert(hist.length === 1 && hist[0].id === first.jobId && hist[0].status === "COMPLETED", `history: ${JSON.stringify(hist)}`);
  await page.screenshot({ path: join(ARTIFACTS, "e2e-video.png"), fullPage: true });
  // The same page in the dark theme on a phone-sized screen (for a look, not an assertion).
  await page.emulateMedia({ colorScheme: "dark" });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.locator("#panel").scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(ARTIFACTS, "e2e-video-dark-mobile.png") });
  await page.emulateMedia({ colorScheme: "light" });
  await assertNoKeyInPage(page);
  await page.close();
});

testCase("cancel: Cancel mid-job stops the wait", async () => {
  await simConfig({ jobMs: 6000 });
  const page = await freshPage();
  await fillForm(page, { prompt: "Slow aerial shot over a misty pine forest at dawn", duration: 4 });
  await page.click("#generate");
  const running = await waitRunningWithProgress(page);
  const jobId = running.jobId;
  await page.click("#cancel");
  const cancelledAt = Date.now();
  const p = await until(2000, "the panel shows the cancellation", async () => {
    const q = await panel(page);
    return q.state === "cancelled" ? q : false;
  });
  assert(!p.generateDisabled, "Generate should be enabled again after Cancel");
  assert(p.error && p.error.code === "aborted", `cancel notice: ${JSON.stringify(p.error)}`);
  assert(await page.isVisible("#resume"), "Resume waiting should be offered");
  // The job would complete at 6 s: wait past that; nothing may follow it any more.
  await sleep(Math.max(0, 6000 - (Date.now() - cancelledAt)) + 1500);
  const after = apiRequestsFor(jobId, cancelledAt + 300);
  assert(after.length === 0, `requests after Cancel: ${after.map((r) => r.url).join(", ")}`);
  const later = await panel(page);
  assert(later.state === "cancelled", `after the job's end the panel says ${later.state}`);
  assert(!(await page.isVisible("#result")), "no video after a cancelled wait");
  const rec = await page.evaluate((id) => JSON.parse(localStorage.getItem("sora-edge:jobs")).find((j) => j.id === id), jobId);
  assert(rec && rec.status === "CANCELLED", `history: ${JSON.stringify(rec)}`);
  await assertNoKeyInPage(page);
  await page.close();
});

testCase("clear: Clear mid-job forgets the history, stops the wait and turns Generate back on", async () => {
  await simConfig({ jobMs: 6000 });
  const page = await freshPage();
  await fillForm(page, { prompt: "Slow pan across a quiet harbour at dusk", duration: 4 });
  await page.click("#generate");
  const { jobId } = await waitRunningWithProgress(page);
  await page.click("#clear-history");
  const clearedAt = Date.now();
  await until(2000, "Generate is enabled again", async () => !(await panel(page)).generateDisabled);
  const jobs = await page.evaluate(() => JSON.parse(localStorage.getItem("sora-edge:jobs") ?? "[]"));
  assert(jobs.length === 0, `history after Clear: ${JSON.stringify(jobs)}`);
  await sleep(1500);
  const after = apiRequestsFor(jobId, clearedAt + 300);
  assert(after.length === 0, `requests after Clear: ${after.map((r) => r.url).join(", ")}`);
  await page.close();
});

testCase("validation: a bad start-image URL and an over-long prompt are flagged with no request", async () => {
  const page = await freshPage();
  await sleep(300);
  const mark = seen.requests.length;
  await page.fill("#prompt", "A lighthouse in a storm");
  await page.fill("#startImage", "htp//not a url.png");
  await page.locator("#startImage").blur();
  await page.waitForSelector("#startImage-error:not([hidden])", { timeout: 3000 });
  const msg = await page.textContent("#startImage-error");
  assert(/startImage/.test(msg), `field message: ${msg}`);
  assert((await page.getAttribute("#startImage", "aria-invalid")) === "true", "the field should be aria-invalid");
  await page.click("#generate");
  await sleep(800);
  assert(await page.isVisible("#startImage-error"), "still flagged after Generate");
  assert(await page.evaluate(() => document.activeElement.id === "startImage"), "focus should move to the bad field");
  const p = await panel(page);
  assert(p.state === "empty", `nothing should be submitted, panel: ${p.state}`);
  assert(await page.isHidden("#start-thumb"), "no thumbnail for a bad URL");

  // Other bad URLs, and a prompt over 4000 characters (emoji count as one each, as in the library).
  await page.fill("#startImage", "ftp://example.com/frame.png");
  await page.locator("#startImage").blur();
  await until(3000, "ftp URL flagged", async () => /ftp/.test(await page.textContent("#startImage-error")));
  await page.fill("#startImage", "");
  await page.locator("#startImage").blur();
  await page.fill("#prompt", "😀".repeat(4000));
  const c1 = await page.textContent("#prompt-count");
  assert(c1.startsWith("4,000 /"), `4000 emoji count as 4,000 characters, shown: ${c1}`);
  await page.waitForTimeout(300);
  assert(await page.isHidden("#prompt-error"), "4000 characters are allowed");
  await page.type("#prompt", "!");
  await page.waitForSelector("#prompt-error:not([hidden])", { timeout: 3000 });
  assert(/4000/.test(await page.textContent("#prompt-error")), "prompt message names the limit");
  await page.click("#generate");
  await sleep(500);
  assert((await panel(page)).state === "empty", "an over-long prompt is not submitted");

  const made = seen.requests.slice(mark).filter((r) => r.page === page);
  assert(made.length === 0, `requests were made: ${made.map((r) => `${r.method} ${r.url}`).join(", ")}`);
  await page.close();
});

testCase("failure: a failed job shows the upstream's reason", async () => {
  await simConfig({ jobMs: 3000 });
  const page = await freshPage();
  await fillForm(page, { prompt: "A crowded stadium, close-ups of faces [fail:content policy violation]", duration: 4 });
  await page.click("#generate");
  const p = await until(10000, "the job fails", async () => {
    const q = await panel(page);
    return q.state === "failed" ? q : false;
  });
  assert(p.error && p.error.code === "job_failed", `error code: ${JSON.stringify(p.error)}`);
  assert(/content policy violation/.test(p.error.detail), `the reason should be shown: ${JSON.stringify(p.error)}`);
  assert(/could not be made/i.test(p.error.title), `plain words: ${p.error.title}`);
  assert(!p.generateDisabled, "Generate enabled after a failure");
  assert(await page.isHidden("#result"), "no video for a failed job");
  await page.screenshot({ path: join(ARTIFACTS, "e2e-failed.png"), fullPage: true });
  await assertNoKeyInPage(page);
  await page.close();
});

testCase("reload: a running job is re-attached by id and finishes", async () => {
  await simConfig({ jobMs: 7000 });
  const page = await freshPage();
  await fillForm(page, { prompt: "Time-lapse of clouds rolling over mountain peaks", ratio: "9:16", duration: 10 });
  await page.click("#generate");
  const before = await waitRunningWithProgress(page, 10);
  const reloadedAt = Date.now();
  await page.reload();
  await page.waitForSelector("html[data-ready='true']");
  const after = await until(5000, "the job is back in the panel", async () => {
    const q = await panel(page);
    return q.jobId === before.jobId ? q : false;
  });
  assert(after.state === "processing" || after.state === "queued" || after.state === "completed", `after reload: ${after.state}`);
  await until(15000, "the re-attached job completes", async () => (await panel(page)).state === "completed");
  const v = await waitPlaying(page);
  assert(v.readyState >= 2 && v.duration > 0, `video: ${JSON.stringify(v)}`);
  const followed = apiRequestsFor(before.jobId, reloadedAt);
  assert(followed.length > 0, "the reloaded page made no request for the job: it did not re-attach");
  const rec = await page.evaluate((id) => JSON.parse(localStorage.getItem("sora-edge:jobs")).find((j) => j.id === id), before.jobId);
  assert(rec && rec.status === "COMPLETED" && rec.videoUrl, `history: ${JSON.stringify(rec)}`);
  await assertNoKeyInPage(page);
  await page.close();
});

testCase("keyboard: the form can be filled and submitted without a mouse", async () => {
  await simConfig({ jobMs: 3000 });
  const page = await freshPage();
  await page.focus("#prompt");
  await page.keyboard.type("Macro shot of dew on a spider web");
  await page.keyboard.press("Tab"); // model
  await page.keyboard.press("Tab"); // aspect ratio group
  await page.keyboard.press("ArrowRight"); // 9:16
  await page.keyboard.press("Tab"); // duration group
  await page.keyboard.press("ArrowLeft"); // 8 -> 4
  const picked = await page.evaluate(() => [document.querySelector("[name=aspectRatio]:checked").value, document.querySelector("[name=duration]:checked").value]);
  assert(picked[0] === "9:16" && picked[1] === "4", `keyboard choices: ${picked}`);
  const outline = await page.evaluate(() => getComputedStyle(document.querySelector("#d4 + label")).outlineStyle);
  assert(outline !== "none", "the focused choice has a visible outline");
  await page.focus("#prompt");
  await page.keyboard.press("Control+Enter");
  await until(10000, "the job completes", async () => (await panel(page)).state === "completed");
  const live = await page.getAttribute("#announcer", "aria-live");
  assert(live === "polite", "status updates go to an aria-live region");
  await until(3000, "completion is announced", async () => /ready/i.test((await panel(page)).announcer));
  await page.close();
});

/**
 * Runs `make demo`'s command (scripts/demo.mjs) with `env` on `port` until it
 * prints its URL (resolves `{url, output, stop}`) or exits (resolves
 * `{exited: code, output}`), within 90 s. Its Durable Object state is a
 * folder of this run's (removed when the run ends) unless `env` names one in
 * DEMO_STATE_DIR: the checkout's `.demo-state/` would carry one test's
 * ledger into the next.
 */
function runDemo(port, env) {
  const ownState = env.DEMO_STATE_DIR ? null : mkdtempSync(join(tmpdir(), "sora-edge-e2e-demo-"));
  const child = spawn(process.execPath, [join(ROOT, "scripts", "demo.mjs"), "--port", String(port)], {
    cwd: ROOT,
    env: { ...process.env, ...(ownState ? { DEMO_STATE_DIR: ownState } : {}), ...env },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines = [];
  const removeState = () => ownState && rmSync(ownState, { recursive: true, force: true });
  child.once("exit", removeState);
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once("exit", r));
    try { process.kill(-child.pid, "SIGTERM"); } catch { /* gone */ }
    const t = setTimeout(() => { try { process.kill(-child.pid, "SIGKILL"); } catch { /* gone */ } }, 8000);
    await gone;
    clearTimeout(t);
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`make demo printed no URL within 90 s:\n${lines.join("\n")}`));
    }, 90000);
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on("line", (line) => {
        lines.push(line);
        const open = line.match(/Open\s+(http:\/\/127\.0\.0\.1:\d+)\//);
        if (open) {
          clearTimeout(timer);
          resolve({ url: open[1], output: () => lines.join("\n"), stop });
        }
      });
    }
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ exited: code, output: () => lines.join("\n") });
    });
  });
}

testCase("another upstream: make demo with APIFRAME_API_KEY, APIFRAME_BASE_URL and DEMO_PUBLIC_URL runs a job to the end", async () => {
  const otherKey = `afk_sim_other_${randomBytes(12).toString("hex")}`;
  const upstream = await startSim({ apiKey: otherKey, jobMs: 3000 });
  const port = await freePort();
  const demo = await runDemo(port, {
    APIFRAME_API_KEY: otherKey,
    APIFRAME_BASE_URL: upstream.url,
    DEMO_PUBLIC_URL: `http://127.0.0.1:${port}`,
  });
  try {
    assert(demo.url, `make demo did not start: exit ${demo.exited}\n${demo.output()}`);
    assert(!demo.output().includes(otherKey), "the key is in make demo's output");
    const page = await freshPage(demo.url);
    await fillForm(page, { prompt: "A lighthouse at dusk, waves breaking, slow pan", duration: 4 });
    await page.click("#generate");
    await until(30000, "the job completes", async () => {
      const p = await panel(page);
      assert(p.state !== "failed" && p.state !== "error", `the job ended ${p.state}: ${JSON.stringify(p.error)}`);
      return p.state === "completed";
    });
    await waitPlaying(page);
    const stats = await upstream.control.stats();
    assert.equal(stats.jobsCreated, 1, "one job at the other upstream");
    assert(stats.webhooks.delivered >= 1, "the relay was on: the upstream's webhooks reached the worker");
    await page.close();
  } finally {
    await demo.stop?.();
    await upstream.stop();
  }
});

testCase("another upstream: make demo with a wrong APIFRAME_API_KEY stops at start-up with a clear message", async () => {
  const upstream = await startSim({ apiKey: `afk_sim_right_${randomBytes(8).toString("hex")}`, jobMs: 3000 });
  const wrong = `afk_sim_wrong_${randomBytes(12).toString("hex")}`;
  try {
    const demo = await runDemo(await freePort(), { APIFRAME_API_KEY: wrong, APIFRAME_BASE_URL: upstream.url });
    await demo.stop?.();
    assert.equal(demo.exited, 1, `make demo should stop (exit 1), got:\n${demo.output()}`);
    assert.match(demo.output(), /refused APIFRAME_API_KEY \(HTTP 401\)/, demo.output());
    assert(!demo.output().includes(wrong), "the key is in make demo's output");
    assert.equal((await upstream.control.stats()).requests.generate ?? 0, 0, "nothing was submitted");
  } finally {
    await upstream.stop();
  }
});

testCase("identity: make demo passes AUTH_HS256_SECRET through its env file and prints the mode; the worker then spends only for a token", async () => {
  const secret = `demo-secret-${randomBytes(24).toString("hex")}`;
  const port = await freePort();
  const demo = await runDemo(port, { AUTH_HS256_SECRET: secret, RATE_LIMIT: "off" });
  try {
    assert(demo.url, `make demo did not start: exit ${demo.exited}\n${demo.output()}`);
    assert.match(demo.output(), /identity mode: HS256/, demo.output());
    assert(!demo.output().includes(secret), "the secret is in make demo's output");
    const generate = (headers = {}) =>
      fetch(`${demo.url}/api/v2/videos/generate`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ prompt: "a token-gated demo job", model: "sora-2" }),
        signal: AbortSignal.timeout(10000),
      });
    const refused = await generate();
    assert.equal(refused.status, 401, "no token");
    assert.equal((await refused.json()).error.code, "auth_required");
    const { SignJWT } = await import("jose");
    const token = await new SignJWT({ sub: "demo-user" })
      .setProtectedHeader({ alg: "HS256" })
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(new TextEncoder().encode(secret));
    const accepted = await generate({ authorization: `Bearer ${token}` });
    assert.equal(accepted.status, 202, await accepted.clone().text());
  } finally {
    await demo.stop?.();
  }
});

testCase("quota: the page shows the seconds of video left today, and says so clearly when they are spent", async () => {
  const port = await freePort();
  const demo = await runDemo(port, { QUOTA_USER_DAILY_SECONDS: "4", QUOTA_GLOBAL_DAILY_SECONDS: "100" });
  try {
    assert(demo.url, `make demo did not start: exit ${demo.exited}\n${demo.output()}`);
    assert.match(demo.output(), /quotas: QUOTA_USER_DAILY_SECONDS=4, QUOTA_GLOBAL_DAILY_SECONDS=100/, demo.output());
    const page = await freshPage(demo.url);
    await page.waitForSelector("#quota:not([hidden])", { timeout: 10000 });
    assert.match(await page.textContent("#quota"), /^4 s of video left today$/);
    await fillForm(page, { prompt: "A quiet harbour at dawn, gulls overhead", duration: 4 });
    await page.click("#generate");
    await until(10000, "the quota shows as spent", async () => /quota is spent/.test(await page.textContent("#quota")));
    await fillForm(page, { prompt: "One more harbour, please", duration: 4 });
    await page.click("#generate");
    const p = await until(10000, "the refusal", async () => {
      const q = await panel(page);
      return q.error ? q : false;
    });
    assert.equal(p.error.code, "quota_exceeded", JSON.stringify(p.error));
    assert.match(p.error.title, /quota is spent/i, JSON.stringify(p.error));
    await page.screenshot({ path: join(ARTIFACTS, "e2e-quota.png"), fullPage: true });
    await page.close();
  } finally {
    await demo.stop?.();
  }
});

testCase("restart: make demo keeps the ledger in DEMO_STATE_DIR; after a restart /api/usage shows the same nonzero figures", async () => {
  const stateDir = mkdtempSync(join(tmpdir(), "sora-edge-demo-state-"));
  const env = { DEMO_STATE_DIR: stateDir, QUOTA_USER_DAILY_SECONDS: "40" };
  const usage = async (url) => (await fetch(`${url}/api/usage`, { signal: AbortSignal.timeout(10000) })).json();
  try {
    const first = await runDemo(await freePort(), env);
    let before;
    try {
      assert(first.url, `make demo did not start: exit ${first.exited}\n${first.output()}`);
      const res = await fetch(`${first.url}/api/v2/videos/generate`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt: "a job that outlives a restart", model: "sora-2", soraParams: { duration: 8 } }),
        signal: AbortSignal.timeout(10000),
      });
      assert.equal(res.status, 202, await res.clone().text());
      before = await usage(first.url);
      assert.equal(before.usedSeconds + before.reservedSeconds, 8, JSON.stringify(before));
    } finally {
      await first.stop?.();
    }
    const second = await runDemo(await freePort(), env);
    try {
      assert(second.url, `make demo did not restart: exit ${second.exited}\n${second.output()}`);
      const after = await usage(second.url);
      assert.equal(after.usedSeconds + after.reservedSeconds, 8, JSON.stringify(after));
      assert.equal(after.leftSeconds, 32);
    } finally {
      await second.stop?.();
    }
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});

testCase("page: no script error on any page; every module of www/ loads as JavaScript", async () => {
  assert(seen.pageErrors.length === 0, `uncaught errors in the page: ${seen.pageErrors.join("; ")}`);
  assert(seen.consoleErrors.length === 0, `console errors: ${seen.consoleErrors.join("; ")}`);
  assert(seen.pageFilesFailed.length === 0, `page files that did not load: ${seen.pageFilesFailed.join("; ")}`);
  // Every module in www/ is imported (none is dead) and served with a type a module script may have.
  const modules = readdirSync(join(ROOT, "www"), { withFileTypes: true })
    .filter((f) => f.isFile() && f.name.endsWith(".js"))
    .map((f) => `/${f.name}`);
  assert(modules.includes("/app.js"), `www/ modules: ${modules.join(", ")}`);
  for (const path of modules) {
    const served = seen.pageFiles.filter((f) => f.path === path);
    assert(served.length > 0, `${path} was never loaded: no module imports it`);
    for (const f of served) assert(f.status === 200 && /javascript/.test(f.type), `${path}: HTTP ${f.status}, ${f.type}`);
  }
});

testCase("secrets: no request carries X-API-Key; the key is in no response body", async (t) => {
  await Promise.all(seen.bodyChecks);
  assert(seen.keyHeaders.length === 0, `requests with the key: ${seen.keyHeaders.join("; ")}`);
  assert(seen.requests.length > 20, `too few requests observed (${seen.requests.length}) for the check to mean anything`);
  assert(seen.apiBodiesChecked >= 5, `too few /api response bodies were read (${seen.apiBodiesChecked})`);
  assert(seen.apiUnread.length === 0, `/api responses whose body could not be checked: ${seen.apiUnread.join("; ")}`);
  assert(seen.streams.length >= 3, `too few event streams captured (${seen.streams.length})`);
  let streamBytes = 0;
  for (const st of seen.streams) {
    const buf = Buffer.concat(st.chunks);
    streamBytes += buf.length;
    assert(!st.error, `event stream ${st.url} not captured: ${st.error}`);
    assert(buf.includes("event: job"), `event stream ${st.url}: nothing captured (${buf.length} bytes)`);
    if (buf.includes(KEY)) seen.keyInBody.push(st.url);
  }
  assert(seen.keyInBody.length === 0, `responses with the key: ${seen.keyInBody.join("; ")}`);
  // The worker does hold the key: the simulator refuses anyone without it.
  const direct = await fetch(`${stack.simUrl}/v2/me`, { signal: AbortSignal.timeout(5000) });
  assert(direct.status === 401, `the simulator should refuse a request without the key (got ${direct.status})`);
  t.diagnostic(`checked ${seen.requests.length} requests; ${seen.bodiesChecked} response bodies (${seen.apiBodiesChecked} from /api) and ${seen.streams.length} event streams (${streamBytes} bytes); ${seen.otherUnread} dropped media/static bodies unread`);
});
