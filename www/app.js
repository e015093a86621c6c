// The sora-edge demo page: one form, one status panel, this browser's history.
// This module wires the parts together and boots the page; each part is a
// module of its own (docs/ARCHITECTURE.md lists them).

import { announce } from "./announce.js";
import { byId } from "./dom.js";
import { createForm } from "./form.js";
import { createHistoryList } from "./history-list.js";
import { createJobFollower } from "./job-follow.js";
import { createJobStore, isRunning, newJobRecord } from "./job-store.js";
import { createJobView } from "./job-view.js";
import { loadLibrary } from "./library.js";
import { initThemeToggle } from "./theme.js";
import { showUsage } from "./usage.js";

const quota = byId("quota");
const isShown = (id) => id === view.shownId;

const store = createJobStore();
const follower = createJobFollower({
  store,
  isShown,
  onStart(id) {
    if (!isShown(id)) return;
    form.setSubmitting(true);
    view.render();
  },
  onEnd(id) {
    if (isShown(id)) form.setSubmitting(false);
    view.render();
  },
});
const view = createJobView({
  store,
  isFollowing: follower.isFollowing,
  onCancel: follower.stop,
  onResume: follower.resume,
});
const historyList = createHistoryList({ store, isShown, onOpen: openJob, onClear: clearHistory });
const form = createForm({
  onSubmitStart: view.showSubmitting,
  onSubmitFailed: view.showSubmitError,
  onSubmitted(req, submitted) {
    showUsage(quota);
    const rec = newJobRecord(req, submitted);
    store.add(rec);
    showJob(rec.id);
    announce("Job submitted. Waiting in the queue.");
    follower.follow(rec.id);
  },
});
store.onChange((changedId) => {
  historyList.render();
  if (changedId && isShown(changedId)) view.render();
});

function showJob(id) {
  view.show(id);
  historyList.render();
}

function openJob(id) {
  showJob(id);
  form.setSubmitting(follower.isFollowing(id));
  view.reveal();
}

function clearHistory() {
  follower.stopAll();
  view.showNothing();
  // The stopped waits end no shown job, so nothing else turns Generate back on.
  form.setSubmitting(false);
  store.clear();
  announce("History cleared.");
}

initThemeToggle();
historyList.render();
view.render();

async function boot() {
  form.showLoading();
  try {
    await loadLibrary();
  } catch (e) {
    const banner = byId("boot-error");
    banner.hidden = false;
    banner.textContent = `The sora-edge library could not be loaded from /pkg/ (${e && e.message ? e.message : e}). Start the page with \`make demo\`, which builds it and copies it there.`;
    form.showUnavailable();
    return;
  }
  form.setSubmitting(false);
  await showUsage(quota);
  document.documentElement.dataset.ready = "true";
  // Re-attach every job this browser was waiting on; the newest one goes in the panel.
  const running = store.all().filter((j) => isRunning(j.status));
  if (running.length > 0) {
    showJob(running[0].id);
    announce("Resuming the job you were waiting for.");
    for (const rec of running) follower.follow(rec.id);
  }
}
boot();
