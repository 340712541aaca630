//! The script of one run: warm up, random operations and faults, final heal, checks.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::world::{NetModel, World};
use super::{RestartKind, SimConfig, SimReport};
use crate::replication::{MemReplica, Mode};

/// Longest the cluster may take, once converged, for every node to report `normal`.
const NORMAL_LIMIT_MS: u64 = 60_000;
/// How often data directories are copied (for restores from an older copy).
const SNAPSHOT_EVERY_MS: u64 = 200;

/// Runs one simulation; `Err` says what check failed (the caller adds the seed).
pub fn run(config: &SimConfig) -> Result<SimReport, String> {
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let n = config.nodes.unwrap_or_else(|| {
        // Mostly small clusters, sometimes up to 10.
        if rng.random_bool(0.7) {
            rng.random_range(3..=5)
        } else {
            rng.random_range(6..=10)
        }
    });
    let net = NetModel {
        message_loss: config
            .message_loss
            .unwrap_or_else(|| rng.random_range(0.0..0.05)),
        datagram_loss: rng.random_range(0.0..0.1),
        duplicate: rng.random_range(0.0..0.03),
        delay_min_ms: 1,
        delay_max_ms: rng.random_range(2..25),
        detect_ms: rng.random_range(5..300),
    };
    let keys = rng.random_range(4..40);
    let keys = config.keys.unwrap_or(keys);
    let world_rng = SmallRng::seed_from_u64(rng.random());
    let mut w = World::new(config, n, world_rng, net);
    let mut report = SimReport {
        seed: config.seed,
        nodes: n,
        ..SimReport::default()
    };

    // Let membership find everyone before clients start.
    w.run_until(if config.swim { 2_000 } else { 100 });

    let mut restarts: Vec<(u64, usize, RestartKind)> = Vec::new();
    let mut last_snapshot = 0;
    let mean_gap_ms = rng.random_range(2..30);
    for op in 0..config.ops {
        for c in config
            .scripted_crashes
            .iter()
            .filter(|c| c.after_ops == op && c.node < n)
        {
            if w.nodes[c.node].up {
                w.crash(c.node);
                trace(
                    &w,
                    format_args!(
                        "scripted crash of node {} ({:?})",
                        w.nodes[c.node].id, c.kind
                    ),
                );
                report.crashes += 1;
                restarts.push((w.now + c.down_ms, c.node, c.kind));
            }
        }
        let next = w.now + rng.random_range(0..=2 * mean_gap_ms);
        w.run_until(next);
        do_restarts(&mut w, &mut restarts, &mut report, false);
        if w.now >= last_snapshot + SNAPSHOT_EVERY_MS {
            last_snapshot = w.now;
            snapshot(&mut w);
        }
        if rng.random_bool(config.fault_rate) {
            fault(&mut w, config, &mut rng, &mut restarts, &mut report);
        }
        client_op(&mut w, config, &mut rng, keys)?;
        check_freshness(&mut w)?;
    }

    // Final heal: reconnect everyone, restart whoever is down, stop the clients.
    w.set_groups(vec![0; n]);
    do_restarts(&mut w, &mut restarts, &mut report, true);
    let healed_at = w.now;
    converge(&mut w, config.converge_limit_ms)?;
    report.converge_ms = w.now - healed_at;
    w.oracle.check_final(&w.nodes)?;

    let converged_at = w.now;
    while !w.nodes.iter().all(|n| n.replicator.mode() == Mode::Normal) {
        if w.now - converged_at > NORMAL_LIMIT_MS {
            let modes: Vec<_> = w
                .nodes
                .iter()
                .map(|n| (n.id, n.replicator.mode(), n.replicator.peers()))
                .collect();
            return Err(format!(
                "nodes did not all return to normal mode: {modes:?}"
            ));
        }
        w.run_until(w.now + 100);
        check_freshness(&mut w)?;
    }
    // Give tombstone GC time to finish everywhere (replicas differ while some nodes have dropped
    // a tombstone and others not yet), then check again: a resurrected key would show here.
    w.run_until(w.now + 3 * config.replication.tombstone_gc_grace_ms);
    converge(&mut w, config.converge_limit_ms)?;
    w.oracle.check_final(&w.nodes)?;

    report.writes = w.oracle.writes.len();
    report.lost_writes = w.oracle.lost();
    report.delivered = w.tally.delivered;
    report.dropped = w.tally.dropped;
    report.virtual_ms = w.now;
    report.freshness_checks = w.oracle.freshness_checks;
    for node in &w.nodes {
        report.keys_repaired += node.replicator.metrics().ae_keys_repaired;
        report.tombstones_dropped += node.replicator.metrics().tombstones_dropped;
    }
    Ok(report)
}

