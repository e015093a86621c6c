//! The quota ledger: one SQLite-backed Durable Object for the deployment
//! (`idFromName("ledger")`), so every limit, the global one included, is
//! checked and written by one single-threaded object. A reservation is one
//! synchronous step: its check and its row are SQL statements with no
//! `await` between them, so 200 concurrent generates cannot overshoot.
//!
//! Rows: `reservations` (one per generate that passed, with its state:
//! `reserved`, then `committed`, `refunded` or `released`) and `audit` (one
//! per reserve, release, commit and refund, with when, who, which job, how
//! many seconds and whether it was flagged). The arithmetic is plain Rust in
//! `sora_edge::edge::ledger`.

use crate::respond::respond;
use serde::{Deserialize, Serialize};
use sora_edge::edge::ledger::{
    check, day_end_ms, day_of, Exceeded, Quotas, Standing, SETTLE_BOUND_MS,
};
use sora_edge::edge::reply::Reply;
use std::cell::Cell;
use worker::{
    durable_object, Date, DurableObject, Env, Headers, Method, Request, RequestInit, Response,
    Result, SqlStorageValue, State,
};

/// The Durable Object binding.
const BINDING: &str = "LEDGER";
/// The one ledger's name.
const NAME: &str = "ledger";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reservations (
  id TEXT PRIMARY KEY, day INTEGER NOT NULL, subject TEXT NOT NULL, seconds INTEGER NOT NULL,
  state TEXT NOT NULL, job_id TEXT, at INTEGER NOT NULL, flagged INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS reservations_by_subject ON reservations (day, subject, state);
CREATE INDEX IF NOT EXISTS reservations_by_job ON reservations (job_id);
CREATE INDEX IF NOT EXISTS reservations_by_state ON reservations (state, at);
CREATE TABLE IF NOT EXISTS grants (
  day INTEGER NOT NULL, subject TEXT NOT NULL, seconds INTEGER NOT NULL, blocked INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (day, subject));
CREATE TABLE IF NOT EXISTS replays (
  id TEXT PRIMARY KEY, body TEXT NOT NULL, headers TEXT NOT NULL, owner TEXT, done INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS audit (
  at INTEGER NOT NULL, day INTEGER NOT NULL, subject TEXT NOT NULL, job_id TEXT,
  seconds INTEGER NOT NULL, event TEXT NOT NULL, flagged INTEGER NOT NULL DEFAULT 0);
";

fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// A reservation request from the worker.
#[derive(Serialize, Deserialize)]
pub struct Reserve {
    /// Who spends.
    pub subject: String,
    /// The caller-scoped Idempotency-Key, if the client sent one: a retry
    /// with it is the same reservation.
    pub key: Option<String>,
    /// Seconds of video.
    pub seconds: u64,
    /// The subject's own daily limit (a token's `quota_seconds`), over
    /// `QUOTA_USER_DAILY_SECONDS`.
    pub user_limit: Option<u64>,
}

/// The ledger's answer to [`Reserve`].
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reserved {
    /// The reservation, when it was made (or found, for a retry).
    pub id: Option<String>,
    /// The limit it would pass, otherwise.
    pub limit: Option<String>,
    /// What is left of that limit.
    pub left: u64,
    /// When to try again (seconds).
    pub retry_after_s: u64,
}

/// A caller's day, as `GET /api/usage` answers it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Seconds of video of completed jobs.
    pub used_seconds: u64,
    /// Seconds held for jobs not settled yet.
    pub reserved_seconds: u64,
    /// The daily limit, `null` for none.
    pub limit_seconds: Option<u64>,
    /// What is left of it, `null` for no limit.
    pub left_seconds: Option<u64>,
    /// Jobs not settled yet.
    pub in_flight: u64,
    /// When the day resets (ms since the epoch).
    pub resets_at: u64,
}

/// A settlement: the job's fate.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Fate {
    /// COMPLETED: the seconds are spent.
    Commit,
    /// FAILED: the upstream bills nothing, nor does the ledger.
    Refund,
}

