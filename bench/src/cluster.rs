//! `cluster`: replication of a local 3-node crdtkv cluster — lag, write throughput against a
//! standalone node, and convergence after a partition.
//!
//! The scenario builds nothing itself. It runs the `crdtkv` binary found next to the bench
//! binary (`cargo build --release -p node` first; `--crdtkv PATH` overrides) and the system's
//! `redis-benchmark`. Each cluster gets a fresh temporary directory, TLS material made by
//! `crdtkv cert ca` / `crdtkv cert node`, free loopback ports, and configs like
//! `config/cluster/*.toml` with `fsync = "everysec"` and log level `warn` ([`nodes`]); every
//! process is killed when the scenario ends, fails or panics. Cases, one JSON line each:
//!
//! * `replication_lag` ([`lag`]): `SET` on node 1, then `GET` on nodes 2 and 3 right after the
//!   acknowledgement until the value shows; p50/p99 over all samples (both readers) in ms with
//!   microsecond resolution. Target p99 ≤ 20 ms, goal 5 ms. Writes follow each other at once;
//!   `replication_lag_paced` repeats the measurement with 5 ms between writes, so that every
//!   write finds the delta stream quiet (the difference is the batching delay).
//! * `write_throughput_set` ([`throughput`]): `redis-benchmark -t set -c 50 -n 200000 -r 100000
//!   -P 16` against node 1 of the cluster (ours) and against a standalone node without
//!   `[cluster]` (reference), alternating over rounds, medians; ratio = cluster / standalone.
//!   After each cluster round the scenario writes a sentinel key on node 1 and waits until
//!   both peers show it and hold as many keys (`replication_drain_ms`: how far replication
//!   trails the load). CPU time per 1000 writes of every node (from `/proc`) shows where the
//!   cycles go; on a machine with fewer cores than processes the peers' work competes with
//!   node 1's.
//! * `partition_heal` ([`heal`]): on a fresh cluster, {1} | {2,3}, 100,000 distinct keys
//!   written on node 1 and 100,000 on node 2, heal, time until every node holds identical
//!   data (target ≤ 5 s, goal 1 s), bytes of anti-entropy and deltas per repaired key copy,
//!   and the divergence chart ([`plot`], `bench/out/cluster_divergence.png`).
//!
//! Every line carries `loadavg_1m` (which includes the scenario's own processes), as a hint
//! that a shared machine was busy. `--quick` shrinks everything for a smoke run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use crate::procs::{Load, crdtkv_path, median, redis_benchmark};
use crate::report;

mod client;
mod heal;
mod lag;
mod nodes;
mod plot;
mod throughput;

use heal::Counters;

/// Options of the `cluster` scenario.
#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    /// The crdtkv binary (default: `crdtkv` next to this bench binary, built by
    /// `cargo build --release -p node`).
    #[arg(long)]
    pub crdtkv: Option<PathBuf>,
    /// The redis-benchmark binary.
    #[arg(long, default_value = "redis-benchmark")]
    pub redis_benchmark: PathBuf,
    /// A fast smoke run: 300 lag samples, 20,000 requests, 10,000 keys per side.
    #[arg(long)]
    pub quick: bool,
    /// Only these cases (comma-separated: lag, throughput, heal).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Writes sampled for the lag (default 3,000; 300 with `--quick`); each gives one sample
    /// per reading node.
    #[arg(long)]
    pub lag_writes: Option<usize>,
    /// Pause between lag writes, in microseconds (case `replication_lag`).
    #[arg(long, default_value_t = 0)]
    pub lag_pause_us: u64,
    /// Pause between the writes of the second lag case, `replication_lag_paced`, in
    /// microseconds: longer than `delta_batch_delay_ms`, so every write finds the delta stream
    /// quiet and goes out at once. 0 skips the case.
    #[arg(long, default_value_t = 5000)]
    pub lag_paced_us: u64,
    /// redis-benchmark requests per run (default 200,000; 20,000 with `--quick`).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Throughput rounds per side, alternating; medians reported (default 3; 1 with `--quick`).
    #[arg(long)]
    pub rounds: Option<usize>,
    /// redis-benchmark clients (`-c`).
    #[arg(long, default_value_t = 50)]
    pub clients: u32,
    /// redis-benchmark pipeline depth (`-P`).
    #[arg(long, default_value_t = 16)]
    pub pipeline: u32,
    /// redis-benchmark random key space (`-r`).
    #[arg(long, default_value_t = 100_000)]
    pub keyspace: u64,
    /// Distinct keys written on each side of the partition (default 100,000; 10,000 with
    /// `--quick`).
    #[arg(long)]
    pub keys: Option<usize>,
    /// Extra TOML appended to every cluster node's config, below `[cluster]` (for example
    /// "[cluster.replication]\nae_period_ms = 500").
    #[arg(long, default_value = "")]
    pub tuning: String,
    /// The divergence chart (default: bench/out/cluster_divergence.png).
    #[arg(long)]
    pub png: Option<PathBuf>,
    /// Keep the nodes' directories (configs, logs, data) and print where they are.
    #[arg(long)]
    pub keep: bool,
}

