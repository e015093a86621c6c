//! The adaptive poll schedule of `waitForJob`, as a pure function of what has
//! been observed, so it can be studied in virtual time
//! (`cargo run --release --example schedule_bench`).
//!
//! A fixed interval is either wasteful (2 s: ~90 reads for a 3-minute job) or
//! slow to notice completion (10 s: 5 s late on average). Instead:
//! - check once early (at 5 s), to catch a job that fails at once;
//! - then read at the longest gap allowed (the cap) while nothing is known,
//!   since videos take minutes;
//! - once progress moves, predict the finish from the progress rate and space
//!   the remaining reads evenly so the last lands just after it;
//! - the cap starts at 15 s. Each read whose progress is what the prediction
//!   said doubles it, up to 60 s: a job that keeps to its rate needs few reads.
//!   A read that finds anything else (a stall, a jump) sets it back to 15 s
//!   at once, so a job that stops keeping to its rate is watched as closely
//!   as one that never reported progress;
//! - never closer than 1 s; `Retry-After` always wins.

/// No two reads closer together than this.
pub const MIN_INTERVAL_MS: u64 = 1_000;
/// The cap on the gap between reads while no prediction has held, and again
/// after one misses.
pub const BASE_CAP_MS: u64 = 15_000;
/// The cap never grows past this, however well the predictions hold.
pub const MAX_CAP_MS: u64 = 60_000;
/// The first read, while nothing is known: one early check.
///
/// One check at 5 s, not 1 s then 5 s: in virtual time the 1 s read cost every
/// job one status read (2 → 1 for a job failing at 5 s, the same delays) and
/// only told of a job that failed within its first second 4 s sooner.
const FIRST_READ_MS: u64 = 5_000;
/// Aim this long after the predicted finish, so the read rarely lands early.
const ARRIVAL_MARGIN_MS: u64 = 500;

/// What the schedule has learnt from the reads so far.
#[derive(Clone, Debug)]
pub struct PollSchedule {
    reads: u32,
    first_moving: Option<(u64, f64)>,
    /// The read where progress last rose: a job stuck at 99 % must not keep
    /// pulling its own prediction forward.
    latest_rise: Option<(u64, f64)>,
    reads_past_prediction: u32,
    cap_ms: u64,
}

impl Default for PollSchedule {
    fn default() -> PollSchedule {
        PollSchedule {
            reads: 0,
            first_moving: None,
            latest_rise: None,
            reads_past_prediction: 0,
            cap_ms: BASE_CAP_MS,
        }
    }
}

impl PollSchedule {
    /// A schedule for a wait that starts now (time 0 of `at_ms`).
    pub fn new() -> PollSchedule {
        PollSchedule::default()
    }

    /// Records a status read made at `at_ms` that found the job still running.
    pub fn observe(&mut self, at_ms: u64, progress: f64) {
        self.reads += 1;
        // A read without a usable figure still counts as a read, but says
        // nothing about the rate.
        if !progress.is_finite() {
            return;
        }
        match self.prediction_holds(at_ms, progress) {
            Some(true) => self.cap_ms = (self.cap_ms * 2).min(MAX_CAP_MS),
            Some(false) => self.cap_ms = BASE_CAP_MS,
            None => {}
        }
        if self
            .predicted_finish_ms()
            .is_some_and(|finish| at_ms >= finish)
        {
            self.reads_past_prediction += 1;
        }
        if progress > 0.0 && self.first_moving.is_none() {
            self.first_moving = Some((at_ms, progress));
        }
        if self.latest_rise.is_none_or(|(_, p)| progress > p) {
            self.latest_rise = Some((at_ms, progress));
        }
    }

    /// The longest gap the schedule allows now.
    pub fn cap_ms(&self) -> u64 {
        self.cap_ms
    }

    /// The bounds on the progress rate (points per ms) that the two reads the
    /// prediction rests on allow. Progress is reported rounded down, so each
    /// true value lies up to one point above the reported one.
    fn rate_bounds(&self) -> Option<(f64, f64)> {
        let (t0, p0) = self.first_moving?;
        let (t1, p1) = self.latest_rise?;
        if t1 <= t0 || p1 <= p0 {
            return None;
        }
        let span = (t1 - t0) as f64;
        Some(((p1 - p0 - 1.0).max(0.0) / span, (p1 - p0 + 1.0) / span))
    }

