//! The schedule benchmark's logic, in virtual time: a seeded population of
//! jobs, five progress models, six polling policies, and the figures.
//!
//! Shared by `examples/schedule_bench/main.rs` (the printed table) and
//! `tests/schedule_bench.rs` (a fast smoke test in `cargo test`).

use crate::baseline::OldSchedule;
use sora_edge::core::schedule::PollSchedule;

/// Median job duration (the figure).
pub const MEDIAN_MS: f64 = 180_000.0;
/// Spread of the lognormal durations: sigma of ln(duration).
pub const SIGMA: f64 = 0.5;
/// The population the printed table and the targets test use: its size and seed.
pub const DEFAULT_JOBS: usize = 10_000;
/// See [`DEFAULT_JOBS`].
pub const DEFAULT_SEED: u64 = 5;
/// When a job fails in the `FailAt5s` model, in job time.
pub const FAIL_AT_MS: u64 = 5_000;

/// SplitMix64: small, seeded, deterministic on every platform.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // (0, 1]: ln is finite
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// One job of the population, in job time (0 = submitted).
#[derive(Clone, Copy, Debug)]
pub struct JobSpec {
    /// When the job ends (completes) in the progress-reporting models.
    pub duration_ms: u64,
    /// How long it sits queued (progress 0) in the queued model.
    pub queued_ms: u64,
    /// How long before the wait began the job was submitted: the wait's
    /// time 0 is job time `phase_ms`, so polls are not aligned with the job.
    pub phase_ms: u64,
}

/// `n` jobs: lognormal durations (median [`MEDIAN_MS`], sigma [`SIGMA`]),
/// queued for 10–40 % of the duration, phase uniform in [0, 1 s).
pub fn population(n: usize, seed: u64) -> Vec<JobSpec> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let duration_ms = (MEDIAN_MS * (SIGMA * rng.normal()).exp()).round() as u64;
            let queued_ms = (duration_ms as f64 * (0.1 + 0.3 * rng.unit())) as u64;
            let phase_ms = (rng.unit() * 1_000.0) as u64;
            JobSpec {
                duration_ms,
                queued_ms,
                phase_ms,
            }
        })
        .collect()
}

/// How a job reports progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// Progress rises linearly from submission to the end.
    Linear,
    /// Progress stays 0 while queued, then rises linearly to the end.
    QueuedThenLinear,
    /// Progress stays 0 until the job is done.
    NoProgress,
    /// Progress stays 0; the job fails at [`FAIL_AT_MS`].
    FailAt5s,
    /// Progress rises at the linear rate to 50 %, then stays there until the
    /// job ends at twice the duration that rate predicts.
    Stall,
}

impl Model {
    /// Every model, in table order.
    pub const ALL: [Model; 5] = [
        Model::Linear,
        Model::QueuedThenLinear,
        Model::NoProgress,
        Model::FailAt5s,
        Model::Stall,
    ];

    /// The name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Model::Linear => "linear",
            Model::QueuedThenLinear => "queued, then linear",
            Model::NoProgress => "no progress until done",
            Model::FailAt5s => "failure at 5 s",
            Model::Stall => "stall at 50 %, done at 2x",
        }
    }

    /// When the job ends, in job time.
    pub fn end_ms(self, job: &JobSpec) -> u64 {
        match self {
            Model::FailAt5s => FAIL_AT_MS,
            Model::Stall => 2 * job.duration_ms,
            _ => job.duration_ms,
        }
    }

    /// The progress reported at job time `t` (before the end), rounded down
    /// like the upstream and never 100 while running.
    pub fn progress(self, job: &JobSpec, t: u64) -> f64 {
        let ramp = |from: u64| {
            if t < from {
                0.0
            } else {
                let span = job.duration_ms.saturating_sub(from).max(1) as f64;
                ((t - from) as f64 / span * 100.0).floor().min(99.0)
            }
        };
        match self {
            Model::Linear => ramp(0),
            Model::QueuedThenLinear => ramp(job.queued_ms),
            Model::NoProgress | Model::FailAt5s => 0.0,
            Model::Stall => ramp(0).min(50.0),
        }
    }
}

/// A polling policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// sora-edge's adaptive schedule, whose cap grows while predictions hold.
    Adaptive,
    /// The baseline: the adaptive schedule before issue 8, capped at 15 s.
    Old,
    /// A read every so many milliseconds.
    Fixed(u64),
}

