//! SIGINT and SIGTERM as one shutdown request.

/// Completes when the process receives SIGINT or SIGTERM; returns the signal's name. If the
/// handlers cannot be installed (never on Linux), it logs why and waits for Ctrl-C only.
pub async fn shutdown_requested() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        (Err(error), _) | (_, Err(error)) => {
            tracing::warn!(%error, "cannot install signal handlers; only Ctrl-C stops the node");
            // Without a handler the default action (terminate) still applies to SIGTERM.
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