#[derive(Serialize, Deserialize)]
struct Attach {
    id: String,
    job_id: String,
}

#[derive(Serialize, Deserialize)]
struct Settle {
    job_id: String,
    fate: Fate,
}

#[derive(Serialize, Deserialize)]
struct ById {
    id: String,
}

/// A generate whose outcome was ambiguous, kept to replay once.
#[derive(Clone, Serialize, Deserialize)]
pub struct Replay {
    /// The reservation.
    pub id: String,
    /// The body sent upstream.
    pub body: String,
    /// The headers sent upstream (the Idempotency-Key among them), before the key.
    pub headers: Vec<(String, String)>,
    /// The caller's subject in a token mode: the job is theirs.
    pub owner: Option<String>,
}

/// The operator's change to a subject's day.
#[derive(Serialize, Deserialize)]
pub struct Change {
    /// Whose day.
    pub subject: String,
    /// Seconds to grant (a grant), none for a block.
    pub seconds: Option<u64>,
    /// Block the subject for the rest of the day.
    #[serde(default)]
    pub block: bool,
}

#[derive(Serialize, Deserialize)]
struct ByDay {
    day: u64,
}

#[derive(Serialize, Deserialize)]
struct BySubject {
    subject: String,
    user_limit: Option<u64>,
}

/// The worker's handle on the ledger.
pub struct LedgerCall<'a> {
    env: &'a Env,
}

impl<'a> LedgerCall<'a> {
    /// The deployment's ledger.
    pub fn new(env: &'a Env) -> LedgerCall<'a> {
        LedgerCall { env }
    }

    async fn call<T: Serialize, R: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<R> {
        let stub = self
            .env
            .durable_object(BINDING)?
            .id_from_name(NAME)?
            .get_stub()?;
        let headers = Headers::new();
        headers.set("content-type", "application/json")?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(serde_json::to_string(body)?.into()));
        let req = Request::new_with_init(&format!("https://ledger.internal{path}"), &init)?;
        let mut res = stub.fetch_with_request(req).await?;
        if res.status_code() != 200 {
            return Err(worker::Error::RustError(format!(
                "the ledger answered {}",
                res.status_code()
            )));
        }
        res.json().await
    }

    /// Reserves seconds for a generate, or says which limit it would pass.
    pub async fn reserve(
        &self,
        reserve: &Reserve,
    ) -> Result<std::result::Result<String, Exceeded>> {
        let answer: Reserved = self.call("/reserve", reserve).await?;
        match (answer.id, answer.limit) {
            (Some(id), _) => Ok(Ok(id)),
            (None, Some(limit)) => Ok(Err(Exceeded {
                limit: match limit.as_str() {
                    "user_in_flight" => "user_in_flight",
                    "global_daily" => "global_daily",
                    "blocked" => "blocked",
                    _ => "user_daily",
                },
                left: answer.left,
                retry_after_s: answer.retry_after_s,
            })),
            (None, None) => Err(worker::Error::RustError(
                "the ledger answered nothing".into(),
            )),
        }
    }

    /// The upstream refused the generate (no job): the reservation goes.
    pub async fn release(&self, id: &str) -> Result<()> {
        self.call::<_, serde_json::Value>("/release", &ById { id: id.to_string() })
            .await
            .map(drop)
    }

    /// The reservation's job.
    pub async fn attach(&self, id: &str, job_id: &str) -> Result<()> {
        self.call::<_, serde_json::Value>(
            "/attach",
            &Attach {
                id: id.to_string(),
                job_id: job_id.to_ascii_lowercase(),
            },
        )
        .await
        .map(drop)
    }

