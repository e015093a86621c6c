# sora-edge: `make test` sets up a fresh Debian 12 machine and runs every test;
# `make demo` starts the local demo. See README.md and docs/ARCHITECTURE.md.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.NOTPARALLEL:
.DEFAULT_GOAL := help

# npm's binaryen (wasm-opt 132) must win over Debian's broken wasm-opt 108.
export PATH := $(CURDIR)/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)
export WRANGLER_SEND_METRICS := false

# The browser build (wasm + glue, gzip -9) is held to the 52 KB goal, built by
# the toolchain rust-toolchain.toml pins. What costs what is in BENCHMARKS.md
# and docs/perf-notes.md.
SIZE_CEILING ?= 53248
DEMO_PORT ?= 8787
ARTIFACTS := tests/artifacts

.PHONY: help setup build test test-clean lint test-native test-wasm-node test-wasm-chromium test-types \
        test-bundlers test-worker size test-summary demo bench

help:
	@echo "make setup   install what a fresh Debian 12 machine needs (idempotent)"
	@echo "make build   simulator (native) + wasm package (pkg/) + edge worker (worker/build/, and its test build worker/build-test/)"
	@echo "make test    setup, build, lints, cargo tests, wasm tests (Node, Chromium), types, bundlers (incl. the README quick starts), size"
	@echo "make size    gzip -9 size of the browser build (ceiling SIZE_CEILING=$(SIZE_CEILING) bytes)"
	@echo "make demo    simulator + edge worker (local workerd) serving the page on http://127.0.0.1:$(DEMO_PORT)/ (Ctrl-C stops it)"

setup:
	bash scripts/setup.sh

build:
	cargo build --release -p apiframe-sim
	bash scripts/build.sh
	bash scripts/build-worker.sh
	SORA_EDGE_TEST_ROUTES=1 bash scripts/build-worker.sh

# ----------------------------------------------------------------------- test
test: test-clean setup build lint test-native test-wasm-node test-wasm-chromium test-worker test-faults test-e2e test-types test-bundlers size
	@$(MAKE) --no-print-directory test-summary

# Logs of an earlier run must not feed this run's summary.
test-clean:
	@rm -f $(ARTIFACTS)/*.log $(ARTIFACTS)/size.txt

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings
	cargo clippy --target wasm32-unknown-unknown --lib -- -D warnings
	cargo clippy --target wasm32-unknown-unknown --lib --no-default-features --features edge -- -D warnings
	cargo clippy --target wasm32-unknown-unknown --lib --all-features -- -D warnings
	cargo clippy --target wasm32-unknown-unknown -p sora-edge-worker -- -D warnings
	cargo clippy --target wasm32-unknown-unknown -p sora-edge-worker --features test-routes -- -D warnings

$(ARTIFACTS):
	@mkdir -p $@

test-native: | $(ARTIFACTS)
	cargo test --workspace --all-features 2>&1 | tee $(ARTIFACTS)/native.log

test-wasm-node: | $(ARTIFACTS)
	node --test --test-reporter=spec tests/wasm/node.test.mjs 2>&1 | tee $(ARTIFACTS)/wasm-node.log

test-worker: | $(ARTIFACTS)
	node --test --test-reporter=spec tests/worker/ 2>&1 | tee $(ARTIFACTS)/worker.log

test-wasm-chromium: | $(ARTIFACTS)
	node --test --test-reporter=spec tests/wasm/browser.test.mjs 2>&1 | tee $(ARTIFACTS)/wasm-chromium.log

test-types:
	tsc -p tests/types --noEmit
	tsc -p tests/types/tsconfig.esnext.json --noEmit
	@echo "types: tests/types/usage.ts checks against pkg/sora_edge.d.ts"

# The packed package in fresh projects (tests/bundlers/): the README's quick
# starts as written (Node, also on Node 18; Worker in workerd; browser) and the
# browser app built by Vite 8 and 5 (build and dev), esbuild, webpack 5 and
# Rollup with default configs, run in Chromium against the simulator. About
# 2.5 minutes on 2 cores, most of it `npm ci` of each fixture's lockfile.
test-bundlers: | $(ARTIFACTS)
	node --test --test-reporter=spec tests/bundlers/ 2>&1 | tee $(ARTIFACTS)/bundlers.log

# Per-suite counts from the logs the steps above wrote: cargo test's `test result:`
# lines, and node:test's spec reporter (`ℹ pass N`, `ℹ fail N`) for every JS
# suite. A suite that ran 0 tests, or had one fail, fails the run.
test-summary:
	@bash scripts/test-summary.sh $(ARTIFACTS) $(SIZE_CEILING)

# ----------------------------------------------------------------------- size
size: | $(ARTIFACTS)
	@for f in pkg/sora_edge_bg.wasm pkg/sora_edge.js; do \
	   [ -f "$$f" ] || { echo "size: $$f is missing (run make build)"; exit 1; }; \
	 done; \
	 wasm=$$(gzip -9 -c pkg/sora_edge_bg.wasm | wc -c); \
	 js=$$(gzip -9 -c pkg/sora_edge.js | wc -c); \
	 total=$$((wasm + js)); \
	 echo "$$total" > $(ARTIFACTS)/size.txt; \
	 printf 'size (browser build, gzip -9): sora_edge_bg.wasm %d + sora_edge.js %d = %d bytes (ceiling %d)\n' \
	   "$$wasm" "$$js" "$$total" "$(SIZE_CEILING)"; \
	 if [ "$$total" -gt "$(SIZE_CEILING)" ]; then \
	   echo "size: FAIL: $$total bytes exceeds SIZE_CEILING=$(SIZE_CEILING)"; exit 1; \
	 fi

# ----------------------------------------------------------------------- demo
# The simulator (jobs of DEMO_JOB_MS) and the edge worker in local workerd
# (wrangler dev), which serves the page (www/, with pkg/ copied to www/pkg/)
# and /api on http://127.0.0.1:$(DEMO_PORT)/ (README.md). With APIFRAME_API_KEY
# set: no simulator, the real API; the key goes to the worker as a secret only.
# Ctrl-C stops every process it started. See scripts/demo.mjs.
DEMO_JOB_MS ?= 15000
demo: setup build
	@node scripts/demo.mjs --port $(DEMO_PORT) --job-ms $(DEMO_JOB_MS)

# Browser tests of the demo page (playwright-core + Debian's Chromium) against
# the stack scripts/demo.mjs starts, on a free port with short jobs.
.PHONY: test-e2e
test-e2e: | $(ARTIFACTS)
	node --test --test-reporter=spec tests/e2e/demo.test.mjs 2>&1 | tee $(ARTIFACTS)/e2e.log

# ---------------------------------------------------------------------- bench
# Issue 5's benchmarks as markdown (bench/run.sh): the poll schedule in virtual
# time (1.1), relay, edge proxy overhead, size, cold start (1.2-1.5), the ledger.
# Current figures: BENCHMARKS.md; every run: docs/perf-notes.md. About three minutes.
bench: setup build
	@bash bench/run.sh

# Fault matrix (issue 5, part 2): 1,000 jobs through the client library against
# the simulator with each fault at 20 %; one test per row (a fault alone, or all nine).
.PHONY: test-faults
test-faults: | $(ARTIFACTS)
	node --test --test-reporter=spec tests/faults/matrix.mjs 2>&1 | tee $(ARTIFACTS)/faults.log
