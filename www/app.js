// The sora-edge demo page: one form, one status panel, this browser's history.
// It uses the package's web build (copied to /pkg/ by `make demo`) and talks to
// the edge worker on the same origin at /api, which holds the Apiframe key: no
// key ever appears here.

import { showUsage } from "./usage.js";

const API = { baseUrl: "/api" };
const STORE_KEY = "sora-edge:jobs";
const THEME_KEY = "sora-edge:theme";
const MAX_HISTORY = 30;
const PROMPT_MAX = 4000;
const RUNNING = new Set(["QUEUED", "PROCESSING"]);
const FIELDS = ["prompt", "model", "aspectRatio", "duration", "startImage"];

const $ = (id) => document.getElementById(id);
const els = {
  form: $("form"), prompt: $("prompt"), count: $("prompt-count"), model: $("model"),
  startImage: $("startImage"), frame: $("frame"), caption: $("frame-caption"), thumb: $("start-thumb"),
  thumbNote: $("thumb-note"), generate: $("generate"), generateLabel: $("generate-label"),
  panel: $("panel"), empty: $("empty"), job: $("job"), badge: $("status-badge"), jobId: $("job-id"),
  jobStatus: $("job-status"), jobPrompt: $("job-prompt"), progressBlock: $("progress-block"),
  percent: $("percent"), elapsed: $("elapsed"), eta: $("eta"), bar: $("bar"), barFill: $("bar-fill"),
  error: $("error"), errorTitle: $("error-title"), errorCode: $("error-code"), errorDetail: $("error-detail"),
  result: $("result"), video: $("video"), download: $("download"), copyLink: $("copy-link"),
  cancel: $("cancel"), resume: $("resume"), announcer: $("announcer"),
  history: $("history"), historyEmpty: $("history-empty"), clearHistory: $("clear-history"),
  theme: $("theme"), themeLabel: $("theme-label"), themeIcon: $("theme-icon"), bootError: $("boot-error"),
  quota: $("quota"),
};

let lib = null; // the sora-edge module once init() has run
/** jobId -> AbortController of the wait that follows it */
const waits = new Map();
/** The job shown in the panel. */
let currentId = null;
/** True from the click on Generate until its job's wait ends. */
let submitting = false;
/** After an ambiguous submit failure: retrying the same request reuses its key (no double charge). */
let retryKey = null;

// ------------------------------------------------------------------ helpers
/** Characters as the library counts them: Unicode scalar values, not UTF-16 units. */
const charCount = (s) => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

function fmtDuration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

function fmtWhen(ms) {
  const d = new Date(ms);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function announce(text) {
  // Re-set even when equal, so a repeated status is read out again.
  els.announcer.textContent = "";
  requestAnimationFrame(() => { els.announcer.textContent = text; });
}

const STATUS_TEXT = {
  QUEUED: "Queued",
  PROCESSING: "Generating",
  COMPLETED: "Ready",
  FAILED: "Failed",
  CANCELLED: "Cancelled",
  ERROR: "Error",
  SUBMITTING: "Submitting",
};

/** Plain words for each error code of the library. */
function explain(err) {
  const code = err && err.code ? err.code : "error";
  const msg = (err && err.message) || String(err);
  const secs = err && err.retryAfterMs ? Math.ceil(err.retryAfterMs / 1000) : null;
  const table = {
    invalid_request: ["Something in the form needs fixing", msg],
    unauthorized: ["The server's Apiframe key was refused", "The worker's APIFRAME_API_KEY is missing or wrong. This is a server setting, not something you can fix here."],
    forbidden: ["Apiframe refused this request", msg],
    insufficient_credits: ["Not enough credits", "The Apiframe account behind this site is out of credits."],
    not_found: ["That job was not found", "Apiframe does not know this job id (any more)."],
    rate_limited: ["Too many requests", secs ? `Please wait about ${secs} s, then try again.` : "Please wait a moment, then try again."],
    upstream: ["Apiframe had a problem", `${msg}. Try again in a moment.`],
    network: ["Could not reach the server", "Check your connection and try again. If you submitted, trying again will not create a second job."],
    timeout: ["The server took too long to answer", "Try again: if the job was created, it will not be created twice."],
    aborted: ["Stopped waiting", "The job may still finish on Apiframe's side; choose Resume waiting to follow it again."],
    deadline_exceeded: ["Gave up waiting", "The job took longer than 15 minutes. Choose Resume waiting to keep following it."],
    job_failed: ["The video could not be made", msg],
    bad_response: ["The server sent something unexpected", msg],
    quota_exceeded: ["Today's video quota is spent", secs ? `${msg}. It frees in about ${secs > 3600 ? `${Math.round(secs / 3600)} h` : `${secs} s`}.` : msg],
    ledger_unavailable: ["The quota ledger is unavailable", "Nothing was sent. Try again in a moment."],
    not_configured: ["This site is not set up to make videos", msg],
    auth_required: ["Please sign in", "This site makes videos for signed-in users."],
    token_expired: ["Your session has expired", "Sign in again, then try again."],
  };
  const [title, detail] = table[code] || ["Something went wrong", msg];
  return { code, title, detail };
}

// ------------------------------------------------------------------ history (localStorage)
function loadHistory() {
  try {
    const list = JSON.parse(localStorage.getItem(STORE_KEY) || "[]");
    return Array.isArray(list) ? list.filter((j) => j && typeof j.id === "string") : [];
  } catch {
    return [];
  }
}
let history = loadHistory();

function saveHistory() {
  history.sort((a, b) => b.createdAt - a.createdAt);
  history = history.slice(0, MAX_HISTORY);
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify(history));
  } catch {
    /* storage full or blocked: the page still works, without history */
  }
  renderHistory();
}

