// The list of this browser's jobs: each opens in the panel; Clear forgets them all.

import { byId } from "./dom.js";
import { statusText } from "./job-store.js";

function fmtWhen(ms) {
  const d = new Date(ms);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** `isShown(id)` marks the job in the panel; `onOpen(id)` and `onClear()` answer the clicks. */
export function createHistoryList({ store, isShown, onOpen, onClear }) {
  const els = { history: byId("history"), historyEmpty: byId("history-empty"), clearHistory: byId("clear-history") };

  function render() {
    const jobs = store.all();
    els.history.replaceChildren();
    els.historyEmpty.hidden = jobs.length > 0;
    els.clearHistory.hidden = jobs.length === 0;
    for (const rec of jobs) {
      const li = document.createElement("li");
      li.className = "history-item";
      if (isShown(rec.id)) li.classList.add("current");
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = "history-open";
      btn.dataset.jobId = rec.id;
      const label = statusText(rec.status);
      btn.setAttribute("aria-label", `${label}: ${rec.prompt.slice(0, 80)} (${rec.aspectRatio}, ${rec.duration} s)`);
      if (isShown(rec.id)) btn.setAttribute("aria-current", "true");

      const thumb = document.createElement("span");
      thumb.className = `h-thumb ${rec.aspectRatio === "9:16" ? "tall" : "wide"}`;
      thumb.setAttribute("aria-hidden", "true");
      const text = document.createElement("span");
      text.className = "h-text";
      const p = document.createElement("span");
      p.className = "h-prompt";
      p.textContent = rec.prompt;
      const meta = document.createElement("span");
      meta.className = "h-meta";
      meta.textContent = `${fmtWhen(rec.createdAt)} · ${rec.model} · ${rec.aspectRatio} · ${rec.duration} s`;
      text.append(p, meta);
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.dataset.status = rec.status;
      badge.textContent = rec.status === "PROCESSING" ? `${rec.progress}%` : label;
      btn.append(thumb, text, badge);
      btn.addEventListener("click", () => onOpen(rec.id));
      li.append(btn);
      els.history.append(li);
    }
  }

  els.clearHistory.addEventListener("click", () => onClear());

  return { render };
}
