//! The poll-schedule benchmark, in virtual time (issue 5, part 1.1; issue 8, item 6):
//! `cargo run --release --example schedule_bench [-- JOBS [SEED]]`.
//!
//! Prints a markdown table (docs/perf-notes.md keeps each run's, BENCHMARKS.md
//! the current summary) of status reads per job and detection delay for
//! sora-edge's adaptive schedule, the schedule it replaced (the baseline,
//! measured in the same run) and four fixed intervals, under five progress
//! models, then issue 8's targets.

mod baseline;
mod sim;

use sim::{
    goals, markdown_table, population, run_all, DEFAULT_JOBS, DEFAULT_SEED, MEDIAN_MS, SIGMA,
};

fn main() {
    let mut args = std::env::args().skip(1);
    let jobs: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(DEFAULT_JOBS);
    let seed: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let population = population(jobs, seed);
    let rows = run_all(&population);
    println!(
        "Poll schedule in virtual time: {jobs} jobs, lognormal durations (median {:.0} s, sigma {SIGMA}), \
         queued 10-40 % of the duration in the queued model, stalled from 50 % to twice the duration in the stall model, each wait starting 0-1 s after submission; seed {seed}.\n",
        MEDIAN_MS / 1000.0
    );
    print!("{}", markdown_table(&rows));
    println!();
    for (goal, met, detail) in goals(&rows) {
        println!("- [{}] {goal}: {detail}", if met { "x" } else { " " });
    }
}