impl Policy {
    /// Every policy, in table order.
    pub const ALL: [Policy; 6] = [
        Policy::Adaptive,
        Policy::Old,
        Policy::Fixed(2_000),
        Policy::Fixed(5_000),
        Policy::Fixed(500),
        Policy::Fixed(6_000),
    ];

    /// The name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Adaptive => "sora-edge adaptive (cap 15-60 s)",
            Policy::Old => "old adaptive (cap 15 s, baseline)",
            Policy::Fixed(2_000) => "fixed 2 s (product page)",
            Policy::Fixed(5_000) => "fixed 5 s (API docs)",
            Policy::Fixed(500) => "fixed 0.5 s (fal, Replicate)",
            Policy::Fixed(6_000) => "fixed 6 s (Runway)",
            Policy::Fixed(_) => "fixed",
        }
    }
}

/// The outcome of one simulated wait.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WaitOutcome {
    /// Status reads made, including the one that saw the end.
    pub reads: u32,
    /// Time from the job's end to the read that saw it.
    pub detection_delay_ms: u64,
}

/// A policy's state during one wait: what it has observed.
enum Poller {
    Adaptive(PollSchedule),
    Old(OldSchedule),
    Fixed(u64),
}

impl Poller {
    fn new(policy: Policy) -> Poller {
        match policy {
            Policy::Adaptive => Poller::Adaptive(PollSchedule::new()),
            Policy::Old => Poller::Old(OldSchedule::default()),
            Policy::Fixed(every) => Poller::Fixed(every),
        }
    }

    fn next_delay_ms(&self, now_ms: u64) -> u64 {
        match self {
            Poller::Adaptive(s) => s.next_delay_ms(now_ms, None),
            Poller::Old(s) => s.next_delay_ms(now_ms),
            Poller::Fixed(every) => *every,
        }
    }

    fn observe(&mut self, at_ms: u64, progress: f64) {
        match self {
            Poller::Adaptive(s) => s.observe(at_ms, progress),
            Poller::Old(s) => s.observe(at_ms, progress),
            Poller::Fixed(_) => {}
        }
    }
}

/// Runs a wait in virtual time under `policy` against a job that ends at
/// `ends_at_ms` (wait time) and reports `progress_at(t)` until then.
pub fn simulate_wait(
    policy: Policy,
    ends_at_ms: u64,
    progress_at: impl Fn(u64) -> f64,
) -> WaitOutcome {
    let mut poller = Poller::new(policy);
    let (mut now, mut reads) = (0, 0);
    loop {
        now += poller.next_delay_ms(now);
        reads += 1;
        if now >= ends_at_ms {
            return WaitOutcome {
                reads,
                detection_delay_ms: now - ends_at_ms,
            };
        }
        poller.observe(now, progress_at(now));
    }
}

/// One simulated wait of `job` under `model` with `policy`.
pub fn wait(model: Model, policy: Policy, job: &JobSpec) -> WaitOutcome {
    // Wait time 0 is job time `phase_ms`; the phase is under 1 s and every
    // end is later than that, so the end is always ahead of the wait.
    let ends_at = model.end_ms(job).saturating_sub(job.phase_ms).max(1);
    simulate_wait(policy, ends_at, |t| model.progress(job, t + job.phase_ms))
}

/// Figures for one (model, policy) cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figures {
    /// Mean status reads per job, including the one that saw the end.
    pub reads_mean: f64,
    /// 95th percentile of reads per job.
    pub reads_p95: u32,
    /// Mean time from the end to the read that saw it, ms.
    pub delay_mean_ms: f64,
    /// 95th percentile of that delay, ms.
    pub delay_p95_ms: u64,
}