impl ClusterArgs {
    fn runs(&self, case: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|c| c == case)
    }
}

/// Microseconds as milliseconds with three decimals.
fn ms_of_us(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The 1-minute load average, reported next to each case: the machine may be shared.
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1000.0
}

pub fn run(args: ClusterArgs) -> Result<()> {
    let binary = crdtkv_path(args.crdtkv.as_deref())?;
    ensure!(
        ["lag", "throughput", "heal"].iter().any(|c| args.runs(c)),
        "--only takes lag, throughput, heal"
    );
    if args.runs("lag") || args.runs("throughput") {
        let mut cluster = nodes::start_cluster(&binary, 3, &args.tuning)?;
        if args.keep {
            cluster.keep();
        }
        if args.runs("lag") {
            replication_lag(&args, &cluster, "replication_lag", args.lag_pause_us)?;
            cluster.check_alive()?;
            if args.lag_paced_us > 0 {
                replication_lag(&args, &cluster, "replication_lag_paced", args.lag_paced_us)?;
                cluster.check_alive()?;
            }
        }
        if args.runs("throughput") {
            write_throughput(&args, &binary, &cluster)?;
            cluster.check_alive()?;
        }
    }
    if args.runs("heal") {
        partition_heal(&args, &binary)?;
    }
    Ok(())
}

fn replication_lag(
    args: &ClusterArgs,
    cluster: &nodes::Group,
    case: &str,
    pause_us: u64,
) -> Result<()> {
    let writes = args
        .lag_writes
        .unwrap_or(if args.quick { 300 } else { 3000 });
    let lag = lag::measure(cluster, writes, pause_us)?;
    let mut all: Vec<u64> = lag.per_node.iter().flat_map(|(_, s)| s.clone()).collect();
    all.sort_unstable();
    let p99 = ms_of_us(lag::quantile(&all, 0.99));
    let mean = all.iter().sum::<u64>() as f64 / all.len().max(1) as f64 / 1000.0;
    let mut result = report::Result::new("cluster", case)
        .field("writes", lag.writes)
        .field("pause_between_writes_us", pause_us)
        .field("samples", all.len())
        .field("p50_ms", ms_of_us(lag::quantile(&all, 0.5)))
        .field("p90_ms", ms_of_us(lag::quantile(&all, 0.9)))
        .field("p99_ms", p99)
        .field("p999_ms", ms_of_us(lag::quantile(&all, 0.999)))
        .field("max_ms", ms_of_us(all.last().copied().unwrap_or(0)))
        .field("mean_ms", (mean * 1000.0).round() / 1000.0)
        .field("p99_target_ms", 20)
        .field("p99_goal_ms", 5)
        .field("target_met", p99 <= 20.0 && lag.timeouts == 0)
        .field("goal_met", p99 <= 5.0 && lag.timeouts == 0)
        .field("timeouts", lag.timeouts);
    for (id, samples) in &lag.per_node {
        let mut s = samples.clone();
        s.sort_unstable();
        result = result
            .field(
                &format!("node{id}_p50_ms"),
                ms_of_us(lag::quantile(&s, 0.5)),
            )
            .field(
                &format!("node{id}_p99_ms"),
                ms_of_us(lag::quantile(&s, 0.99)),
            );
    }
    // The nodes' own view: bucket bounds of the delta-lag histogram (`CLUSTER INFO`).
    let mut conn = cluster.node(2).conn()?;
    let info = conn.cluster_info()?;
    result
        .field("node2_reported_p50_bound_ms", info.str("repl_lag_p50_ms"))
        .field("node2_reported_p99_bound_ms", info.str("repl_lag_p99_ms"))
        .field("loadavg_1m", loadavg())
        .emit();
    Ok(())
}

