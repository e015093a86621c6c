// The sora-edge package's web build, which `make demo` copies to /pkg/. Its
// calls go to the edge worker on this origin at /api, which holds the
// Apiframe key: no key ever appears in the page.

export const API = { baseUrl: "/api" };

let lib = null;

/** The library once loadLibrary() has resolved; null before (or when it failed). */
export const library = () => lib;

export async function loadLibrary() {
  const mod = await import("./pkg/sora_edge.js");
  await mod.default();
  lib = mod;
  return mod;
}