const findJob = (id) => history.find((j) => j.id === id);

function updateJob(id, patch) {
  const rec = findJob(id);
  if (!rec) return null;
  Object.assign(rec, patch, { updatedAt: Date.now() });
  saveHistory();
  if (id === currentId) renderPanel();
  return rec;
}

// ------------------------------------------------------------------ validation (the library decides)
const fetchNothing = () => Promise.reject(new TypeError("validation only: no request is sent"));

/**
 * Runs the library's own validation on `req` without sending anything: the
 * fetch it is given refuses, so a valid request ends in a `network` error and
 * an invalid one in `invalid_request` with its `field`.
 */
async function check(req) {
  if (!lib) return null;
  try {
    await lib.generate(req, { ...API, fetch: fetchNothing, maxRetries: 0 });
  } catch (e) {
    if (e && e.code === "invalid_request") return { field: e.field || "prompt", message: e.message };
  }
  return null;
}

function readForm() {
  const req = {
    prompt: els.prompt.value,
    model: els.model.value,
    aspectRatio: els.form.elements.aspectRatio.value,
    duration: Number(els.form.elements.duration.value),
  };
  const img = els.startImage.value.trim();
  if (img) req.startImage = img;
  return req;
}

/** One field checked on its own: the other fields get known-good values. */
function probeFor(field, req) {
  const probe = { prompt: "x" };
  if (field === "prompt") probe.prompt = req.prompt;
  else if (field === "startImage") probe.startImage = req.startImage;
  else probe[field] = req[field];
  if (field === "startImage" && !req.startImage) return null;
  return probe;
}

function showFieldError(field, message) {
  const box = $(`${field}-error`) || $("prompt-error");
  const input = field === "aspectRatio" || field === "duration" ? null : $(field);
  box.textContent = message;
  box.hidden = false;
  box.closest(".field")?.classList.add("invalid");
  if (input) input.setAttribute("aria-invalid", "true");
}

function clearFieldError(field) {
  const box = $(`${field}-error`);
  if (!box) return;
  box.hidden = true;
  box.textContent = "";
  box.closest(".field")?.classList.remove("invalid");
  $(field)?.removeAttribute("aria-invalid");
}

/** Checks one field (live, as the user types); returns true when it is fine. */
async function checkField(field) {
  const req = readForm();
  const probe = probeFor(field, req);
  const problem = probe ? await check(probe) : null;
  if (problem && (problem.field === field || field === "prompt")) {
    showFieldError(problem.field, problem.message);
    return false;
  }
  clearFieldError(field);
  return true;
}

// ------------------------------------------------------------------ the form
function updateCount() {
  const n = charCount(els.prompt.value);
  els.count.textContent = `${n.toLocaleString("en")} / ${PROMPT_MAX.toLocaleString("en")}`;
  els.count.classList.toggle("over", n > PROMPT_MAX);
  els.count.classList.toggle("near", n <= PROMPT_MAX && n > PROMPT_MAX * 0.9);
}

function updateFrame() {
  const req = readForm();
  const tall = req.aspectRatio === "9:16";
  els.frame.classList.toggle("tall", tall);
  els.frame.classList.toggle("wide", !tall);
  els.frame.setAttribute("aria-label", `Preview frame, ${req.aspectRatio}`);
  els.caption.replaceChildren();
  const strong = document.createElement("strong");
  strong.textContent = req.aspectRatio;
  const span = document.createElement("span");
  span.textContent = `${req.duration} s · ${req.model}`;
  els.caption.append(strong, span);
}

