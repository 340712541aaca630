//! `cargo run --release -p bench -- SCENARIO [options]`
//!
//! Every scenario measures crdtkv and a reference implementation side by side in the same run
//! and reports the ratio ours / reference. Each result is printed as one JSON object per line on
//! stdout (for machines) and as a row of a table on stderr (for people); see [`report`].

use anyhow::Result;
use clap::{Parser, Subcommand};

mod alloc;
mod cluster;
mod procs;
mod report;
mod resp;
mod trace;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

#[derive(Parser)]
#[command(
    name = "bench",
    about = "crdtkv benchmarks: ours vs a reference, side by side"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Replay the sequential editing traces through our Rga and diamond-types.
    Trace(trace::TraceArgs),
    /// crdtkv vs redis-server under redis-benchmark (needs `cargo build --release -p node`),
    /// and resident size holding 1M keys.
    Resp(resp::RespArgs),
    /// A local 3-node crdtkv cluster: replication lag, write throughput vs a standalone node,
    /// convergence after a partition (needs `cargo build --release -p node`).
    Cluster(cluster::ClusterArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.scenario {
        Scenario::Trace(args) => trace::run(args),
        Scenario::Resp(args) => resp::run(args),
        Scenario::Cluster(args) => cluster::run(args),
    }
}
