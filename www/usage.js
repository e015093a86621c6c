// The caller's quota for today, as the edge worker's GET /api/usage answers
// it: "N s of video left today". Hidden when the worker keeps no ledger
// figures for this page (or cannot be asked). The page asks when it loads
// and after each accepted submit, when a job's seconds are reserved; a
// refund of a failed job shows at the next of these.

/** Fills `el` with what is left today; resolves with the figures, or null. */
export async function showUsage(el) {
  let usage = null;
  try {
    const res = await fetch("/api/usage", { cache: "no-store" });
    if (res.ok) usage = await res.json();
  } catch {
    // no figures to show
  }
  if (!usage || typeof usage.usedSeconds !== "number") {
    el.hidden = true;
    return null;
  }
  el.hidden = false;
  el.dataset.left = usage.leftSeconds ?? "";
  el.textContent =
    usage.limitSeconds == null
      ? `No daily limit on this site (${usage.usedSeconds} s of video made today)`
      : usage.leftSeconds > 0
        ? `${usage.leftSeconds} s of video left today`
        : `Today's video quota is spent: it resets at ${new Date(usage.resetsAt).toLocaleTimeString()}`;
  return usage;
}
