//! Convergence after a partition: split {1} | {2, 3}, write distinct keys on both sides, heal,
//! and time how long the nodes take to hold identical data.
//!
//! Node 1 gets keys `p1:i`, node 2 keys `p2:i` (`i < keys`), pipelined, while the split stands
//! (both sides have declared the other down first, as SWIM does in a real partition). Node 3
//! receives node 2's keys by delta dissemination on its side. Then `CLUSTER HEAL` goes to every
//! node and a poller reads `DBSIZE` and `CLUSTER INFO` of every node every [`TICK`]: the data
//! is identical once every node holds all `2 × keys` keys (the keys are distinct and never
//! deleted, so equal counts mean equal key sets) and a sample of keys from both sides reads back
//! the written value on every node (`MGET`).
//!
//! **Divergence.** Both sides hold as many keys at the heal, so `|DBSIZE_a − DBSIZE_b|` would
//! read 0 although the sides differ in every key. The series counts keys held by exactly one
//! node of the pair instead. Node 1 holds every `p1` key and nodes 2 and 3 every `p2` key
//! throughout (the scenario waits for that before the heal), so with `x_k = DBSIZE_k − keys`
//! keys of the other side held by node `k`, the pairs with node 1 differ in exactly
//! `(keys − x_1) + (keys − x_k)` keys. Nodes 2 and 3 differ only in `p1` keys, in at least
//! `|x_2 − x_3|` and at most `min(x_2 + x_3, 2·keys − x_2 − x_3)`; every [`SAMPLE_EVERY`]th tick
//! the poller reads a fixed sample of [`PAIR_SAMPLE_KEYS`] `p1` keys on both and estimates the
//! difference from it (clamped to those bounds); on other ticks the pair has a point only when
//! the bounds pin it.
//!
//! Bytes exchanged are the increase of `ae_bytes_sent + delta_bytes_sent` summed over the nodes,
//! from just before the heal to the moment the data is identical, divided by the key copies
//! that had to move: node 1's keys to nodes 2 and 3, node 2's keys to node 1.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use super::client::{Conn, Info, Reply};
use super::nodes::Group;

/// Poll interval after the heal.
pub const TICK: Duration = Duration::from_millis(10);
/// Give up on convergence after this long.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(120);
/// Keys per pipelined batch of the loaders.
const LOAD_BATCH: usize = 1000;
/// Keys read back from each side to check values.
const CHECK_KEYS_PER_SIDE: usize = 500;
/// `p1` keys read on nodes 2 and 3 to estimate their difference.
const PAIR_SAMPLE_KEYS: usize = 2000;
/// Ticks between two such reads (100 ms).
const SAMPLE_EVERY: usize = 10;
/// Node pairs (0-based) of the divergence series.
pub const PAIRS: [(usize, usize); 3] = [(0, 1), (0, 2), (1, 2)];

/// Counters of one node's `CLUSTER INFO` that the scenario follows.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub ae_bytes_sent: u64,
    pub ae_bytes_received: u64,
    pub delta_bytes_sent: u64,
    pub delta_bytes_received: u64,
    pub delta_batches_sent: u64,
    pub ae_keys_repaired: u64,
    pub ae_rounds_started: u64,
    pub ae_rounds_completed: u64,
    pub ae_rounds_in_sync: u64,
}

impl Counters {
    pub fn of(info: &Info) -> Self {
        Counters {
            ae_bytes_sent: info.u64("ae_bytes_sent"),
            ae_bytes_received: info.u64("ae_bytes_received"),
            delta_bytes_sent: info.u64("delta_bytes_sent"),
            delta_bytes_received: info.u64("delta_bytes_received"),
            delta_batches_sent: info.u64("delta_batches_sent"),
            ae_keys_repaired: info.u64("ae_keys_repaired"),
            ae_rounds_started: info.u64("ae_rounds_started"),
            ae_rounds_completed: info.u64("ae_rounds_completed"),
            ae_rounds_in_sync: info.u64("ae_rounds_in_sync"),
        }
    }

