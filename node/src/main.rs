//! `crdtkv`: start a node. See `crdtkv --help` and `node::cli`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use node::cli::Cli;
use node::cluster::{Cluster, WriteGate};
use node::config::Config;
use node::startup::{self, StartError};
use node::state::{Hooks, NodeState};

/// jemalloc rather than the system allocator: the write path allocates and frees small
/// objects (deltas, encoded states, RocksDB batches) from both runtime threads, and glibc's
/// malloc spent about a fifth of the CPU of a write benchmark on it; jemalloc's per-thread caches
/// took write throughput under `redis-benchmark -P 16` from 0.44 to 0.70 of redis-server's
/// (`cargo run --release -p bench -- resp`). Its options are set at build time in
/// `.cargo/config.toml`. Only the binary: libraries leave the choice to whoever links them
/// (the bench binary counts allocations with its own).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(command) = &cli.command {
        return command.run();
    }
    let config = match cli.load_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("crdtkv: {error}");
            return ExitCode::FAILURE;
        }
    };
    if cli.check_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    node::logging::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("crdtkv: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let (served, state) = runtime.block_on(run(config, cli.config.clone()));
    // Connections that outlived the shutdown timeout are dropped with the runtime, which
    // releases their references to the state.
    drop(runtime);
    let flushed = state.map(|state| {
        let flushed = state.committer.shutdown();
        drop(state);
        flushed
    });
    if let Err(error) = served {
        return fail(&error);
    }
    match flushed {
        Some(Err(error)) => {
            tracing::error!(%error, "final storage sync failed");
            ExitCode::FAILURE
        }
        _ => {
            tracing::info!("storage flushed; bye");
            ExitCode::SUCCESS
        }
    }
}

/// Opens the node, starts its cluster side if configured, serves until SIGINT or SIGTERM, and
/// leaves the cluster. Returns the state (once built) so that storage is flushed after the
/// runtime is gone.
async fn run(
    mut config: Config,
    config_file: Option<PathBuf>,
) -> (Result<(), StartError>, Option<Arc<NodeState>>) {
    let tls = match &config.cluster {
        Some(cluster) => match node::cluster::load_tls(cluster, config.node.node_id) {
            Ok(tls) => {
                // The certificate names the node.
                config.node.node_id = Some(tls.node_id().get());
                Some(tls)
            }
            Err(error) => return (Err(error.into()), None),
        },
        None => None,
    };
    let opened = match startup::open(&config) {
        Ok(opened) => opened,
        Err(error) => return (Err(error), None),
    };
    let (cluster, gate) = match (&config.cluster, &tls) {
        (Some(section), Some(tls)) => {
            let sync = config.storage.fsync == node::config::FsyncPolicy::Always;
            let store = Arc::clone(&opened.rocks) as Arc<dyn storage::Store>;
            let cluster =
                match Cluster::start(section, tls, Arc::clone(&opened.keyspace), store, sync).await
                {
                    Ok(cluster) => cluster,
                    Err(error) => return (Err(error.into()), None),
                };
            // Closed even for an empty data directory: it may be a wiped node whose earlier
            // counter entries survive only on its peers (see `node::cluster::gate`).
            let gate = if section.startup_sync_timeout_ms > 0 {
                let gate = Arc::new(WriteGate::closed());
                let timeout = Duration::from_millis(section.startup_sync_timeout_ms);
                let (g, replication) = (Arc::clone(&gate), cluster.replication.clone());
                tokio::spawn(async move { g.open_when_caught_up(replication, timeout).await });
                gate
            } else {
                Arc::new(WriteGate::open())
            };
            (Some(cluster), gate)
        }
        _ => (None, Arc::new(WriteGate::open())),
    };
    let state = Arc::new(startup::build(
        config,
        config_file,
        opened,
        cluster,
        gate,
        Hooks::default(),
    ));
    let served = serve(Arc::clone(&state)).await;
    if let Some(cluster) = &state.cluster {
        cluster.shutdown().await;
        tracing::info!("left the cluster");
    }
    (served, Some(state))
}

/// Binds the listener and serves until SIGINT or SIGTERM.
async fn serve(state: Arc<NodeState>) -> Result<(), StartError> {
    let listener = node::server::bind(&state)
        .await
        .map_err(|source| StartError::Bind {
            addr: node::server::listen_addr(&state.config.server.bind, state.config.server.port),
            source,
        })?;
    tracing::info!(
        addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        node_id = %state.node_id,
        data_dir = %state.config.node.data_dir.display(),
        fsync = node::info::fsync_name(state.config.storage.fsync),
        "ready to accept connections"
    );
    node::server::serve(state, listener, async {
        let signal = node::server::signals::shutdown_requested().await;
        tracing::info!(signal, "shutdown requested");
    })
    .await
    .map_err(StartError::Threads)
}

fn fail(error: &StartError) -> ExitCode {
    eprintln!("crdtkv: {error}");
    tracing::error!(%error, "cannot start");
    ExitCode::FAILURE
}
