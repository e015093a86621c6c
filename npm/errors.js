// The one SoraEdgeError class. The wasm constructs it through an import
// (src/wasm/error.rs), and every entry re-exports this same module, so
// `instanceof SoraEdgeError` holds for errors from any entry point.

/** Every rejection of sora-edge: an Error with a stable `code` (see the README's table). */
export class SoraEdgeError extends Error {
  constructor(message, fields, options) {
    super(message, options);
    Object.assign(this, fields);
  }
}
Object.defineProperty(SoraEdgeError.prototype, "name", { value: "SoraEdgeError" });

/** `e instanceof SoraEdgeError`, as a type guard. */
export function isSoraEdgeError(e) {
  return e instanceof SoraEdgeError;
}
