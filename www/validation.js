// The library decides what a valid request is: the page runs the library's
// own validation without sending anything, so no rule is written twice.

import { API, library } from "./library.js";

const fetchNothing = () => Promise.reject(new TypeError("validation only: no request is sent"));

/**
 * The library's objection to `req` as `{field, message}`, or null. The fetch
 * it is given refuses, so a valid request ends in a `network` error and an
 * invalid one in `invalid_request` with its `field`.
 */
export async function requestProblem(req) {
  const lib = library();
  if (!lib) return null;
  try {
    await lib.generate(req, { ...API, fetch: fetchNothing, maxRetries: 0 });
  } catch (e) {
    if (e && e.code === "invalid_request") return { field: e.field || "prompt", message: e.message };
  }
  return null;
}

/** One field checked on its own: the other fields get known-good values. */
export async function fieldProblem(field, req) {
  if (field === "startImage" && !req.startImage) return null;
  const probe = { prompt: "x" };
  probe[field] = req[field];
  return requestProblem(probe);
}
