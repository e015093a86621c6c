//! Webhook delivery: one tokio task per job with a webhook. It sleeps until
//! the job's next event or retry is due, then sends the events one at a
//! time, in order, through reqwest. A failed attempt (non-2xx, connection
//! error, 5 s timeout, or an https URL: this local simulator speaks no TLS)
//! is retried after `webhookRetryMs * 2^(attempt-1)`, up to 5 attempts in
//! all. `POST /__sim/reset` ends the task.

use std::sync::Arc;
use std::time::Instant;

use crate::shared::Shared;
use crate::sign;
use crate::state::WebhookStep;

/// Start the delivery task of a job just created (on the current runtime).
pub fn spawn(sh: &Arc<Shared>, job_id: String) {
    tokio::spawn(run(Arc::clone(sh), job_id));
}

async fn run(sh: Arc<Shared>, job_id: String) {
    let mut reset = sh.generation.subscribe();
    let generation = *reset.borrow_and_update();
    loop {
        let step = {
            let mut st = sh.lock();
            if *sh.generation.borrow() != generation {
                return;
            }
            st.webhook_step(&job_id, Instant::now(), sh.port)
        };
        match step {
            WebhookStep::Done => return,
            WebhookStep::WaitUntil(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = reset.changed() => return,
                }
            }
            WebhookStep::Send { url, event, body } => {
                let started = Instant::now();
                let outcome = post(&sh, &url, &event, body).await;
                sh.log(format_args!(
                    "webhook {event} job={job_id} -> {} ({} ms)",
                    match &outcome {
                        Ok(code) => code.to_string(),
                        Err(e) => format!("error: {e}"),
                    },
                    started.elapsed().as_millis()
                ));
                let ok = matches!(outcome, Ok(200..=299));
                let mut st = sh.lock();
                if *sh.generation.borrow() != generation {
                    return;
                }
                st.delivery_done(&job_id, ok, Instant::now());
            }
        }
    }
}

/// POST one signed event; the receiver's status code.
async fn post(sh: &Shared, url: &str, event: &str, body: Vec<u8>) -> Result<u16, reqwest::Error> {
    let signature = sign::sign(&sh.signing_key, &body);
    let res = sh
        .http
        .post(url)
        .header("content-type", "application/json")
        .header("x-webhook-event", event)
        .header("x-webhook-signature", signature)
        .body(body)
        .send()
        .await?;
    Ok(res.status().as_u16())
}