/// Runs until every replica is identical at two checks in a row.
fn converge(w: &mut World, limit_ms: u64) -> Result<(), String> {
    let start = w.now;
    let mut equal_checks = 0;
    while equal_checks < 2 {
        if w.now - start > limit_ms {
            let why = w.oracle.check_final(&w.nodes).err().unwrap_or_default();
            let states: Vec<String> = w
                .nodes
                .iter()
                .map(|n| {
                    let m = n.replicator.metrics();
                    format!(
                        "node {} mode {:?} membership {:?} peers {:?} ae started {} completed {} failed {} dropped tombstones {}",
                        n.id,
                        n.replicator.mode(),
                        n.membership.as_ref().map(|m| m.members().map(|i| (i.node_id, i.state)).collect::<Vec<_>>()),
                        n.replicator.peers(),
                        m.ae_rounds_started,
                        m.ae_rounds_completed,
                        m.ae_rounds_failed,
                        m.tombstones_dropped
                    )
                })
                .collect();
            return Err(format!(
                "replicas did not converge within {limit_ms} ms: {why}\n{}",
                states.join("\n")
            ));
        }
        w.run_until(w.now + 100);
        check_freshness(w)?;
        let first = w.nodes[0].replica.mem.snapshot();
        let equal = w.nodes.iter().all(|n| n.replica.mem.snapshot() == first);
        equal_checks = if equal { equal_checks + 1 } else { 0 };
    }
    Ok(())
}

fn check_freshness(w: &mut World) -> Result<(), String> {
    for i in 0..w.nodes.len() {
        if w.nodes[i].up {
            w.oracle.check_freshness(&w.nodes, i)?;
        }
    }
    Ok(())
}

fn snapshot(w: &mut World) {
    let now = w.now;
    for node in w.nodes.iter_mut().filter(|n| n.up) {
        node.snapshots.push((now, node.replica.mem.snapshot()));
        if node.snapshots.len() > 4 {
            node.snapshots.remove(0);
        }
    }
}

fn trace(w: &World, what: std::fmt::Arguments<'_>) {
    if std::env::var_os("CRDTKV_SIM_TRACE").is_some() {
        eprintln!("[{:>7} ms] {what}", w.now);
    }
}

fn fault(
    w: &mut World,
    config: &SimConfig,
    rng: &mut SmallRng,
    restarts: &mut Vec<(u64, usize, RestartKind)>,
    report: &mut SimReport,
) {
    let n = w.nodes.len();
    let partitioned = w.group.iter().any(|&g| g != 0);
    let roll = rng.random_range(0..3);
    if roll == 0 && config.crashes && restarts.is_empty() {
        let i = w.pick(n);
        let how = match rng.random_range(0..3) {
            0 => RestartKind::Intact,
            1 => RestartKind::Empty,
            _ => RestartKind::OldCopy,
        };
        w.crash(i);
        trace(
            w,
            format_args!("crash node {} (restart {how:?})", w.nodes[i].id),
        );
        report.crashes += 1;
        restarts.push((w.now + rng.random_range(100..1_500), i, how));
    } else if partitioned {
        w.set_groups(vec![0; n]);
        trace(w, format_args!("heal"));
    } else if config.partitions {
        let k = rng.random_range(2..=3);
        let groups: Vec<u32> = (0..n).map(|_| rng.random_range(0..k)).collect();
        trace(w, format_args!("partition {groups:?}"));
        w.set_groups(groups);
        report.partitions += 1;
    }
}