/// The nearest-rank percentile `p` (0–100) of sorted values.
fn percentile<T: Copy>(sorted: &[T], p: usize) -> T {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Runs every job of the population under one model and policy.
pub fn measure(model: Model, policy: Policy, jobs: &[JobSpec]) -> Figures {
    let mut reads: Vec<u32> = Vec::with_capacity(jobs.len());
    let mut delays: Vec<u64> = Vec::with_capacity(jobs.len());
    for job in jobs {
        let outcome = wait(model, policy, job);
        reads.push(outcome.reads);
        delays.push(outcome.detection_delay_ms);
    }
    let n = jobs.len().max(1) as f64;
    let reads_mean = reads.iter().map(|&r| f64::from(r)).sum::<f64>() / n;
    let delay_mean_ms = delays.iter().map(|&d| d as f64).sum::<f64>() / n;
    reads.sort_unstable();
    delays.sort_unstable();
    Figures {
        reads_mean,
        reads_p95: percentile(&reads, 95),
        delay_mean_ms,
        delay_p95_ms: percentile(&delays, 95),
    }
}

/// Every cell: `(model, policy, figures)` in table order.
pub fn run_all(jobs: &[JobSpec]) -> Vec<(Model, Policy, Figures)> {
    let mut rows = Vec::new();
    for model in Model::ALL {
        for policy in Policy::ALL {
            rows.push((model, policy, measure(model, policy, jobs)));
        }
    }
    rows
}

/// The rows as an aligned markdown table.
pub fn markdown_table(rows: &[(Model, Policy, Figures)]) -> String {
    let header = [
        "progress model",
        "policy",
        "reads/job mean",
        "reads/job p95",
        "delay mean (s)",
        "delay p95 (s)",
    ];
    let mut cells: Vec<[String; 6]> = vec![header.map(str::to_string)];
    for (model, policy, f) in rows {
        cells.push([
            model.name().to_string(),
            policy.name().to_string(),
            format!("{:.1}", f.reads_mean),
            f.reads_p95.to_string(),
            format!("{:.2}", f.delay_mean_ms / 1000.0),
            format!("{:.2}", f.delay_p95_ms as f64 / 1000.0),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (i, row) in cells.iter().enumerate() {
        out.push('|');
        for (col, (c, w)) in row.iter().zip(widths).enumerate() {
            // Text columns left, figures right.
            if col < 2 {
                out.push_str(&format!(" {c:<w$} |"));
            } else {
                out.push_str(&format!(" {c:>w$} |"));
            }
        }
        out.push('\n');
        if i == 0 {
            out.push('|');
            for (col, w) in widths.iter().enumerate() {
                let dashes = "-".repeat(*w);
                if col < 2 {
                    out.push_str(&format!(" {dashes} |"));
                } else {
                    out.push_str(&format!(" {}: |", &dashes[1..]));
                }
            }
            out.push('\n');
        }
    }
    out
}

/// The figures of one cell.
pub fn cell(rows: &[(Model, Policy, Figures)], model: Model, policy: Policy) -> Figures {
    rows.iter()
        .find(|(m, p, _)| *m == model && *p == policy)
        .map(|(_, _, f)| *f)
        .expect("every cell is measured")
}

/// Issue 8's targets for the adaptive schedule, as `(model, most reads/job,
/// longest mean delay in ms)`; `None` where the issue sets no bound.
pub const TARGETS: [(Model, Option<f64>, f64); 3] = [
    (Model::Linear, Some(8.0), 1_500.0),
    (Model::NoProgress, Some(15.0), 7_500.0),
    (Model::Stall, None, 10_000.0),
];

/// The targets checked against the rows, as `(goal, met, detail)`,
/// each with the old schedule's figures from the same run.
pub fn goals(rows: &[(Model, Policy, Figures)]) -> Vec<(String, bool, String)> {
    TARGETS
        .iter()
        .map(|&(model, max_reads, max_delay_ms)| {
            let new = cell(rows, model, Policy::Adaptive);
            let old = cell(rows, model, Policy::Old);
            let goal = match max_reads {
                Some(reads) => format!(
                    "{}: <= {reads} reads/job at <= {} s mean delay",
                    model.name(),
                    max_delay_ms / 1000.0
                ),
                None => format!(
                    "{}: mean delay <= {} s",
                    model.name(),
                    max_delay_ms / 1000.0
                ),
            };
            let met =
                max_reads.is_none_or(|r| new.reads_mean <= r) && new.delay_mean_ms <= max_delay_ms;
            let detail = format!(
                "{:.1} reads/job, {:.2} s (old schedule: {:.1} reads/job, {:.2} s)",
                new.reads_mean,
                new.delay_mean_ms / 1000.0,
                old.reads_mean,
                old.delay_mean_ms / 1000.0,
            );
            (goal, met, detail)
        })
        .collect()
}