    /// The job's fate settles its reservation.
    pub async fn settle(&self, job_id: &str, fate: Fate) -> Result<()> {
        self.call::<_, serde_json::Value>(
            "/settle",
            &Settle {
                job_id: job_id.to_ascii_lowercase(),
                fate,
            },
        )
        .await
        .map(drop)
    }

    /// Keeps an ambiguous generate to replay once, if no retry finds its job.
    pub async fn ambiguous(&self, replay: &Replay) -> Result<()> {
        self.call::<_, serde_json::Value>("/ambiguous", replay)
            .await
            .map(drop)
    }

    /// The operator grants a subject more seconds today, or blocks it.
    pub async fn change(&self, change: &Change) -> Result<()> {
        self.call::<_, serde_json::Value>("/change", change)
            .await
            .map(drop)
    }

    /// Day `day`'s audit rows, one JSON object a line.
    pub async fn audit(&self, day: u64) -> Result<String> {
        let rows: Vec<serde_json::Value> = self.call("/audit", &ByDay { day }).await?;
        Ok(rows.iter().map(|row| format!("{row}\n")).collect())
    }

    /// A subject's day; `user_limit` is their own limit (a token's claim), if any.
    pub async fn usage(&self, subject: &str, user_limit: Option<u64>) -> Result<Usage> {
        self.call(
            "/usage",
            &BySubject {
                subject: subject.to_string(),
                user_limit,
            },
        )
        .await
    }
}

/// The deployment's quota ledger.
#[durable_object]
pub struct Ledger {
    state: State,
    env: Env,
    schema_ready: Cell<bool>,
}

#[derive(Deserialize)]
struct Sum {
    seconds: Option<f64>,
    jobs: Option<f64>,
}

#[derive(Deserialize)]
struct Row {
    id: String,
    day: f64,
    subject: String,
    seconds: f64,
    state: String,
    job_id: Option<String>,
    flagged: f64,
}

fn int(n: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(n as i64)
}

fn text(s: &str) -> SqlStorageValue {
    SqlStorageValue::String(s.to_string())
}

/// `YYYY-MM-DD` of UTC day `day`, by the platform's calendar.
fn day_name(day: u64) -> String {
    let iso: String = js_sys::Date::new(&((day * 86_400_000) as f64).into())
        .to_iso_string()
        .into();
    iso.chars().take(10).collect()
}

impl Ledger {
    fn quotas(&self) -> std::result::Result<Quotas, String> {
        crate::config_of(&self.env).quotas
    }

    fn sql(&self) -> Result<worker::SqlStorage> {
        let sql = self.state.storage().sql();
        if !self.schema_ready.replace(true) {
            sql.exec(SCHEMA, None)?;
        }
        Ok(sql)
    }