fn write_throughput(args: &ClusterArgs, binary: &Path, cluster: &nodes::Group) -> Result<()> {
    let load = Load {
        clients: args.clients,
        requests: args
            .requests
            .unwrap_or(if args.quick { 20_000 } else { 200_000 }),
        keyspace: args.keyspace,
        pipeline: args.pipeline,
    };
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let mut alone = nodes::start_standalone(binary)?;
    if args.keep {
        alone.keep();
    }
    let mut info1 = cluster.node(1).conn()?;
    let before = Counters::of(&info1.cluster_info()?);
    let dropped_before = info1.cluster_info()?.u64("deltas_dropped");
    let (mut ours, mut theirs, mut drains) = (Vec::new(), Vec::new(), Vec::new());
    // CPU seconds of each cluster node and of the standalone node during their rounds (the
    // cluster's including the drain after each round).
    let mut cluster_cpu = vec![0.0; cluster.nodes.len()];
    let mut alone_cpu = 0.0;
    for round in 0..rounds {
        for cluster_side in [round % 2 == 0, round % 2 == 1] {
            if cluster_side {
                let cpu: Vec<f64> = cluster
                    .nodes
                    .iter()
                    .map(nodes::Node::cpu_seconds)
                    .collect::<Result<_>>()?;
                ours.push(redis_benchmark(
                    &args.redis_benchmark,
                    cluster.node(1).port,
                    "SET",
                    load,
                )?);
                drains.push(ms(throughput::wait_replicated(
                    cluster,
                    Duration::from_secs(300),
                )?));
                for (i, node) in cluster.nodes.iter().enumerate() {
                    cluster_cpu[i] += node.cpu_seconds()? - cpu[i];
                }
            } else {
                let cpu = alone.node(1).cpu_seconds()?;
                theirs.push(redis_benchmark(
                    &args.redis_benchmark,
                    alone.node(1).port,
                    "SET",
                    load,
                )?);
                alone_cpu += alone.node(1).cpu_seconds()? - cpu;
            }
        }
    }
    alone.check_alive()?;
    let info = info1.cluster_info()?;
    let delta = Counters::of(&info).since(&before);
    let writes = load.requests * rounds as u64;
    // CPU milliseconds per 1000 writes.
    let per_kwrite = |s: f64| (s * 1e9 / writes as f64).round() / 1000.0;
    let mut result = report::Result::new("cluster", "write_throughput_set")
        .compare(
            "ops_per_s",
            median(ours),
            "crdtkv standalone",
            median(theirs),
        )
        .field("clients", load.clients)
        .field("pipeline", load.pipeline)
        .field("requests", load.requests)
        .field("keyspace", load.keyspace)
        .field("rounds", rounds)
        .field("replication_drain_ms", median(drains))
        .field(
            "delta_bytes_sent_per_write",
            (delta.delta_bytes_sent as f64 / writes as f64 * 10.0).round() / 10.0,
        )
        .field("delta_batches_sent", delta.delta_batches_sent)
        .field(
            "deltas_dropped",
            info.u64("deltas_dropped") - dropped_before,
        )
        .field("standalone_cpu_ms_per_1k_writes", per_kwrite(alone_cpu));
    for (i, cpu) in cluster_cpu.iter().enumerate() {
        result = result.field(
            &format!("node{}_cpu_ms_per_1k_writes", i + 1),
            per_kwrite(*cpu),
        );
    }
    result
        .field(
            "cores",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
        )
        .field("loadavg_1m", loadavg())
        .emit();
    Ok(())
}

