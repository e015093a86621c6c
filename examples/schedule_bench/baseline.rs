//! BASELINE ONLY, not the library's schedule: a copy of the poll schedule as it
//! was before issue 8 (`src/core/schedule.rs` at commit d7ec065), whose gap
//! never exceeded a fixed 15 s. The benchmark runs it next to the current
//! schedule so that every run prints old and new figures measured together.

/// No two reads closer together than this.
const MIN_INTERVAL_MS: u64 = 1_000;
/// The old fixed cap: no two reads further apart than this.
pub const MAX_INTERVAL_MS: u64 = 15_000;
/// The one early check while nothing is known.
const FIRST_READ_MS: u64 = 5_000;
/// Aim this long after the predicted finish.
const ARRIVAL_MARGIN_MS: u64 = 500;

/// What the old schedule learnt from the reads so far.
#[derive(Clone, Debug, Default)]
pub struct OldSchedule {
    reads: u32,
    first_moving: Option<(u64, f64)>,
    latest_rise: Option<(u64, f64)>,
    reads_past_prediction: u32,
}

impl OldSchedule {
    /// Records a status read made at `at_ms` that found the job still running.
    pub fn observe(&mut self, at_ms: u64, progress: f64) {
        if self
            .predicted_finish_ms()
            .is_some_and(|finish| at_ms >= finish)
        {
            self.reads_past_prediction += 1;
        }
        self.reads += 1;
        if progress > 0.0 && self.first_moving.is_none() {
            self.first_moving = Some((at_ms, progress));
        }
        if self.latest_rise.is_none_or(|(_, p)| progress > p) {
            self.latest_rise = Some((at_ms, progress));
        }
    }

    fn predicted_finish_ms(&self) -> Option<u64> {
        let (t0, p0) = self.first_moving?;
        let (t1, p1) = self.latest_rise?;
        if t1 <= t0 || p1 <= p0 {
            return None;
        }
        let rate = (p1 - p0) / (t1 - t0) as f64;
        let remaining = (100.0 - (p1 + 0.5)).max(0.0) / rate;
        Some(t1 + remaining as u64)
    }

    /// How long to wait, from `now_ms`, before the next read.
    pub fn next_delay_ms(&self, now_ms: u64) -> u64 {
        let planned = match self.predicted_finish_ms() {
            _ if self.reads == 0 => FIRST_READ_MS,
            Some(finish) if finish + ARRIVAL_MARGIN_MS > now_ms => {
                let remaining = finish + ARRIVAL_MARGIN_MS - now_ms;
                if remaining > 2 * MAX_INTERVAL_MS {
                    MAX_INTERVAL_MS
                } else {
                    remaining / remaining.div_ceil(MAX_INTERVAL_MS)
                }
            }
            Some(_) => MIN_INTERVAL_MS << self.reads_past_prediction.min(4),
            None => MAX_INTERVAL_MS,
        };
        planned.clamp(MIN_INTERVAL_MS, MAX_INTERVAL_MS)
    }
}
