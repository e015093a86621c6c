// The module entry workerd loads (scripts/build-worker.sh copies it to
// worker/build/index.js, next to wasm-bindgen's glue). It instantiates the
// wasm, hands the fetch handler and the Durable Object class (both Rust:
// #[event(fetch)], #[durable_object]) to the runtime, and recovers from traps.
//
// The workspace builds with `panic = "abort"`: a Rust panic traps the wasm
// instance (`WebAssembly.RuntimeError: unreachable`) in the middle of a call,
// which leaves its memory as it was at that moment (RefCells borrowed, the
// shadow stack pointer moved, the task queue stopped). Every later call into
// it may fail or hang, and the futures it was running never finish. So:
//
// * A trap is seen at once: workers-rs's panic hook (worker::init) logs
//   "Rust panic: <message>" and then sets `criticalError` on its state
//   object, which this entry makes a setter; a `WebAssembly.RuntimeError`
//   out of a call, or reported as an unhandled rejection or error (a trap
//   that is no panic), counts too.
// * Then, in a microtask (after the trap has left the wasm), the instance is
//   replaced in place: `__wbg_reset_state` (wasm-bindgen's
//   --experimental-reset-state-function) makes a fresh instance of the same
//   module and runs its start function again (workers-rs's panic hook).
//   Objects and closures of the old instance then refuse to run.
// * Requests in flight on the trapped instance are answered 500
//   `internal` (no details; the log has the panic), and a Durable Object's
//   live event streams end: their subscribers reconnect with Last-Event-ID
//   and the object, made again from its stored record, replays from there.
//
// workerd runs a deployment's Durable Objects in the same isolate as its
// fetch handler (Cloudflare may too), so they share one instance: a trap in
// either replaces it for both. The wrapper class below makes its Rust object again, from the
// same state and env, the first time it is used on a new instance.
import wasmModule from "./sora_edge_worker_bg.wasm";
import * as glue from "./sora_edge_worker.js";

glue.initSync({ module: wasmModule });

const INTERNAL = JSON.stringify({
  error: { code: "internal", message: "the worker failed to handle this request", source: "edge" },
});

/** The answer to a request whose instance trapped: no details. */
const internal = () =>
  new Response(INTERNAL, {
    status: 500,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  });

/** One instance: whether it trapped, and what to stop when it does. */
const generation = (id) => ({ id, trapped: false, stops: new Set() });
let current = generation(0);
// Between a replacement and the next call in, a RuntimeError reported late
// (an unhandled rejection) belongs to the replaced instance.
let replaced = false;

/** Marks `gen` trapped (once) and replaces it when the trap has left the wasm. */
function trapped(gen, what) {
  if (gen !== current || gen.trapped) return;
  gen.trapped = true;
  console.error(
    `edge: the wasm instance trapped (${what}); its requests in flight answer 500, the next call gets a fresh instance`,
  );
  Promise.resolve().then(replace);
}

/** A fresh instance for a trapped one; stops what waited on the old. */
function replace() {
  const old = current;
  if (!old.trapped) return;
  glue.__wbg_reset_state();
  panicking = false;
  current = generation(old.id + 1);
  replaced = true;
  for (const stop of old.stops) stop();
  old.replacedAt = Date.now();
  if (old.stops.size > 0) stopping.add(old);
}

// A call that waits in another request than the one that trapped (a job
// object and the fetch handler share the instance) is stopped by rejecting a
// promise of that request: workerd runs the reaction in that request, but
// only if it is still waiting on something then. The next thing it hears of
// is its own I/O finishing, which wakes a closure of the old instance; that
// closure refuses to run (an unhandled rejection, in that request): then a
// short timer keeps the request alive until the stop arrives, and it
// answers 500. No request pays for this until an instance traps; a request
// still waiting a minute later (its client gone) is no longer waited for.
const stopping = new Set();
function keepStopping() {
  for (const gen of stopping) {
    if (gen.stops.size === 0 || Date.now() - gen.replacedAt > 60000) stopping.delete(gen);
  }
  if (stopping.size === 0) return;
  try {
    setTimeout(() => {}, 100);
  } catch {
    // not in a request
  }
}

/** The instance a call in runs on: a fresh one if the last trapped. */
function enter() {
  if (current.trapped) replace();
  replaced = false;
  return current;
}

// workers-rs's panic hook sets this after logging the panic, just before the trap.
const initState = glue.__worker_init_state?.();
let panicking = false;
if (initState && typeof initState === "object") {
  Object.defineProperty(initState, "criticalError", {
    configurable: true,
    enumerable: true,
    get: () => panicking,
    set(value) {
      panicking = Boolean(value);
      if (panicking) trapped(current, "a Rust panic, logged above");
    },
  });
}

