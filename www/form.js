// The form: the request as the user builds it, checked by the library as they
// type and again before anything is sent; the preview frame; the Generate
// button; and the submit itself.

import { announce } from "./announce.js";
import { byId } from "./dom.js";
import { API, library } from "./library.js";
import { fieldProblem, requestProblem } from "./validation.js";

const PROMPT_MAX = 4000;
const FIELDS = ["prompt", "model", "aspectRatio", "duration", "startImage"];

/** Characters as the library counts them: Unicode scalar values, not UTF-16 units. */
const charCount = (s) => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

/**
 * Wires the form. The submit reports through `onSubmitStart(req)`,
 * `onSubmitFailed(err)` and `onSubmitted(req, submitted)`.
 */
export function createForm({ onSubmitStart, onSubmitFailed, onSubmitted }) {
  const els = {
    form: byId("form"), prompt: byId("prompt"), count: byId("prompt-count"), model: byId("model"),
    startImage: byId("startImage"), frame: byId("frame"), caption: byId("frame-caption"), thumb: byId("start-thumb"),
    thumbNote: byId("thumb-note"), generate: byId("generate"), generateLabel: byId("generate-label"),
  };
  /** True from the click on Generate until its job's wait ends. */
  let submitting = false;
  /** After an ambiguous submit failure: retrying the same request reuses its key (no double charge). */
  let retryKey = null;

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

  // ---------------------------------------------------------------- field errors
  function showFieldError(field, message) {
    const box = byId(`${field}-error`) || byId("prompt-error");
    const input = field === "aspectRatio" || field === "duration" ? null : byId(field);
    box.textContent = message;
    box.hidden = false;
    box.closest(".field")?.classList.add("invalid");
    if (input) input.setAttribute("aria-invalid", "true");
  }

  function clearFieldError(field) {
    const box = byId(`${field}-error`);
    if (!box) return;
    box.hidden = true;
    box.textContent = "";
    box.closest(".field")?.classList.remove("invalid");
    byId(field)?.removeAttribute("aria-invalid");
  }

  /** Checks one field (live, as the user types); returns true when it is fine. */
  async function checkField(field) {
    const problem = await fieldProblem(field, readForm());
    if (problem && (problem.field === field || field === "prompt")) {
      showFieldError(problem.field, problem.message);
      return false;
    }
    clearFieldError(field);
    return true;
  }

  // ---------------------------------------------------------------- count and preview
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

  // ---------------------------------------------------------------- Generate
  function setSubmitting(on) {
    submitting = on;
    els.generate.disabled = on;
    els.generate.classList.toggle("busy", on);
    els.generate.setAttribute("aria-busy", String(on));
    els.generateLabel.textContent = on ? "Generating…" : "Generate video";
  }

  els.form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const lib = library();
    if (submitting || !lib) return;
    const req = readForm();

    // Every field, one at a time, before anything is sent.
    let first = null;
    for (const field of FIELDS) {
      const ok = await checkField(field);
      if (!ok && !first) first = field;
    }
    if (!first) {
      const whole = await requestProblem(req);
      if (whole) {
        showFieldError(whole.field, whole.message);
        first = whole.field;
      }
    }
    if (first) {
      const target = byId(first) || els.form.querySelector(`[name="${first}"]:checked`) || els.prompt;
      target.focus();
      announce(`Please fix the ${first === "startImage" ? "start image URL" : first} field.`);
      return;
    }

    setSubmitting(true);
    const fingerprint = JSON.stringify(req);
    const opts = { ...API };
    if (retryKey && retryKey.fingerprint === fingerprint) opts.idempotencyKey = retryKey.key;
    onSubmitStart(req);
    let submitted;
    try {
      submitted = await lib.generate(req, opts);
    } catch (err) {
      if (err && err.idempotencyKey && err.code !== "invalid_request") retryKey = { fingerprint, key: err.idempotencyKey };
      if (err && err.code === "invalid_request" && err.field && FIELDS.includes(err.field)) showFieldError(err.field, err.message);
      onSubmitFailed(err);
      setSubmitting(false);
      return;
    }
    retryKey = null;
    onSubmitted(req, submitted);
  });

  updateCount();
  updateFrame();

  return {
    setSubmitting,
    /** While the library loads: Generate waits. */
    showLoading() {
      setSubmitting(true);
      els.generateLabel.textContent = "Loading…";
    },
    /** The library could not be loaded: Generate stays off. */
    showUnavailable() {
      els.generateLabel.textContent = "Unavailable";
    },
  };
}