    fn sum(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<(u64, u64)> {
        let sums: Vec<Sum> = self.sql()?.exec(query, bindings)?.to_array()?;
        let sum = sums.first();
        Ok((
            sum.and_then(|s| s.seconds).unwrap_or(0.0) as u64,
            sum.and_then(|s| s.jobs).unwrap_or(0.0) as u64,
        ))
    }

    fn standing(&self, day: u64, subject: &str) -> Result<Standing> {
        let (user_seconds, _) = self.sum(
            "SELECT SUM(seconds) AS seconds, COUNT(*) AS jobs FROM reservations WHERE day = ? AND subject = ? AND state IN ('reserved', 'committed')",
            vec![int(day), text(subject)],
        )?;
        let (_, user_in_flight) = self.sum(
            "SELECT SUM(seconds) AS seconds, COUNT(*) AS jobs FROM reservations WHERE subject = ? AND state = 'reserved'",
            vec![text(subject)],
        )?;
        let (global_seconds, _) = self.sum(
            "SELECT SUM(seconds) AS seconds, COUNT(*) AS jobs FROM reservations WHERE day = ? AND state IN ('reserved', 'committed')",
            vec![int(day)],
        )?;
        Ok(Standing {
            user_seconds,
            user_in_flight,
            global_seconds,
        })
    }

    fn audit(&self, row: &Row, event: &str, flagged: bool, now: u64) -> Result<()> {
        self.sql()?.exec(
            "INSERT INTO audit (at, day, subject, job_id, seconds, event, flagged) VALUES (?, ?, ?, ?, ?, ?, ?)",
            vec![
                int(now),
                int(row.day as u64),
                text(&row.subject),
                row.job_id.as_deref().map_or(SqlStorageValue::Null, text),
                int(row.seconds as u64),
                text(event),
                int(u64::from(flagged)),
            ],
        )?;
        Ok(())
    }

    fn row(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<Option<Row>> {
        let rows: Vec<Row> = self.sql()?.exec(query, bindings)?.to_array()?;
        Ok(rows.into_iter().next())
    }

    /// Moves reservation `row` to `state`, with its audit row.
    fn set_state(
        &self,
        row: &Row,
        state: &str,
        event: &str,
        flagged: bool,
        now: u64,
    ) -> Result<()> {
        self.sql()?.exec(
            "UPDATE reservations SET state = ?, flagged = MAX(flagged, ?) WHERE id = ?",
            vec![text(state), int(u64::from(flagged)), text(&row.id)],
        )?;
        self.audit(row, event, flagged || row.flagged > 0.0, now)
    }

    /// One synchronous step: the check and the row, with no `await` between.
    fn reserve(&self, reserve: &Reserve, quotas: &Quotas, now: u64) -> Result<Reserved> {
        let day = day_of(now);
        let id = match &reserve.key {
            Some(key) => format!("key:{key}"),
            None => format!("new:{}", uuid_like(now)),
        };
        if let Some(existing) =
            self.row("SELECT * FROM reservations WHERE id = ?", vec![text(&id)])?
        {
            if existing.state != "released" {
                return Ok(Reserved {
                    id: Some(id),
                    limit: None,
                    left: 0,
                    retry_after_s: 0,
                });
            }
            self.sql()?
                .exec("DELETE FROM reservations WHERE id = ?", vec![text(&id)])?;
        }
        let standing = self.standing(day, &reserve.subject)?;
        let (granted, blocked) = self.grant(day, &reserve.subject)?;
        if blocked {
            return Ok(Reserved {
                id: None,
                limit: Some("blocked".to_string()),
                left: 0,
                retry_after_s: (day_end_ms(day) - now).div_ceil(1000),
            });
        }
        let user_limit = reserve
            .user_limit
            .or(quotas.user_daily)
            .map(|limit| limit + granted);
        if let Err(exceeded) = check(quotas, user_limit, standing, reserve.seconds, now) {
            return Ok(Reserved {
                id: None,
                limit: Some(exceeded.limit.to_string()),
                left: exceeded.left,
                retry_after_s: exceeded.retry_after_s,
            });
        }
        self.sql()?.exec(
            "INSERT INTO reservations (id, day, subject, seconds, state, job_id, at, flagged) VALUES (?, ?, ?, ?, 'reserved', NULL, ?, 0)",
            vec![text(&id), int(day), text(&reserve.subject), int(reserve.seconds), int(now)],
        )?;
        let row = Row {
            id: id.clone(),
            day: day as f64,
            subject: reserve.subject.clone(),
            seconds: reserve.seconds as f64,
            state: "reserved".into(),
            job_id: None,
            flagged: 0.0,
        };
        self.audit(&row, "reserve", false, now)?;
        Ok(Reserved {
            id: Some(id),
            limit: None,
            left: 0,
            retry_after_s: 0,
        })
    }

    /// The operator's grant (seconds) and block for a subject's day.
    fn grant(&self, day: u64, subject: &str) -> Result<(u64, bool)> {
        #[derive(Deserialize)]
        struct Grant {
            seconds: f64,
            blocked: f64,
        }
        let grants: Vec<Grant> = self
            .sql()?
            .exec(
                "SELECT seconds, blocked FROM grants WHERE day = ? AND subject = ?",
                vec![int(day), text(subject)],
            )?
            .to_array()?;
        Ok(grants
            .first()
            .map_or((0, false), |g| (g.seconds as u64, g.blocked > 0.0)))
    }

    fn usage(&self, subject: &str, limit: Option<u64>, now: u64) -> Result<Usage> {
        let day = day_of(now);
        let (granted, blocked) = self.grant(day, subject)?;
        let limit = if blocked {
            Some(0)
        } else {
            limit.map(|l| l + granted)
        };
        let (used, _) = self.sum(
            "SELECT SUM(seconds) AS seconds, COUNT(*) AS jobs FROM reservations WHERE day = ? AND subject = ? AND state = 'committed'",
            vec![int(day), text(subject)],
        )?;
        let (reserved, in_flight) = self.sum(
            "SELECT SUM(seconds) AS seconds, COUNT(*) AS jobs FROM reservations WHERE day = ? AND subject = ? AND state = 'reserved'",
            vec![int(day), text(subject)],
        )?;
        Ok(Usage {
            day: day_name(day),
            used_seconds: used,
            reserved_seconds: reserved,
            limit_seconds: limit,
            left_seconds: limit.map(|l| l.saturating_sub(used + reserved)),
            in_flight,
            resets_at: day_end_ms(day),
        })
    }

    /// Sweeps reservations that waited too long, and keeps the alarm armed
    /// while any is open: one with no job past `QUOTA_AMBIGUOUS_TTL` is
    /// released, one with a job not settled within the bound is committed;
    /// both are flagged.
    async fn sweep(&self, quotas: &Quotas, now: u64) -> Result<()> {
        self.replay_ambiguous(quotas, now).await?;
        let stale: Vec<Row> = self
            .sql()?
            .exec(
                "SELECT * FROM reservations WHERE state = 'reserved' AND ((job_id IS NULL AND at <= ?) OR (job_id IS NOT NULL AND at <= ?))",
                vec![int(now.saturating_sub(quotas.ambiguous_ttl_ms)), int(now.saturating_sub(SETTLE_BOUND_MS))],
            )?
            .to_array()?;
        for row in &stale {
            if row.job_id.is_none() {
                self.set_state(
                    row,
                    "released",
                    "release (no job within QUOTA_AMBIGUOUS_TTL)",
                    true,
                    now,
                )?;
            } else {
                self.set_state(
                    row,
                    "committed",
                    "commit (not settled within the bound)",
                    true,
                    now,
                )?;
            }
        }
        let open = self.sum(
            "SELECT SUM(seconds) AS seconds, COUNT(*) AS jobs FROM reservations WHERE state = 'reserved'",
            vec![],
        )?;
        let storage = self.state.storage();
        if open.1 > 0 {
            // Half the TTL: an ambiguous generate is replayed before it is released.
            let every = (quotas.ambiguous_ttl_ms / 2).clamp(500, SETTLE_BOUND_MS);
            if storage.get_alarm().await?.is_none() {
                storage.set_alarm(every as i64).await?;
            }
        }
        Ok(())
    }

    /// Replays, once, each ambiguous generate whose reservation is still
    /// waiting for a job half its TTL on, with the same Idempotency-Key: an
    /// upstream that made the job answers with it (and bills once). A job
    /// found is attached and recorded as created, so its object settles it;
    /// a refusal releases the reservation; another ambiguous answer leaves
    /// it to the TTL.
    async fn replay_ambiguous(&self, quotas: &Quotas, now: u64) -> Result<()> {
        #[derive(Deserialize)]
        struct Waiting {
            id: String,
            body: String,
            headers: String,
            owner: Option<String>,
        }
        let waiting: Vec<Waiting> = self
            .sql()?
            .exec(
                "SELECT p.id, p.body, p.headers, p.owner FROM replays p JOIN reservations r ON r.id = p.id WHERE p.done = 0 AND r.state = 'reserved' AND r.job_id IS NULL AND r.at <= ?",
                vec![int(now.saturating_sub(quotas.ambiguous_ttl_ms / 2))],
            )?
            .to_array()?;
        let config = crate::config_of(&self.env);
        for w in waiting {
            self.sql()?.exec(
                "UPDATE replays SET done = 1 WHERE id = ?",
                vec![text(&w.id)],
            )?;
            let headers: Vec<(String, String)> =
                serde_json::from_str(&w.headers).unwrap_or_default();
            let answer = crate::upstream::exchange(
                &self.env,
                &config,
                Method::Post,
                "/v2/videos/generate",
                &headers,
                Some(w.body),
            )
            .await;
            let reply = crate::upstream::answer_reply(
                &self.env,
                sora_edge::edge::upstream::Expected::Submitted,
                answer,
            );
            let job = (200..300)
                .contains(&reply.status)
                .then(|| sora_edge::edge::upstream::submitted_job_id(&reply.body))
                .flatten();
            let Some(row) =
                self.row("SELECT * FROM reservations WHERE id = ?", vec![text(&w.id)])?
            else {
                continue;
            };
            match job {
                Some(job) => {
                    let job = job.to_ascii_lowercase();
                    self.sql()?.exec(
                        "UPDATE reservations SET job_id = ? WHERE id = ?",
                        vec![text(&job), text(&w.id)],
                    )?;
                    let row = Row {
                        job_id: Some(job.clone()),
                        ..row
                    };
                    self.audit(&row, "replay found the job", true, now)?;
                    crate::record_created(&self.env, &job, w.owner.as_deref(), Some(&w.id)).await;
                }
                None if (400..500).contains(&reply.status) => {
                    self.set_state(
                        &row,
                        "released",
                        "release (the replay was refused)",
                        true,
                        now,
                    )?;
                }
                None => self.audit(&row, "replay was ambiguous too", true, now)?,
            }
        }
        Ok(())
    }

    async fn answer(&self, mut req: Request) -> Result<Response> {
        let quotas = match self.quotas() {
            Ok(quotas) => quotas,
            Err(problem) => return respond(Reply::error(503, "not_configured", &problem), &[]),
        };
        let now = now_ms();
        match req.path().as_str() {
            "/reserve" => {
                let reserve: Reserve = req.json().await?;
                let reserved = self.reserve(&reserve, &quotas, now)?;
                if reserved.id.is_some() {
                    self.sweep(&quotas, now).await?;
                }
                Response::from_json(&reserved)
            }
            "/release" => {
                let ById { id } = req.json().await?;
                if let Some(row) = self.row(
                    "SELECT * FROM reservations WHERE id = ? AND state = 'reserved'",
                    vec![text(&id)],
                )? {
                    self.set_state(
                        &row,
                        "released",
                        "release (the upstream refused the generate)",
                        false,
                        now,
                    )?;
                }
                Response::from_json(&serde_json::json!({ "ok": true }))
            }
            "/attach" => {
                let Attach { id, job_id } = req.json().await?;
                if let Some(row) =
                    self.row("SELECT * FROM reservations WHERE id = ?", vec![text(&id)])?
                {
                    self.sql()?.exec(
                        "UPDATE reservations SET job_id = ? WHERE id = ?",
                        vec![text(&job_id), text(&id)],
                    )?;
                    if row.state == "released" {
                        // The job showed up after its reservation was let go: it counts, past the limit if need be.
                        let row = Row {
                            job_id: Some(job_id),
                            ..row
                        };
                        self.set_state(
                            &row,
                            "reserved",
                            "reserve (the job showed up late)",
                            true,
                            now,
                        )?;
                    }
                }
                Response::from_json(&serde_json::json!({ "ok": true }))
            }
            "/settle" => {
                let Settle { job_id, fate } = req.json().await?;
                if let Some(row) = self.row(
                    "SELECT * FROM reservations WHERE job_id = ? AND state = 'reserved'",
                    vec![text(&job_id)],
                )? {
                    match fate {
                        Fate::Commit => self.set_state(&row, "committed", "commit", false, now)?,
                        Fate::Refund => self.set_state(&row, "refunded", "refund", false, now)?,
                    }
                }
                Response::from_json(&serde_json::json!({ "ok": true }))
            }
            "/ambiguous" => {
                let replay: Replay = req.json().await?;
                self.sql()?.exec(
                    "INSERT OR IGNORE INTO replays (id, body, headers, owner, done) VALUES (?, ?, ?, ?, 0)",
                    vec![
                        text(&replay.id),
                        text(&replay.body),
                        text(&serde_json::to_string(&replay.headers)?),
                        replay.owner.as_deref().map_or(SqlStorageValue::Null, text),
                    ],
                )?;
                self.sweep(&quotas, now).await?;
                Response::from_json(&serde_json::json!({ "ok": true }))
            }
            "/change" => {
                let change: Change = req.json().await?;
                let day = day_of(now);
                self.sql()?.exec(
                    "INSERT INTO grants (day, subject, seconds, blocked) VALUES (?, ?, ?, ?) ON CONFLICT (day, subject) DO UPDATE SET seconds = seconds + excluded.seconds, blocked = MAX(blocked, excluded.blocked)",
                    vec![int(day), text(&change.subject), int(change.seconds.unwrap_or(0)), int(u64::from(change.block))],
                )?;
                let row = Row {
                    id: String::new(),
                    day: day as f64,
                    subject: change.subject.clone(),
                    seconds: change.seconds.unwrap_or(0) as f64,
                    state: String::new(),
                    job_id: None,
                    flagged: 0.0,
                };
                let event = if change.block {
                    "block (operator)"
                } else {
                    "grant (operator)"
                };
                self.audit(&row, event, false, now)?;
                Response::from_json(&serde_json::json!({ "ok": true }))
            }
            "/audit" => {
                let ByDay { day } = req.json().await?;
                let rows: Vec<serde_json::Value> = self
                    .sql()?
                    .exec(
                        "SELECT at, subject, job_id AS jobId, seconds, event, flagged FROM audit WHERE day = ? ORDER BY rowid",
                        vec![int(day)],
                    )?
                    .to_array()?;
                Response::from_json(&rows)
            }
            "/usage" => {
                let BySubject {
                    subject,
                    user_limit,
                } = req.json().await?;
                let limit = user_limit.or(quotas.user_daily);
                Response::from_json(&self.usage(&subject, limit, now)?)
            }
            _ => Response::error("no such ledger operation", 404),
        }
    }
}

/// A reservation id for a generate without an Idempotency-Key: unique
/// within the one ledger (time plus a counter).
fn uuid_like(now: u64) -> String {
    thread_local! {
        static COUNTER: Cell<u64> = const { Cell::new(0) };
    }
    let n = COUNTER.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    format!("{now}-{n}")
}

impl DurableObject for Ledger {
    fn new(state: State, env: Env) -> Self {
        Ledger {
            state,
            env,
            schema_ready: Cell::new(false),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        // A test build's fault: the ledger that cannot answer.
        #[cfg(feature = "test-routes")]
        if self
            .env
            .var("TEST_LEDGER_FAULT")
            .is_ok_and(|v| v.to_string() == "on")
        {
            return Response::error("test fault: the ledger is down", 500);
        }
        self.answer(req).await
    }

    async fn alarm(&self) -> Result<Response> {
        if let Ok(quotas) = self.quotas() {
            self.sweep(&quotas, now_ms()).await?;
        }
        Response::ok("swept")
    }
}
