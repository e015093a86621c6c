// Port helpers shared by `make demo` (scripts/demo.mjs), the tests and the
// benches: their one home. Nothing here starts a process or installs a handler,
// so importing it has no side effects.
import { createServer } from "node:net";

/** A free TCP port on 127.0.0.1, as the system picks it. */
export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

/** Whether `port` on 127.0.0.1 can be listened on right now. */
export function portFree(port) {
  return new Promise((res) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => res(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => res(true)));
  });
}
