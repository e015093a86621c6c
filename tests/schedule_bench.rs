//! A fast smoke test of the schedule benchmark's logic
//! (`cargo run --release --example schedule_bench` prints the full table).
//! Virtual time only: no wall-clock assertion.

#[path = "../examples/schedule_bench/baseline.rs"]
mod baseline;
#[path = "../examples/schedule_bench/sim.rs"]
#[allow(dead_code)]
mod sim;

use sim::{
    cell, goals, markdown_table, measure, population, run_all, simulate_wait, Model, Policy,
    DEFAULT_JOBS, DEFAULT_SEED, TARGETS,
};

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
fn the_stall_model_stops_at_50_and_ends_at_twice_the_duration() {
    let job = population(1, 2)[0];
    let d = job.duration_ms;
    assert_eq!(Model::Stall.end_ms(&job), 2 * d);
    assert_eq!(
        Model::Stall.progress(&job, d / 4),
        Model::Linear.progress(&job, d / 4)
    );
    assert_eq!(Model::Stall.progress(&job, d * 3 / 4), 50.0);
    assert_eq!(Model::Stall.progress(&job, 2 * d - 1), 50.0);
}

/// Issue 8's targets, on the printed table's population (virtual time: a
/// fraction of a second even unoptimised).
#[test]
fn the_adaptive_schedule_meets_issue_8_targets() {
    let jobs = population(DEFAULT_JOBS, DEFAULT_SEED);
    for (model, max_reads, max_delay_ms) in TARGETS {
        let new = measure(model, Policy::Adaptive, &jobs);
        if let Some(reads) = max_reads {
            assert!(new.reads_mean <= reads, "{model:?}: {new:?}");
        }
        assert!(new.delay_mean_ms <= max_delay_ms, "{model:?}: {new:?}");
    }
    // The same check as the printed goals.
    let rows: Vec<_> = TARGETS
        .iter()
        .flat_map(|&(m, _, _)| {
            [Policy::Adaptive, Policy::Old].map(|p| (m, p, measure(m, p, &jobs)))
        })
        .collect();
    assert!(
        goals(&rows).iter().all(|(_, met, _)| *met),
        "{:?}",
        goals(&rows)
    );
}

#[test]
fn the_growing_cap_saves_reads_where_progress_keeps_to_its_rate_and_nowhere_costs_more() {
    let jobs = population(500, 13);
    for model in Model::ALL {
        let new = measure(model, Policy::Adaptive, &jobs);
        let old = measure(model, Policy::Old, &jobs);
        assert!(
            new.reads_mean <= old.reads_mean,
            "{model:?}: {new:?} vs old {old:?}"
        );
        // Detection may cost a little: never more than half a second on average.
        assert!(
            new.delay_mean_ms <= old.delay_mean_ms + 500.0,
            "{model:?}: {new:?} vs old {old:?}"
        );
        if matches!(model, Model::Linear | Model::QueuedThenLinear) {
            assert!(
                new.reads_mean * 1.4 < old.reads_mean,
                "{model:?}: {new:?} vs old {old:?}"
            );
        }
    }
}

#[test]
fn a_180_s_linear_job_needs_few_reads_and_is_seen_quickly() {
    let linear = |t: u64| (t as f64 / 1_800.0).floor().min(99.0);
    let new = simulate_wait(Policy::Adaptive, 180_000, linear);
    // 5 s, 20 s, 35 s (the cap grows to 30 s), 65 s (to 60 s), two even gaps to the end.
    assert!(new.reads <= 7, "{new:?}");
    assert!(new.detection_delay_ms <= 2_000, "{new:?}");
    assert_eq!(simulate_wait(Policy::Old, 180_000, linear).reads, 13);
    assert_eq!(
        simulate_wait(Policy::Fixed(2_000), 180_000, linear).reads,
        90
    );
}

#[test]
fn adaptive_beats_fixed_polls_on_a_small_population() {
    let jobs = population(200, 11);
    let rows = run_all(&jobs);
    for model in [Model::Linear, Model::QueuedThenLinear] {
        let adaptive = cell(&rows, model, Policy::Adaptive);
        let fixed_5 = cell(&rows, model, Policy::Fixed(5_000));
        assert!(
            adaptive.reads_mean * 4.0 < fixed_5.reads_mean
                && adaptive.delay_mean_ms < fixed_5.delay_mean_ms,
            "{model:?}: {adaptive:?} vs fixed 5 s {fixed_5:?}"
        );
    }
    // Every policy sees a job that fails at 5 s; the adaptive one with one read.
    let failure = cell(&rows, Model::FailAt5s, Policy::Adaptive);
    assert_eq!(failure.reads_mean, 1.0, "{failure:?}");
    // Without progress, or once progress stops, reads are at most 15 s apart.
    for model in [Model::NoProgress, Model::Stall] {
        let blind = cell(&rows, model, Policy::Adaptive);
        assert!(blind.delay_p95_ms <= 15_000, "{model:?}: {blind:?}");
    }
}

#[test]
fn fixed_polls_match_their_arithmetic() {
    let jobs = population(300, 3);
    for every in [500, 2_000, 5_000, 6_000] {
        let f = measure(Model::NoProgress, Policy::Fixed(every), &jobs);
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
    assert_eq!(
        lines.len(),
        2 + Model::ALL.len() * Policy::ALL.len(),
        "{table}"
    );
    let width = lines[0].chars().count();
    assert!(
        lines.iter().all(|l| l.chars().count() == width),
        "aligned:\n{table}"
    );
    assert!(lines[1].starts_with("| -"));
}
