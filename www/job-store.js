// This browser's jobs, newest first, kept in localStorage so that the history
// survives a reload and a job that was running is re-attached by its id.

const STORE_KEY = "sora-edge:jobs";
const MAX_HISTORY = 30;
const RUNNING = new Set(["QUEUED", "PROCESSING"]);
const STATUS_TEXT = {
  QUEUED: "Queued",
  PROCESSING: "Generating",
  COMPLETED: "Ready",
  FAILED: "Failed",
  CANCELLED: "Cancelled",
  ERROR: "Error",
  SUBMITTING: "Submitting",
};

export const isRunning = (status) => RUNNING.has(status);

/** The status as the page words it (badges, the panel, the history list). */
export const statusText = (status) => STATUS_TEXT[status] || status;

/** The record of a job the worker has just accepted. */
export function newJobRecord(req, submitted) {
  const now = Date.now();
  return {
    id: submitted.jobId,
    prompt: req.prompt,
    model: req.model,
    aspectRatio: req.aspectRatio,
    duration: req.duration,
    startImage: req.startImage || null,
    createdAt: now,
    updatedAt: now,
    status: isRunning(submitted.status) ? submitted.status : "QUEUED",
    progress: 0,
    videoUrl: null,
    error: null,
    errorCode: null,
    // [time, percent] pairs seen while processing: the rate behind "time left".
    obs: [],
  };
}

function load() {
  try {
    const list = JSON.parse(localStorage.getItem(STORE_KEY) || "[]");
    return Array.isArray(list) ? list.filter((j) => j && typeof j.id === "string") : [];
  } catch {
    return [];
  }
}

/**
 * The stored jobs. Listeners given to `onChange` run after every save, with
 * the id of the job that changed (none when the list itself changed).
 */
export function createJobStore() {
  let jobs = load();
  const listeners = [];

  function save(changedId) {
    jobs.sort((a, b) => b.createdAt - a.createdAt);
    jobs = jobs.slice(0, MAX_HISTORY);
    try {
      localStorage.setItem(STORE_KEY, JSON.stringify(jobs));
    } catch {
      /* storage full or blocked: the page still works, without history */
    }
    for (const listener of listeners) listener(changedId);
  }

  const find = (id) => jobs.find((j) => j.id === id);

  return {
    all: () => jobs,
    find,
    add(rec) {
      jobs.unshift(rec);
      save();
    },
    update(id, patch) {
      const rec = find(id);
      if (!rec) return;
      Object.assign(rec, patch, { updatedAt: Date.now() });
      save(id);
    },
    clear() {
      jobs = [];
      save();
    },
    onChange(listener) {
      listeners.push(listener);
    },
  };
}
