// Client for the simulator's control API (/__sim/*), see docs/ARCHITECTURE.md.
// Runs unchanged in Node 18+ and in browsers (plain fetch, no Node imports).

const CONTROL_TIMEOUT_MS = 5000;

/** @param {string} simUrl e.g. "http://127.0.0.1:41234" */
export function simControl(simUrl, fetchImpl = globalThis.fetch.bind(globalThis)) {
  async function call(method, path, body) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), CONTROL_TIMEOUT_MS);
    try {
      const res = await fetchImpl(simUrl + path, {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: ctl.signal,
      });
      const text = await res.text();
      if (!res.ok) {
        throw new Error(`simulator ${method} ${path} -> HTTP ${res.status}: ${text.slice(0, 300)}`);
      }
      return text ? JSON.parse(text) : null;
    } catch (e) {
      if (ctl.signal.aborted) throw new Error(`simulator ${method} ${path}: no answer within ${CONTROL_TIMEOUT_MS} ms`);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }
  return {
    /** GET /__sim/stats */
    stats: () => call("GET", "/__sim/stats"),
    /** POST /__sim/reset: jobs, counts, queued faults and config back to the flags */
    reset: () => call("POST", "/__sim/reset", {}),
    /** POST /__sim/faults: queue faults consumed one per matching request */
    faults: (route, list) => call("POST", "/__sim/faults", { route, faults: list }),
    /** POST /__sim/config: any subset of jobMs, resultShape, dropWebhooks, faultRate, faultSet, seed */
    config: (obj) => call("POST", "/__sim/config", obj),
  };
}
