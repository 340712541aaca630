//! Deterministic seeded simulation of whole clusters (see `gossip::sim` for what runs and what
//! is checked).
//!
//! * `cargo test -p gossip --test simulation` runs the default tier (hundreds of seeds).
//! * `CRDTKV_SIM_SEEDS=5000` runs that many seeds per randomized scenario instead.
//! * `CRDTKV_SIM_SEED=<n>` replays exactly one seed (printed by every failure);
//!   `CRDTKV_SIM_TRACE=1` prints its faults and writes.

use std::time::Instant;

use gossip::sim::{self, RestartKind, Sabotage, ScriptedCrash, SimConfig, SimReport};

/// The seeds to run: one replayed seed, a count from the environment, or `default` seeds from
/// `base`.
fn seeds(base: u64, default: u64) -> Vec<u64> {
    if let Ok(seed) = std::env::var("CRDTKV_SIM_SEED") {
        return vec![seed.parse().expect("CRDTKV_SIM_SEED is a number")];
    }
    let count = std::env::var("CRDTKV_SIM_SEEDS")
        .map(|n| n.parse().expect("CRDTKV_SIM_SEEDS is a number"))
        .unwrap_or(default);
    (base..base + count).collect()
}

/// Runs every seed; the first failure panics with its seed and the command that replays it.
fn run_all(name: &str, seeds: Vec<u64>, configure: impl Fn(u64) -> SimConfig) -> Vec<SimReport> {
    let start = Instant::now();
    let mut reports = Vec::new();
    for seed in seeds {
        match sim::run(&configure(seed)) {
            Ok(report) => reports.push(report),
            Err(e) => panic!(
                "{name}: seed {seed} failed: {e}\n\
                 replay with: CRDTKV_SIM_SEED={seed} cargo test -p gossip --test simulation {name}"
            ),
        }
    }
    let sum = |f: fn(&SimReport) -> u64| reports.iter().map(f).sum::<u64>();
    eprintln!(
        "{name}: {} seeds in {:.1}s: {} writes ({} lost with a node's data), {} crashes \
         ({} restarted empty, {} from an old copy), {} partitions, {} keys repaired by \
         anti-entropy, {} tombstones collected, {} freshness claims checked, slowest \
         convergence after the final heal {} virtual ms",
        reports.len(),
        start.elapsed().as_secs_f64(),
        sum(|r| r.writes as u64),
        sum(|r| r.lost_writes as u64),
        sum(|r| r.crashes as u64),
        sum(|r| r.restarts_empty as u64),
        sum(|r| r.restarts_old as u64),
        sum(|r| r.partitions as u64),
        sum(|r| r.keys_repaired),
        sum(|r| r.tombstones_dropped),
        sum(|r| r.freshness_checks),
        reports.iter().map(|r| r.converge_ms).max().unwrap_or(0),
    );
    reports
}

#[test]
fn clusters_with_swim_converge_under_faults() {
    let reports = run_all(
        "clusters_with_swim_converge_under_faults",
        seeds(0, 200),
        SimConfig::new,
    );
    // The scenario exercised what it claims to (over the whole tier, not per seed).
    if reports.len() >= 50 {
        assert!(reports.iter().any(|r| r.nodes >= 8));
        assert!(reports.iter().map(|r| r.partitions).sum::<usize>() > 50);
        assert!(reports.iter().map(|r| r.restarts_empty).sum::<usize>() > 5);
        assert!(reports.iter().map(|r| r.restarts_old).sum::<usize>() > 5);
        assert!(reports.iter().map(|r| r.tombstones_dropped).sum::<u64>() > 100);
    }
}

#[test]
fn clusters_with_modelled_membership_converge_under_faults() {
    run_all(
        "clusters_with_modelled_membership_converge_under_faults",
        seeds(1_000_000, 220),
        |seed| SimConfig {
            swim: false,
            ..SimConfig::new(seed)
        },
    );
}