    /// Whether a read at `at_ms` reporting `progress` is what the current
    /// prediction says, allowing for the rounding of every figure involved;
    /// `None` while there is no prediction to check (no rate known yet).
    pub fn prediction_holds(&self, at_ms: u64, progress: f64) -> Option<bool> {
        let (slowest, fastest) = self.rate_bounds()?;
        let (t1, p1) = self.latest_rise?;
        let elapsed = at_ms.saturating_sub(t1) as f64;
        let low = p1 + slowest * elapsed;
        let high = p1 + 1.0 + fastest * elapsed;
        // Still running when even the slowest rate says done: the job is late.
        Some(low < 100.0 && progress + 1.0 >= low && progress <= high)
    }

    /// When the job should finish, from the progress rate between the first
    /// read that showed progress and the latest one.
    pub fn predicted_finish_ms(&self) -> Option<u64> {
        let (t0, p0) = self.first_moving?;
        let (t1, p1) = self.latest_rise?;
        if t1 <= t0 || p1 <= p0 {
            return None;
        }
        let rate = (p1 - p0) / (t1 - t0) as f64;
        // Progress is reported rounded down: the true value is about half a point higher.
        let remaining = (100.0 - (p1 + 0.5)).max(0.0) / rate;
        // A rate of next to nothing puts the finish beyond any clock: saturate.
        Some(t1.saturating_add(remaining as u64))
    }

