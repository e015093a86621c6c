// Waiting on jobs, new or re-attached after a reload: one wait per job (the
// relay's event stream when the worker has one, polls otherwise), each
// keeping its record in the store up to date.

import { announce } from "./announce.js";
import { explain } from "./error-messages.js";
import { isRunning } from "./job-store.js";
import { API, library } from "./library.js";

/**
 * `isShown(id)` says whether the panel shows the job: only its changes are
 * read out. `onStart(id)` and `onEnd(id)` run when a wait begins and ends.
 */
export function createJobFollower({ store, isShown, onStart, onEnd }) {
  /** jobId -> AbortController of the wait that follows it */
  const waits = new Map();

  async function follow(id) {
    const lib = library();
    if (!lib || waits.has(id)) return;
    const ctl = new AbortController();
    waits.set(id, ctl);
    onStart(id);
    let lastStatus = store.find(id)?.status;
    const onProgress = (job) => {
      const rec = store.find(id);
      if (!rec) return;
      const status = job.status;
      const progress = Math.max(0, Math.min(100, Math.round(job.progress || 0)));
      const obs = rec.obs || [];
      if (status === "PROCESSING" && progress > 0 && (obs.length === 0 || obs[obs.length - 1][1] !== progress)) {
        obs.push([Date.now(), progress]);
        if (obs.length > 40) obs.splice(1, obs.length - 40);
      }
      store.update(id, {
        status: isRunning(status) || status === "COMPLETED" || status === "FAILED" ? status : rec.status,
        progress: status === "COMPLETED" ? 100 : progress,
        videoUrl: job.videoUrl || rec.videoUrl,
        error: job.error || null,
        obs,
      });
      if (isShown(id) && status !== lastStatus) {
        if (status === "PROCESSING") announce("Generating the video.");
        if (status === "QUEUED") announce("Queued.");
      }
      if (isShown(id) && status === "PROCESSING" && progress > 0) {
        const step = Math.floor(progress / 25);
        if (step > 0 && step !== rec.announcedStep && progress < 100) {
          rec.announcedStep = step;
          announce(`${progress} percent done.`);
        }
      }
      lastStatus = status;
    };
    try {
      const job = await lib.waitForJob(id, { ...API, signal: ctl.signal, onProgress, transport: "auto" });
      store.update(id, { status: "COMPLETED", progress: 100, videoUrl: job.videoUrl, error: null, errorCode: null, finishedAt: Date.now() });
      if (isShown(id)) announce("Your video is ready.");
    } catch (err) {
      const code = err && err.code;
      const rec = store.find(id);
      if (code === "aborted") {
        store.update(id, { status: "CANCELLED", errorCode: "aborted", error: null });
        if (isShown(id)) announce("Cancelled. Stopped waiting for this job.");
      } else if (code === "job_failed") {
        const reason = (rec && rec.error) || err.message;
        store.update(id, { status: "FAILED", errorCode: code, error: reason, errorMessage: err.message, finishedAt: Date.now() });
        if (isShown(id)) announce(`The video could not be made: ${reason}`);
      } else {
        store.update(id, { status: "ERROR", errorCode: code || "error", error: err && err.message ? err.message : String(err), retryAfterMs: err && err.retryAfterMs });
        if (isShown(id)) announce(`${explain(err).title}.`);
      }
    } finally {
      waits.delete(id);
      onEnd(id);
    }
  }

  return {
    follow,
    isFollowing: (id) => waits.has(id),
    /** Stops waiting; the job itself goes on upstream. */
    stop(id) {
      waits.get(id)?.abort();
    },
    stopAll() {
      for (const ctl of waits.values()) ctl.abort();
    },
    /** Follows a job again after its wait stopped (cancelled, errored, or cut by a reload). */
    resume(id) {
      store.update(id, { status: "QUEUED", errorCode: null, error: null });
      follow(id);
    },
  };
}
