// Checks that the README's "### Quick start: Node" snippet really works: takes
// the first ```js block under that heading, writes it into the repo (so that
// `sora-edge` resolves by name through node_modules), and runs it with node
// against a freshly started simulator, with APIFRAME_API_KEY / APIFRAME_BASE_URL
// pointing at it. Passes if it exits 0 and printed this simulator's video URL.
//   node --test --test-reporter=spec tests/quickstart-node.mjs
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { startSim, ROOT } from "./support/sim.mjs";

const HEADING = "### Quick start: Node";
const RUN_TIMEOUT_MS = 60000;

/** The first ```js (or ```javascript / ```mjs) block after HEADING, before the next heading of level <= 3. */
export function extractSnippet(markdown) {
  const lines = markdown.split(/\r?\n/);
  const start = lines.findIndex((l) => l.trim() === HEADING);
  if (start < 0) throw new Error(`README.md has no "${HEADING}" heading`);
  for (let i = start + 1; i < lines.length; i++) {
    if (/^#{1,3}\s/.test(lines[i])) break;
    if (/^\s*```\s*(js|javascript|mjs)\s*$/.test(lines[i])) {
      const end = lines.findIndex((l, j) => j > i && /^\s*```\s*$/.test(l));
      if (end < 0) throw new Error(`unterminated code block after "${HEADING}"`);
      return lines.slice(i + 1, end).join("\n") + "\n";
    }
  }
  throw new Error(`no \`\`\`js code block under "${HEADING}"`);
}

function runNode(file, env) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => { stdout += d; });
    child.stderr.on("data", (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill("SIGKILL"), RUN_TIMEOUT_MS);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

test("README quick start (Node) runs against the simulator and prints its video URL", async (t) => {
  const snippet = extractSnippet(readFileSync(process.env.QUICKSTART_README || join(ROOT, "README.md"), "utf8"));
  assert.match(snippet, /\bsora-edge\b/, "the quick-start snippet imports sora-edge");
  const dir = join(ROOT, "tests", "artifacts");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "quickstart-node.mjs");
  writeFileSync(file, snippet);

  const sim = await startSim({ jobMs: 2000 });
  t.after(() => sim.stop());
  const env = { ...process.env, APIFRAME_API_KEY: sim.apiKey, APIFRAME_BASE_URL: sim.url };
  const t0 = Date.now();
  const r = await runNode(file, env);
  const out = r.stdout + r.stderr;
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  const re = new RegExp(`${sim.url.replace(/[.:/]/g, "\\$&")}/videos/sample\\.mp4\\?job=([0-9a-f-]{36})`);
  const m = re.exec(r.stdout);
  const st = await sim.control.stats();
  const problems = [];
  if (r.code !== 0) problems.push(`exited with code ${r.code}${r.signal ? ` (signal ${r.signal}${r.signal === "SIGKILL" ? `, timed out after ${RUN_TIMEOUT_MS} ms` : ""})` : ""}`);
  if (!m) problems.push(`did not print a video URL of the simulator (${sim.url}/videos/sample.mp4?job=<id>)`);
  if (st.jobsCreated !== 1) problems.push(`the simulator created ${st.jobsCreated} jobs, expected 1`);
  if (m && !(st.statusReads[m[1]] >= 1)) problems.push(`the printed job ${m[1]} was never read from the simulator`);
  if (st.auth.wrong + st.auth.missing > 0) problems.push(`requests without the right key: ${JSON.stringify(st.auth)}`);
  if (out.includes(sim.apiKey)) problems.push("the output contains the API key");
  // Every problem at once, with the snippet and what it printed.
  assert.ok(problems.length === 0, `${problems.join("; ")}\n--- snippet (${file}) ---\n${snippet}--- output ---\n${out}`);
  t.diagnostic(`ran in ${secs} s, printed ${m[0]}`);
});