    /// `self − before`, field by field.
    pub fn since(&self, before: &Counters) -> Counters {
        Counters {
            ae_bytes_sent: self.ae_bytes_sent - before.ae_bytes_sent,
            ae_bytes_received: self.ae_bytes_received - before.ae_bytes_received,
            delta_bytes_sent: self.delta_bytes_sent - before.delta_bytes_sent,
            delta_bytes_received: self.delta_bytes_received - before.delta_bytes_received,
            delta_batches_sent: self.delta_batches_sent - before.delta_batches_sent,
            ae_keys_repaired: self.ae_keys_repaired - before.ae_keys_repaired,
            ae_rounds_started: self.ae_rounds_started - before.ae_rounds_started,
            ae_rounds_completed: self.ae_rounds_completed - before.ae_rounds_completed,
            ae_rounds_in_sync: self.ae_rounds_in_sync - before.ae_rounds_in_sync,
        }
    }

    pub fn sum(all: &[Counters]) -> Counters {
        all.iter().fold(Counters::default(), |a, c| Counters {
            ae_bytes_sent: a.ae_bytes_sent + c.ae_bytes_sent,
            ae_bytes_received: a.ae_bytes_received + c.ae_bytes_received,
            delta_bytes_sent: a.delta_bytes_sent + c.delta_bytes_sent,
            delta_bytes_received: a.delta_bytes_received + c.delta_bytes_received,
            delta_batches_sent: a.delta_batches_sent + c.delta_batches_sent,
            ae_keys_repaired: a.ae_keys_repaired + c.ae_keys_repaired,
            ae_rounds_started: a.ae_rounds_started + c.ae_rounds_started,
            ae_rounds_completed: a.ae_rounds_completed + c.ae_rounds_completed,
            ae_rounds_in_sync: a.ae_rounds_in_sync + c.ae_rounds_in_sync,
        })
    }
}

/// One poll after the heal.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Seconds since the first `CLUSTER HEAL` was sent.
    pub t_s: f64,
    /// Keys held by exactly one node of each of [`PAIRS`], where known (see the module docs).
    pub differing: [Option<u64>; 3],
}

/// The divergence of each of [`PAIRS`] from the key counts (`base` keys held by all before the
/// split, `n` written per side) and, for nodes 2 and 3, a sample of `p1` keys: `(held by exactly
/// one, sample size)`.
fn differing(dbsize: &[u64], base: u64, n: u64, sample23: Option<(u64, u64)>) -> [Option<u64>; 3] {
    // Keys of the other side held by each node.
    let x: Vec<u64> = dbsize
        .iter()
        .map(|s| s.saturating_sub(base + n).min(n))
        .collect();
    let with_1 = |k: usize| Some((n - x[0]) + (n - x[k]));
    let low = x[1].abs_diff(x[2]);
    let high = (x[1] + x[2]).min(2 * n - x[1] - x[2]);
    let pair23 = if low == high {
        Some(low)
    } else {
        sample23.map(|(hits, size)| {
            ((hits as f64 * n as f64 / size.max(1) as f64).round() as u64).clamp(low, high)
        })
    };
    [with_1(1), with_1(2), pair23]
}

pub struct Heal {
    pub keys_per_side: usize,
    /// Writes per second of each side's loader during the split.
    pub load_ops_per_s: f64,
    /// From the `CLUSTER PARTITION`s to every node seeing the other side down.
    pub partition_detected: Duration,
    /// From the heal until every node sees every member alive again.
    pub rejoined: Option<Duration>,
    /// From the heal until the first anti-entropy session started (on any node).
    pub first_ae: Option<Duration>,
    /// From the heal until the data was identical on every node.
    pub identical: Option<Duration>,
    /// Per node, counters from the heal to identical.
    pub to_identical: Vec<Counters>,
    /// Per node, counters from the heal to [`QUIET`] after identical.
    pub to_quiet: Vec<Counters>,
    /// Per node, CPU seconds used from the heal to identical.
    pub cpu_s: Vec<f64>,
    /// Key copies that had to move.
    pub keys_to_repair: u64,
    pub samples: Vec<Sample>,
}

/// After identical, the counters are read once more this much later (sessions finishing).
pub const QUIET: Duration = Duration::from_secs(2);

fn key(side: u64, i: usize) -> String {
    format!("p{side}:{i:07}")
}

fn value(side: u64, i: usize) -> String {
    format!("value-{side}-{i:07}-xxxxxxxx")
}