    /// How long to wait, from `now_ms`, before the next read.
    pub fn next_delay_ms(&self, now_ms: u64, retry_after_ms: Option<u64>) -> u64 {
        let cap = self.cap_ms;
        let planned = match self.predicted_finish_ms() {
            _ if self.reads == 0 => FIRST_READ_MS,
            Some(finish) if finish.saturating_add(ARRIVAL_MARGIN_MS) > now_ms => {
                let remaining = finish.saturating_add(ARRIVAL_MARGIN_MS) - now_ms;
                // Far from the end the prediction still moves: keep the longest
                // gap, and share out the last stretch once it is close and sharp.
                if remaining > 2 * cap {
                    cap
                } else {
                    remaining / remaining.div_ceil(cap)
                }
            }
            // Late: the job is slower than its progress said. Back off gently.
            Some(_) => MIN_INTERVAL_MS << self.reads_past_prediction.min(6),
            None => cap,
        };
        planned
            .clamp(MIN_INTERVAL_MS, cap)
            .max(retry_after_ms.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `reads` to a fresh schedule.
    fn after(reads: &[(u64, f64)]) -> PollSchedule {
        let mut schedule = PollSchedule::new();
        for &(at, progress) in reads {
            schedule.observe(at, progress);
        }
        schedule
    }

    #[test]
    fn first_read_is_an_early_check_and_the_base_cap_follows() {
        let mut schedule = PollSchedule::new();
        assert_eq!(schedule.next_delay_ms(0, None), 5_000);
        schedule.observe(5_000, 0.0);
        assert_eq!(schedule.next_delay_ms(5_000, None), BASE_CAP_MS);
        schedule.observe(20_000, 0.0);
        assert_eq!(schedule.next_delay_ms(20_000, None), BASE_CAP_MS);
        assert_eq!(
            schedule.cap_ms(),
            BASE_CAP_MS,
            "nothing predicted, nothing grows"
        );
    }

    #[test]
    fn prediction_follows_the_progress_rate() {
        let schedule = after(&[(10_000, 10.0), (20_000, 20.0)]);
        // 1 point per second; 79.5 points left after 20.5 → about 99.5 s.
        assert_eq!(schedule.predicted_finish_ms(), Some(99_500));
        // 80 s to go: the longest gap while the end is far.
        assert_eq!(schedule.next_delay_ms(20_000, None), BASE_CAP_MS);
        // 20 s to go: two even reads, the last just after the predicted finish.
        assert_eq!(schedule.next_delay_ms(80_000, None), 10_000);
    }

    #[test]
    fn a_prediction_holds_within_the_rounding_of_its_reads() {
        // 1 point per second, give or take a point over the 10 s between reads.
        let schedule = after(&[(10_000, 10.0), (20_000, 20.0)]);
        assert_eq!(
            after(&[(10_000, 10.0)]).prediction_holds(30_000, 30.0),
            None
        );
        // 15 s on: 35 expected; the rate allows 33.5 to 37.5 (floors 33 to 37).
        for progress in [33.0, 35.0, 37.0] {
            assert_eq!(
                schedule.prediction_holds(35_000, progress),
                Some(true),
                "{progress}"
            );
        }
        for progress in [20.0, 32.0, 38.0, 60.0] {
            assert_eq!(
                schedule.prediction_holds(35_000, progress),
                Some(false),
                "{progress}"
            );
        }
        // Near the end a running job reports 99 at most: that holds, until even
        // the slowest rate (0.9 point per second) says it is done.
        assert_eq!(schedule.prediction_holds(105_000, 99.0), Some(true));
        assert_eq!(schedule.prediction_holds(110_000, 99.0), Some(false));
    }

    #[test]
    fn the_cap_doubles_while_predictions_hold_and_stops_at_60_s() {
        // A 400 s job read every 15 s: a quarter of a point per second, rounded down.
        let progress = |at: u64| (at / 4_000) as f64;
        let mut schedule = after(&[(10_000, progress(10_000)), (20_000, progress(20_000))]);
        let mut caps = Vec::new();
        for at in [35_000, 50_000, 65_000, 80_000] {
            schedule.observe(at, progress(at));
            caps.push(schedule.cap_ms());
        }
        assert_eq!(caps, [30_000, 60_000, 60_000, 60_000]);
        // Far from the end, the gap is the cap.
        assert_eq!(schedule.next_delay_ms(80_000, None), MAX_CAP_MS);
    }

    #[test]
    fn a_miss_sets_the_cap_back_at_once() {
        let mut schedule = after(&[
            (10_000, 5.0),
            (20_000, 10.0),
            (35_000, 17.0),
            (50_000, 25.0),
        ]);
        assert_eq!(schedule.cap_ms(), 60_000);
        // The job stalls: 60 s later it still reports 25 %.
        schedule.observe(110_000, 25.0);
        assert_eq!(schedule.cap_ms(), BASE_CAP_MS);
        assert!(schedule.next_delay_ms(110_000, None) <= BASE_CAP_MS);
        // It stays there while reads keep missing.
        schedule.observe(125_000, 25.0);
        assert_eq!(schedule.cap_ms(), BASE_CAP_MS);
        // A jump ahead of the prediction is a miss too.
        let mut jumpy = after(&[(10_000, 5.0), (20_000, 10.0), (35_000, 17.0)]);
        assert_eq!(jumpy.cap_ms(), 30_000);
        jumpy.observe(50_000, 60.0);
        assert_eq!(jumpy.cap_ms(), BASE_CAP_MS);
    }

    #[test]
    fn a_late_job_is_polled_with_growing_gaps() {
        let mut schedule = after(&[(10_000, 50.0), (20_000, 99.0)]);
        let finish = schedule.predicted_finish_ms().unwrap();
        let mut delays = Vec::new();
        let mut now = finish + ARRIVAL_MARGIN_MS;
        for _ in 0..6 {
            schedule.observe(now, 99.0);
            let delay = schedule.next_delay_ms(now, None);
            delays.push(delay);
            now += delay;
        }
        assert_eq!(delays, [2_000, 4_000, 8_000, 15_000, 15_000, 15_000]);
    }

    #[test]
    fn the_floor_and_retry_after_hold() {
        // Just before a sharp predicted finish the plan would be under 1 s.
        let schedule = after(&[(10_000, 10.0), (20_000, 20.0)]);
        assert_eq!(schedule.next_delay_ms(99_800, None), MIN_INTERVAL_MS);
        // Retry-After wins over the plan, even past the 60 s cap.
        assert_eq!(schedule.next_delay_ms(99_800, Some(2_500)), 2_500);
        assert_eq!(schedule.next_delay_ms(20_000, Some(90_000)), 90_000);
        // A shorter Retry-After does not pull a read forward.
        assert_eq!(PollSchedule::new().next_delay_ms(0, Some(1_000)), 5_000);
    }

    #[test]
    fn a_rate_of_next_to_nothing_neither_overflows_nor_passes_the_cap() {
        let schedule = after(&[(0, 1e-300), (1, 2e-300)]);
        assert_eq!(schedule.predicted_finish_ms(), Some(u64::MAX));
        assert_eq!(schedule.next_delay_ms(1, None), BASE_CAP_MS);
    }

    #[test]
    fn a_read_without_a_usable_figure_changes_nothing_but_the_count() {
        let schedule = after(&[(10_000, 5.0), (20_000, 10.0), (35_000, 17.0)]);
        let mut with_nan = schedule.clone();
        with_nan.observe(50_000, f64::NAN);
        assert_eq!(with_nan.cap_ms(), schedule.cap_ms());
        assert_eq!(
            with_nan.predicted_finish_ms(),
            schedule.predicted_finish_ms()
        );
    }
}
