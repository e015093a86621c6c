// Size (issue 5, part 1.4): gzip -9 bytes (the `gzip` binary, as `make size`
// counts) of the browser build and of the worker bundle. Prints markdown rows.
//
//   node bench/size.mjs
import { execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { ROOT, row } from "./lib.mjs";

const GOAL = 20 * 1024;

function gz(file) {
  const path = resolve(ROOT, file);
  if (!existsSync(path)) throw new Error(`${file} is missing (make build)`);
  const out = execFileSync("bash", ["-c", 'gzip -9 -c "$1" | wc -c', "gz", path], { encoding: "utf8" });
  return { file, raw: statSync(path).size, gz: Number(out.trim()) };
}

function part(files) {
  const parts = files.map(gz);
  return {
    detail: parts.map((p) => `${p.file} ${p.gz}`).join(" + "),
    raw: parts.reduce((a, p) => a + p.raw, 0),
    gz: parts.reduce((a, p) => a + p.gz, 0),
  };
}

const browser = part(["pkg/sora_edge_bg.wasm", "pkg/sora_edge.js"]);
const worker = part(["worker/build/sora_edge_worker_bg.wasm", "worker/build/sora_edge_worker.js", "worker/build/index.js"]);
console.log(
  [
    row(
      "1.4 size",
      `browser build, gzip -9 (${browser.detail})`,
      `**${browser.gz} B** (${(browser.gz / 1024).toFixed(1)} KiB; ${browser.raw} B raw)`,
      `≤ 20 KB (${GOAL} B): ${browser.gz <= GOAL ? "met" : `NOT met (${(browser.gz / GOAL).toFixed(2)}×)`}`,
    ),
    row("1.4 size", `worker bundle, gzip -9 (${worker.detail})`, `**${worker.gz} B** (${(worker.gz / 1024).toFixed(1)} KiB; ${worker.raw} B raw)`, "(no goal)"),
  ].join("\n"),
);