fn do_restarts(
    w: &mut World,
    restarts: &mut Vec<(u64, usize, RestartKind)>,
    report: &mut SimReport,
    all: bool,
) {
    let now = w.now;
    let grace = w
        .nodes
        .first()
        .map_or(0, |n| n.replicator.config().tombstone_gc_grace_ms);
    let bits = w
        .nodes
        .first()
        .map_or(0, |n| n.replicator.config().leaf_bits);
    let due: Vec<(u64, usize, RestartKind)> = restarts
        .iter()
        .copied()
        .filter(|(t, _, _)| all || *t <= now)
        .collect();
    restarts.retain(|(t, _, _)| !(all || *t <= now));
    for (_, i, how) in due {
        let keyspace = match how {
            RestartKind::Intact => None,
            RestartKind::Empty => {
                report.restarts_empty += 1;
                Some(MemReplica::new(bits))
            }
            RestartKind::OldCopy => {
                // A copy younger than half the GC grace period: restoring an older one may bring
                // back keys whose tombstones were collected (a documented limit).
                let copy = w.nodes[i]
                    .snapshots
                    .iter()
                    .find(|(at, _)| now.saturating_sub(*at) < grace / 2)
                    .map(|(_, s)| s.clone());
                copy.map(|s| {
                    report.restarts_old += 1;
                    MemReplica::restore(bits, s)
                })
            }
        };
        trace(
            w,
            format_args!(
                "restart node {} {how:?} (restored: {})",
                w.nodes[i].id,
                keyspace.is_some()
            ),
        );
        w.restart(i, keyspace);
    }
}

fn client_op(
    w: &mut World,
    config: &SimConfig,
    rng: &mut SmallRng,
    keys: u32,
) -> Result<(), String> {
    // A node that came back without its data writes only once it has synced with every other
    // node (see `Replicator::caught_up`).
    let ids: Vec<_> = w.nodes.iter().map(|n| n.id).collect();
    for n in w.nodes.iter_mut().filter(|n| n.gated) {
        n.gated = !ids
            .iter()
            .all(|&id| id == n.id || n.replicator.has_synced_with(id));
    }
    let up: Vec<usize> = (0..w.nodes.len())
        .filter(|&i| w.nodes[i].up && !w.nodes[i].gated)
        .collect();
    if up.is_empty() {
        return Ok(());
    }
    let i = up[rng.random_range(0..up.len())];
    let key = format!("k{}", rng.random_range(0..keys)).into_bytes();
    let kind = rng.random_range(0..100);
    let by: i64 = rng.random_range(-5..=5);
    let member = format!("m{}", rng.random_range(0..6)).into_bytes();
    let value = format!("v{}", rng.random_range(0..1000)).into_bytes();
    let index: u64 = rng.random_range(0..6);
    let text = ["a", "é", "xy", "€😀"][rng.random_range(0..4)];
    let collected = || w.nodes.iter().any(|n| n.replica.dropped.contains_key(&key));
    if !config.rewrite_collected_keys && collected() {
        return Ok(());
    }
    let now = w.now;
    let node = &mut w.nodes[i];
    let ts = node.clock(now);
    let delta = node.replica.mem.write(&key, |v| match kind {
        0..17 => Some(v.set_register(ts, &value)),
        17..34 => v.incr_by(ts, by).ok().map(|(d, _)| d),
        34..42 => v.gcounter_incr_by(ts, by.abs()).ok().map(|(d, _)| d),
        42..58 => v.sadd(ts, &[&member]).ok().map(|(d, _)| d),
        58..70 => v.srem(&[&member]).ok().and_then(|(d, _)| d),
        70..80 => v.text_insert(ts, index, text).ok().flatten(),
        80..86 => v.text_delete(ts, index, 2).ok().and_then(|(d, _)| d),
        _ => v.delete(),
    });
    if let Some(delta) = delta {
        let id = node.id;
        trace(
            w,
            format_args!(
                "write on {id} {:?} at {ts:?}",
                String::from_utf8_lossy(&key)
            ),
        );
        let additive = match kind {
            0..17 | 42..58 | 70..80 => Some(0),
            17..42 if by != 0 => Some(by),
            _ => None,
        };
        w.oracle
            .record(id, ts, key.clone(), delta.clone(), additive)?;
        let node = &mut w.nodes[i];
        node.replicator.submit_delta(key, delta, ts, now);
        w.pump(i);
    }
    Ok(())
}