const isTrap = (e) => e instanceof WebAssembly.RuntimeError;
const onLateTrap = (e) => {
  keepStopping();
  if (!replaced && isTrap(e)) trapped(current, `${e.name}: ${e.message}`);
};
addEventListener("unhandledrejection", (event) => onLateTrap(event.reason));
addEventListener("error", (event) => onLateTrap(event.error));

/** Why a call stopped waiting: its instance trapped. */
const STOPPED = Symbol("stopped");

/**
 * `call(gen)` (a call into the instance `gen`), settled as it settles, or
 * by `onTrap()` once `gen` traps: its futures would never finish.
 */
function guarded(call, onTrap) {
  const gen = enter();
  let stop;
  return new Promise((resolve, reject) => {
    stop = () => reject(STOPPED);
    gen.stops.add(stop);
    call(gen).then(resolve, reject);
  }).then(
    (value) => {
      gen.stops.delete(stop);
      return value;
    },
    (e) => {
      gen.stops.delete(stop);
      if (isTrap(e)) trapped(gen, `${e.name}: ${e.message}`);
      if (gen.trapped) return onTrap();
      throw e;
    },
  );
}

const fetch = (req, env, ctx) => guarded(() => glue.fetch(req, env, ctx), internal);

export default { fetch };

/** A Durable Object's Rust object on an instance (a symbol: forwarders below call it). */
const rustOn = Symbol("rust object");

const failed = () => {
  throw new Error("the object failed to handle this call");
};

/**
 * A Durable Object class for the Rust class `Rust` (exported by
 * #[durable_object]) on the current instance. Its Rust object is made at
 * first use and again after a trap (from the same state and env; what it
 * keeps is in storage). An event stream it answers ends when the instance traps.
 */
function durableObjectClass(Rust) {
  class Wrapped {
    #state;
    #env;
    #rust = null;
    #gen = null;

    constructor(state, env) {
      this.#state = state;
      this.#env = env;
    }

    /** The Rust object on `gen`, made if the last was on another instance. */
    [rustOn](gen) {
      if (this.#gen !== gen) {
        // An old object is dropped, never freed: its pointer is into the old instance.
        this.#rust = new Rust(this.#state, this.#env);
        this.#gen = gen;
      }
      return this.#rust;
    }

    async fetch(req) {
      return guarded(async (gen) => endsOnTrap(gen, await this[rustOn](gen).fetch(req)), internal);
    }
  }
  // The other handlers the Rust class has (alarm, webSocket*, ...): a trap
  // throws, so the runtime retries an alarm.
  for (const name of Object.getOwnPropertyNames(Rust.prototype)) {
    if (["constructor", "free", "fetch"].includes(name) || name.startsWith("__")) continue;
    if (typeof Rust.prototype[name] !== "function") continue;
    Object.defineProperty(Wrapped.prototype, name, {
      configurable: true,
      writable: true,
      value: function (...args) {
        return guarded(async (gen) => this[rustOn](gen)[name](...args), failed);
      },
    });
  }
  return Wrapped;
}

/** One job's relay and record (relay.rs). */
export const JobRelay = durableObjectClass(glue.JobRelay);
/** The deployment's quota ledger (ledger.rs). */
export const Ledger = durableObjectClass(glue.Ledger);

/**
 * `res` as it is, or, for an event stream, with its body read through a
 * stream that ends when `gen` traps: the body's source lives in the instance.
 */
function endsOnTrap(gen, res) {
  if (!res.body || !(res.headers.get("content-type") ?? "").startsWith("text/event-stream")) return res;
  const reader = res.body.getReader();
  let end;
  const body = new ReadableStream(
    {
      start(controller) {
        end = () => {
          gen.stops.delete(end);
          try {
            controller.close();
          } catch {
            // already closed or errored
          }
        };
        gen.stops.add(end);
      },
      async pull(controller) {
        try {
          const { done, value } = await reader.read();
          if (done) {
            gen.stops.delete(end);
            controller.close();
          } else {
            controller.enqueue(value);
          }
        } catch (e) {
          // The source of a replaced instance refuses to run: end as on a trap.
          gen.stops.delete(end);
          if (gen.trapped) end();
          else {
            try {
              controller.error(e);
            } catch {
              // already closed
            }
          }
        }
      },
      cancel(reason) {
        gen.stops.delete(end);
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(body, res);
}
