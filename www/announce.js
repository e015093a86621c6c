// Status changes are read out through one aria-live region.

import { byId } from "./dom.js";

const region = byId("announcer");

export function announce(text) {
  // Re-set even when equal, so a repeated status is read out again.
  region.textContent = "";
  requestAnimationFrame(() => { region.textContent = text; });
}