let thumbToken = 0;
/** The thumbnail is only loaded once the library accepts the URL: a bad URL makes no request. */
async function updateThumb() {
  const token = ++thumbToken;
  const url = els.startImage.value.trim();
  const ok = url ? await checkField("startImage") : (clearFieldError("startImage"), true);
  if (token !== thumbToken) return;
  if (!url || !ok) {
    els.thumb.hidden = true;
    els.thumb.removeAttribute("src");
    els.frame.classList.remove("has-image");
    els.thumbNote.hidden = true;
    return;
  }
  if (els.thumb.getAttribute("src") === url) return;
  els.thumbNote.hidden = false;
  els.thumbNote.textContent = "Loading the preview…";
  els.thumb.onload = () => {
    if (token !== thumbToken) return;
    els.thumb.hidden = false;
    els.frame.classList.add("has-image");
    els.thumbNote.hidden = true;
  };
  els.thumb.onerror = () => {
    if (token !== thumbToken) return;
    els.thumb.hidden = true;
    els.frame.classList.remove("has-image");
    els.thumbNote.hidden = false;
    els.thumbNote.textContent = "This browser could not load a preview of that image. Apiframe may still be able to fetch it.";
  };
  els.thumb.src = url;
}

let promptTimer = 0;
els.prompt.addEventListener("input", () => {
  updateCount();
  clearTimeout(promptTimer);
  // Flag an over-long prompt at once; an empty one only on submit or blur.
  if (charCount(els.prompt.value) > PROMPT_MAX) promptTimer = setTimeout(() => checkField("prompt"), 120);
  else if (els.prompt.value.trim()) clearFieldError("prompt");
});
els.prompt.addEventListener("blur", () => {
  if (els.prompt.value !== "") checkField("prompt");
});
els.prompt.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    els.form.requestSubmit();
  }
});
let imgTimer = 0;
els.startImage.addEventListener("input", () => {
  clearTimeout(imgTimer);
  imgTimer = setTimeout(updateThumb, 400);
});
els.startImage.addEventListener("change", () => {
  clearTimeout(imgTimer);
  updateThumb();
});
els.form.addEventListener("change", (e) => {
  if (e.target.name === "aspectRatio" || e.target.name === "duration" || e.target.name === "model") updateFrame();
});

function setSubmitting(on) {
  submitting = on;
  els.generate.disabled = on;
  els.generate.classList.toggle("busy", on);
  els.generate.setAttribute("aria-busy", String(on));
  els.generateLabel.textContent = on ? "Generating…" : "Generate video";
}

els.form.addEventListener("submit", async (e) => {
  e.preventDefault();
  if (submitting || !lib) return;
  const req = readForm();

  // Every field, one at a time, before anything is sent.
  let first = null;
  for (const field of FIELDS) {
    const ok = await checkField(field);
    if (!ok && !first) first = field;
  }
  if (!first) {
    const whole = await check(req);
    if (whole) {
      showFieldError(whole.field, whole.message);
      first = whole.field;
    }
  }
  if (first) {
    const target = $(first) || els.form.querySelector(`[name="${first}"]:checked`) || els.prompt;
    target.focus();
    announce(`Please fix the ${first === "startImage" ? "start image URL" : first} field.`);
    return;
  }

  setSubmitting(true);
  const fingerprint = JSON.stringify(req);
  const opts = { ...API };
  if (retryKey && retryKey.fingerprint === fingerprint) opts.idempotencyKey = retryKey.key;
  showSubmitting(req);
  let submitted;
  try {
    submitted = await lib.generate(req, opts);
  } catch (err) {
    if (err && err.idempotencyKey && err.code !== "invalid_request") retryKey = { fingerprint, key: err.idempotencyKey };
    if (err && err.code === "invalid_request" && err.field && FIELDS.includes(err.field)) showFieldError(err.field, err.message);
    showSubmitError(err);
    setSubmitting(false);
    return;
  }
  retryKey = null;
  showUsage(els.quota);
  const rec = {
    id: submitted.jobId,
    prompt: req.prompt,
    model: req.model,
    aspectRatio: req.aspectRatio,
    duration: req.duration,
    startImage: req.startImage || null,
    createdAt: Date.now(),
    updatedAt: Date.now(),
    status: RUNNING.has(submitted.status) ? submitted.status : "QUEUED",
    progress: 0,
    videoUrl: null,
    error: null,
    errorCode: null,
    obs: [],
  };
  history.unshift(rec);
  currentId = rec.id;
  saveHistory();
  renderPanel();
  announce("Job submitted. Waiting in the queue.");
  follow(rec.id);
});

