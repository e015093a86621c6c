//! A fast smoke test of the schedule benchmark's logic
//! (`cargo run --release --example schedule_bench` prints the full table).
//! Virtual time only: no wall-clock assertion.

#[path = "../examples/schedule_bench/sim.rs"]
#[allow(dead_code)]
mod sim;

use sim::{cell, markdown_table, population, run_all, Model, Policy};

#[test]
fn the_population_is_seeded_and_lognormal_around_180_s() {
    let a = population(2_000, 7);
    let b = population(2_000, 7);
    assert_eq!(
        a.iter().map(|j| j.duration_ms).collect::<Vec<_>>(),
        b.iter().map(|j| j.duration_ms).collect::<Vec<_>>(),
        "same seed, same population"
    );
    let mut durations: Vec<u64> = a.iter().map(|j| j.duration_ms).collect();
    durations.sort_unstable();
    let median = durations[durations.len() / 2];
    assert!((165_000..=195_000).contains(&median), "median {median}");
    for job in &a {
        assert!(job.phase_ms < 1_000);
        assert!(job.queued_ms >= job.duration_ms / 10 && job.queued_ms <= job.duration_ms * 2 / 5);
    }
}

#[test]
fn adaptive_beats_fixed_polls_on_a_small_population() {
    let jobs = population(200, 11);
    let rows = run_all(&jobs);
    for model in [Model::Linear, Model::QueuedThenLinear] {
        let adaptive = cell(&rows, model, Policy::Adaptive);
        let fixed_2 = cell(&rows, model, Policy::Fixed(2_000));
        let fixed_5 = cell(&rows, model, Policy::Fixed(5_000));
        assert!(
            adaptive.reads_mean * 4.0 < fixed_2.reads_mean,
            "{model:?}: {adaptive:?} vs fixed 2 s {fixed_2:?}"
        );
        assert!(
            adaptive.reads_mean <= fixed_5.reads_mean
                && adaptive.delay_mean_ms <= fixed_5.delay_mean_ms,
            "{model:?}: {adaptive:?} vs fixed 5 s {fixed_5:?}"
        );
        assert!(adaptive.delay_mean_ms <= 2_000.0, "{model:?}: {adaptive:?}");
    }
    // Every policy sees a job that fails at 5 s; the adaptive one with one read.
    let failure = cell(&rows, Model::FailAt5s, Policy::Adaptive);
    assert_eq!(failure.reads_mean, 1.0, "{failure:?}");
    // Without progress the schedule trades delay for reads: fewer reads than fixed 5 s,
    // and the delay stays under the 15 s bound.
    let blind = cell(&rows, Model::NoProgress, Policy::Adaptive);
    assert!(blind.reads_mean < cell(&rows, Model::NoProgress, Policy::Fixed(5_000)).reads_mean);
    assert!(blind.delay_p95_ms <= 15_000, "{blind:?}");
}

#[test]
fn fixed_polls_match_their_arithmetic() {
    let jobs = population(300, 3);
    for every in [500, 2_000, 5_000, 6_000] {
        let f = sim::measure(Model::NoProgress, Policy::Fixed(every), &jobs);
        // A fixed poll sees the end on average half an interval late.
        let half = every as f64 / 2.0;
        assert!(
            (f.delay_mean_ms - half).abs() < half * 0.2,
            "fixed {every}: {f:?}"
        );
        assert!(f.delay_p95_ms < every);
    }
}

#[test]
fn the_table_has_a_row_per_model_and_policy() {
    let rows = run_all(&population(50, 1));
    let table = markdown_table(&rows);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2 + 4 * 5, "{table}");
    let width = lines[0].chars().count();
    assert!(
        lines.iter().all(|l| l.chars().count() == width),
        "aligned:\n{table}"
    );
    assert!(lines[1].starts_with("| -"));
}
