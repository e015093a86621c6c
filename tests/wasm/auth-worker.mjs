// A stand-in for the edge worker with auth on (issue 20), for the library's
// token tests in Node (node.test.mjs): a node:http server on loopback that
// answers as the worker's routes do under /api, refuses as the worker does
// ({"error":{"code","message","source":"edge"}}), and records every request
// it gets (method, path, query, Authorization) for the tests to check.
//
//   const worker = await startAuthWorker();
//   worker.base;        // "http://127.0.0.1:PORT/api"
//   worker.requests;    // [{ method, path, query, authorization }]
//   worker.configure({ ticketRoute: false, fail: [...] }); worker.reset();
//   await worker.stop();
import { createServer } from "node:http";
import { once } from "node:events";
import { randomUUID } from "node:crypto";

/** Tokens the stand-in knows. Long enough to be told apart from other text. */
export const TOKENS = {
  good: "good.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJlLWdvb2QtMDEyMzQ1",
  good2: "good.eyJzdWIiOiJ1c2VyLTEiLCJuIjoyfQ.c2lnbmF0dXJlLWdvb2QtNjc4OQ",
  old: "old.eyJzdWIiOiJ1c2VyLTEiLCJleHAiOjF9.c2lnbmF0dXJlLW9sZC0wMTIzNDU",
  echo: "echo.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJlLWVjaG8tMDEyMzQ1",
};

function refuse(res, status, code, message) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ error: { code, message, source: "edge" } }));
}

function json(res, body) {
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

export async function startAuthWorker() {
  const state = {
    requests: [],
    tickets: new Map(), // ticket -> { jobId, used }
    issued: 0,
    config: {},
  };
  const reset = () => {
    state.requests.length = 0;
    state.tickets.clear();
    state.issued = 0;
    state.config = { ticketRoute: true, fail: [] };
  };
  reset();

  // The bearer token's verdict, as the worker gives it: null when accepted.
  function checkBearer(authorization) {
    if (!authorization) return [401, "auth_required", "a token is required"];
    const token = authorization.startsWith("Bearer ") ? authorization.slice(7) : "";
    if (token === TOKENS.old) return [401, "token_expired", "the token has expired"];
    // A misbehaving worker that quotes the token: the library must not show it.
    if (token === TOKENS.echo) return [401, "token_invalid", `token ${token} is not valid`];
    if (token.startsWith("good.")) return null;
    return [401, "token_invalid", "the token is not valid"];
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://stand-in");
    const record = {
      method: req.method,
      path: url.pathname,
      query: url.search,
      authorization: req.headers.authorization ?? null,
      idempotencyKey: req.headers["idempotency-key"] ?? null,
    };
    state.requests.push(record);
    req.resume();
    req.on("end", () => {
      // Faults queued by a test, one per request: [status, code].
      const fault = state.config.fail.shift();
      if (fault) return refuse(res, fault[0], fault[1], `stand-in fault ${fault[1]}`);
      const events = url.pathname.match(/^\/api\/v2\/jobs\/([\w-]+)\/events$/);
      if (req.method === "GET" && events) return stream(req, res, url, events[1]);
      const verdict = checkBearer(record.authorization);
      if (verdict) return refuse(res, ...verdict);
      if (req.method === "POST" && url.pathname === "/api/v2/videos/generate") {
        return json(res, { jobId: randomUUID(), status: "QUEUED" });
      }
      const ticket = url.pathname.match(/^\/api\/v2\/jobs\/([\w-]+)\/ticket$/);
      if (req.method === "POST" && ticket && state.config.ticketRoute) {
        state.issued += 1;
        // Characters that must be %-encoded in a query, as an opaque ticket may hold.
        const value = `t${state.issued}+/=.${ticket[1]}`;
        state.tickets.set(value, { jobId: ticket[1], used: false });
        return json(res, { ticket: value, expiresAt: Date.now() + 60_000 });
      }
      const job = url.pathname.match(/^\/api\/v2\/jobs\/([\w-]+)$/);
      if (req.method === "GET" && job) {
        return json(res, { id: job[1], status: "PROCESSING", progress: 40 });
      }
      refuse(res, 404, "not_found", "no such route");
    });
  });

  // The events stream: a ticket is good for one connection. The first
  // connection sends one event and ends, as a dropped stream does; the
  // platform's own reconnect then comes back with the spent ticket (401),
  // and only a new ticket gets the rest. Without the ticket route, a stream
  // needs no ticket and sends everything at once.
  function stream(req, res, url, jobId) {
    const ticket = url.searchParams.get("ticket");
    let connection;
    if (state.config.ticketRoute) {
      const known = ticket && state.tickets.get(ticket);
      if (!known || known.used || known.jobId !== jobId) {
        return refuse(res, 401, ticket ? "token_invalid" : "auth_required", "no valid ticket");
      }
      known.used = true;
      connection = [...state.tickets.keys()].indexOf(ticket);
    } else {
      connection = 1;
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" });
    res.write("retry: 50\n\n");
    const frame = (seq, job) => res.write(`id: ${seq}\nevent: job\ndata: ${JSON.stringify(job)}\n\n`);
    frame(1, { id: jobId, status: "PROCESSING", progress: 30 });
    if (connection === 0) return res.end();
    frame(2, {
      id: jobId,
      status: "COMPLETED",
      progress: 100,
      result: { videoUrl: `http://127.0.0.1:9/videos/${jobId}.mp4` },
    });
    res.end();
  }

  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  return {
    base: `http://127.0.0.1:${port}/api`,
    requests: state.requests,
    configure(config) {
      Object.assign(state.config, config);
    },
    reset,
    stop() {
      server.closeAllConnections?.();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