// ------------------------------------------------------------------ following a job
/** Waits on a job (new, or re-attached after a reload) and keeps its record up to date. */
async function follow(id) {
  if (!lib || waits.has(id)) return;
  const ctl = new AbortController();
  waits.set(id, ctl);
  if (id === currentId) {
    setSubmitting(true);
    renderPanel();
  }
  let lastStatus = findJob(id)?.status;
  const onProgress = (job) => {
    const rec = findJob(id);
    if (!rec) return;
    const status = job.status;
    const progress = Math.max(0, Math.min(100, Math.round(job.progress || 0)));
    const obs = rec.obs || [];
    if (status === "PROCESSING" && progress > 0 && (obs.length === 0 || obs[obs.length - 1][1] !== progress)) {
      obs.push([Date.now(), progress]);
      if (obs.length > 40) obs.splice(1, obs.length - 40);
    }
    updateJob(id, {
      status: RUNNING.has(status) || status === "COMPLETED" || status === "FAILED" ? status : rec.status,
      progress: status === "COMPLETED" ? 100 : progress,
      videoUrl: job.videoUrl || rec.videoUrl,
      error: job.error || null,
      obs,
    });
    if (id === currentId && status !== lastStatus) {
      if (status === "PROCESSING") announce("Generating the video.");
      if (status === "QUEUED") announce("Queued.");
    }
    if (id === currentId && status === "PROCESSING" && progress > 0) {
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
    updateJob(id, { status: "COMPLETED", progress: 100, videoUrl: job.videoUrl, error: null, errorCode: null, finishedAt: Date.now() });
    if (id === currentId) announce("Your video is ready.");
  } catch (err) {
    const code = err && err.code;
    const rec = findJob(id);
    if (code === "aborted") {
      updateJob(id, { status: "CANCELLED", errorCode: "aborted", error: null });
      if (id === currentId) announce("Cancelled. Stopped waiting for this job.");
    } else if (code === "job_failed") {
      const reason = (rec && rec.error) || err.message;
      updateJob(id, { status: "FAILED", errorCode: code, error: reason, errorMessage: err.message, finishedAt: Date.now() });
      if (id === currentId) announce(`The video could not be made: ${reason}`);
    } else {
      updateJob(id, { status: "ERROR", errorCode: code || "error", error: err && err.message ? err.message : String(err), retryAfterMs: err && err.retryAfterMs });
      if (id === currentId) announce(`${explain(err).title}.`);
    }
  } finally {
    waits.delete(id);
    if (id === currentId) setSubmitting(false);
    renderPanel();
  }
}

els.cancel.addEventListener("click", () => {
  const ctl = currentId && waits.get(currentId);
  if (ctl) ctl.abort();
});
els.resume.addEventListener("click", () => {
  if (!currentId) return;
  updateJob(currentId, { status: "QUEUED", errorCode: null, error: null });
  follow(currentId);
});
els.copyLink.addEventListener("click", async () => {
  const rec = currentId && findJob(currentId);
  if (!rec || !rec.videoUrl) return;
  try {
    await navigator.clipboard.writeText(rec.videoUrl);
    els.copyLink.textContent = "Copied";
  } catch {
    els.copyLink.textContent = "Copy failed";
  }
  setTimeout(() => { els.copyLink.textContent = "Copy video link"; }, 1500);
});

// ------------------------------------------------------------------ the panel
let pending = null; // {req} while the submit itself is in flight, or {req, err} after it failed

function showSubmitting(req) {
  currentId = null;
  pending = { req };
  renderPanel();
  announce("Submitting the job.");
}

function showSubmitError(err) {
  pending = { ...pending, err };
  renderPanel();
  announce(`${explain(err).title}.`);
}

function setBadge(status) {
  els.badge.hidden = false;
  els.badge.textContent = STATUS_TEXT[status] || status;
  els.badge.dataset.status = status;
}

function showError(err) {
  const e = explain(err);
  els.error.hidden = false;
  els.errorTitle.textContent = e.title;
  els.errorCode.textContent = e.code;
  els.errorDetail.textContent = e.detail;
}

let shownVideo = null;
function renderPanel() {
  const rec = currentId ? findJob(currentId) : null;
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

  const running = RUNNING.has(rec.status);
  const following = waits.has(rec.id);
  els.panel.dataset.state = rec.status.toLowerCase();
  setBadge(rec.status);
  els.jobId.textContent = rec.id;
  els.jobStatus.textContent = `${STATUS_TEXT[rec.status] || rec.status}${rec.status === "PROCESSING" ? ` · ${rec.progress}%` : ""}`;
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

function setProgress(pct, indeterminate) {
  els.percent.textContent = `${pct}%`;
  els.bar.setAttribute("aria-valuenow", String(pct));
  els.bar.classList.toggle("indeterminate", Boolean(indeterminate));
  els.barFill.style.width = `${pct}%`;
}

/** Elapsed time, and the time left from the progress rate seen so far. */
function tick() {
  const rec = currentId ? findJob(currentId) : null;
  if (!rec) return;
  const end = RUNNING.has(rec.status) ? Date.now() : rec.finishedAt || rec.updatedAt || Date.now();
  els.elapsed.textContent = fmtDuration(end - rec.createdAt);
  if (!RUNNING.has(rec.status)) {
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

// ------------------------------------------------------------------ history list
function renderHistory() {
  els.history.replaceChildren();
  els.historyEmpty.hidden = history.length > 0;
  els.clearHistory.hidden = history.length === 0;
  for (const rec of history) {
    const li = document.createElement("li");
    li.className = "history-item";
    if (rec.id === currentId) li.classList.add("current");
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "history-open";
    btn.dataset.jobId = rec.id;
    const label = STATUS_TEXT[rec.status] || rec.status;
    btn.setAttribute("aria-label", `${label}: ${rec.prompt.slice(0, 80)} (${rec.aspectRatio}, ${rec.duration} s)`);
    if (rec.id === currentId) btn.setAttribute("aria-current", "true");

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
    btn.addEventListener("click", () => openJob(rec.id));
    li.append(btn);
    els.history.append(li);
  }
}

function openJob(id) {
  currentId = id;
  pending = null;
  const rec = findJob(id);
  setSubmitting(Boolean(rec && waits.has(id)));
  renderHistory();
  renderPanel();
  els.panel.scrollIntoView({ behavior: "smooth", block: "nearest" });
}

els.clearHistory.addEventListener("click", () => {
  for (const ctl of waits.values()) ctl.abort();
  history = [];
  currentId = null;
  pending = null;
  saveHistory();
  renderPanel();
  announce("History cleared.");
});

// ------------------------------------------------------------------ theme
const THEMES = ["system", "light", "dark"];
const systemDark = matchMedia("(prefers-color-scheme: dark)");
function applyTheme(theme) {
  const resolved = theme === "system" ? (systemDark.matches ? "dark" : "light") : theme;
  document.documentElement.dataset.theme = resolved;
  els.themeLabel.textContent = theme[0].toUpperCase() + theme.slice(1);
  els.themeIcon.textContent = theme === "light" ? "☀" : theme === "dark" ? "☾" : "◐";
  els.theme.setAttribute("aria-label", `Colour theme: ${theme}. Change`);
}
let theme = THEMES.includes(localStorage.getItem(THEME_KEY)) ? localStorage.getItem(THEME_KEY) : "system";
applyTheme(theme);
systemDark.addEventListener("change", () => theme === "system" && applyTheme(theme));
els.theme.addEventListener("click", () => {
  theme = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
  localStorage.setItem(THEME_KEY, theme);
  applyTheme(theme);
});

// ------------------------------------------------------------------ start
updateCount();
updateFrame();
renderHistory();
renderPanel();

async function boot() {
  setSubmitting(true);
  els.generateLabel.textContent = "Loading…";
  try {
    const mod = await import("./pkg/sora_edge.js");
    await mod.default();
    lib = mod;
  } catch (e) {
    els.bootError.hidden = false;
    els.bootError.textContent = `The sora-edge library could not be loaded from /pkg/ (${e && e.message ? e.message : e}). Start the page with \`make demo\`, which builds it and copies it there.`;
    els.generateLabel.textContent = "Unavailable";
    return;
  }
  setSubmitting(false);
  await showUsage(els.quota);
  document.documentElement.dataset.ready = "true";
  // Re-attach every job this browser was waiting on; the newest one goes in the panel.
  const running = history.filter((j) => RUNNING.has(j.status));
  if (running.length > 0) {
    currentId = running[0].id;
    renderHistory();
    announce("Resuming the job you were waiting for.");
    for (const rec of running) follow(rec.id);
  }
}
boot();
