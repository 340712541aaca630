//! `crdtkv`: start a node. See `crdtkv --help` and `node::cli`.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use node::cli::Cli;
use node::startup::{self, StartError};
use node::state::Hooks;

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    let state = match startup::start(config, cli.config.clone(), Hooks::default()) {
        Ok(state) => Arc::new(state),
        Err(error) => return fail(&error),
    };
    let served = runtime.block_on(serve(Arc::clone(&state)));
    // Connections that outlived the shutdown timeout are dropped with the runtime, which
    // releases their references to the state.
    drop(runtime);
    let flushed = state.committer.shutdown();
    drop(state);
    if let Err(error) = served {
        return fail(&error);
    }
    match flushed {
        Ok(()) => {
            tracing::info!("storage flushed; bye");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "final storage sync failed");
            ExitCode::FAILURE
        }
    }
}

/// Binds the listener and serves until SIGINT or SIGTERM.
async fn serve(state: Arc<node::state::NodeState>) -> Result<(), StartError> {
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
    .await;
    Ok(())
}

fn fail(error: &StartError) -> ExitCode {
    eprintln!("crdtkv: {error}");
    tracing::error!(%error, "cannot start");
    ExitCode::FAILURE
}
