// Plain words for each error code of the library (its SoraEdgeError `code`).

/** `{code, title, detail}` for an error of the library, or for anything thrown. */
export function explain(err) {
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