fn partition_heal(args: &ClusterArgs, binary: &Path) -> Result<()> {
    let keys = args
        .keys
        .unwrap_or(if args.quick { 10_000 } else { 100_000 });
    let mut cluster = nodes::start_cluster(binary, 3, &args.tuning)?;
    if args.keep {
        cluster.keep();
    }
    let heal = heal::measure(&mut cluster, keys)?;
    cluster.check_alive()?;
    let png = args.png.clone().unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("out")
            .join("cluster_divergence.png")
    });
    if let Some(dir) = png.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let labelled = plot::divergence(&png, &heal.samples, keys)?;

    let sum = Counters::sum(&heal.to_identical);
    let quiet = Counters::sum(&heal.to_quiet);
    let bytes = sum.ae_bytes_sent + sum.delta_bytes_sent;
    let bytes_quiet = quiet.ae_bytes_sent + quiet.delta_bytes_sent;
    let per_key = |b: u64| (b as f64 / heal.keys_to_repair as f64 * 10.0).round() / 10.0;
    let identical_ms = heal.identical.map(ms);
    let opt_ms = |d: Option<Duration>| d.map(ms);
    let mut result = report::Result::new("cluster", "partition_heal")
        .field("keys_per_side", heal.keys_per_side)
        .field("heal_to_identical_ms", identical_ms)
        .field("target_ms", 5000)
        .field("goal_ms", 1000)
        .field("target_met", identical_ms.is_some_and(|t| t <= 5000.0))
        .field("goal_met", identical_ms.is_some_and(|t| t <= 1000.0))
        .field("heal_to_rejoined_ms", opt_ms(heal.rejoined))
        .field("heal_to_first_ae_ms", opt_ms(heal.first_ae))
        .field("partition_detected_ms", ms(heal.partition_detected))
        .field("load_ops_per_s", heal.load_ops_per_s.round())
        .field("keys_repaired", heal.keys_to_repair)
        .field("ae_keys_repaired", sum.ae_keys_repaired)
        .field("bytes_exchanged", bytes)
        .field("ae_bytes_sent", sum.ae_bytes_sent)
        .field("delta_bytes_sent", sum.delta_bytes_sent)
        .field("bytes_per_repaired_key", per_key(bytes))
        .field("ae_rounds_started", sum.ae_rounds_started)
        .field("ae_rounds_completed", sum.ae_rounds_completed)
        .field(
            &format!("bytes_per_repaired_key_{}s_later", heal::QUIET.as_secs()),
            per_key(bytes_quiet),
        );
    for (i, (c, cpu)) in heal.to_identical.iter().zip(&heal.cpu_s).enumerate() {
        result = result
            .field(&format!("node{}_ae_bytes_sent", i + 1), c.ae_bytes_sent)
            .field(&format!("node{}_cpu_ms", i + 1), (cpu * 1000.0).round());
    }
    result
        .field("divergence_samples", heal.samples.len())
        .field("divergence_png", png.display().to_string())
        .field("divergence_png_labelled", labelled)
        .field("loadavg_1m", loadavg())
        .emit();
    ensure!(
        heal.identical.is_some(),
        "the nodes did not converge after the heal"
    );
    Ok(())
}