#[test]
fn a_node_restarted_empty_is_repaired_by_anti_entropy() {
    let reports = run_all(
        "a_node_restarted_empty_is_repaired_by_anti_entropy",
        seeds(2_000_000, 8),
        |seed| SimConfig {
            ops: 200,
            crashes: false,
            scripted_crashes: vec![ScriptedCrash {
                after_ops: 120,
                node: 0,
                kind: RestartKind::Empty,
                down_ms: 300,
            }],
            ..SimConfig::new(seed)
        },
    );
    assert!(reports.iter().all(|r| r.restarts_empty == 1));
    assert!(reports.iter().all(|r| r.keys_repaired > 0));
}

#[test]
fn a_node_restored_from_an_old_copy_is_repaired_by_anti_entropy() {
    let reports = run_all(
        "a_node_restored_from_an_old_copy_is_repaired_by_anti_entropy",
        seeds(3_000_000, 8),
        |seed| SimConfig {
            ops: 200,
            crashes: false,
            scripted_crashes: vec![ScriptedCrash {
                after_ops: 150,
                node: 1,
                kind: RestartKind::OldCopy,
                down_ms: 100,
            }],
            ..SimConfig::new(seed)
        },
    );
    assert!(reports.iter().all(|r| r.restarts_old == 1), "{reports:?}");
}

#[test]
fn a_seed_replays_exactly() {
    let seed = seeds(4_000_000, 1)[0];
    let a = sim::run(&SimConfig::new(seed)).unwrap();
    let b = sim::run(&SimConfig::new(seed)).unwrap();
    assert_eq!(a, b, "seed {seed}");
}

/// The simulation can fail: without anti-entropy, lost deltas are never repaired and the checks
/// say so.
#[test]
fn disabling_anti_entropy_is_detected() {
    for seed in seeds(5_000_000, 3) {
        let config = SimConfig {
            sabotage: Some(Sabotage::NoAntiEntropy),
            message_loss: Some(0.2),
            crashes: false,
            converge_limit_ms: 5_000,
            ..SimConfig::new(seed)
        };
        let err = sim::run(&config).expect_err("divergence must be detected");
        assert!(
            err.contains("did not converge") || err.contains("differ"),
            "seed {seed}: {err}"
        );
    }
}

/// The freshness check can fail: heartbeats that overstate the watermark are caught.
#[test]
fn overstated_freshness_is_detected() {
    let mut caught = 0;
    for seed in seeds(6_000_000, 3) {
        let config = SimConfig {
            sabotage: Some(Sabotage::InflateHeartbeats),
            ..SimConfig::new(seed)
        };
        if let Err(e) = sim::run(&config) {
            assert!(e.contains("claims synced_at"), "seed {seed}: {e}");
            caught += 1;
        }
    }
    assert!(caught > 0, "no overstated watermark was caught");
}

/// Keys deleted, collected, and written again later. The writes must survive: the oracle
/// checks that no write is cancelled by earlier ones (it would be if `crdt` restarted a node's
/// dots or counter entries at 1 on a re-created key).
#[test]
fn keys_written_again_after_tombstone_gc() {
    run_all(
        "keys_written_again_after_tombstone_gc",
        seeds(7_000_000, 10),
        |seed| rewrites(seed, true),
    );
}

/// The same workload with GC off.
#[test]
fn keys_written_again_without_tombstone_gc() {
    run_all(
        "keys_written_again_without_tombstone_gc",
        seeds(7_000_000, 10),
        |seed| rewrites(seed, false),
    );
}

fn rewrites(seed: u64, gc: bool) -> SimConfig {
    let mut config = SimConfig {
        ops: 600,
        keys: Some(60),
        fault_rate: 0.0,
        ..SimConfig::new(seed)
    };
    config.replication.tombstone_gc = gc;
    config.rewrite_collected_keys = true;
    config
}