/// Writes `p{side}:0..n` on `conn`, pipelined.
fn load(mut conn: Conn, side: u64, n: usize) -> Result<()> {
    let mut i = 0;
    while i < n {
        let end = (i + LOAD_BATCH).min(n);
        for j in i..end {
            conn.queue(&[b"SET", key(side, j).as_bytes(), value(side, j).as_bytes()]);
        }
        conn.flush()?;
        for _ in i..end {
            match conn.read()? {
                Reply::Status(s) if s == "OK" => {}
                other => bail!("SET on node {side} answered {other:?}"),
            }
        }
        i = end;
    }
    Ok(())
}

fn cpu(group: &Group) -> Result<Vec<f64>> {
    group
        .nodes
        .iter()
        .map(super::nodes::Node::cpu_seconds)
        .collect()
}

fn cluster_infos(conns: &mut [Conn]) -> Result<Vec<Info>> {
    conns.iter_mut().map(Conn::cluster_info).collect()
}

fn wait_until(
    conns: &mut [Conn],
    what: &str,
    timeout: Duration,
    mut done: impl FnMut(&mut [Conn]) -> Result<bool>,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        if done(conns)? {
            return Ok(start.elapsed());
        }
        ensure!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads the sample keys on every node; true if every node holds every written value.
fn values_identical(conns: &mut [Conn], keys: usize) -> Result<bool> {
    let step = (keys / CHECK_KEYS_PER_SIDE).max(1);
    let mut names = Vec::new();
    let mut want = Vec::new();
    for side in [1, 2] {
        for i in (0..keys).step_by(step) {
            names.push(key(side, i));
            want.push(Reply::Bulk(Some(value(side, i).into_bytes())));
        }
    }
    let mut args: Vec<&[u8]> = vec![b"MGET"];
    args.extend(names.iter().map(|k| k.as_bytes()));
    for conn in conns {
        match conn.cmd(&args)? {
            Reply::Array(Some(values)) if values == want => {}
            Reply::Array(Some(_)) => return Ok(false),
            other => bail!("MGET answered {other:?}"),
        }
    }
    Ok(true)
}

/// How many of the sample's `p1` keys exist on exactly one of `a` and `b`.
fn sample_differing(a: &mut Conn, b: &mut Conn, names: &[String]) -> Result<u64> {
    let mut args: Vec<&[u8]> = vec![b"MGET"];
    args.extend(names.iter().map(|k| k.as_bytes()));
    let mut held = Vec::with_capacity(2);
    for conn in [a, b] {
        match conn.cmd(&args)? {
            Reply::Array(Some(values)) => held.push(
                values
                    .into_iter()
                    .map(|v| v != Reply::Bulk(None))
                    .collect::<Vec<bool>>(),
            ),
            other => bail!("MGET answered {other:?}"),
        }
    }
    Ok(held[0].iter().zip(&held[1]).filter(|(x, y)| x != y).count() as u64)
}

/// Runs the partition, the writes, the heal and the convergence on a fresh 3-node cluster.
pub fn measure(group: &mut Group, keys: usize) -> Result<Heal> {
    ensure!(group.nodes.len() == 3, "the heal case needs 3 nodes");
    let mut conns = group.conns()?;
    let base = conns[0].dbsize()?;

    // Split {1} | {2, 3} and wait until both sides have declared the other down.
    conns[0]
        .cmd(&[b"CLUSTER", b"PARTITION", b"2", b"3"])?
        .ok("CLUSTER PARTITION")?;
    conns[1]
        .cmd(&[b"CLUSTER", b"PARTITION", b"1"])?
        .ok("CLUSTER PARTITION")?;
    conns[2]
        .cmd(&[b"CLUSTER", b"PARTITION", b"1"])?
        .ok("CLUSTER PARTITION")?;
    let partition_detected = wait_until(
        &mut conns,
        "the sides seeing each other down",
        Duration::from_secs(60),
        |c| {
            let infos = cluster_infos(c)?;
            Ok(infos[0].u64("members_alive") == 1
                && infos[1].u64("members_alive") == 2
                && infos[2].u64("members_alive") == 2)
        },
    )?;

    // Both sides write at once.
    let started = Instant::now();
    let (c1, c2) = (group.node(1).conn()?, group.node(2).conn()?);
    std::thread::scope(|s| -> Result<()> {
        let a = s.spawn(move || load(c1, 1, keys));
        let b = s.spawn(move || load(c2, 2, keys));
        a.join().map_err(|_| anyhow::anyhow!("loader panicked"))??;
        b.join().map_err(|_| anyhow::anyhow!("loader panicked"))??;
        Ok(())
    })?;
    let load_ops_per_s = 2.0 * keys as f64 / started.elapsed().as_secs_f64();
    let n = keys as u64;
    wait_until(
        &mut conns,
        "each side holding its writes",
        Duration::from_secs(120),
        |c| {
            let sizes: Vec<u64> = c.iter_mut().map(Conn::dbsize).collect::<Result<_>>()?;
            Ok(sizes == [base + n, base + n, base + n])
        },
    )?;
    // Let the last delta batches and heartbeats of side {2, 3} settle.
    std::thread::sleep(Duration::from_millis(500));
    group.check_alive()?;

    let before: Vec<Counters> = cluster_infos(&mut conns)?
        .iter()
        .map(Counters::of)
        .collect();
    let cpu_before = cpu(group)?;
    let healed_at = Instant::now();
    for conn in &mut conns {
        conn.cmd(&[b"CLUSTER", b"HEAL"])?.ok("CLUSTER HEAL")?;
    }

    let expected = base + 2 * n;
    let step = (keys / PAIR_SAMPLE_KEYS).max(1);
    let pair_sample: Vec<String> = (0..keys).step_by(step).map(|i| key(1, i)).collect();
    let mut samples = Vec::new();
    let (mut rejoined, mut first_ae, mut identical) = (None, None, None);
    let mut next_tick = healed_at;
    while identical.is_none() {
        let mut dbsize = Vec::with_capacity(3);
        let mut infos = Vec::with_capacity(3);
        for conn in &mut conns {
            dbsize.push(conn.dbsize()?);
            infos.push(conn.cluster_info()?);
        }
        let t = healed_at.elapsed();
        let sample23 = if samples.len() % SAMPLE_EVERY == 0 {
            let (a, b) = conns.split_at_mut(2);
            let hits = sample_differing(&mut a[1], &mut b[0], &pair_sample)?;
            Some((hits, pair_sample.len() as u64))
        } else {
            None
        };
        samples.push(Sample {
            t_s: t.as_secs_f64(),
            differing: differing(&dbsize, base, n, sample23),
        });
        if rejoined.is_none() && infos.iter().all(|i| i.u64("members_alive") == 3) {
            rejoined = Some(t);
        }
        if first_ae.is_none()
            && infos
                .iter()
                .zip(&before)
                .any(|(i, b)| i.u64("ae_rounds_started") > b.ae_rounds_started)
        {
            first_ae = Some(t);
        }
        if dbsize.iter().all(|s| *s == expected) && values_identical(&mut conns, keys)? {
            identical = Some(t);
            break;
        }
        if t > CONVERGE_TIMEOUT {
            group.check_alive()?;
            eprintln!("cluster: no convergence within {CONVERGE_TIMEOUT:?}: DBSIZE {dbsize:?}");
            break;
        }
        next_tick += TICK;
        if let Some(wait) = next_tick.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let cpu_s = cpu(group)?
        .iter()
        .zip(&cpu_before)
        .map(|(a, b)| a - b)
        .collect();
    let at_identical: Vec<Counters> = cluster_infos(&mut conns)?
        .iter()
        .map(Counters::of)
        .collect();
    std::thread::sleep(QUIET);
    let at_quiet: Vec<Counters> = cluster_infos(&mut conns)
        .context("reading counters after convergence")?
        .iter()
        .map(Counters::of)
        .collect();
    Ok(Heal {
        keys_per_side: keys,
        load_ops_per_s,
        partition_detected,
        rejoined,
        first_ae,
        identical,
        to_identical: at_identical
            .iter()
            .zip(&before)
            .map(|(a, b)| a.since(b))
            .collect(),
        to_quiet: at_quiet
            .iter()
            .zip(&before)
            .map(|(a, b)| a.since(b))
            .collect(),
        cpu_s,
        keys_to_repair: 3 * n,
        samples,
    })
}
