// The result panel: the job it shows (or the submit still in flight), its
// status, progress and time left, what went wrong in plain words, and the
// finished video with its links.

import { announce } from "./announce.js";
import { byId } from "./dom.js";
import { explain } from "./error-messages.js";
import { isRunning, statusText } from "./job-store.js";

function fmtDuration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/**
 * Wires the panel to the jobs in `store`. `isFollowing(id)` says whether this
 * page is waiting on a job; the Cancel and Resume waiting buttons call
 * `onCancel(id)` and `onResume(id)` with the job shown.
 */
export function createJobView({ store, isFollowing, onCancel, onResume }) {
  const els = {
    panel: byId("panel"), empty: byId("empty"), job: byId("job"), badge: byId("status-badge"), jobId: byId("job-id"),
    jobStatus: byId("job-status"), jobPrompt: byId("job-prompt"), progressBlock: byId("progress-block"),
    percent: byId("percent"), elapsed: byId("elapsed"), eta: byId("eta"), bar: byId("bar"), barFill: byId("bar-fill"),
    error: byId("error"), errorTitle: byId("error-title"), errorCode: byId("error-code"), errorDetail: byId("error-detail"),
    result: byId("result"), video: byId("video"), download: byId("download"), copyLink: byId("copy-link"),
    cancel: byId("cancel"), resume: byId("resume"),
  };
  /** The id of the job shown, or null. */
  let shownId = null;
  /** {req} while the submit itself is in flight, or {req, err} after it failed. */
  let pending = null;
  let shownVideo = null;

  function setBadge(status) {
    els.badge.hidden = false;
    els.badge.textContent = statusText(status);
    els.badge.dataset.status = status;
  }

  function showError(err) {
    const e = explain(err);
    els.error.hidden = false;
    els.errorTitle.textContent = e.title;
    els.errorCode.textContent = e.code;
    els.errorDetail.textContent = e.detail;
  }

  function setProgress(pct, indeterminate) {
    els.percent.textContent = `${pct}%`;
    els.bar.setAttribute("aria-valuenow", String(pct));
    els.bar.classList.toggle("indeterminate", Boolean(indeterminate));
    els.barFill.style.width = `${pct}%`;
  }

  function render() {
    const rec = shownId ? store.find(shownId) : null;
    els.error.hidden = true;
    if (!rec && !pending) {
      els.panel.dataset.state = "empty";
      els.empty.hidden = false;
      els.job.hidden = true;
      els.badge.hidden = true;
      return;
    }
    els.empty.hidden = true;
    els.job.hidden = false;

    if (!rec) {
      // The submit itself: no job id yet.
      const failed = Boolean(pending.err);
      els.panel.dataset.state = failed ? "error" : "submitting";
      setBadge(failed ? "ERROR" : "SUBMITTING");
      els.jobId.textContent = "—";
      els.jobStatus.textContent = failed ? "Not submitted" : "Submitting…";
      els.jobPrompt.textContent = pending.req.prompt;
      els.progressBlock.hidden = failed;
      setProgress(0, true);
      els.elapsed.textContent = "0:00";
      els.eta.textContent = "estimating…";
      if (failed) showError(pending.err);
      els.result.hidden = true;
      els.cancel.hidden = true;
      els.resume.hidden = true;
      els.download.hidden = true;
      els.copyLink.hidden = true;
      return;
    }

    const running = isRunning(rec.status);
    const following = isFollowing(rec.id);
    els.panel.dataset.state = rec.status.toLowerCase();
    setBadge(rec.status);
    els.jobId.textContent = rec.id;
    els.jobStatus.textContent = `${statusText(rec.status)}${rec.status === "PROCESSING" ? ` · ${rec.progress}%` : ""}`;
    els.jobPrompt.textContent = rec.prompt;
    els.progressBlock.hidden = rec.status === "COMPLETED";
    setProgress(rec.progress, rec.status === "QUEUED");
    tick();

    if (rec.status === "FAILED") {
      showError({ code: "job_failed", message: rec.error || rec.errorMessage || "the job failed" });
    } else if (rec.status === "CANCELLED") {
      showError({ code: "aborted" });
    } else if (rec.status === "ERROR") {
      showError({ code: rec.errorCode, message: rec.error, retryAfterMs: rec.retryAfterMs });
    }

    const done = rec.status === "COMPLETED" && rec.videoUrl;
    els.result.hidden = !done;
    if (done && shownVideo !== rec.videoUrl) {
      shownVideo = rec.videoUrl;
      els.video.src = rec.videoUrl;
      els.video.classList.toggle("tall", rec.aspectRatio === "9:16");
      els.video.play?.().catch(() => {});
    } else if (!done && shownVideo) {
      shownVideo = null;
      els.video.removeAttribute("src");
      els.video.load();
    }
    els.download.hidden = !done;
    els.copyLink.hidden = !done;
    if (done) els.download.href = rec.videoUrl;
    els.cancel.hidden = !(running && following);
    els.resume.hidden = !((running && !following) || rec.status === "CANCELLED" || (rec.status === "ERROR" && rec.errorCode !== "not_found"));
  }

  /** Elapsed time, and the time left from the progress rate seen so far. */
  function tick() {
    const rec = shownId ? store.find(shownId) : null;
    if (!rec) return;
    const end = isRunning(rec.status) ? Date.now() : rec.finishedAt || rec.updatedAt || Date.now();
    els.elapsed.textContent = fmtDuration(end - rec.createdAt);
    if (!isRunning(rec.status)) {
      els.eta.textContent = rec.status === "COMPLETED" ? "done" : "stopped";
      return;
    }
    const obs = rec.obs || [];
    if (obs.length >= 2 && rec.progress < 100) {
      const [t0, p0] = obs[0];
      const [t1, p1] = obs[obs.length - 1];
      const rate = (p1 - p0) / Math.max(1, t1 - t0); // percent per ms
      if (rate > 0) {
        const left = Math.max(0, (100 - p1) / rate - (Date.now() - t1));
        els.eta.textContent = left < 1500 ? "almost done" : `about ${fmtDuration(left)} left`;
        return;
      }
    }
    if (obs.length === 1 && rec.progress > 0) {
      // One point: assume progress started when the job left the queue, roughly at creation.
      const rate = obs[0][1] / Math.max(1, obs[0][0] - rec.createdAt);
      const left = Math.max(0, (100 - obs[0][1]) / rate - (Date.now() - obs[0][0]));
      els.eta.textContent = `about ${fmtDuration(left)} left`;
      return;
    }
    els.eta.textContent = "estimating time left…";
  }
  setInterval(tick, 500);

  els.cancel.addEventListener("click", () => {
    if (shownId) onCancel(shownId);
  });
  els.resume.addEventListener("click", () => {
    if (shownId) onResume(shownId);
  });
  els.copyLink.addEventListener("click", async () => {
    const rec = shownId && store.find(shownId);
    if (!rec || !rec.videoUrl) return;
    try {
      await navigator.clipboard.writeText(rec.videoUrl);
      els.copyLink.textContent = "Copied";
    } catch {
      els.copyLink.textContent = "Copy failed";
    }
    setTimeout(() => { els.copyLink.textContent = "Copy video link"; }, 1500);
  });

  return {
    get shownId() {
      return shownId;
    },
    render,
    show(id) {
      shownId = id;
      pending = null;
      render();
    },
    showNothing() {
      shownId = null;
      pending = null;
      render();
    },
    showSubmitting(req) {
      shownId = null;
      pending = { req };
      render();
      announce("Submitting the job.");
    },
    showSubmitError(err) {
      pending = { ...pending, err };
      render();
      announce(`${explain(err).title}.`);
    },
    reveal() {
      els.panel.scrollIntoView({ behavior: "smooth", block: "nearest" });
    },
  };
}
